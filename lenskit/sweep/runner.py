"""Run a sweep: every cell of a :class:`SweepConfig`, resumably, into a run directory.

The runner loads each model once, evaluates its dense baseline once per seed, builds one
:class:`lenskit.pruning.Pruner` per (seed, method, structure, allocation, scope) so that
scores are sorted once and SparseGPT's Hessians are factored once for all sparsity levels,
and writes every cell atomically as soon as it is evaluated. Interrupting it (Ctrl-C, a
killed process) loses at most the cells in flight; running it again skips finished cells.

The cells themselves run on an executor (:mod:`lenskit.sweep.executors`): in this process
(``local``, the default) or on the actors of a Ray cluster (``ray``). Either way this
process is the one writer of the run directory.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.errors import SweepTerminated
from lenskit.results.comparison import format_study_comparison, study_comparison
from lenskit.results.schema import attach_baselines
from lenskit.results.thresholds import compute_thresholds, format_thresholds, tasks_at_chance
from lenskit.rundir.store import RunStore, iter_missing
from lenskit.sweep.config import Cell, ConfigError, SweepConfig
from lenskit.sweep.executors import (
    CellResult,
    Executor,
    executor_problems,
    make_executor,
    plan_units,
)
from lenskit.sweep.preflight import preflight

__all__ = ["SweepOutcome", "finish_run", "run_sweep", "sigterm_as_interrupt"]

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What a finished sweep produced."""

    run_dir: Path
    results: pd.DataFrame
    thresholds: pd.DataFrame
    instances: pd.DataFrame
    cells_run: int
    cells_skipped: int
    seconds: float

    def __repr__(self) -> str:
        # the dataclass default prints three whole data frames
        return (f"SweepOutcome({str(self.run_dir)!r}: {self.cells_run} cells run, "
                f"{self.cells_skipped} skipped (already done) in {self.seconds:.1f} s; "
                f"{len(self.results)} result rows, {len(self.thresholds)} thresholds, "
                f"{len(self.instances)} instance rows)")


def _executor_overrides(executor, address, workers, num_cpus, num_gpus) -> dict[str, Any]:
    given = {"executor": executor, "address": address, "workers": workers,
             "num_cpus": num_cpus, "num_gpus": num_gpus}
    return {k: v for k, v in given.items() if v is not None}


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a sweep runs, SIGTERM raises :class:`SweepTerminated` (a KeyboardInterrupt):
    the run is closed as "interrupted" and its lock released, like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise SweepTerminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(
    cfg: SweepConfig,
    *,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    executor: str | Executor | None = None,
    address: str | None = None,
    workers: int | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
) -> SweepOutcome:
    """Run (or resume) every cell of ``cfg`` into ``cfg.out_dir``; then write the
    threshold and study-comparison tables. ``force`` restarts a run whose stored config
    differs. Returns the results; figures are drawn from them by
    :func:`lenskit.plots.make_figures` (the CLI does so after a sweep).

    ``executor`` ("local" or "ray"), ``address``, ``workers``, ``num_cpus`` and
    ``num_gpus`` override the config's settings of the same names (see
    :mod:`lenskit.sweep.executors`); ``executor`` may also be an :class:`Executor`
    instance, which the caller owns. Whatever runs the cells, this process alone writes
    them, so results, resume and the run directory are the same.

    Everything checkable without weights is checked first (:func:`preflight`), before the
    run directory is touched. SIGTERM is handled like Ctrl-C (raises
    :class:`lenskit.errors.SweepTerminated`, a KeyboardInterrupt, after closing the run as
    "interrupted"). Corrupt cell files found on resume are quarantined and recomputed.
    """
    t_start = time.perf_counter()
    own = not isinstance(executor, Executor)
    overrides = _executor_overrides(executor if own else None, address, workers,
                                    num_cpus, num_gpus)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    problems = executor_problems(cfg)
    if problems:
        raise ConfigError(problems)
    cells = cfg.cells()
    preflight(cfg)
    with sigterm_as_interrupt():
        return _run(cfg, cells, force, progress, echo, t_start, executor, own)


