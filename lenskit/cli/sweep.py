"""Commands that make run directories: ``sweep``, ``merge`` and ``export`` (a pruned
model from a saved result)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lenskit.cli.common import set_threads
from lenskit.errors import UsageError

__all__ = ["cmd_export", "cmd_merge", "cmd_sweep", "overrides"]


def overrides(args: argparse.Namespace) -> dict[str, str]:
    """The settings ``lenskit sweep``'s options give (each option's setting and how its
    values join are declared in :mod:`lenskit.sweep.settings`), then ``--set`` ones."""
    from lenskit.sweep.settings import sweep_flags

    out: dict[str, str] = {}
    for setting in sweep_flags():
        flag = setting.flag
        value = getattr(args, flag.dest, None)
        if value:
            out[setting.name] = flag.join.join(value) if isinstance(value, list) else value
    for item in args.set or []:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def cmd_sweep(args: argparse.Namespace) -> int:
    from lenskit.rundir.integrity import check_inside
    from lenskit.rundir.store import RunStore
    from lenskit.sweep.config import load_config
    from lenskit.sweep.preflight import preflight
    from lenskit.sweep.runner import run_sweep

    cfg = load_config(args.config, overrides(args), echo=print)
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
            RunStore(outcome.run_dir).record_files(paths)  # --force may delete them later
            print(f"figures: {Path(outcome.run_dir) / 'figures'} ({len(paths)} files)")
        from lenskit.plots import write_report

        report = write_report(outcome.run_dir)
        print(f"report: {report} (self-contained HTML: thresholds with CIs, the study "
              "comparison, figures)")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from lenskit.rundir.merge import merge_runs

    store = merge_runs(args.runs, args.out)
    print(f"merged {len(args.runs)} runs into {store.dir}: {len(store.done_ids())} cells; "
          f"`lenskit thresholds {store.dir}` computes their thresholds")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lenskit.errors import UsageError

    if args.cell is not None:
        if args.model is not None:
            raise UsageError("--cell exports a cell of a run directory, whose model is "
                             "recorded: drop --model")
        from lenskit.sweep.export import export_cell

        out = export_cell(args.source, args.cell, args.out, device=args.device)
        print(f"exported cell {args.cell} of {args.source} to {out} (re-pruned as recorded; "
              "achieved sparsity checked)")
        return 0
    if args.model is None:
        raise UsageError("give --cell ID to export a cell of the run directory "
                         f"{args.source!r}, or --model MODEL to apply a saved result file")
    from lenskit.models import load_model
    from lenskit.models.loading import ModelLoadError, check_spec
    from lenskit.pruning import PruneResult, export_pruned

    if (Path(args.source) / "manifest.json").is_file():
        raise UsageError(
            f"{args.source} is a sweep run directory: it holds result tables, not masks; "
            "export one of its cells with `lenskit export RUN_DIR --cell ID --out DIR` "
            "(it re-prunes the cell as recorded), without --model")
    try:
        check_spec(args.model)
    except ModelLoadError as err:
        raise UsageError(str(err)) from None
    PruneResult.load(args.source)  # a damaged or wrong file is named before loading weights
    model = load_model(args.model, device=args.device or "cpu")
    result = PruneResult.load(args.source, model)
    out = export_pruned(model, result, args.out)
    print(f"exported {result!r} to {out}")
    return 0
