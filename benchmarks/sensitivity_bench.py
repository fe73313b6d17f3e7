"""Sensitivity-map benchmark: the cost of a layer x component map against the evaluations
it cannot avoid.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.sensitivity_bench`` (``--threads N``,
``--layers 0,1`` to map fewer layers and project, ``--naive-groups K``, ``--n-per-task N``,
``--model tiny``).

Model: the shipped organism when ``data/organism`` exists (unless ``--model tiny``), else a
random Llama of the
organism's shape (d_model 128, 4 layers, 4 heads, 2 key-value heads, SwiGLU FFW 384,
the organism's tokenizer) built with :func:`lenskit.make_tiny_model`. Tasks: the organism
suite at size ``"small"``, every task (closed-book, open-book, overriding, the function
tasks, perplexity). With random weights no answer ever ends on a newline, so every prompt
decodes its full ``max_new_tokens``: a trained organism stops earlier and evaluates faster.

Measured in one run, with one sparsity (50%, magnitude):

- **evaluation**: a warm :func:`lenskit.tasks.evaluate_suite` of the dense model (best of
  ``--repeat``; the unit of cost: a map of G groups needs G + 1 evaluations at least);
- **map**: :func:`lenskit.analysis.sensitivity_map` over the chosen layers x every
  component, per evaluation = map time / (G + 1); its ratio to one evaluation is the
  map's overhead (pruning once, applying and restoring masks, the paired bootstrap of the
  drops) -- 1.0 is the floor;
- **naive loop**: what one would write without the map: per group a new ``Pruner`` on the
  group's scope, ``prune(apply=True)``, ``evaluate_suite`` + ``summary()`` (bootstrap
  intervals), ``restore``; timed on ``--naive-groups`` groups;
- **projection**: the full map of every layer x component of the model (dense + groups x
  per-group time), also with ``n_per_task`` instances per task.

Wall and CPU time of this process are both reported: on a machine where another process
holds a core, CPU time is the stable measure of the work (ratios use it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

from lenskit.analysis.sensitivity import sensitivity_map
from lenskit.models import load_model, make_tiny_model, model_info, restore
from lenskit.pruning import Pruner
from lenskit.tasks import evaluate_suite, organism_suite


def _model(tmp: Path, which: str):
    data = Path(os.environ.get("LENSKIT_DATA", Path(__file__).resolve().parents[1] / "data"))
    if which == "auto" and (data / "organism" / "world.json").is_file():
        model = load_model("organism")
        return model, organism_suite(model, "small"), "organism (shipped)"
    from lenskit.synthetic.world import WorldConfig

    path = make_tiny_model("llama", tmp / "llama", d_model=128, n_layers=4, n_heads=4,
                           d_ffn=384)
    return (load_model(path), organism_suite(WorldConfig().build(), "small"),
            "Llama d128 x 4 layers, 4 heads (2 KV), SwiGLU 384 (random weights)")


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process): CPU time is what the work
    costs when another process competes for the cores; wall time is what a user waits."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def _best(fn, repeat: int) -> tuple[float, float]:
    runs = [_timed(fn)[1:] for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("auto", "tiny"), default="auto",
                    help="auto: the organism when shipped; tiny: the random organism-shaped Llama")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", default="all", help="layers to map, e.g. '0' or '0,1'")
    ap.add_argument("--naive-groups", type=int, default=2)
    ap.add_argument("--n-per-task", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2, help="best of R for the evaluations")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        model, suite, label = _model(Path(tmp), args.model)
        info = model_info(model)
        layers = (list(range(info.n_layers)) if args.layers == "all"
                  else [int(v) for v in args.layers.split(",")])
        bs = args.batch_size
        n_instances = sum(len(t) for t in suite.values())
        evaluate_suite(model, suite, batch_size=bs, n_bootstrap=0)  # tokenisation cached
        t_eval = _best(lambda: evaluate_suite(model, suite, batch_size=bs, n_bootstrap=0)
                       .summary(n_bootstrap=0), args.repeat)
        df, *t_map = _timed(lambda: sensitivity_map(model, suite, sparsities=(0.5,),
                                                    layers=layers, batch_size=bs,
                                                    progress=False))
        n_groups = df["scope"].nunique()
        # the map evaluates the dense model once and each group once
        per_group = [t / (n_groups + 1) for t in t_map]
        naive_groups = sorted(set(df["scope"]), key=list(df["scope"]).index)[
            :args.naive_groups]

        def naive() -> None:
            for g in naive_groups:
                Pruner(model, "magnitude", scope=g).prune(0.5, apply=True)
                evaluate_suite(model, suite, batch_size=bs).summary()
                restore(model)

        _, *t_naive = _timed(naive)
        naive_per_group = [t / max(1, len(naive_groups)) for t in t_naive]
        sub = {n: t.subset(min(args.n_per_task, len(t)), seed=0) for n, t in suite.items()}
        evaluate_suite(model, sub, batch_size=bs, n_bootstrap=0)
        t_sub = _best(lambda: evaluate_suite(model, sub, batch_size=bs, n_bootstrap=0)
                      .summary(n_bootstrap=0), args.repeat)
        all_groups = len(info.sites)  # layer x component over the whole model
        full = [(all_groups + 1) * p for p in per_group]
        full_sub = [(all_groups + 1) * p * ts / te
                    for p, ts, te in zip(per_group, t_sub, t_eval, strict=True)]

    print(f"## Sensitivity map: {label}\n")
    print(f"{len(suite)} tasks, {n_instances} instances (`--n-per-task {args.n_per_task}`: "
          f"{sum(len(t) for t in sub.values())}); torch threads {args.threads}; batch {bs}; "
          f"magnitude 50%; mapped layers {layers}: {n_groups} groups\n")
    print("| measure | wall s | CPU s | ratio (CPU) to one evaluation |")
    print("|---|---:|---:|---:|")

    def line(name: str, t) -> None:
        print(f"| {name} | {t[0]:.1f} | {t[1]:.1f} | {t[1] / t_eval[1]:.2f} |")

    line(f"one evaluation of the suite (dense; best of {args.repeat})", t_eval)
    line(f"map of {n_groups} groups (incl. the dense evaluation)", t_map)
    line("map, per evaluation", per_group)
    line(f"naive loop, per group ({len(naive_groups)} groups)", naive_per_group)
    line(f"projected full map, {all_groups} groups", full)
    line(f"projected full map, {args.n_per_task} instances per task", full_sub)
    print(f"\nnaive / map per group (CPU): {naive_per_group[1] / per_group[1]:.2f}x; full map "
          f"{full[1] / 60:.1f} min of CPU on one thread "
          f"({'within' if full[1] <= 300 else 'over'} the 5-minute target).")

if __name__ == "__main__":
    main()