def _run(cfg: SweepConfig, cells: list[Cell], force: bool, progress: bool,
         echo: Callable[[str], None], t_start: float, executor, own: bool) -> SweepOutcome:
    from tqdm.auto import tqdm

    with RunStore.open(cfg.out_dir, cfg, force=force) as store:
        for line in store.repaired:
            echo(f"repaired: {line}")
        missing = list(iter_missing(store, cells))
        skipped = len(cells) - len(missing)
        if skipped:
            echo(f"resuming {store.dir}: {skipped} of {len(cells)} cells already done")
        bar = tqdm(total=len(cells), initial=skipped, disable=not progress, unit="cell",
                   desc="sweep", dynamic_ncols=True)
        if missing:
            _run_missing(cfg, missing, executor if not own else make_executor(cfg), own,
                         store, bar, echo)
        bar.close()
        outcome = finish_run(store, cells, echo=echo)
    outcome.cells_run = len(missing)
    outcome.cells_skipped = skipped
    outcome.seconds = time.perf_counter() - t_start
    echo(f"{len(missing)} cells run, {skipped} reused, in {outcome.seconds:.0f} s; "
         f"results in {store.dir}")
    return outcome


def _run_missing(cfg: SweepConfig, missing: list[Cell], runner: Executor, own: bool,
                 store: RunStore, bar, echo: Callable[[str], None]) -> None:
    try:
        info = runner.describe()
        store.record_session(executor=info)
        if info["executor"] != "local":
            echo(f"executor {info['executor']}: " + ", ".join(
                f"{k}={info[k]}" for k in ("workers", "num_cpus", "num_gpus", "address")
                if k in info))
        _Writer(store, bar).consume(runner.run(plan_units(cfg, missing), bar.set_postfix_str))
        store.record_session(executor=runner.describe())  # with its final counters
    finally:
        if own:
            runner.close()


class _Writer:
    """The one writer of a run: fills each cell's baselines from its stored dense cell
    and writes it atomically. A pruned cell that finishes before its dense cell (another
    worker is still evaluating it) waits in memory until the dense cell is written."""

    def __init__(self, store: RunStore, bar) -> None:
        self.store, self.bar = store, bar
        self.dense_rows: dict[str, pd.DataFrame] = {}
        self.waiting: dict[str, list[CellResult]] = {}

    def consume(self, results) -> None:
        for res in results:
            dense_id = res.cell.dense().cell_id
            if res.cell.is_dense or self.store.done(dense_id):
                self.write(res)
            else:
                self.waiting.setdefault(dense_id, []).append(res)
            if res.cell.is_dense:
                for r in self.waiting.pop(dense_id, []):
                    self.write(r)
        if self.waiting:  # an executor that returned without a dense cell: a bug
            raise RuntimeError(f"cells finished without their dense baseline: "
                               f"{sorted(self.waiting)}")

    def write(self, res: CellResult) -> None:
        cell = res.cell
        if cell.is_dense:
            rows = attach_baselines(res.rows, res.rows)
            self.dense_rows[cell.cell_id] = rows
        else:
            dense_id = cell.dense().cell_id
            if dense_id not in self.dense_rows:
                self.dense_rows[dense_id] = self.store.read_cell(dense_id)
            rows = attach_baselines(res.rows, self.dense_rows[dense_id])
        if res.device is not None:  # saved with the cell below
            self.store.manifest().setdefault("devices", {})[cell.model] = res.device
        if res.model is not None:  # refuses a model whose weights changed during the run
            self.store.record_model(cell.model, res.model)
        self.store.write_cell(cell.cell_id, rows, instances=res.instances,
                              seconds=res.seconds, label=cell.label, cell=cell,
                              calibration=res.calibration)
        self.bar.update()


def finish_run(
    store: RunStore,
    cells: Sequence[Cell] | None = None,
    *,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Thresholds and the study comparison of a run directory's results (written as
    tables into the run directory)."""
    order = None if cells is None else [c.cell_id for c in cells]
    # With cells: this grid's cells only (a run directory may also hold the cells of
    # earlier, smaller or differently calibrated grids, or of a merged run).
    results = store.results(order, only=order is not None)
    instances = store.instances(order, only=order is not None)
    thresholds = compute_thresholds(results, instances if len(instances) else None)
    store.write_table("thresholds", thresholds)
    at_chance = tasks_at_chance(results)
    comparison = study_comparison(thresholds, at_chance, echo)
    store.write_table("study_comparison", comparison)
    echo(format_thresholds(thresholds, at_chance=at_chance))
    if len(comparison):
        echo(format_study_comparison(comparison))
    return SweepOutcome(store.dir, results, thresholds, instances, 0, 0, 0.0)
