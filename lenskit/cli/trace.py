"""The ``trace`` command: causal tracing of a model's fact tasks, written to a run directory."""

from __future__ import annotations

import argparse

from lenskit.cli.common import set_threads
from lenskit.errors import UsageError

__all__ = ["cmd_trace"]


def cmd_trace(args: argparse.Namespace) -> int:
    from lenskit.analysis import trace_items, trace_rows
    from lenskit.analysis.trace_store import save_traces
    from lenskit.models import load_model, model_info
    from lenskit.models.loading import ModelLoadError, check_spec
    from lenskit.tasks import default_suite

    try:
        check_spec(args.model)  # a .gguf file too, as load_model accepts
    except ModelLoadError as err:
        raise UsageError(str(err)) from None
    set_threads(args)
    model = load_model(args.model)
    suite = default_suite(model, size="small", seed=args.seed)
    names = args.tasks or [n for n, t in suite.items() if t.kind == "closed_book"]
    unknown = [n for n in names if n not in suite]
    if unknown:
        raise UsageError(f"unknown task(s) {unknown}; the model's suite has {sorted(suite)}")
    try:
        items = trace_items(model, {n: suite[n] for n in names}, kinds=args.kinds,
                            positions=args.positions, window=args.window,
                            corruption=args.corruption, corrupt=args.corrupt, noise=args.noise,
                            n_noise=args.n_noise, n_per_task=args.n, seed=args.seed,
                            batch_size=args.batch_size, progress=not args.quiet)
    except ValueError as err:
        raise UsageError(str(err)) from None
    rows = trace_rows(items, n_bootstrap=args.n_bootstrap)
    config = {"model": model_info(model).spec, "tasks": names, "kinds": args.kinds,
              "positions": args.positions, "window": args.window,
              "corruption": args.corruption, "corrupt": args.corrupt, "noise": args.noise,
              "n_noise": args.n_noise, "n_per_task": args.n, "seed": args.seed,
              "n_bootstrap": args.n_bootstrap}
    folder = save_traces(args.out, rows, items, config=config, name=args.name)
    ie = rows[rows["metric"] == "indirect_effect"]
    for task, g in ie.groupby("task", sort=False):
        first = g.iloc[0]
        print(f"{task}: {int(first['n'])} prompts, p_clean {first['p_clean']:.3f}, "
              f"p_corrupted {first['p_corrupted']:.3f}; strongest sites (indirect effect, "
              "95% CI):")
        for r in g.sort_values("value", ascending=False).head(args.top).itertuples():
            print(f"  {r.scope:<34} {r.value:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]")
    print(f"traces written to {folder} (lenskit report shows them for a run directory)")
    return 0
