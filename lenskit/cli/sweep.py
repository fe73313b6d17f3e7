"""Commands that make run directories: ``sweep``, ``merge`` and ``export`` (a pruned
model from a saved result)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lenskit.cli.common import set_threads

__all__ = ["cmd_export", "cmd_merge", "cmd_sweep", "overrides"]


def overrides(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    for flag, key in (("model", "models"), ("methods", "methods"), ("sparsities", "sparsities"),
                      ("scopes", "scopes"), ("tasks", "tasks"), ("seeds", "seeds"),
                      ("out", "out_dir"), ("task_size", "task_size"), ("device", "device"),
                      ("dtype", "dtype"), ("device_map", "device_map"), ("suite", "suite"),
                      ("executor", "executor"), ("address", "address"), ("workers", "workers")):
        value = getattr(args, flag, None)
        if value:
            out[key] = ";".join(value) if key in ("scopes", "suite") else (
                ",".join(value) if isinstance(value, list) else value)
    for item in args.set or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    from lenskit.rundir.integrity import check_inside
    from lenskit.sweep.preflight import load_sweep_config, preflight
    from lenskit.sweep.runner import run_sweep

    cfg = load_sweep_config(args.config, overrides(args))
    set_threads(args)
    cells = cfg.cells()
    if args.dry_run:
        preflight(cfg)  # a real run checks the same in run_sweep, before touching --out
    print(f"sweep {cfg.name!r}: {len(cells)} cells ({', '.join(cfg.models)}; "
          f"{', '.join(cfg.methods)}; scopes {', '.join(cfg.scopes)}) -> {cfg.out_dir}")
    if args.dry_run:
        for c in cells:
            print(f"  {c.cell_id}  {c.label}")
        return 0
    outcome = run_sweep(cfg, force=args.force)
    if not args.no_figures:
        from lenskit.plots import make_figures

        inst = outcome.instances
        check_inside(outcome.run_dir, Path(outcome.run_dir) / "figures")
        paths = make_figures(outcome.results, Path(outcome.run_dir) / "figures",
                             instances=inst if len(inst) else None,
                             thresholds=outcome.thresholds)
        if paths:
            print(f"figures: {Path(outcome.run_dir) / 'figures'} ({len(paths)} files)")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from lenskit.rundir.merge import merge_runs

    store = merge_runs(args.runs, args.out)
    print(f"merged {len(args.runs)} runs into {store.dir}: {len(store.done_ids())} cells; "
          f"`lenskit thresholds {store.dir}` computes their thresholds")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lenskit.models import load_model
    from lenskit.pruning import PruneResult, export_pruned

    model = load_model(args.model, device=args.device)
    result = PruneResult.load(args.result, model)
    out = export_pruned(model, result, args.out)
    print(f"exported {result!r} to {out}")
    return 0
