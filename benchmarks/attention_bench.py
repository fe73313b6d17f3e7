"""Attention-metric benchmark: what attention metrics cost next to evaluating the same prompts.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.attention_bench`` (``--threads N``,
``--repeat R``, ``--batch-size B``, ``--max-prompts N``, ``--configs K``).

Model: the shipped organism when ``data/organism`` exists, else a random tiny Llama of the
organism's shape (d_model 128, 4 layers, 4 heads, 2 key-value heads, SwiGLU 384) built with
:func:`lenskit.make_tiny_model` and the organism's tokenizer. Tasks: the organism's small
suite without perplexity (closed-book, open-book, overriding, function tasks).

Measured over all tasks in one run, every one with the same batch size and one torch thread
(best of ``--repeat`` interleaved rounds; wall clock and this process's CPU time):

- **evaluate**: :func:`lenskit.tasks.evaluate` (``hf`` backend, tokenisation cached, no
  bootstrap): the prompt pass with the gold answer appended, then greedy decoding on the
  key-value cache. With random weights every row decodes the full ``max_new_tokens`` (3-4
  tokens here), the worst case for evaluate; a trained model that stops early is slightly
  faster, which would make the ratios below slightly larger.
- **bridge forward**: the bare TransformerBridge forward (``return_type=None``) over exactly
  the batches the attention metrics use (right-padded, longest first).
- **pattern forward**: the same forward with a no-op hook on every ``hook_pattern`` that stops
  the pass after the last layer's pattern, as :func:`attention_metrics` does: the least any
  hook-based pattern metric needs.
- **metrics, dense**: :func:`attention_metrics` on the dense model (one forward per batch).
- **metrics, pruned vs dense**: :func:`attention_metrics` with one magnitude-pruned mask set:
  per batch a dense forward, the masks applied, a pruned forward, the weights restored.
- **drift, K configs**: :func:`attention_drift` over ``K`` pruning configurations (one
  dense forward per batch shared by all of them), reported per configuration.

Ratios: the metric computation over the forward it rides on (``metrics, dense`` / ``pattern
forward``: the overhead the 30% target of issue 7 can hold for), and the whole against
``evaluate`` (a separate pass over the prompts cannot cost less than about one forward,
which is what evaluate itself mostly is).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import torch

from benchmarks.timing import interleaved
from lenskit.analysis.attention import AttentionProbe, attention_drift, attention_metrics
from lenskit.analysis.attention_engine import PatternEngine
from lenskit.analysis.attention_inputs import pad_id, pattern_batches, prompt_rows
from lenskit.models import load_model, make_tiny_model, model_info
from lenskit.models.early_exit import StopForward
from lenskit.pruning import Pruner
from lenskit.tasks import evaluate, organism_suite


def _model(tmp: Path):
    data = Path(os.environ.get("LENSKIT_DATA", Path(__file__).resolve().parents[1] / "data"))
    if (data / "organism" / "world.json").is_file():
        return load_model("organism"), "organism (shipped)"
    path = make_tiny_model("llama", tmp / "llama", d_model=128, n_layers=4, n_heads=4,
                           d_ffn=384)
    return load_model(path), "tiny Llama d128 x 4 layers, SwiGLU 384 (random weights)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-prompts", type=int, default=None,
                        help="prompts per task (default: all 300)")
    parser.add_argument("--configs", type=int, default=4, help="configurations for drift")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        model, label = _model(Path(tmp))
        info = model_info(model)
        from lenskit.synthetic.world import WorldConfig

        source = model if label.startswith("organism") else WorldConfig().build()
        tasks = [t for t in organism_suite(source, size="small", seed=0).values()
                 if t.kind != "perplexity"]
        if args.max_prompts:
            tasks = [t.subset(min(args.max_prompts, len(t)), seed=0) for t in tasks]
        bs = args.batch_size
        levels = [(0.3, "all"), (0.6, "all"), (0.5, "attn"), (0.5, "mlp"),
                  (0.7, "all"), (0.3, "attn"), (0.3, "mlp"), (0.7, "mlp")][: args.configs]
        results = {f"magnitude {s:.0%} {sc}": Pruner(model, "magnitude", scope=sc).prune(s)
                   for s, sc in levels}
        one = next(iter(results.values()))
        engine = PatternEngine(model, None)
        batches = [b for t in tasks
                   for b in pattern_batches(prompt_rows(info, t, None, engine.vocab_size),
                                            bs, pad_id(info.tokenizer))]
        for t in tasks:  # warm the evaluation's tokenisation cache (as in a sweep)
            evaluate(model, t, batch_size=bs, n_bootstrap=0)
        last = info.n_layers - 1

        def stop_at_last(pattern, hook):
            if hook.name == f"blocks.{last}.attn.hook_pattern":
                raise StopForward

        def bridge_forward() -> None:
            with torch.inference_mode():
                for ids, _ in batches:
                    model(ids, return_type=None)

        def pattern_forward() -> None:
            hooks = [(f"blocks.{la}.attn.hook_pattern", stop_at_last)
                     for la in range(info.n_layers)]
            for ids, _ in batches:
                engine._forward(ids, hooks)

        fns = {
            "evaluate": lambda: [evaluate(model, t, batch_size=bs, n_bootstrap=0)
                                 for t in tasks],
            "probed": lambda: [evaluate(model, t, batch_size=bs, n_bootstrap=0,
                                        probe=AttentionProbe(model, t)) for t in tasks],
            "bridge": bridge_forward,
            "pattern": pattern_forward,
            "dense": lambda: [attention_metrics(model, t, batch_size=bs) for t in tasks],
            "pair": lambda: [attention_metrics(model, t, masks=one, batch_size=bs)
                             for t in tasks],
            "drift": lambda: attention_drift(model, tasks, results, batch_size=bs,
                                             repeats=None),
        }
        wall, cpu = interleaved(fns, args.repeat)
        k = len(results)
        n_prompts = sum(len(t) for t in tasks)
        mean_len = sum(int(lay.lengths.float().sum()) for _, lay in batches) / n_prompts
        print(f"model: {label}, {sum(p.numel() for p in info.hf.parameters()):,} parameters; "
              f"torch threads {args.threads}; batch size {bs}; best of {args.repeat}; "
              f"{len(tasks)} tasks, {n_prompts} prompts of {mean_len:.0f} tokens on average; "
              f"drift over {k} configurations\n")
        print("| measurement | wall (s) | CPU (s) | / evaluate (wall) | / evaluate (CPU) | "
              "/ pattern forward (CPU) |")
        print("|---|---|---|---|---|---|")
        names = {"evaluate": "evaluate (hf backend)",
                 "probed": "evaluate + AttentionProbe (metrics in the same prompt pass)",
                 "bridge": "bridge forward (bare)",
                 "pattern": "pattern forward (stops after the last pattern)",
                 "dense": "attention metrics, dense model",
                 "pair": "attention metrics, pruned vs dense (1 config)",
                 "drift": f"attention drift, per configuration (K = {k})"}
        for key, name in names.items():
            div = k if key == "drift" else 1
            w, c = wall[key] / div, cpu[key] / div
            print(f"| {name} | {w:.2f} | {c:.2f} | {w / wall['evaluate']:.2f} | "
                  f"{c / cpu['evaluate']:.2f} | {c / cpu['pattern']:.2f} |")
        overhead = cpu["dense"] / cpu["pattern"] - 1
        print(f"\nattention metrics added to an evaluation (AttentionProbe): "
              f"{cpu['probed'] / cpu['evaluate'] - 1:+.0%} (CPU), "
              f"{wall['probed'] / wall['evaluate'] - 1:+.0%} (wall); target <= +30%")
        print(f"metric computation over the pattern forward: {overhead:+.0%} (CPU); "
              f"attention drift per configuration over evaluating it: "
              f"{cpu['drift'] / k / cpu['evaluate']:.2f}x (CPU)")


if __name__ == "__main__":
    main()
