"""The work of a sweep, apart from where it runs: work units and the worker that runs them.

A :class:`WorkUnit` is one pruner group: the cells of one model that share a
:class:`lenskit.pruning.Pruner` (same seed, method, structure, allocation, scope and
keyword arguments; only the sparsity differs), or one dense cell. Scores are sorted once
and SparseGPT's Hessians factored once per unit, whichever executor runs it, so every
executor does exactly the computation of the one-process runner and gets the same numbers.

A :class:`ModelWorker` holds one loaded model (with its suites and calibration data, built
once per seed) and turns a unit into :class:`~lenskit.rundir.records.CellOutput` records,
one per cell, as soon as each is evaluated: what the run directory records. They carry raw
rows: the baseline columns are filled by the run's one writer
(:meth:`lenskit.rundir.RunWriter.write_outputs`) from the dense cell it stored, so every
row's baseline is the same dense evaluation whichever worker computed it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from lenskit.models import load_model, model_info, oom_hint, pruned
from lenskit.pruning import Pruner, calibration_from_source
from lenskit.results.schema import instances_from_eval
from lenskit.rundir.records import CellOutput
from lenskit.sweep.config import Cell, SweepConfig
from lenskit.tasks import build_suite, default_suite, evaluate_suite

__all__ = ["ModelWorker", "WorkUnit", "plan_units"]

# Masks (and SparseGPT's updated weights) of this many bytes at most are held at once:
# levels of one pruner are computed in chunks that fit.
_LEVEL_MEMORY_BUDGET = 2 * 1024**3


@dataclass(frozen=True)
class WorkUnit:
    """Cells of one model sharing one pruner (or one dense cell), in config order, and
    the config they run under (tasks, calibration, batch size...).

    ``index`` is the unit's position in the plan (a stable name in logs and retries)."""

    index: int
    model: str
    cells: tuple[Cell, ...]
    cfg: SweepConfig

    @property
    def label(self) -> str:
        first = self.cells[0]
        return first.label if len(self.cells) == 1 else f"{first.label} (+{len(self.cells) - 1})"


def pruner_key(cell: Cell) -> tuple:
    """Cells with equal keys share one Pruner (they differ in sparsity only)."""
    return (cell.model, cell.seed, cell.method, cell.structure, cell.allocation, cell.scope,
            cell.match_scope, cell.method_kwargs, cell.allocation_kwargs, cell.calibration)


def plan_units(cfg: SweepConfig, cells: Sequence[Cell]) -> list[WorkUnit]:
    """Split ``cells`` of ``cfg`` (config order, e.g. the missing cells of a run) into work
    units: consecutive cells with the same :func:`pruner_key`; dense cells one unit each."""
    units: list[WorkUnit] = []
    for key, group in itertools.groupby(cells, key=pruner_key):
        group = list(group)
        parts = [[c] for c in group] if group[0].is_dense else [group]
        for part in parts:
            units.append(WorkUnit(len(units), key[0], tuple(part), cfg))
    return units


def _calibration(cfg: SweepConfig, model, seed: int):
    c = cfg.calibration
    return calibration_from_source(model, c.source, n_samples=c.n_samples, seq_len=c.seq_len,
                                   seed=seed)


