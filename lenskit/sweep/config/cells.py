"""One point of a sweep's grid, :class:`Cell`: its id (what a run directory resumes by) and
its result rows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lenskit.errors import UsageError
from lenskit.results.schema import DENSE, RESULT_COLUMNS
from lenskit.sweep.config.grid import SPARSITY_DIGITS
from lenskit.sweep.config.models import model_label

__all__ = ["Cell", "kw_tuple"]


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a model pruned one way (or the dense model), then evaluated.

    ``sparsity`` is the target fraction of ``scope`` to prune, except for matched cells
    (``allocation == "matched"``): those prune ``scope`` so as to remove as many weights as
    pruning ``match_scope`` at ``sparsity`` removes (``round(sparsity * n(match_scope))``);
    :meth:`resolve_sparsity` turns that into a fraction of ``scope`` once the model's site
    counts are known. ``method_kwargs`` is a sorted tuple of (name, value) pairs so that the
    cell stays hashable; :attr:`kwargs` gives it back as a dict.

    ``calibration`` and ``tasks`` complete the cell's identity: everything that changes its
    result is in :attr:`cell_id`, so run directories can grow and merge by id.
    ``calibration`` is a sorted tuple of (key, value) pairs (``mode``, ``n_samples``,
    ``seq_len``, ``source`` = :func:`~lenskit.pruning.calibration_sources.source_fingerprint`)
    for cells whose method or allocation uses calibration data, and empty for the others
    (dense, magnitude, random), whose results do not depend on it. ``tasks`` is the task
    suite's key (``size`` and the task names).
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
    calibration: tuple[tuple[str, Any], ...] = ()
    tasks: tuple[tuple[str, Any], ...] = ()

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
        return Cell(self.model, DENSE, "unstructured", "uniform", "all", 0.0, self.seed,
                    tasks=self.tasks)

    @property
    def calibration_mode(self) -> str | None:
        """"sequential" or "dense" for cells that calibrate, else None."""
        return dict(self.calibration).get("mode")

    @property
    def calibration_label(self) -> str:
        """The calibration as recorded in result rows: "none" for cells that use none, else
        "source=...;mode=...;n_samples=...;seq_len=..." (the token fingerprint is appended by
        the runner, which knows the tokens)."""
        if not self.calibration:
            return "none"
        return ";".join(f"{k}={v}" for k, v in self.calibration)

    @property
    def tasks_label(self) -> str:
        """The task suite as recorded in result rows, e.g. "size=small;tasks=default"."""
        d = dict(self.tasks)
        names = d.get("tasks", ())
        return f"size={d.get('size', '')};tasks={','.join(names)}"

    @property
    def model_name(self) -> str:
        """The ``model`` value of this cell's result rows (see :func:`model_label`)."""
        return model_label(self.model)

    def canonical(self) -> dict[str, Any]:
        """A JSON-able dict that identifies the cell (what :attr:`cell_id` hashes)."""
        d = dataclasses.asdict(self)
        d["sparsity"] = round(float(self.sparsity), SPARSITY_DIGITS)
        d["method_kwargs"] = [list(kv) for kv in self.method_kwargs]
        d["allocation_kwargs"] = [list(kv) for kv in self.allocation_kwargs]
        d["calibration"] = [list(kv) for kv in self.calibration]
        d["tasks"] = [[k, list(v) if isinstance(v, tuple) else v] for k, v in self.tasks]
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
            raise UsageError(
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
                params_removed: int, calibration: str | None = None) -> pd.DataFrame:
        """Result rows (schema columns) for this cell from the task suite's aggregates.

        ``measurements`` needs columns task, kind, category, metric, value, n and may have
        ci_low, ci_high and chance (NaN when absent). ``scope_params`` maps "all", this cell's scope
        and (matched cells) its reference scope to their block-linear weight counts in the
        dense model (:meth:`SweepConfig.scopes_needed` lists them); ``params_removed`` is
        the number of weights the masks zeroed (``masks.n_pruned``; 0 for dense).
        Baselines and relative drops are NaN here: the run directory's writer fills them
        from the dense cell's rows (:meth:`lenskit.rundir.RunWriter.write_output`).
        Two columns after the schema's record provenance: ``calibration`` (``calibration``
        if given, e.g. with the tokens' fingerprint, else :attr:`calibration_label`) and
        ``tasks`` (:attr:`tasks_label`).
        """
        need = ["task", "kind", "category", "metric", "value", "n"]
        # Internal: the worker passes the suite's own aggregates and the masks' counts.
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
            "chance": m["chance"].astype("float64").to_numpy() if "chance" in m else nan,
            "seed": int(self.seed),
            "baseline": nan,
            "relative_drop": nan,
            "cell_id": self.cell_id,
        }, index=range(len(m)))
        rows = rows[list(RESULT_COLUMNS)]
        # Provenance beyond the schema's columns (validate_results keeps extra columns).
        rows["calibration"] = calibration or self.calibration_label
        rows["tasks"] = self.tasks_label
        return rows


def _scope_count(scope_params: Mapping[str, int], scope: str | None) -> int:
    if scope not in scope_params:
        raise ValueError(f"no weight count for scope {scope!r}; got {sorted(scope_params)}")
    n = int(scope_params[scope])
    if n <= 0:
        raise UsageError(f"scope {scope!r} selects no weights in this model")
    return n


def kw_tuple(kw: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments as the sorted, hashable tuple a :class:`Cell` holds."""
    return tuple(sorted((str(k), _freeze(v)) for k, v in kw.items()))


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    return v
