"""Run a sweep: every cell of a :class:`SweepConfig`, resumably, into a run directory.

The runner loads each model once, evaluates its dense baseline once per seed, builds one
:class:`lenskit.pruning.Pruner` per (seed, method, structure, allocation, scope) so that
scores are sorted once and SparseGPT's Hessians are factored once for all sparsity levels,
and writes every cell atomically as soon as it is evaluated. Interrupting it (Ctrl-C, a
killed process) loses at most the cell in flight; running it again skips finished cells.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from lenskit.study.config import Cell, SweepConfig
from lenskit.study.schema import attach_baselines, instances_from_eval
from lenskit.study.store import RunStore, iter_missing
from lenskit.study.thresholds import (
    compute_thresholds,
    format_study_comparison,
    format_thresholds,
    study_comparison,
    tasks_at_chance,
)

__all__ = ["SweepOutcome", "finish_run", "run_sweep"]

log = logging.getLogger(__name__)

# Masks (and SparseGPT's updated weights) of this many bytes at most are held at once:
# levels of one pruner are computed in chunks that fit.
_LEVEL_MEMORY_BUDGET = 2 * 1024**3


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


def _calibration(cfg: SweepConfig, model, seed: int):
    from lenskit.models import model_info
    from lenskit.pruning import CalibrationData, default_calibration

    c = cfg.calibration
    if c.source == "default":
        return default_calibration(model, n_samples=c.n_samples, seq_len=c.seq_len, seed=seed)
    if Path(c.source).is_file():
        return CalibrationData.from_text(Path(c.source), model_info(model).tokenizer,
                                         n_samples=c.n_samples, seq_len=c.seq_len, seed=seed)
    return CalibrationData.from_hf_dataset(c.source, tokenizer=model_info(model).tokenizer,
                                           n_samples=c.n_samples, seq_len=c.seq_len, seed=seed)


def _pruner_key(cell: Cell) -> tuple:
    return (cell.seed, cell.method, cell.structure, cell.allocation, cell.scope,
            cell.match_scope, cell.method_kwargs, cell.allocation_kwargs)


def _chunks(cells: list[Cell], n_params: int, method: str) -> list[list[Cell]]:
    per_level = n_params * (5 if method == "sparsegpt" else 1)
    size = max(1, _LEVEL_MEMORY_BUDGET // max(1, per_level))
    return [cells[i:i + size] for i in range(0, len(cells), size)]


def _evaluate(model, suite, cfg: SweepConfig):
    from lenskit.tasks import evaluate_suite

    return evaluate_suite(model, suite, batch_size=cfg.batch_size)


def run_sweep(
    cfg: SweepConfig,
    *,
    force: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run (or resume) every cell of ``cfg`` into ``cfg.out_dir``; then write the
    threshold and study-comparison tables. ``force`` restarts a run whose stored config
    differs. Returns the results; figures are drawn from them by
    :func:`lenskit.plots.make_figures` (the CLI does so after a sweep)."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    cells = cfg.cells()
    with RunStore.open(cfg.out_dir, cfg, force=force) as store:
        missing = list(iter_missing(store, cells))
        skipped = len(cells) - len(missing)
        if skipped:
            echo(f"resuming {store.dir}: {skipped} of {len(cells)} cells already done")
        bar = tqdm(total=len(cells), initial=skipped, disable=not progress, unit="cell",
                   desc="sweep", dynamic_ncols=True)
        for spec, model_cells in itertools.groupby(missing, key=lambda c: c.model):
            _ModelRun(cfg, store, spec, bar).run(list(model_cells))
        bar.close()
        outcome = finish_run(store, cells, echo=echo)
    outcome.cells_run = len(missing)
    outcome.cells_skipped = skipped
    outcome.seconds = time.perf_counter() - t_start
    echo(f"{len(missing)} cells run, {skipped} reused, in {outcome.seconds:.0f} s; "
         f"results in {store.dir}")
    return outcome


class _ModelRun:
    """The cells of one model: loaded once, its suites and calibration built once."""

    def __init__(self, cfg: SweepConfig, store: RunStore, spec: str, bar) -> None:
        from lenskit.models import load_model, model_info

        self.cfg, self.store, self.bar = cfg, store, bar
        bar.set_postfix_str(f"loading {spec}")
        self.model = load_model(spec)
        self.info = model_info(self.model)
        self.counts = {s: self.info.select(s).n_params for s in cfg.scopes_needed()}
        cfg.check_model(spec, self.counts)
        self.suites: dict[int, dict] = {}
        self.calibrations: dict[int, object] = {}
        self.dense_rows: dict[int, pd.DataFrame] = {}

    def suite(self, seed: int) -> dict:
        from lenskit.tasks import default_suite

        if seed not in self.suites:
            self.suites[seed] = self.cfg.select_tasks(
                default_suite(self.model, self.cfg.task_size, seed))
        return self.suites[seed]

    def baseline(self, cell: Cell) -> pd.DataFrame:
        if cell.seed not in self.dense_rows:
            self.dense_rows[cell.seed] = self.store.read_cell(cell.dense().cell_id)
        return self.dense_rows[cell.seed]

    def write(self, cell: Cell, result, params_removed: int, seconds: float) -> pd.DataFrame:
        rows = cell.to_rows(result.summary(), scope_params=self.counts,
                            params_removed=params_removed)
        rows = attach_baselines(rows, rows if cell.is_dense else self.baseline(cell))
        self.store.write_cell(cell.cell_id, rows,
                              instances=instances_from_eval(result.rows, cell.cell_id),
                              seconds=seconds, label=cell.label)
        return rows

    def run(self, cells: list[Cell]) -> None:
        # Cells come grouped by pruner (config order): one Pruner per group.
        for _, group in itertools.groupby(cells, key=_pruner_key):
            group = list(group)
            if group[0].is_dense:
                for cell in group:
                    self.bar.set_postfix_str(cell.label)
                    t0 = time.perf_counter()
                    res = _evaluate(self.model, self.suite(cell.seed), self.cfg)
                    self.dense_rows[cell.seed] = self.write(cell, res, 0,
                                                            time.perf_counter() - t0)
                    self.bar.update()
            else:
                self.run_pruned(group)

    def run_pruned(self, group: list[Cell]) -> None:
        from lenskit.models import pruned
        from lenskit.pruning import Pruner

        first = group[0]
        if first.seed not in self.calibrations:
            self.calibrations[first.seed] = _calibration(self.cfg, self.model, first.seed)
        pruner = Pruner(self.model, first.method, scope=first.scope, structure=first.structure,
                        allocation=first.allocation, calibration=self.calibrations[first.seed],
                        mode=self.cfg.calibration.mode, seed=first.seed, **first.kwargs,
                        **first.alloc_kwargs)
        n_scope = self.counts.get(first.scope) or self.info.select(first.scope).n_params
        for chunk in _chunks(group, n_scope, first.method):
            self.bar.set_postfix_str(f"pruning {chunk[0].label}")
            t0 = time.perf_counter()
            if first.is_matched:
                wanted = [c.params_to_remove(self.counts) for c in chunk]
                swept = pruner.sweep(n_params=wanted)
                results = [swept[n] for n in wanted]
            elif first.structure != "unstructured":
                results = [pruner.prune() for _ in chunk]
            else:
                swept = pruner.sweep([c.sparsity for c in chunk])
                results = [swept[c.sparsity] for c in chunk]
            prune_seconds = (time.perf_counter() - t0) / len(chunk)
            for cell, r in zip(chunk, results, strict=True):
                self.bar.set_postfix_str(cell.label)
                t0 = time.perf_counter()
                with torch.no_grad(), pruned(self.model, r.masks, r.weights):
                    res = _evaluate(self.model, self.suite(cell.seed), self.cfg)
                self.write(cell, res, r.masks.n_pruned, prune_seconds + time.perf_counter() - t0)
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
    results = store.results(order)
    instances = store.instances(order)
    thresholds = compute_thresholds(results, instances if len(instances) else None)
    store.write_table("thresholds", thresholds)
    at_chance = tasks_at_chance(results)
    comparison = study_comparison(thresholds, at_chance, echo)
    store.write_table("study_comparison", comparison)
    echo(format_thresholds(thresholds, at_chance=at_chance))
    if len(comparison):
        echo(format_study_comparison(comparison))
    return SweepOutcome(store.dir, results, thresholds, instances, 0, 0, 0.0)
