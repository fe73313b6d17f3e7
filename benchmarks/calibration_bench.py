"""Sequential vs dense calibration: mask agreement, accuracy difference and prune time.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.calibration_bench`` (the organism, Wanda, scopes
all/attn/mlp, sparsities 0.3 0.5 0.7); ``--model PATH`` for a real model (a local HF
directory or a .gguf file), ``--method sparsegpt``, ``--sparsities``, ``--scopes``,
``--source`` (calibration source, default "default"), ``--n-samples``/``--seq-len``.

The study calibrates sequentially by default, as the references do (pruned outputs feed the
next block); ``calibration.sequential = false`` gives the dense mode (every block sees the
unpruned model's activations; one pass serves every level). For every scope and level this
reports the fraction of mask entries on which the two modes agree, the primary metric of
every task under each mode and their difference, and the wall-time ratio of pruning
sequentially vs densely, one level and all levels (a fresh Pruner each time, so the dense
mode's single calibration pass is counted; interleaved, best of ``--repeat``): sequential
mode runs one calibration pass per level, dense one pass for all levels. The pruning of the first
block is the same in both modes, so disagreement grows with depth.
"""

from __future__ import annotations

import argparse
import os
import warnings

import pandas as pd
import torch

from benchmarks.timing import interleaved
from lenskit.models import load_model, model_info, pruned
from lenskit.pruning import Pruner, calibration_from_source
from lenskit.results.thresholds import primary_metric
from lenskit.tasks import default_suite, evaluate_suite


def mask_agreement(a, b) -> float:
    """Fraction of mask entries (over every site of both mask sets) that agree."""
    same = sum(int((a[n] == b[n]).sum()) for n in a)
    total = sum(a[n].numel() for n in a)
    return same / total


def primary(result) -> dict[str, tuple[str, float]]:
    s = result.summary()
    out = {}
    for task, g in s.groupby("task", sort=False):
        m = primary_metric(g["metric"])
        out[task] = (m, float(g.loc[g["metric"] == m, "value"].iloc[0]))
    return out


def run(model_spec: str, method: str, scopes: list[str], levels: list[float], source: str,
        n_samples: int, seq_len: int, task_size: str, repeat: int, batch_size: int,
        tasks: list[str] | None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    model = load_model(model_spec)
    cal = calibration_from_source(model, source, n_samples=n_samples, seq_len=seq_len)
    suite = default_suite(model, task_size, 0)
    if tasks:
        suite = {k: v for k, v in suite.items() if k in tasks}
    dense_acc = primary(evaluate_suite(model, suite, batch_size=batch_size))
    rows, times = [], []
    for scope in scopes:
        pruners = {mode: Pruner(model, method, scope=scope, calibration=cal, mode=mode)
                   for mode in ("dense", "sequential")}
        results = {mode: p.sweep(levels) for mode, p in pruners.items()}

        # A fresh Pruner per call, as the study builds one per (method, scope): the dense
        # mode's one calibration pass is counted, not served from a previous call's cache.
        def fresh(mode, todo, scope=scope):
            return lambda: Pruner(model, method, scope=scope, calibration=cal,
                                  mode=mode).sweep(todo)

        mid = [levels[len(levels) // 2]]
        wall, cpu = interleaved({f"{mode}/{n}": fresh(mode, todo) for mode in pruners
                                 for n, todo in (("all", levels), ("one", mid))}, repeat)
        for n, todo in (("all", levels), ("one", mid)):
            times.append({"scope": scope, "levels": len(todo),
                          "dense_s": wall[f"dense/{n}"], "sequential_s": wall[f"sequential/{n}"],
                          "ratio_wall": wall[f"sequential/{n}"] / wall[f"dense/{n}"],
                          "ratio_cpu": cpu[f"sequential/{n}"] / cpu[f"dense/{n}"]})
        for s in levels:
            d, q = results["dense"][s], results["sequential"][s]
            acc = {}
            for mode, r in (("dense", d), ("sequential", q)):
                with torch.no_grad(), pruned(model, r.masks, r.weights):
                    acc[mode] = primary(evaluate_suite(model, suite, batch_size=batch_size))
            agree = mask_agreement(d.masks, q.masks)
            for task, (metric, base) in dense_acc.items():
                rows.append({"scope": scope, "sparsity": s, "task": task, "metric": metric,
                             "mask_agreement": agree, "unpruned": base,
                             "dense_mode": acc["dense"][task][1],
                             "sequential_mode": acc["sequential"][task][1],
                             "difference": acc["sequential"][task][1] - acc["dense"][task][1]})
    return pd.DataFrame(rows), pd.DataFrame(times), model_info(model).source


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism", help="organism, a local HF dir, or .gguf")
    ap.add_argument("--method", default="wanda", choices=("wanda", "sparsegpt"))
    ap.add_argument("--scopes", nargs="+", default=["all", "attn", "mlp"])
    ap.add_argument("--sparsities", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    ap.add_argument("--source", default="default", help="calibration source")
    ap.add_argument("--n-samples", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--task-size", default="small", choices=("small", "full"))
    ap.add_argument("--tasks", nargs="+", help="only these tasks of the suite")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds (best of)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    acc, times, source = run(args.model, args.method, args.scopes, args.sparsities, args.source,
                     args.n_samples, args.seq_len, args.task_size, args.repeat,
                     args.batch_size, args.tasks)
    print(f"# sequential vs dense calibration: {args.method} on {args.model}"
          + (f" ({source})" if source.get("format") != "hf" else ""))
    print(f"calibration: {args.source}, {args.n_samples} x {args.seq_len} tokens; "
          f"tasks: {args.task_size}; threads: {args.threads}\n")
    agree = acc.drop_duplicates(["scope", "sparsity"])[["scope", "sparsity", "mask_agreement"]]
    print("## mask agreement (fraction of mask entries equal in both modes)")
    print(agree.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\n## primary metric per task: unpruned, dense mode, sequential mode, difference")
    print(acc.drop(columns="mask_agreement").to_string(index=False,
                                                        float_format=lambda v: f"{v:.3f}"))
    summary = acc.groupby(["scope", "sparsity"])["difference"].agg(
        mean_abs=lambda d: d.abs().mean(), max_abs=lambda d: d.abs().max())
    print("\n## |sequential - dense| over tasks")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\n## prune time (a fresh Pruner, calibration pass included; best of "
          f"{args.repeat}, interleaved): one level, and all {len(args.sparsities)} levels")
    print(times.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for n in sorted(set(times["levels"])):
        t = times[times["levels"] == n]
        print(f"sequential / dense prune wall time, {n} level(s), all scopes: "
              f"{t['sequential_s'].sum() / t['dense_s'].sum():.2f}x")


if __name__ == "__main__":
    main()
