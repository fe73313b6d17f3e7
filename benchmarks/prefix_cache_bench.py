"""Shared-prefix caching benchmark: few-shot QA with and without reusing the demonstrations'
key-value cache, in the same run.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.prefix_cache_bench`` (``--shots``,
``--items``, ``--repeat``, ``--threads``).

Model: the shipped organism when ``data/organism`` exists, else a random tiny Llama
(d_model 128, 4 layers) with the organism's tokenizer. Tasks: the organism's closed-book,
open-book and overriding questions with ``--shots`` fixed demonstrations
(:func:`lenskit.tasks.templated_task`, template ``qa``). For each task the same
:func:`lenskit.tasks.evaluate` call (HF backend, batch size 32, tokenisation cached) runs
with ``prefix_cache=True`` (the demonstrations encoded once per task) and ``False`` (every
prompt encoded in full, as before); predictions are checked identical, and the ratio of the
best of ``--repeat`` interleaved rounds is reported. Prints a markdown row per task and one
for all tasks (the BENCHMARKS.md line).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import torch

from benchmarks.timing import interleaved
from lenskit.models import load_model, make_tiny_model
from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import QAItem, evaluate, organism_suite, templated_task


def _model(tmp: Path):
    data = Path(os.environ.get("LENSKIT_DATA", Path(__file__).resolve().parents[1] / "data"))
    if (data / "organism" / "world.json").is_file():
        return load_model("organism"), "organism (shipped)", "organism"
    path = make_tiny_model("llama", tmp / "llama", d_model=128, n_layers=4, n_heads=4,
                           d_ffn=512)
    return load_model(path), "tiny Llama d128 x 4 layers (random weights)", None


def _few_shot(source, shots: int, n: int):
    suite = organism_suite(source, size="small", seed=0)
    tasks = []
    for kind in ("closed_book", "open_book", "overriding"):
        items = []
        for inst in list(suite[kind])[: n + shots]:
            lines = inst.prompt.split("\n")
            context = "\n".join(lines[:-2]) if kind != "closed_book" else None
            items.append(QAItem(lines[-2][len("Q: "):], inst.answers, context=context,
                                memorised_answer=inst.memorised_answer, id=inst.id))
        tasks.append(templated_task(kind, items, shots=shots, template="qa",
                                    name=f"{kind}_{shots}shot"))
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        model, label, organism = _model(Path(tmp))
        source = model if organism else WorldConfig().build()
        tasks = _few_shot(source, args.shots, args.items)
        bs = args.batch_size
        print(f"model: {label}; torch threads {args.threads}; batch size {bs}; "
              f"{args.shots} fixed demonstrations; best of {args.repeat}\n")
        print("| task | prompts | prompt tokens (mean) | shared prefix (tokens) | "
              "full prompts (s) | prefix cache (s) | speed-up |")
        print("|---|---|---|---|---|---|---|")
        total = {"full": 0.0, "cached": 0.0}
        for task in tasks:
            cached = evaluate(model, task, batch_size=bs, n_bootstrap=0)  # warms tokenisation
            full = evaluate(model, task, batch_size=bs, n_bootstrap=0, prefix_cache=False)
            if list(cached.rows["prediction"]) != list(full.rows["prediction"]):
                raise SystemExit(f"{task.name}: predictions differ with the prefix cache")
            wall, _ = interleaved({
                "full": lambda t=task: evaluate(model, t, batch_size=bs, n_bootstrap=0,
                                                prefix_cache=False),
                "cached": lambda t=task: evaluate(model, t, batch_size=bs, n_bootstrap=0),
            }, args.repeat)
            for k in total:
                total[k] += wall[k]
            shared = cached.meta["tasks"][task.name]["shared_prefix_tokens"]
            mean = cached.rows["prompt_tokens"].mean()
            print(f"| {task.name} | {len(task)} | {mean:.0f} | {shared} | {wall['full']:.2f} | "
                  f"{wall['cached']:.2f} | {wall['full'] / wall['cached']:.2f}x |")
        print(f"| **all** | | | | {total['full']:.2f} | {total['cached']:.2f} | "
              f"{total['full'] / total['cached']:.2f}x |")


if __name__ == "__main__":
    main()
