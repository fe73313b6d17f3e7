"""Training throughput of the organism family on this machine: what setting to train with.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.organism_throughput`` (``--widths 32 48 64
96``, ``--steps 12``, ``--curve-steps 200``, ``--no-compile`` to skip torch.compile).

For each width of the family (:func:`lenskit.organism.family.family_config`), on batches of
the real trainer (:class:`~lenskit.synthetic.corpus.CorpusSampler` for the family's world and
corpus; built once, before timing), it times :func:`lenskit.organism.train.train_step` (the
trainer's own step: forward, weighted loss, backward, clip, AdamW) in every combination of

- float32 and bfloat16 autocast;
- 1 and 2 torch threads;
- eager and ``torch.compile`` (at ``--compile-widths`` and one thread; compilation and its
  warm-up are not timed, but reported),

and reports tokens/s (all positions of the padded batch, and those that are not padding) and
each setting's ratio to float32 / 1 thread / eager of the same width, measured in the same
run. It also times the corpus sampler (which the trainer runs between steps) and reports the
packing: the share of each batch that is padding, and the share of real tokens that carry
loss weight 1 (answers) or any weight.

Then the loss curves: ``--curve-steps`` steps of ``--curve-width`` from scratch in float32
and in bfloat16 (same init, same data), and float32 again with another init seed (the
noise a seed makes), compared as the mean loss over the last quarter.

Timings are noisy on a shared machine: compare the ratios, not the absolute numbers. The
CPU time per step (core-seconds of this process) is what a training budget in core-hours
pays, and is less disturbed than wall time by other processes taking the cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import warnings

import torch
from transformers import LlamaForCausalLM

from lenskit.organism.family import family_config
from lenskit.organism.train import TrainConfig, _optimizer, train_step
from lenskit.synthetic.corpus import CorpusSampler
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary


def _model(cfg: TrainConfig, tok, seed: int) -> tuple[LlamaForCausalLM, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg.model.hf_config(tok))
    model.train()
    return model, _optimizer(model, cfg)


def time_setting(cfg: TrainConfig, tok, batches: list, warmup: int, steps: int,
                 compile: bool = False) -> dict[str, float]:
    """Seconds per step of ``cfg``'s settings (dtype, threads; ``compile``: the model
    wrapped in ``torch.compile``, which the trainer does not offer) over ``steps`` timed
    steps after ``warmup`` untimed ones (compilation happens in the warm-up): the median wall
    time and the median CPU time of this process (all its threads: core-seconds)."""
    torch.set_num_threads(cfg.threads)
    model, opt = _model(cfg, tok, seed=0)
    forward = torch.compile(model) if compile else model
    t = time.perf_counter()
    for i in range(warmup):
        train_step(model, opt, batches[i % len(batches)], cfg, step=i, forward=forward)
    warm = time.perf_counter() - t
    times, cpu = [], []
    for i in range(warmup, warmup + steps):
        t, c = time.perf_counter(), time.process_time()
        train_step(model, opt, batches[i % len(batches)], cfg, step=i, forward=forward)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"s_per_step": statistics.median(times), "cpu_s_per_step": statistics.median(cpu),
            "warmup_s": warm}


def loss_curve(cfg: TrainConfig, tok, batches: list, seed: int) -> list[float]:
    torch.set_num_threads(cfg.threads)
    model, opt = _model(cfg, tok, seed)
    return [float(train_step(model, opt, b, cfg, step=i)[0]) for i, b in enumerate(batches)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 48, 64, 96])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="timed steps per setting")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--compile-widths", type=int, nargs="*", default=None,
                    help="widths timed with torch.compile, at the first thread count (default: "
                         "the first width; compiling takes minutes per setting here)")
    ap.add_argument("--curve-steps", type=int, default=200)
    ap.add_argument("--curve-width", type=int, default=None,
                    help="width of the loss-curve comparison (default: the first width)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    curve_width = args.curve_width or args.widths[0]
    base = family_config(curve_width)
    world = base.world.build()
    tok = build_tokenizer(organism_vocabulary(world))
    sampler = CorpusSampler(world, tok, base.corpus, seed=base.seed)
    n_batches = max(args.warmup + args.steps, args.curve_steps)
    t = time.process_time()
    batches = [sampler.batch(s, base.batch_size) for s in range(n_batches)]
    sample_s = (time.process_time() - t) / n_batches
    mask = torch.stack([b[1].sum() for b in batches]).float()
    cells = torch.tensor([b[1].numel() for b in batches], dtype=torch.float)
    weights = [b[2][b[1].bool()] for b in batches]
    pad = float(1 - mask.sum() / cells.sum())
    answer = float(sum((w == 1).sum() for w in weights) / mask.sum())
    weighted = float(sum(w.sum() for w in weights) / mask.sum())
    print(f"world: {world.n_facts} facts, vocabulary {len(tok)}; batch {base.batch_size} x "
          f"<= {base.corpus.row_tokens} tokens; corpus sampler {sample_s * 1e3:.0f} ms CPU per "
          f"batch (one thread, part of every trainer step)")
    print(f"packing over {n_batches} batches: padding {pad:.1%} of the batch; of the real "
          f"tokens, {answer:.1%} are answers (weight 1), mean loss weight {weighted:.3f}")

    rows = []
    compile_widths = [] if args.no_compile else (args.compile_widths if args.compile_widths
                                                 is not None else args.widths[:1])
    for d in args.widths:
        for dtype, threads, comp in itertools.product(("float32", "bfloat16"), args.threads,
                                                      (False, True)):
            if comp and (d not in compile_widths or threads != args.threads[0]):
                continue
            cfg = family_config(d, dtype=dtype, threads=threads)
            r = time_setting(cfg, tok, batches, args.warmup, args.steps, compile=comp)
            tokens = sum(b[0].numel() for b in batches[: args.steps]) / args.steps
            real = float(mask[: args.steps].mean())
            rows.append({"d_model": d, "dtype": dtype, "threads": threads, "compile": comp,
                         "params": sum(p.numel() for p in _model(cfg, tok, 0)[0].parameters()),
                         **r, "tokens_per_s": tokens / r["s_per_step"],
                         "real_tokens_per_s": real / r["s_per_step"]})
            print(json.dumps(rows[-1]), flush=True)
    torch._dynamo.reset()
    print("\n| d_model | params | dtype | threads | compile | wall s/step | CPU s/step | "
          "tokens/s (wall) | real tokens/s (wall) | speed vs fp32/1 thread/eager (wall) | "
          "core-s vs fp32/1 thread/eager | compile+warm-up s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ref = next(q for q in rows if q["d_model"] == r["d_model"] and q["dtype"] == "float32"
                   and q["threads"] == args.threads[0] and not q["compile"])
        print(f"| {r['d_model']} | {r['params']:,} | {r['dtype']} | {r['threads']} | "
              f"{'yes' if r['compile'] else 'no'} | {r['s_per_step']:.3f} | "
              f"{r['cpu_s_per_step']:.3f} | {r['tokens_per_s']:,.0f} | "
              f"{r['real_tokens_per_s']:,.0f} | {ref['s_per_step'] / r['s_per_step']:.2f}x | "
              f"{r['cpu_s_per_step'] / ref['cpu_s_per_step']:.2f}x | {r['warmup_s']:.1f} |")

    curves = {}
    if args.curve_steps:
        d = curve_width
        for label, dtype, seed in (("float32", "float32", 0), ("bfloat16", "bfloat16", 0),
                                   ("float32 seed 1", "float32", 1)):
            cfg = family_config(d, steps=args.curve_steps, dtype=dtype, threads=1)
            curves[label] = loss_curve(cfg, tok, batches[: args.curve_steps], seed)
        q = max(1, args.curve_steps // 4)
        tail = {k: statistics.mean(v[-q:]) for k, v in curves.items()}
        print(f"\nloss curves, d{d}, {args.curve_steps} steps from scratch (mean of the last "
              f"{q} steps): " + ", ".join(f"{k} {v:.4f}" for k, v in tail.items()))
        print(f"bfloat16 - float32: {tail['bfloat16'] - tail['float32']:+.4f}; another seed "
              f"in float32: {tail['float32 seed 1'] - tail['float32']:+.4f}")
        for s in range(0, args.curve_steps, max(1, args.curve_steps // 8)):
            print(f"  step {s + 1}: " + ", ".join(f"{k} {v[s]:.3f}" for k, v in curves.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "curves": curves, "padding": pad, "answer_share": answer,
                       "mean_weight": weighted, "sampler_s_per_batch": sample_s}, f)


if __name__ == "__main__":
    main()
