"""The sweep configuration, :class:`SweepConfig`: one flat dataclass whose settings are
checked and expanded by the modules of each concern (grid, models, tasks, calibration,
execution, options, cells)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenskit.models.devices import device_problems
from lenskit.pruning.structure import parse_structure
from lenskit.results.schema import DENSE
from lenskit.sweep.config.calibration import CalibrationConfig, calibration_problems
from lenskit.sweep.config.cells import Cell, kw_tuple
from lenskit.sweep.config.errors import ConfigError
from lenskit.sweep.config.execution import execution_problems
from lenskit.sweep.config.files import to_toml
from lenskit.sweep.config.grid import (
    DEFAULT_SPARSITIES,
    SPARSITY_DIGITS,
    grid_problems,
    matched_pairs,
)
from lenskit.sweep.config.models import model_problems
from lenskit.sweep.config.options import option_problems
from lenskit.sweep.config.overrides import (
    CALIBRATION_TYPES,
    FIELD_TYPES,
    apply_overrides,
    flatten,
)
from lenskit.sweep.config.tasks import select_tasks, suite_problems, task_problems

__all__ = ["SweepConfig"]


@dataclass
class SweepConfig:
    """A sweep grid and how to run it. The defaults are the default study (see
    :func:`default_config`).

    Attributes:
        name: a label for the study (used in the manifest and figure titles).
        models: model specs for :func:`lenskit.load_model` ("organism", hub names, local dirs).
        dense_models: models evaluated dense only, as reference points (e.g. smaller or larger
            models of the same family for the dense-scaling figure).
        device: "auto" (cuda, else mps, else cpu), "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float32", "bfloat16" or "float16" for the model's weights.
        device_map: "none" or "auto" (Accelerate places layers over the available GPUs).
        methods: pruning methods (``lenskit.pruning.METHODS``).
        sparsities: target fractions of each scope, in [0, 1] (ignored by N:M structures,
            whose sparsity is N/M).
        scopes: site selections ("all", "attn", "mlp", "attn.q,k@0-3", ...).
        structures: "unstructured" and/or "N:M" patterns ("2:4" = 2 of every 4 pruned).
        allocations: how sparsity spreads over the scope's sites: uniform, global, owl.
            Writing "matched" here is the same as ``matched = true``.
        matched: also run the parameter-matched attention-vs-FFW comparison: for each
            sparsity s of the attention scope, prune the FFW scope to remove the same number
            of weights (allocation "matched" in the results).
        matched_pairs: (reference, target) scope pairs for ``matched``; empty = the first
            attention-only scope and the first FFW-only scope of ``scopes``.
        suite: task specs by name (``lenskit tasks`` lists them), e.g.
            ``["triviaqa:n=500,path=/data/triviaqa-rc", "fn_linear"]``; empty = the model's
            default suite (:func:`lenskit.tasks.default_suite`, sized by ``task_size``).
        tasks: task names of the suite to evaluate, or ["default"] for all of them.
        task_size: "small" (seconds per evaluation) or "full".
        seeds: seeds; each seed has its own dense baseline, calibration sample and task set.
        calibration: calibration data (:class:`CalibrationConfig`).
        batch_size: evaluation batch size.
        out_dir: the run directory.
        method_kwargs: per-method keyword arguments, e.g. {"sparsegpt": {"blocksize": 128}}.
        allocation_kwargs: per-allocation keyword arguments, e.g.
            {"owl": {"owl_m": 5, "owl_lambda": 0.08}}.
    """

    name: str = "default"
    models: list[str] = field(default_factory=lambda: ["organism"])
    dense_models: list[str] = field(default_factory=list)
    # Where and in which precision the models run (lenskit.models.devices): device auto
    # (cuda, else mps, else cpu), cpu, cuda, cuda:N, mps; dtype float32, bfloat16, float16
    # (statistics, Hessians and SparseGPT stay float32); device_map none or auto (Accelerate
    # spreads the layers over the GPUs).
    device: str = "auto"
    dtype: str = "float32"
    device_map: str = "none"
    # Budget of the default study (<= 10 min on 2 cores, one of them busy): the organism
    # (~0.9M parameters) prunes in well under 1 s and its small suite evaluates in ~5 s.
    #   dense: 1 model x 1 seed                                  =  1 cell
    #   plain: 2 methods x 9 sparsities x 3 scopes               = 54 cells
    #   matched: 2 methods x 9 sparsities (FFW matched to attn)  = 18 cells
    #   73 cells x (~5 s eval + <1 s prune) ~ 440 s, + ~30 s for imports, loading,
    #   thresholds and figures ~ 470 s < 600 s. Sequential calibration (the default) runs
    #   one calibration pass per Wanda level (~0.2 s each on the organism, 36 levels:
    #   ~7 s more; benchmarks/calibration_bench.py measures the ratio to dense mode).
    # SparseGPT would add 27 + 9 cells with ~1-2 s more per prune (~250 s): over budget,
    # so it is left to configs that ask for it (examples/sweep_pythia.toml).
    methods: list[str] = field(default_factory=lambda: ["wanda", "magnitude"])
    sparsities: list[float] = field(default_factory=lambda: list(DEFAULT_SPARSITIES))
    scopes: list[str] = field(default_factory=lambda: ["all", "attn", "mlp"])
    structures: list[str] = field(default_factory=lambda: ["unstructured"])
    allocations: list[str] = field(default_factory=lambda: ["uniform"])
    matched: bool = True
    matched_pairs: list[list[str]] = field(default_factory=list)
    suite: list[Any] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: ["default"])
    task_size: str = "small"
    seeds: list[int] = field(default_factory=lambda: [0])
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    batch_size: int = 64
    out_dir: str = "runs/default"
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    allocation_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where the cells run (lenskit.sweep.executors; none of these changes results, so a run
    # resumes under other values): executor "local" (this process) or "ray"; address of a
    # Ray cluster (None = start a local one, "auto", "HOST:PORT", "ray://HOST:PORT");
    # workers = Ray actors (None = as many as the cluster fits), each with num_cpus CPUs
    # (also its torch threads) and num_gpus GPUs.
    executor: str = "local"
    address: str | None = None
    workers: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    # ---- construction ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepConfig:
        """Build from a plain dict (parsed TOML/YAML). Unknown keys and values of the wrong
        type raise one :class:`ConfigError` listing them all; list fields accept a single
        value; strings are parsed as on the command line (see :meth:`with_overrides`)."""
        return cls().with_overrides(flatten(data))

    def with_overrides(self, overrides: Mapping[str, Any]) -> SweepConfig:
        """A copy with ``overrides`` applied.

        Keys are field names, dotted for nested ones ("calibration.n_samples",
        "method_kwargs.sparsegpt.blocksize"), or nested dicts. Values may be typed or
        strings as typed on a command line: lists as "a,b,c" (scopes, whose selections
        contain commas, as "all;attn.q,k@0-3") or a TOML/JSON list "[0.1, 0.5]"; booleans
        as true/false/yes/no/1/0. Raises :class:`ConfigError` listing every unknown key
        (with the closest known one) and every value that cannot be converted.
        """
        data = apply_overrides(self.to_dict(), overrides)
        calib = data.pop("calibration")
        return SweepConfig(calibration=CalibrationConfig(**calib), **data)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able dict of every setting (what the manifest stores)."""
        d = dataclasses.asdict(self)
        d["sparsities"] = [round(float(s), SPARSITY_DIGITS) for s in self.sparsities]
        d["matched_pairs"] = [list(p) for p in self.matched_pairs]
        return json.loads(json.dumps(d))

    def to_toml(self) -> str:
        """The config as TOML text that :func:`load_config` reads back to an equal config."""
        return to_toml(self.to_dict())

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_toml` to ``path`` (a .toml file)."""
        path = Path(path)
        path.write_text(self.to_toml())
        return path

    # ---- validation -----------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every problem with this config, as readable sentences (empty when valid)."""
        p: list[str] = []
        if not isinstance(self.name, str) or not self.name.strip():
            p.append("name must be a non-empty string")
        p += model_problems(self.models, self.dense_models)
        p += device_problems(self.device, self.dtype, self.device_map)
        p += grid_problems(self.methods, self.structures, self.allocations, self.sparsities,
                           self.scopes, self.matched, self.matched_pairs, self.seeds)
        p += task_problems(self.tasks, self.task_size)
        p += suite_problems(self.suite)
        p += execution_problems(self.batch_size, self.out_dir)
        p += calibration_problems(self.calibration)
        p += option_problems("method_kwargs", self.method_kwargs)
        p += option_problems("allocation_kwargs", self.allocation_kwargs)
        return p

    def validate(self) -> SweepConfig:
        """Raise :class:`ConfigError` listing every problem; return ``self`` when valid."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    # ---- expansion ------------------------------------------------------------------

    def matched_pairs_resolved(self) -> list[tuple[str, str]]:
        """The (reference, target) scope pairs of the matched comparison (empty if off)."""
        if not (self.matched or "matched" in self.allocations):
            return []
        problems: list[str] = []
        pairs = matched_pairs(self.matched_pairs, self.scopes, problems)
        if problems:
            raise ConfigError(problems)
        return pairs

    def cells(self) -> list[Cell]:
        """The grid as an ordered list of cells; validates first.

        Order: model by model (so a runner loads each model once); for each model its dense
        cells (one per seed) come first, then seed, method, structure, allocation, scope,
        sparsity (innermost, so that scores and calibration statistics are reused across
        sparsity levels), then the matched cells of that method. N:M structures give one
        cell per scope at sparsity N/M. The order and every cell_id depend only on the
        config.
        """
        self.validate()
        out: list[Cell] = []
        pairs = self.matched_pairs_resolved()
        allocs = [a for a in dict.fromkeys(self.allocations) if a != "matched"]
        sparsities = [round(float(s), SPARSITY_DIGITS) for s in self.sparsities]
        tasks = self.tasks_key()
        cal = self.calibration.key
        for model in self.models:
            for seed in self.seeds:
                out.append(Cell(model, DENSE, "unstructured", "uniform", "all", 0.0, seed,
                                tasks=tasks))
            for seed in self.seeds:
                for method in self.methods:
                    mkw = kw_tuple(self.method_kwargs.get(method, {}))
                    for structure in self.structures:
                        nm = parse_structure(structure)
                        levels = sparsities if nm.unstructured else [nm.n / nm.m]
                        for alloc in allocs:
                            akw = kw_tuple(self.allocation_kwargs.get(alloc, {}))
                            for scope in self.scopes:
                                for s in levels:
                                    out.append(Cell(model, method, structure, alloc, scope,
                                                    s, seed, None, mkw, akw,
                                                    cal(method, alloc), tasks))
                        if nm.unstructured:
                            akw = kw_tuple(self.allocation_kwargs.get("matched", {}))
                            for ref, tgt in pairs:
                                for s in sparsities:
                                    out.append(Cell(model, method, structure, "matched", tgt,
                                                    s, seed, ref, mkw, akw,
                                                    cal(method, "matched"), tasks))
        for model in dict.fromkeys(self.dense_models):
            for seed in self.seeds:
                out.append(Cell(model, DENSE, "unstructured", "uniform", "all", 0.0, seed,
                                tasks=tasks))
        ids = [c.cell_id for c in out]
        assert len(set(ids)) == len(ids), "cell ids collide"
        return out

    def tasks_key(self) -> tuple[tuple[str, Any], ...]:
        """The task-suite part of every cell's identity: the size and the task names."""
        return (("size", self.task_size), ("tasks", tuple(self.tasks)))

    def select_tasks(self, suite: Mapping[str, Any]) -> dict[str, Any]:
        """The tasks of ``suite`` (name -> task set, e.g. ``lenskit.tasks.default_suite(
        model, self.task_size, seed)``) this config asks for: all of them for
        ``["default"]``, else those named, in the config's order. Raises
        :class:`ConfigError` listing every name the suite lacks (task names depend on the
        model's suite, so this check runs once the model is loaded, before any pruning)."""
        return select_tasks(self.tasks, suite)

    def scopes_needed(self) -> list[str]:
        """Every scope whose weight count a runner must pass to :meth:`Cell.resolve_sparsity`."""
        return list(dict.fromkeys(["all", *self.scopes]))

    def check_model(self, model: str, scope_params: Mapping[str, int]) -> None:
        """After loading ``model``: check every cell of it can run with these site counts.

        Raises a ValueError listing scopes that select no weights and matched cells that
        would need more than 100% of their scope. Call it before pruning anything.
        """
        problems = [f"scope {s!r} selects no weights in {model!r}"
                    for s in self.scopes if int(scope_params.get(s, 0)) <= 0]
        if not problems:
            for cell in self.cells():
                if cell.model == model and cell.is_matched:
                    try:
                        cell.resolve_sparsity(scope_params)
                    except ValueError as e:
                        problems.append(str(e))
        if problems:
            raise ConfigError(problems)


assert set(FIELD_TYPES) == {f.name for f in dataclasses.fields(SweepConfig)}
assert set(CALIBRATION_TYPES) == {f.name for f in dataclasses.fields(CalibrationConfig)}
