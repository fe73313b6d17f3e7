"""Commands that read a finished (or interrupted) run directory: ``thresholds``,
``figures``, ``report`` and ``doctor``."""

from __future__ import annotations

import argparse

from lenskit.errors import RunDirectoryError, UsageError

__all__ = ["cmd_doctor", "cmd_figures", "cmd_report", "cmd_thresholds"]


def cmd_thresholds(args: argparse.Namespace) -> int:
    from lenskit.results.comparison import format_study_comparison, study_comparison
    from lenskit.results.thresholds import (
        at_chance_by_model,
        compute_thresholds,
        format_thresholds,
    )
    from lenskit.rundir.lock import check_not_locked

    store = _existing_run(args.run_dir)
    check_not_locked(store.dir, "writing the threshold tables")
    inst = store.instances()
    results = _pruned_results(store)
    thr = compute_thresholds(results, inst if len(inst) else None,
                             tolerances=sorted({*args.tolerance, 0.02, 0.05, 0.1}))
    store.write_table("thresholds", thr)
    at_chance = at_chance_by_model(results)
    cmp = study_comparison(thr, at_chance)
    store.write_table("study_comparison", cmp)
    for tol in args.tolerance:
        print(format_thresholds(thr, tolerance=tol, at_chance=at_chance))
    print(format_study_comparison(cmp))
    print(f"tables: {store.tables_dir}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from lenskit.plots import make_figures
    from lenskit.rundir.lock import check_not_locked
    from lenskit.rundir.rundir import check_links

    store = _existing_run(args.run_dir)
    if not args.out:
        check_not_locked(store.dir, "writing figures into it (or pass --out DIR)")
        check_links(store.dir)  # before anything is written: never through a link
    inst = store.instances()
    out = args.out or store.figures_dir
    paths = make_figures(_pruned_results(store), out, instances=inst if len(inst) else None,
                         formats=tuple(args.formats))
    if not args.out:
        store.record_files(paths)  # lenskit's own: --force may delete them later
    print(f"{len(paths)} files written to {out}")
    for p in paths:
        print(f"  {p}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lenskit.plots import write_report
    from lenskit.rundir.rundir import check_links

    store = _existing_run(args.run_dir)
    if not args.out:
        check_links(store.dir)  # before anything is written: never through a link
    path = write_report(args.run_dir, args.out)
    if not args.out:
        store.record_files([path])  # lenskit's own: --force may delete it later
    print(f"report written to {path} (self-contained; open it in a browser, offline)")
    return 0


def _existing_run(run_dir: str):
    from pathlib import Path

    from lenskit.rundir.store import RunStore

    if not (Path(run_dir) / "manifest.json").is_file():
        raise UsageError(f"{run_dir} is not a lenskit run directory (no manifest.json); "
                         f"run `lenskit sweep --out {run_dir}` first")
    store = RunStore(run_dir)
    store.manifest()  # a damaged manifest is reported now, naming the file
    return store


def _pruned_results(store):
    """The run's results, refusing a run without any pruned cell (nothing to compare)."""
    results = store.results()
    if not (results["method"] != "dense").any():
        raise RunDirectoryError(
            f"{store.dir} has no pruned cells yet ({len(store.done_ids())} dense cell(s) "
            "done): thresholds and figures need them; resume the sweep with "
            f"`lenskit sweep --out {store.dir}` (same options as before)", store.dir)
    return results


def cmd_doctor(args: argparse.Namespace) -> int:
    from lenskit.rundir.doctor import doctor
    from lenskit.rundir.store import RunStore

    report = doctor(args.run_dir)
    for line in report:
        print(f"repaired: {line}" if not line.startswith("warning") else line)
    done = len(RunStore(args.run_dir).done_ids())
    print(f"{args.run_dir}: {'healthy' if not report else f'{len(report)} problem(s) handled'}; "
          f"{done} cells done" + ("; run the same sweep again to recompute quarantined cells"
                                  if any("quarantine" in r for r in report) else ""))
    return 0
