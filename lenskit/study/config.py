"""Sweep configuration: the grid a study runs, validated before any work starts.

A sweep is models x seeds x methods x structures x allocations x scopes x sparsities,
every cell evaluated on the same tasks. It is declared in a TOML file (YAML when PyYAML is
installed), in Python, or on the command line as overrides, e.g.::

    name = "default"
    models = ["organism"]
    methods = ["wanda", "magnitude"]
    sparsities = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    scopes = ["all", "attn", "mlp"]
    matched = true            # also prune FFW to remove as many weights as attention does

    [calibration]
    n_samples = 32
    seq_len = 128

    [method_kwargs.sparsegpt]
    blocksize = 128

:meth:`SweepConfig.validate` collects *every* problem (unknown names, empty grids,
sparsities outside [0, 1], impossible combinations) and raises one ValueError listing
them. :meth:`SweepConfig.cells` expands the grid into :class:`Cell` objects in the order a
runner should visit them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.errors import UsageError
from lenskit.study.schema import (
    DENSE,
    RESULT_COLUMNS,
    known_allocations,
    known_methods,
)

__all__ = [
    "DEFAULT_SPARSITIES",
    "STRUCTURED_ALLOCATIONS",
    "TASK_SIZES",
    "CalibrationConfig",
    "Cell",
    "ConfigError",
    "SweepConfig",
    "default_config",
    "is_attention_scope",
    "is_ffw_scope",
    "known_tasks",
    "load_config",
    "model_label",
    "parse_structure",
]

DEFAULT_SPARSITIES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TASK_SIZES: tuple[str, ...] = ("small", "full")
#: Allocations an N:M structure can use: N:M fixes the sparsity of every group of M
#: weights, so a per-layer (OWL) or global spread of sparsity cannot apply.
STRUCTURED_ALLOCATIONS: tuple[str, ...] = ("uniform",)
#: (method, allocation) pairs no pruner supports: SparseGPT chooses its mask block by block
#: while it updates the weights, so there is no single score to threshold globally.
UNSUPPORTED_COMBINATIONS: dict[tuple[str, str], str] = {
    ("sparsegpt", "global"): "SparseGPT picks its mask per block of columns while updating "
                             "the weights; there is no global score to threshold",
}
_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_SPARSITY_DIGITS = 6  # sparsities are compared and hashed after rounding to this many digits


class ConfigError(UsageError):
    """A sweep configuration is invalid; the message lists every problem found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "invalid sweep config" + (f" ({len(problems)} problems)" if len(problems) > 1
                                         else "")
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))


def parse_structure(structure: str) -> tuple[int, int] | None:
    """``None`` for "unstructured", ``(N, M)`` for "N:M" (N of every M consecutive inputs pruned).

    Raises ValueError for anything else, or N:M with not 1 <= N <= M (N == M prunes all).
    """
    if structure == "unstructured":
        return None
    m = _NM.match(structure) if isinstance(structure, str) else None
    if not m:
        raise ValueError(f"bad structure {structure!r}; allowed: 'unstructured' or 'N:M' "
                         f"such as '2:4' (N of every M consecutive weights pruned)")
    n, mm = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= mm:
        raise ValueError(f"bad structure {structure!r}: N:M needs 1 <= N <= M "
                         f"(N pruned of every M consecutive weights)")
    return n, mm


def _selection(scope: str):
    # Imported lazily: lenskit.models pulls in torch, which config parsing does not need.
    from lenskit.models.sites import Selection

    return Selection.parse(scope)


def is_attention_scope(scope: str) -> bool:
    """True when the scope selects attention sites only (e.g. "attn", "attn.q,k@0-3", "q,v")."""
    from lenskit.models.architectures import ATTN_COMPONENTS

    sel = _selection(scope)
    if sel.families is not None:
        return set(sel.families) == {"attn"}
    return sel.components is not None and set(sel.components) <= set(ATTN_COMPONENTS)


def is_ffw_scope(scope: str) -> bool:
    """True when the scope selects feed-forward (MLP) sites only (e.g. "mlp", "mlp.in@0-1")."""
    from lenskit.models.architectures import MLP_COMPONENTS

    sel = _selection(scope)
    if sel.families is not None:
        return set(sel.families) == {"mlp"}
    return sel.components is not None and set(sel.components) <= set(MLP_COMPONENTS)


def known_tasks() -> tuple[str, ...] | None:
    """Task names the task suite provides, or None when it exposes no registry (yet).

    Looks, at call time, for ``lenskit.tasks.TASKS`` (a mapping or sequence of names) or a
    ``lenskit.tasks.task_names()`` function.
    """
    try:
        import lenskit.tasks as tasks
    except ImportError:
        return None
    names = getattr(tasks, "TASKS", None)
    if names is None and callable(getattr(tasks, "task_names", None)):
        names = tasks.task_names()
    return None if names is None else tuple(str(n) for n in names)