def _chunks(cells: Sequence[Cell], n_params: int, method: str) -> list[list[Cell]]:
    per_level = n_params * (5 if method == "sparsegpt" else 1)
    size = max(1, _LEVEL_MEMORY_BUDGET // max(1, per_level))
    return [list(cells[i:i + size]) for i in range(0, len(cells), size)]


def _noop(_: str) -> None:
    pass


# Settings that do not change what a worker computes (where results go, where they run).
_PLACEMENT_KEYS = ("out_dir", "executor", "address", "workers", "num_cpus", "num_gpus")


def _work_settings(cfg: SweepConfig) -> dict:
    return {k: v for k, v in cfg.to_dict().items() if k not in _PLACEMENT_KEYS}


class ModelWorker:
    """Runs work units of one model at a time; loads a model when a unit of another model
    arrives (dropping the previous one), so a worker holding a model keeps it loaded for
    every unit of that model it is given.

    ``device`` is where the model's weights live: None = the config's ``device`` (with its
    ``dtype`` and ``device_map``); a Ray GPU worker passes "cuda"."""

    def __init__(self, cfg: SweepConfig, device: str | None = None) -> None:
        self.cfg = cfg
        self.device = device
        self.spec: str | None = None
        self.loads = 0

    def configure(self, cfg: SweepConfig) -> None:
        """Run later units under ``cfg``: when it differs from the current config, the
        suites and calibration data are rebuilt on demand and the loaded model is
        checked against it again."""
        if _work_settings(cfg) == _work_settings(self.cfg):
            self.cfg = cfg
            return
        self.cfg = cfg
        if self.spec is not None:
            self.counts = {s: self.info.select(s).n_params for s in cfg.scopes_needed()}
            self.suites, self.calibrations = {}, {}
            spec, self.spec = self.spec, None
            cfg.check_model(spec, self.counts)
            self.spec = spec

    def load(self, spec: str, status: Callable[[str], None] = _noop) -> None:
        """Load ``spec`` (a no-op when it is loaded already) and check the config's cells
        can run on it (:meth:`SweepConfig.check_model`)."""

        if spec == self.spec:
            return
        status(f"loading {spec}")
        self.spec = None
        self.model = load_model(spec, device=self.device or self.cfg.device,
                                dtype=self.cfg.dtype, device_map=self.cfg.device_map)
        self.info = model_info(self.model)
        self.counts = {s: self.info.select(s).n_params for s in self.cfg.scopes_needed()}
        self.cfg.check_model(spec, self.counts)
        self.suites: dict[int, dict] = {}
        self.calibrations: dict[int, object] = {}
        self.spec = spec
        self.loads += 1

    def device_record(self) -> dict:
        """Where and in which precision the loaded model runs (for the manifest: the
        config says what was asked, e.g. "auto"; this says what it resolved to)."""
        info = self.info
        record = {"device": info.device, "dtype": info.dtype, "device_map": info.device_map}
        cuda = [d for d in info.device.split("+") if d.startswith("cuda")]
        if cuda:
            record["accelerator"] = [torch.cuda.get_device_name(torch.device(d)) for d in cuda]
        return record

    def suite(self, seed: int) -> dict:
        if seed not in self.suites:
            suite = (build_suite(self.cfg.suite, self.model, seed=seed) if self.cfg.suite
                     else default_suite(self.model, self.cfg.task_size, seed))
            self.suites[seed] = self.cfg.select_tasks(suite)
        return self.suites[seed]

    def _evaluate(self, seed: int):
        with oom_hint("evaluation", dtype=self.cfg.dtype, device=self.info.device):
            return evaluate_suite(self.model, self.suite(seed), batch_size=self.cfg.batch_size)

    def _result(self, cell: Cell, res, params_removed: int, seconds: float) -> CellOutput:
        calibration = label = None
        if cell.calibration:
            tokens = self.calibrations[cell.seed]
            label = f"{cell.calibration_label};tokens={tokens.fingerprint}"
            calibration = tokens.to_json()
        rows = cell.to_rows(res.summary(), scope_params=self.counts,
                            params_removed=params_removed, calibration=label)
        weights = {"fingerprint": self.info.fingerprint, "path": self.info.path,
                   "source": dict(self.info.source)}
        return CellOutput(cell_id=cell.cell_id, dense_id=cell.dense().cell_id, model=cell.model,
                          rows=rows, instances=instances_from_eval(res.rows, cell.cell_id),
                          seconds=seconds, label=cell.label, identity=cell.canonical(),
                          weights=weights, device=self.device_record(),
                          calibration=calibration)

    def run(self, unit: WorkUnit, status: Callable[[str], None] = _noop
            ) -> Iterator[CellOutput]:
        """The unit's cells, evaluated in order, each yielded as soon as it is done."""
        self.configure(unit.cfg)
        self.load(unit.model, status)
        first = unit.cells[0]
        if first.is_dense:
            for cell in unit.cells:
                status(cell.label)
                t0 = time.perf_counter()
                res = self._evaluate(cell.seed)
                yield self._result(cell, res, 0, time.perf_counter() - t0)
            return
        yield from self._run_pruned(list(unit.cells), status)

    def pruner(self, cell: Cell) -> Pruner:
        """The :class:`Pruner` of ``cell`` on the loaded model: its method, scope,
        structure, allocation, keyword arguments, seed, calibration mode and the seed's
        calibration data (built once per seed). Every cell of one work unit shares it;
        ``lenskit export`` rebuilds a recorded cell's pruning through it too."""
        if cell.seed not in self.calibrations:
            self.calibrations[cell.seed] = _calibration(self.cfg, self.model, cell.seed)
        return Pruner(self.model, cell.method, scope=cell.scope, structure=cell.structure,
                      allocation=cell.allocation, calibration=self.calibrations[cell.seed],
                      mode=cell.calibration_mode or self.cfg.calibration.mode,
                      seed=cell.seed, **cell.kwargs, **cell.alloc_kwargs)

    def _run_pruned(self, group: list[Cell], status: Callable[[str], None]
                    ) -> Iterator[CellOutput]:

        first = group[0]
        pruner = self.pruner(first)
        n_scope = self.counts.get(first.scope) or self.info.select(first.scope).n_params
        for chunk in _chunks(group, n_scope, first.method):
            status(f"pruning {chunk[0].label}")
            t0 = time.perf_counter()
            with oom_hint("pruning", dtype=self.cfg.dtype, device=self.info.device):
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
                status(cell.label)
                t0 = time.perf_counter()
                with torch.no_grad(), pruned(self.model, r.masks, r.weights):
                    res = self._evaluate(cell.seed)
                yield self._result(cell, res, r.masks.n_pruned,
                                   prune_seconds + time.perf_counter() - t0)
