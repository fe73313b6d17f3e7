"""Run a sweep: every cell of a :class:`SweepConfig`, resumably, into a run directory.

The runner loads each model once, evaluates its dense baseline once per seed, builds one
:class:`lenskit.pruning.Pruner` per (seed, method, structure, allocation, scope) so that
scores are sorted once and SparseGPT's Hessians are factored once for all sparsity levels,
and writes every cell atomically as soon as it is evaluated. Interrupting it (Ctrl-C, a
killed process) loses at most the cells in flight; running it again skips finished cells.

The config travels one way: :func:`~lenskit.sweep.plan.plan_sweep` derives the plan from it
(cells, executor, the record the run directory stores); the run directory
(:mod:`lenskit.rundir`) receives typed records (that config record, each evaluated cell),
attaches baselines, validates against the results schema and writes; its summary computes
the thresholds. The cells themselves run on an executor (:mod:`lenskit.sweep.executors`):
in this process (``local``, the default) or on the actors of a Ray cluster (``ray``).
Either way this process is the one writer of the run directory.
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

import pandas as pd

from lenskit.errors import SweepTerminated
from lenskit.rundir.store import RunStore, iter_missing
from lenskit.rundir.summary import summarise_run
from lenskit.sweep.config import Cell, SweepConfig
from lenskit.sweep.executors import Executor
from lenskit.sweep.plan import plan_sweep

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

    Everything is derived from ``cfg`` once, before the run directory is touched
    (:func:`lenskit.sweep.plan.plan_sweep`: the cells, the executor, the record the run
    stores), and everything checkable without weights is checked then. SIGTERM is handled like Ctrl-C (raises
    :class:`lenskit.errors.SweepTerminated`, a KeyboardInterrupt, after closing the run as
    "interrupted"). Corrupt cell files found on resume are quarantined and recomputed.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    plan = plan_sweep(cfg, executor=executor, address=address, workers=workers,
                      num_cpus=num_cpus, num_gpus=num_gpus)
    cells = plan.cells
    with sigterm_as_interrupt(), plan, \
            RunStore.open(plan.run_dir, plan.run, force=force) as writer:
        for line in writer.repaired:
            echo(f"repaired: {line}")
        if writer.kept:
            echo(f"--force kept {len(writer.kept)} file(s) lenskit did not record as its own "
                 "or that changed since it wrote them: " + "; ".join(writer.kept))
        missing = list(iter_missing(writer, cells))
        skipped = len(cells) - len(missing)
        if skipped:
            echo(f"resuming {writer.dir}: {skipped} of {len(cells)} cells already done")
        bar = tqdm(total=len(cells), initial=skipped, disable=not progress, unit="cell",
                   desc="sweep", dynamic_ncols=True)
        if missing:
            units = plan.units(missing)
            info = plan.executor.describe()
            writer.record_session(executor=info)
            if info["executor"] != "local":
                echo(f"executor {info['executor']}: " + ", ".join(
                    f"{k}={info[k]}" for k in ("workers", "num_cpus", "num_gpus", "address")
                    if k in info))
            writer.write_outputs(plan.executor.run(units, bar.set_postfix_str),
                                 lambda _: bar.update())
            writer.record_session(executor=plan.executor.describe())  # its final counters
        bar.close()
        summary = summarise_run(writer, [c.cell_id for c in cells], echo=echo)
    seconds = time.perf_counter() - t_start
    echo(f"{len(missing)} cells run, {skipped} reused, in {seconds:.0f} s; "
         f"results in {writer.dir}")
    return SweepOutcome(writer.dir, summary.results, summary.thresholds, summary.instances,
                        len(missing), skipped, seconds)


def finish_run(
    store: RunStore,
    cells: Sequence[Cell] | None = None,
    *,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Thresholds and the study comparison of a run directory's results (written as
    tables into the run directory; see :func:`lenskit.rundir.summary.summarise_run`). With
    ``cells``: this grid's cells only (a run directory may also hold the cells of earlier,
    smaller or differently calibrated grids, or of a merged run)."""
    summary = summarise_run(store, None if cells is None else [c.cell_id for c in cells],
                            echo=echo)
    return SweepOutcome(store.dir, summary.results, summary.thresholds, summary.instances,
                        0, 0, 0.0)