def model_label(spec: str) -> str:
    """The name a model gets in results: hub names and "organism" as given, a local
    directory by its last path component (``/data/models/pythia-70m`` -> ``pythia-70m``)."""
    text = str(spec).rstrip("/")
    if text.startswith((".", "/", "~")) or Path(text).is_dir():
        return Path(text).name or text
    return text


@dataclass
class CalibrationConfig:
    """Calibration data for the data-aware methods (Wanda, SparseGPT, OWL).

    Attributes:
        n_samples: number of sequences.
        seq_len: tokens per sequence (never taken from the model's max_position_embeddings).
        source: "default" (the organism's corpus, or seeded random tokens for other models
            when offline), a path to a text file, or a dataset name the pruner knows.
        sequential: True = block-by-block calibration where pruned outputs feed the next
            block (the references' behaviour); False = one dense pass, whose statistics
            are reused across every sparsity level.
    """

    n_samples: int = 32
    seq_len: int = 128
    source: str = "default"
    sequential: bool = False

    @property
    def mode(self) -> str:
        """The calibration mode name of ``lenskit.pruning`` ("sequential" or "dense")."""
        return "sequential" if self.sequential else "dense"


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a model pruned one way (or the dense model), then evaluated.

    ``sparsity`` is the target fraction of ``scope`` to prune, except for matched cells
    (``allocation == "matched"``): those prune ``scope`` so as to remove as many weights as
    pruning ``match_scope`` at ``sparsity`` removes (``round(sparsity * n(match_scope))``);
    :meth:`resolve_sparsity` turns that into a fraction of ``scope`` once the model's site
    counts are known. ``method_kwargs`` is a sorted tuple of (name, value) pairs so that the
    cell stays hashable; :attr:`kwargs` gives it back as a dict.
    """

    model: str
    method: str
    structure: str
    allocation: str
    scope: str
    sparsity: float
    seed: int
    match_scope: str | None = None
    method_kwargs: tuple[tuple[str, Any], ...] = ()
    allocation_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def is_dense(self) -> bool:
        return self.method == DENSE

    @property
    def is_matched(self) -> bool:
        return self.match_scope is not None

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the pruning method."""
        return dict(self.method_kwargs)

    @property
    def alloc_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the allocation (e.g. OWL's M and lambda)."""
        return dict(self.allocation_kwargs)

    def dense(self) -> Cell:
        """The dense baseline cell of this cell's model and seed (itself if dense)."""
        return Cell(self.model, DENSE, "unstructured", "uniform", "all", 0.0, self.seed)

    @property
    def model_name(self) -> str:
        """The ``model`` value of this cell's result rows (see :func:`model_label`)."""
        return model_label(self.model)

    def canonical(self) -> dict[str, Any]:
        """A JSON-able dict that identifies the cell (what :attr:`cell_id` hashes)."""
        d = dataclasses.asdict(self)
        d["sparsity"] = round(float(self.sparsity), _SPARSITY_DIGITS)
        d["method_kwargs"] = [list(kv) for kv in self.method_kwargs]
        d["allocation_kwargs"] = [list(kv) for kv in self.allocation_kwargs]
        return d

    @property
    def cell_id(self) -> str:
        """A 12-hex-digit hash of :meth:`canonical`: stable across runs and machines."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """A short human-readable description for progress bars and logs."""
        if self.is_dense:
            return f"{self.model_name} dense seed={self.seed}"
        target = (f"{self.scope}~{self.match_scope}@{self.sparsity:.0%}" if self.is_matched
                  else f"{self.scope}@{self.sparsity:.0%}")
        return (f"{self.model_name} {self.method} {self.structure} {self.allocation} "
                f"{target} seed={self.seed}")

    def resolve_sparsity(self, scope_params: Mapping[str, int]) -> float:
        """The fraction of ``self.scope`` to prune.

        ``scope_params`` maps scope strings to their number of block-linear weights in the
        loaded model (``model_info(bridge).select(scope).n_params``). Plain cells return
        ``sparsity``; matched cells ``round(sparsity * n(match_scope)) / n(scope)``, and
        raise a ValueError when that exceeds 1 (the reference scope is larger).
        """
        if not self.is_matched:
            return float(self.sparsity)
        n_remove = self.params_to_remove(scope_params)
        n_scope = _scope_count(scope_params, self.scope)
        frac = n_remove / n_scope
        if frac > 1:
            raise ValueError(
                f"cell {self.label}: removing {n_remove} weights (= {self.sparsity:.0%} of "
                f"{self.match_scope!r}, {_scope_count(scope_params, self.match_scope)} weights) "
                f"needs {frac:.0%} of {self.scope!r} ({n_scope} weights); "
                f"swap the pair so that the larger scope is matched to the smaller"
            )
        return frac

    def params_to_remove(self, scope_params: Mapping[str, int]) -> int:
        """Matched cells: the number of weights to remove from ``scope``. Others: the
        nominal ``round(sparsity * n(scope))`` (the pruner's own count may differ by rounding)."""
        ref = self.match_scope if self.is_matched else self.scope
        return round(self.sparsity * _scope_count(scope_params, ref))

    def to_rows(self, measurements: pd.DataFrame, *, scope_params: Mapping[str, int],
                params_removed: int) -> pd.DataFrame:
        """Result rows (schema columns) for this cell from the task suite's aggregates.

        ``measurements`` needs columns task, kind, category, metric, value, n and may have
        ci_low, ci_high (NaN when absent). ``scope_params`` maps "all", this cell's scope
        and (matched cells) its reference scope to their block-linear weight counts in the
        dense model (:meth:`SweepConfig.scopes_needed` lists them); ``params_removed`` is
        the number of weights the masks zeroed (``masks.n_pruned``; 0 for dense).
        Baselines and relative drops are NaN here: fill them with
        :func:`lenskit.study.schema.attach_baselines` from the dense cell's rows.
        """
        need = ["task", "kind", "category", "metric", "value", "n"]
        missing = [c for c in need if c not in measurements.columns]
        if missing:
            raise ValueError(f"measurements lack column(s) {missing}; need {need} "
                             f"(+ optional ci_low, ci_high)")
        model_params = _scope_count(scope_params, "all")
        n_scope = _scope_count(scope_params, self.scope)
        if not 0 <= params_removed <= n_scope:
            raise ValueError(f"params_removed {params_removed} outside [0, {n_scope}] "
                             f"(the weight count of scope {self.scope!r})")
        if self.is_dense and params_removed:
            raise ValueError(f"dense cell with params_removed={params_removed}")
        m = measurements
        nan = float("nan")
        rows = pd.DataFrame({
            "model": self.model_name,
            "model_params": model_params,
            "method": self.method,
            "structure": self.structure,
            "allocation": self.allocation,
            "scope": self.scope,
            "target_sparsity": 0.0 if self.is_dense else self.resolve_sparsity(scope_params),
            "achieved_sparsity": params_removed / n_scope,
            "params_removed": int(params_removed),
            "remaining_params": model_params - int(params_removed),
            "task": m["task"].astype("str").to_numpy(),
            "kind": m["kind"].astype("str").to_numpy(),
            "category": m["category"].astype("str").to_numpy(),
            "metric": m["metric"].astype("str").to_numpy(),
            "value": m["value"].astype("float64").to_numpy(),
            "n": m["n"].astype("int64").to_numpy(),
            "ci_low": m["ci_low"].astype("float64").to_numpy() if "ci_low" in m else nan,
            "ci_high": m["ci_high"].astype("float64").to_numpy() if "ci_high" in m else nan,
            "seed": int(self.seed),
            "baseline": nan,
            "relative_drop": nan,
            "cell_id": self.cell_id,
        }, index=range(len(m)))
        return rows[list(RESULT_COLUMNS)]


def _scope_count(scope_params: Mapping[str, int], scope: str | None) -> int:
    if scope not in scope_params:
        raise ValueError(f"no weight count for scope {scope!r}; got {sorted(scope_params)}")
    n = int(scope_params[scope])
    if n <= 0:
        raise ValueError(f"scope {scope!r} selects no weights in this model")
    return n


# ---------------------------------------------------------------------------------------
# The sweep configuration
# ---------------------------------------------------------------------------------------

@dataclass
class SweepConfig:
    """A sweep grid and how to run it. The defaults are the default study (see
    :func:`default_config`).

    Attributes:
        name: a label for the study (used in the manifest and figure titles).
        models: model specs for :func:`lenskit.load_model` ("organism", hub names, local dirs).
        dense_models: models evaluated dense only, as reference points (e.g. smaller or larger
            models of the same family for the dense-scaling figure).
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
        tasks: task names of the task suite, or ["default"] for its default suite.
        task_size: "small" (seconds per evaluation) or "full".
        seeds: seeds; each seed has its own dense baseline, calibration sample and task set.
        calibration: calibration data (:class:`CalibrationConfig`).
        batch_size: evaluation batch size.
        out_dir: the run directory.
        method_kwargs: per-method keyword arguments, e.g. {"sparsegpt": {"blocksize": 128}}.
        allocation_kwargs: per-allocation keyword arguments, e.g. {"owl": {"M": 5, "lam": 0.08}}.
    """

    name: str = "default"
    models: list[str] = field(default_factory=lambda: ["organism"])
    dense_models: list[str] = field(default_factory=list)
    # Budget of the default study (<= 10 min on 2 cores, one of them busy): the organism
    # (~0.9M parameters) prunes in well under 1 s and its small suite evaluates in ~5 s.
    #   dense: 1 model x 1 seed                                  =  1 cell
    #   plain: 2 methods x 9 sparsities x 3 scopes               = 54 cells
    #   matched: 2 methods x 9 sparsities (FFW matched to attn)  = 18 cells
    #   73 cells x (~5 s eval + <1 s prune) ~ 440 s, + ~30 s for imports, loading, one
    #   calibration pass per method, thresholds and figures ~ 470 s < 600 s.
    # SparseGPT would add 27 + 9 cells with ~1-2 s more per prune (~250 s): over budget,
    # so it is left to configs that ask for it (examples/sweep_pythia.toml).
    methods: list[str] = field(default_factory=lambda: ["wanda", "magnitude"])
    sparsities: list[float] = field(default_factory=lambda: list(DEFAULT_SPARSITIES))
    scopes: list[str] = field(default_factory=lambda: ["all", "attn", "mlp"])
    structures: list[str] = field(default_factory=lambda: ["unstructured"])
    allocations: list[str] = field(default_factory=lambda: ["uniform"])
    matched: bool = True
    matched_pairs: list[list[str]] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: ["default"])
    task_size: str = "small"
    seeds: list[int] = field(default_factory=lambda: [0])
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    batch_size: int = 64
    out_dir: str = "runs/default"
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    allocation_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---- construction ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepConfig:
        """Build from a plain dict (parsed TOML/YAML). Unknown keys and values of the wrong
        type raise one :class:`ConfigError` listing them all; list fields accept a single
        value; strings are parsed as on the command line (see :meth:`with_overrides`)."""
        return cls().with_overrides(_flatten(data))

    def with_overrides(self, overrides: Mapping[str, Any]) -> SweepConfig:
        """A copy with ``overrides`` applied.

        Keys are field names, dotted for nested ones ("calibration.n_samples",
        "method_kwargs.sparsegpt.blocksize"), or nested dicts. Values may be typed or
        strings as typed on a command line: lists as "a,b,c" (scopes, whose selections
        contain commas, as "all;attn.q,k@0-3") or a TOML/JSON list "[0.1, 0.5]"; booleans
        as true/false/yes/no/1/0. Raises :class:`ConfigError` listing every unknown key
        and every value that cannot be converted.
        """
        data = self.to_dict()
        problems: list[str] = []
        for key, raw in _flatten(overrides).items():
            parts = key.split(".")
            top = parts[0]
            if top not in _FIELD_TYPES:
                problems.append(f"unknown setting {key!r}; allowed: {sorted(_FIELD_TYPES)}")
                continue
            kind = _FIELD_TYPES[top]
            try:
                if top == "calibration":
                    if len(parts) == 1:
                        if not isinstance(raw, Mapping):
                            raise ValueError("must be a table of calibration settings")
                        for k, v in raw.items():
                            data["calibration"][k] = _convert_calibration(k, v)
                    elif len(parts) == 2:
                        data["calibration"][parts[1]] = _convert_calibration(parts[1], raw)
                    else:
                        raise ValueError("too many dots")
                elif kind == "kwargs":
                    if len(parts) == 1:
                        if isinstance(raw, str):
                            raw = json.loads(raw)
                        if not isinstance(raw, Mapping) or not all(
                                isinstance(v, Mapping) for v in raw.values()):
                            raise ValueError("must map a name to a table of arguments")
                        data[top] = {str(k): dict(v) for k, v in raw.items()}
                    elif len(parts) == 2:
                        if isinstance(raw, str):
                            raw = json.loads(raw)
                        if not isinstance(raw, Mapping):
                            raise ValueError("must be a table of keyword arguments")
                        data[top][parts[1]] = dict(raw)
                    elif len(parts) == 3:
                        data[top].setdefault(parts[1], {})[parts[2]] = _scalar(raw)
                    else:
                        raise ValueError(f"use '{top}.NAME.ARGUMENT'")
                elif len(parts) != 1:
                    raise ValueError(f"{top!r} has no sub-settings")
                else:
                    data[top] = _convert(top, kind, raw)
            except (ValueError, TypeError, json.JSONDecodeError) as e:
                problems.append(f"bad value {raw!r} for {key!r}: {e}")
        if problems:
            raise ConfigError(problems)
        calib = data.pop("calibration")
        return SweepConfig(calibration=CalibrationConfig(**calib), **data)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able dict of every setting (what the manifest stores)."""
        d = dataclasses.asdict(self)
        d["sparsities"] = [round(float(s), _SPARSITY_DIGITS) for s in self.sparsities]
        d["matched_pairs"] = [list(p) for p in self.matched_pairs]
        return json.loads(json.dumps(d))

    def to_toml(self) -> str:
        """The config as TOML text that :func:`load_config` reads back to an equal config."""
        return _to_toml(self.to_dict())

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_toml` to ``path`` (a .toml file)."""
        path = Path(path)
        path.write_text(self.to_toml())
        return path

    # ---- validation -----------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every problem with this config, as readable sentences (empty when valid)."""
        p: list[str] = []
        methods = known_methods()
        allocations = known_allocations()
        plain_allocations = tuple(a for a in allocations if a != "matched")

        def check_list(name: str, values, allowed=None, what=None) -> list:
            what = what or name[:-1]
            if not isinstance(values, list):
                p.append(f"{name} must be a list, got {values!r}")
                return []
            if not values:
                p.append(f"{name} is empty; give at least one {what}"
                         + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
                return []
            seen = set()
            for v in values:
                if v in seen:
                    p.append(f"duplicate {what} {v!r} in {name}")
                seen.add(v)
            if allowed is not None:
                for v in dict.fromkeys(values):
                    if v not in allowed:
                        p.append(f"unknown {what} {v!r}; allowed: {', '.join(allowed)}")
            return list(dict.fromkeys(values))

        if not isinstance(self.name, str) or not self.name.strip():
            p.append("name must be a non-empty string")
        models = check_list("models", self.models)
        if not isinstance(self.dense_models, list):
            p.append(f"dense_models must be a list, got {self.dense_models!r}")
        else:
            for m in self.dense_models:
                if m in models:
                    p.append(f"dense model {m!r} is also in models (its dense cells are "
                             f"there already)")
        for m in [*models, *(self.dense_models if isinstance(self.dense_models, list) else [])]:
            if not isinstance(m, str) or not m.strip():
                p.append(f"model spec {m!r} must be a non-empty string")
        if DENSE in (self.methods or []):
            p.append(f"method {DENSE!r} is implicit (every sweep evaluates the dense model); "
                     f"remove it from methods")
        method_list = check_list("methods", [m for m in self.methods if m != DENSE]
                                 if self.methods else [], methods)
        structures = check_list("structures", self.structures, None, "structure")
        nm_structures, unstructured = [], False
        for s in structures:
            try:
                nm = parse_structure(s)
            except ValueError as e:
                p.append(str(e))
                continue
            if nm is None:
                unstructured = True
            else:
                nm_structures.append(s)
        alloc_values = list(self.allocations) if isinstance(self.allocations, list) else []
        matched = bool(self.matched) or "matched" in alloc_values
        if alloc_values == ["matched"]:
            p.append("allocations lists only 'matched'; matched cells need a plain "
                     "allocation for their reference scope, e.g. ['uniform', 'matched']")
            plain_allocs = []
        else:
            plain_allocs = check_list("allocations", [a for a in alloc_values if a != "matched"]
                                      if isinstance(self.allocations, list) else self.allocations,
                                      plain_allocations, "allocation")
        if unstructured:
            sp = self.sparsities
            if not isinstance(sp, list) or not sp:
                p.append("sparsities is empty; give fractions in [0, 1], e.g. [0.1, 0.5, 0.9]")
            else:
                seen: set[float] = set()
                for s in sp:
                    if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(s):
                        p.append(f"sparsity {s!r} is not a number")
                        continue
                    if not 0 <= s <= 1:
                        p.append(f"sparsity {s!r} outside [0, 1] (a fraction of the scope, "
                                 f"not a percentage)")
                    key = round(float(s), _SPARSITY_DIGITS)
                    if key in seen:
                        p.append(f"duplicate sparsity {s!r} in sparsities")
                    seen.add(key)
        scopes = check_list("scopes", self.scopes, None, "scope")
        good_scopes = []
        for s in scopes:
            if not isinstance(s, str):
                p.append(f"scope {s!r} must be a string")
                continue
            try:
                _selection(s)
                good_scopes.append(s)
            except ValueError as e:
                p.append(str(e))
        # impossible combinations
        for s in nm_structures:
            for a in plain_allocs:
                if a not in STRUCTURED_ALLOCATIONS and a in plain_allocations:
                    p.append(f"structure {s!r} cannot use allocation {a!r}: N:M fixes the "
                             f"sparsity of every group of M weights (allowed with N:M: "
                             f"{', '.join(STRUCTURED_ALLOCATIONS)})")
        for m in method_list:
            for a in plain_allocs:
                why = UNSUPPORTED_COMBINATIONS.get((m, a))
                if why:
                    p.append(f"method {m!r} cannot use allocation {a!r}: {why}")
        if matched:
            if not unstructured:
                p.append("matched comparison needs structure 'unstructured' (an N:M pattern "
                         "cannot remove an arbitrary number of weights)")
            self._matched_pairs(good_scopes, p)
        tasks = check_list("tasks", self.tasks, None, "task")
        allowed_tasks = known_tasks()
        for t in tasks:
            if not isinstance(t, str) or not t.strip():
                p.append(f"task name {t!r} must be a non-empty string")
            elif allowed_tasks is not None and t != "default" and t not in allowed_tasks:
                p.append(f"unknown task {t!r}; allowed: default, {', '.join(allowed_tasks)}")
        if "default" in tasks and len(tasks) > 1:
            p.append("tasks: 'default' already means the whole default suite; "
                     "list either 'default' or task names")
        if self.task_size not in TASK_SIZES:
            p.append(f"unknown task_size {self.task_size!r}; allowed: {', '.join(TASK_SIZES)}")
        seeds = check_list("seeds", self.seeds, None, "seed")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                p.append(f"seed {s!r} must be a non-negative integer")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            p.append(f"batch_size {self.batch_size!r} must be a positive integer")
        c = self.calibration
        if isinstance(c.n_samples, bool) or not isinstance(c.n_samples, int) or c.n_samples < 1:
            p.append(f"calibration.n_samples {c.n_samples!r} must be a positive integer")
        if isinstance(c.seq_len, bool) or not isinstance(c.seq_len, int) or c.seq_len < 2:
            p.append(f"calibration.seq_len {c.seq_len!r} must be an integer >= 2")
        if not isinstance(c.source, str) or not c.source.strip():
            p.append("calibration.source must be a non-empty string ('default', a text "
                     "file, or a dataset name)")
        if not isinstance(self.out_dir, str) or not self.out_dir.strip():
            p.append("out_dir must be a non-empty path")
        for name, allowed in (("method_kwargs", methods), ("allocation_kwargs", allocations)):
            kw = getattr(self, name)
            if not isinstance(kw, dict):
                p.append(f"{name} must be a table of tables")
                continue
            for k, v in kw.items():
                if k not in allowed:
                    p.append(f"{name} for unknown name {k!r}; allowed: {', '.join(allowed)}")
                if not isinstance(v, dict):
                    p.append(f"{name}.{k} must be a table of keyword arguments")
        return p

    def validate(self) -> SweepConfig:
        """Raise :class:`ConfigError` listing every problem; return ``self`` when valid."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems)
        return self

    def _matched_pairs(self, scopes: Sequence[str], problems: list[str]
                       ) -> list[tuple[str, str]]:
        if self.matched_pairs:
            pairs = []
            for pair in self.matched_pairs:
                if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                    problems.append(f"matched pair {pair!r} must be [reference, target]")
                    continue
                ref, tgt = pair
                bad = [s for s in (ref, tgt) if s not in scopes]
                if bad:
                    problems.append(f"matched pair {list(pair)}: scope(s) {bad} not in scopes "
                                    f"{list(scopes)} (both curves are needed)")
                    continue
                if ref == tgt:
                    problems.append(f"matched pair {list(pair)} matches a scope to itself")
                    continue
                if not ((is_attention_scope(ref) and is_ffw_scope(tgt))
                        or (is_ffw_scope(ref) and is_attention_scope(tgt))):
                    problems.append(f"matched pair {list(pair)} must pair an attention-only "
                                    f"scope with an FFW-only scope")
                    continue
                pairs.append((ref, tgt))
            return pairs
        attn = [s for s in scopes if is_attention_scope(s)]
        ffw = [s for s in scopes if is_ffw_scope(s)]
        if not attn or not ffw:
            problems.append(
                "matched comparison needs an attention-only scope and an FFW-only scope in "
                f"scopes (e.g. 'attn' and 'mlp'); got {list(scopes)}"
                + ("" if attn else "; no attention-only scope")
                + ("" if ffw else "; no FFW-only scope")
                + " (or set matched = false)"
            )
            return []
        # Attention is the smaller scope in every supported family (<= 4 d^2 against ~8 d^2
        # per block), so FFW is pruned to match it.
        return [(attn[0], ffw[0])]

    # ---- expansion ------------------------------------------------------------------

    def matched_pairs_resolved(self) -> list[tuple[str, str]]:
        """The (reference, target) scope pairs of the matched comparison (empty if off)."""
        if not (self.matched or "matched" in self.allocations):
            return []
        problems: list[str] = []
        pairs = self._matched_pairs(self.scopes, problems)
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
        sparsities = [round(float(s), _SPARSITY_DIGITS) for s in self.sparsities]
        for model in self.models:
            for seed in self.seeds:
                out.append(Cell(model, DENSE, "unstructured", "uniform", "all", 0.0, seed))
            for seed in self.seeds:
                for method in self.methods:
                    mkw = _kw_tuple(self.method_kwargs.get(method, {}))
                    for structure in self.structures:
                        nm = parse_structure(structure)
                        levels = [nm[0] / nm[1]] if nm else sparsities
                        for alloc in allocs:
                            akw = _kw_tuple(self.allocation_kwargs.get(alloc, {}))
                            for scope in self.scopes:
                                for s in levels:
                                    out.append(Cell(model, method, structure, alloc, scope,
                                                    s, seed, None, mkw, akw))
                        if nm is None:
                            akw = _kw_tuple(self.allocation_kwargs.get("matched", {}))
                            for ref, tgt in pairs:
                                for s in sparsities:
                                    out.append(Cell(model, method, structure, "matched", tgt,
                                                    s, seed, ref, mkw, akw))
        for model in dict.fromkeys(self.dense_models):
            for seed in self.seeds:
                out.append(Cell(model, DENSE, "unstructured", "uniform", "all", 0.0, seed))
        ids = [c.cell_id for c in out]
        assert len(set(ids)) == len(ids), "cell ids collide"
        return out

    def select_tasks(self, suite: Mapping[str, Any]) -> dict[str, Any]:
        """The tasks of ``suite`` (name -> task set, e.g. ``lenskit.tasks.default_suite(
        model, self.task_size, seed)``) this config asks for: all of them for
        ``["default"]``, else those named, in the config's order. Raises
        :class:`ConfigError` listing every name the suite lacks (task names depend on the
        model's suite, so this check runs once the model is loaded, before any pruning)."""
        if self.tasks == ["default"]:
            return dict(suite)
        unknown = [t for t in self.tasks if t not in suite]
        if unknown:
            raise ConfigError([f"unknown task {t!r}; this model's suite has: "
                               f"{', '.join(suite)}" for t in unknown])
        return {t: suite[t] for t in self.tasks}

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


def default_config(**overrides: Any) -> SweepConfig:
    """The default study on the organism (the field defaults of :class:`SweepConfig`):
    Wanda and magnitude, sparsities 10%..90%, scopes all/attention/FFW, uniform
    unstructured pruning, the parameter-matched attention-vs-FFW comparison, seed 0, the
    small task suite, and the organism's narrower sibling ``organism-d64`` evaluated dense
    (dropped when ``models`` is overridden without ``dense_models``). Keyword arguments override fields (same rules as ``with_overrides``)."""
    cfg = _default_base(overrides)
    return cfg.with_overrides(overrides) if overrides else cfg


# The default study also evaluates the organism's narrower sibling dense, as the point of
# comparison for down-scaling by training a smaller model instead of pruning.
DEFAULT_DENSE_MODELS: tuple[str, ...] = ("organism-d64",)


def _default_base(overrides: Mapping[str, Any] | None) -> SweepConfig:
    """The default study's config before ``overrides``; the organism's sibling is only a
    reference point for the organism, so choosing other models drops it."""
    overrides = overrides or {}
    if "models" in overrides and "dense_models" not in overrides:
        return SweepConfig()
    return SweepConfig(dense_models=list(DEFAULT_DENSE_MODELS))


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> SweepConfig:
    """Read a sweep config from TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML),
    apply ``overrides`` on top, validate, and return it. ``path=None`` starts from
    :func:`default_config`. Raises :class:`ConfigError` listing every problem."""
    cfg = _default_base(overrides) if path is None else SweepConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError([f"config file {str(path)!r} does not exist"])
        suffix = path.suffix.lower()
        if suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            try:
                data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise ConfigError([f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                                   f"or write the config as TOML"]) from None
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as e:
                raise ConfigError([f"{path}: not valid YAML: {e}"]) from None
            if not isinstance(data, dict):
                raise ConfigError([f"{path}: the top level must be a mapping of settings"])
        else:
            raise ConfigError([f"config file {str(path)!r} must end in .toml, .yaml or .yml"])
        cfg = SweepConfig.from_dict(data)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    return cfg.validate()


# ---------------------------------------------------------------------------------------
# Conversion helpers
# ---------------------------------------------------------------------------------------

_FIELD_TYPES: dict[str, str] = {
    "name": "str", "models": "list[str]", "dense_models": "list[str]", "methods": "list[str]",
    "sparsities": "list[float]", "scopes": "list[scope]", "structures": "list[str]",
    "allocations": "list[str]", "matched": "bool", "matched_pairs": "pairs",
    "tasks": "list[str]", "task_size": "str", "seeds": "list[int]",
    "calibration": "calibration", "batch_size": "int", "out_dir": "str",
    "method_kwargs": "kwargs", "allocation_kwargs": "kwargs",
}
_CALIB_TYPES = {"n_samples": "int", "seq_len": "int", "source": "str", "sequential": "bool"}
assert set(_FIELD_TYPES) == {f.name for f in dataclasses.fields(SweepConfig)}
assert set(_CALIB_TYPES) == {f.name for f in dataclasses.fields(CalibrationConfig)}


def _flatten(d: Mapping[str, Any]) -> dict[str, Any]:
    """Parsed TOML/YAML -> override keys: ``calibration`` becomes ``calibration.KEY``
    entries, ``method_kwargs``/``allocation_kwargs`` become one ``method_kwargs.NAME``
    entry per table; every other key is kept as it is."""
    if not isinstance(d, Mapping):
        raise ConfigError([f"config must be a mapping of settings, got {type(d).__name__}"])
    out: dict[str, Any] = {}
    for key, v in d.items():
        if isinstance(v, Mapping) and key in ("calibration", "method_kwargs",
                                              "allocation_kwargs"):
            for k2, v2 in v.items():
                out[f"{key}.{k2}"] = v2
            if not v and key != "calibration":
                out[key] = {}
        else:
            out[key] = v
    return out


def _convert_calibration(key: str, raw: Any) -> Any:
    if key not in _CALIB_TYPES:
        raise ValueError(f"unknown calibration setting {key!r}; allowed: {sorted(_CALIB_TYPES)}")
    return _convert(key, _CALIB_TYPES[key], raw)


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(raw, str) and raw.strip().lower() in ("false", "no", "0", "off"):
        return False
    raise ValueError("expected true or false")


def _split(raw: str, scopes: bool) -> list[str]:
    text = raw.strip()
    if text.startswith("["):
        return json.loads(text)
    sep = ";" if scopes or ";" in text else ","
    return [t.strip() for t in text.split(sep) if t.strip()]


def _number(raw: Any, typ: type) -> Any:
    if isinstance(raw, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(raw, str):
        raw = raw.strip()
        value = float(raw) if typ is float else int(raw)
        return value
    if typ is int:
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {raw!r}")
        return raw
    if not isinstance(raw, (int, float)):
        raise ValueError(f"expected a number, got {raw!r}")
    return float(raw)


def _convert(name: str, kind: str, raw: Any) -> Any:
    if kind == "str":
        if not isinstance(raw, str):
            raise ValueError("expected a string")
        return raw
    if kind == "bool":
        return _parse_bool(raw)
    if kind == "int":
        return _number(raw, int)
    if kind == "pairs":
        if isinstance(raw, str):
            text = raw.strip()
            raw = (json.loads(text) if text.startswith("[")
                   else [p.split(":") for p in text.split(";") if p.strip()])
        if not isinstance(raw, (list, tuple)):
            raise ValueError("expected a list of [reference, target] scope pairs")
        return [list(p) if isinstance(p, (list, tuple)) else p for p in raw]
    if kind.startswith("list["):
        elem = kind[5:-1]
        if isinstance(raw, str):
            raw = _split(raw, scopes=elem == "scope")
        elif not isinstance(raw, (list, tuple)):
            raw = [raw]
        if elem == "float":
            return [_number(v, float) for v in raw]
        if elem == "int":
            return [_number(v, int) for v in raw]
        for v in raw:
            if not isinstance(v, str):
                raise ValueError(f"expected strings, got {v!r}")
        return [v.strip() for v in raw]
    raise AssertionError(kind)


def _scalar(raw: Any) -> Any:
    """A kwargs value typed on a command line: number, bool or string."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        return text


def _kw_tuple(kw: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), _freeze(v)) for k, v in kw.items()))


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    return v


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) as TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _to_toml(d: Mapping[str, Any]) -> str:
    lines = ["# lenskit sweep config (read with lenskit.study.load_config)"]
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for k, v in d.items():
        if v is None:
            continue
        if isinstance(v, Mapping):
            if k in ("method_kwargs", "allocation_kwargs"):
                tables.extend((f"{k}.{_toml_key(n)}", t) for n, t in v.items())
            else:
                tables.append((k, v))
            continue
        lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for name, table in tables:
        lines.append("")
        lines.append(f"[{name}]")
        for k, v in table.items():
            if v is not None:
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
