"""The tidy results schema: one row per measurement.

A *measurement* is one metric of one task on one model pruned one way (a *cell* of the
sweep grid). Every table a sweep writes, and every table the thresholds and figures read,
has the columns of :data:`RESULT_COLUMNS`; :func:`validate_results` checks a frame against
them and returns it with canonical dtypes and column order.

Conventions:

- The dense model is a row like any other, with ``method == "dense"``, ``scope == "all"``,
  ``structure == "unstructured"``, ``allocation == "uniform"`` and zero sparsity; its
  ``baseline`` is its own value and its ``relative_drop`` is 0.
- ``target_sparsity`` and ``achieved_sparsity`` are fractions of the *scope* (the sites
  pruned), not of the whole model; ``params_removed`` counts weights set to zero by the
  mask, so ``params_removed / model_params`` is the fraction of all block-linear weights.
- ``relative_drop`` is signed so that positive means worse than dense, whatever the
  metric's direction (see :func:`relative_drop`).
- ``chance`` is the task's guessing level on that metric, as the task carried it
  (:attr:`lenskit.tasks.TaskSet.chance`; ``1/K`` for K-class function learning, 0 for
  open-ended QA, NaN where undefined, e.g. perplexity, or in tables written before it was
  recorded): whether the dense model is above chance is decided from it and the CI.

Instance-level rows (one per task instance, used to bootstrap thresholds) have the columns
of :data:`INSTANCE_COLUMNS` and join the results on ``cell_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lenskit.errors import UsageError
from lenskit.names import ALLOCATIONS, CATEGORIES, KIND_CATEGORY, METHODS
from lenskit.names import TASK_KINDS as KINDS
from lenskit.pruning.structure import parse_structure
from lenskit.stats import weighted_mean

__all__ = [
    "ALLOCATIONS",
    "CATEGORIES",
    "CELL_KEYS",
    "DENSE",
    "EXP_METRICS",
    "INSTANCE_COLUMNS",
    "KINDS",
    "KIND_CATEGORY",
    "LOWER_IS_BETTER",
    "MEASUREMENT_KEYS",
    "METHODS",
    "PROVENANCE_COLUMNS",
    "RESULT_COLUMNS",
    "SchemaError",
    "aggregate",
    "attach_baselines",
    "empty_results",
    "higher_is_better",
    "instance_rows",
    "instances_from_eval",
    "known_allocations",
    "known_methods",
    "relative_drop",
    "validate_instances",
    "validate_results",
    "with_baselines",
]

#: The method name of the unpruned baseline rows.
DENSE = "dense"

#: Fallback names, used when ``lenskit.pruning`` does not (yet) export its own lists.

#: Column -> dtype. "str" columns hold non-missing strings; int columns hold no missing
#: values; float columns may hold NaN (e.g. no CI for a metric).
RESULT_COLUMNS: dict[str, str] = {
    "model": "str",
    "model_params": "int64",
    "method": "str",
    "structure": "str",
    "allocation": "str",
    "scope": "str",
    "target_sparsity": "float64",
    "achieved_sparsity": "float64",
    "params_removed": "int64",
    "remaining_params": "int64",
    "task": "str",
    "kind": "str",
    "category": "str",
    "metric": "str",
    "value": "float64",
    "n": "int64",
    "ci_low": "float64",
    "ci_high": "float64",
    "chance": "float64",
    "seed": "int64",
    "baseline": "float64",
    "relative_drop": "float64",
    "cell_id": "str",
}

#: Columns that identify a cell (one pruned model): rows of one cell share them.
CELL_KEYS: tuple[str, ...] = (
    "model", "method", "structure", "allocation", "scope", "target_sparsity", "seed",
)
#: Columns that identify one measurement; no two rows of a valid table share them.
MEASUREMENT_KEYS: tuple[str, ...] = (*CELL_KEYS, "task", "metric")

#: Optional columns after the schema's that record where a row came from (written by the
#: study runner): the calibration ("none" or source, mode, sizes and token fingerprint) and
#: the task suite.
PROVENANCE_COLUMNS: tuple[str, ...] = ("calibration", "tasks")

#: Instance-level rows: ``value`` is the instance's score (1/0 for exact match, the gold
#: log-probability, a window's mean NLL for perplexity...); ``weight`` its weight in the
#: aggregate (1 for per-question metrics, the token count of a perplexity window).
INSTANCE_COLUMNS: dict[str, str] = {
    "cell_id": "str",
    "task": "str",
    "metric": "str",
    "instance_id": "str",
    "value": "float64",
    "weight": "float64",
}

#: Metrics where smaller is better; every other metric is higher-is-better (accuracy,
#: exact match, log-probability, memorised_rate: for the last, "worse" means fewer
#: memorised answers, i.e. memory lost).
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"perplexity", "ppl", "nll", "nll_per_token", "loss", "rank", "gold_rank", "mean_rank"}
)

#: Metrics whose aggregate is the exp of the weighted mean of the instance values (the
#: instances are windows' mean NLLs, weighted by their token counts).
EXP_METRICS: frozenset[str] = frozenset({"perplexity", "ppl"})


def _is_structure(value: object) -> bool:
    try:
        parse_structure(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


class SchemaError(ValueError):
    """A table does not follow the tidy results schema."""


def known_methods() -> tuple[str, ...]:
    """Pruning method names (:data:`lenskit.names.METHODS`)."""
    return METHODS


def known_allocations() -> tuple[str, ...]:
    """Allocation names (:data:`lenskit.names.ALLOCATIONS`)."""
    return ALLOCATIONS


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better (False for perplexity, loss, rank...)."""
    return metric not in LOWER_IS_BETTER


def relative_drop(value, baseline, metric: str | Iterable[str]):
    """Signed relative change from dense; positive = worse than dense.

    Higher-is-better metrics: ``(baseline - value) / |baseline|``; lower-is-better metrics
    (perplexity...): ``(value - baseline) / |baseline|``. A zero baseline gives 0 when the
    value is also 0 and a signed infinity otherwise. Works on scalars and arrays; ``metric``
    may be one name or one per element.
    """
    value = np.asarray(value, dtype=float)
    baseline = np.asarray(baseline, dtype=float)
    if isinstance(metric, str):
        sign = 1.0 if higher_is_better(metric) else -1.0
    else:
        sign = np.where([higher_is_better(m) for m in metric], 1.0, -1.0)
    diff = sign * (baseline - value)
    denom = np.abs(baseline)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, diff / np.where(denom > 0, denom, 1.0),
                       np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    out = np.where(np.isnan(value) | np.isnan(baseline), np.nan, out)
    return out if out.ndim else float(out)


def aggregate(values: np.ndarray, weights: np.ndarray | None, metric: str) -> np.ndarray | float:
    """A task's aggregate of its instance values over the last axis (``[..., n]``): the
    weighted mean, exp'd for :data:`EXP_METRICS` (perplexity), as
    :func:`instances_from_eval` defines instance values and weights."""
    return weighted_mean(values, weights, exp=metric in EXP_METRICS)


def empty_results() -> pd.DataFrame:
    """A results frame with the schema's columns and dtypes and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in RESULT_COLUMNS.items()})


def _coerce(df: pd.DataFrame, columns: Mapping[str, str], what: str,
            optional: Mapping[str, float] | None = None) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    optional = dict(optional or {})
    missing = [c for c in columns if c not in df.columns and c not in optional]
    if missing:
        raise SchemaError(
            f"{what} is missing column(s) {missing}; required columns: {list(columns)}"
        )
    out = df.copy()
    for c, fill in optional.items():
        if c not in out.columns:
            out[c] = fill
    problems: list[str] = []
    for col, dtype in columns.items():
        s = out[col]
        if dtype == "str":
            bad = s.isna() | ~s.map(lambda v: isinstance(v, str))
            if bad.any():
                problems.append(f"{col!r} must hold strings; bad value {s[bad].iloc[0]!r} "
                                f"at row {s[bad].index[0]!r}")
                continue
            out[col] = s.astype("str")
        elif dtype == "int64":
            if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
                problems.append(f"{col!r} must hold integers, got dtype {s.dtype}")
                continue
            if s.isna().any():
                problems.append(f"{col!r} must hold integers, found missing values")
                continue
            as_int = s.astype("int64")
            if not (as_int == s).all():
                problems.append(f"{col!r} must hold integers, got {s[as_int != s].iloc[0]!r}")
                continue
            out[col] = as_int
        elif dtype == "Int64":  # integers with missing values allowed
            try:
                out[col] = pd.array(s, dtype="Int64")
            except (TypeError, ValueError):
                problems.append(f"{col!r} must hold integers or missing values, got "
                                f"dtype {s.dtype}")
        else:
            if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
                problems.append(f"{col!r} must hold numbers, got dtype {s.dtype}")
                continue
            out[col] = s.astype("float64")
    if problems:
        raise SchemaError(f"{what} has bad column(s): " + "; ".join(problems))
    extras = [c for c in out.columns if c not in columns]
    return out[[*columns, *extras]]


def validate_results(df: pd.DataFrame, *, extra_columns: Mapping[str, str] | None = None,
                     methods: Iterable[str] | None = None,
                     keys: Sequence[str] = MEASUREMENT_KEYS,
                     what: str = "results table") -> pd.DataFrame:
    """Check ``df`` against the results schema; return it with canonical dtypes and order.

    Raises :class:`SchemaError` (a ValueError) naming every missing column, every column
    whose values have the wrong type, and every value outside its allowed set (methods,
    allocations, structures, kinds, categories, sparsities in [0, 1], parameter counts that
    do not add up, duplicate measurements). Extra columns are kept, after the schema's.
    Tables that extend the schema (maps) name their own columns (``extra_columns``,
    column -> dtype, checked too), allowed ``methods`` (default: dense and the pruning
    methods) and the ``keys`` that identify a measurement.
    """
    # chance (recorded since tasks carry it) is NaN in tables written before
    out = _coerce(df, {**RESULT_COLUMNS, **dict(extra_columns or {})}, what,
                  optional={"chance": np.nan})
    problems: list[str] = []

    def bad_values(col: str, ok, allowed: str) -> None:
        bad = sorted(set(out.loc[~out[col].map(ok), col]))
        if bad:
            problems.append(f"{col} {bad[:5]} not allowed; allowed: {allowed}")

    methods = (DENSE, *known_methods()) if methods is None else tuple(methods)
    allocations = known_allocations()
    bad_values("method", lambda v: v in methods, str(methods))
    bad_values("allocation", lambda v: v in allocations, str(allocations))
    bad_values("structure", _is_structure,
               "'unstructured' or 'N:M' (e.g. '2:4')")
    bad_values("kind", lambda v: v in KINDS, str(KINDS))
    bad_values("category", lambda v: v in CATEGORIES, str(CATEGORIES))
    for col in ("target_sparsity", "achieved_sparsity"):
        bad = out[col].isna() | (out[col] < 0) | (out[col] > 1)
        if bad.any():
            problems.append(f"{col} must be in [0, 1], got {float(out.loc[bad, col].iloc[0])}")
    for col in ("model_params", "params_removed", "remaining_params", "n"):
        if (out[col] < 0).any():
            problems.append(f"{col} must be >= 0, got {int(out.loc[out[col] < 0, col].iloc[0])}")
    mismatch = out["remaining_params"] != out["model_params"] - out["params_removed"]
    if mismatch.any():
        r = out[mismatch].iloc[0]
        problems.append(
            f"remaining_params must equal model_params - params_removed; row of cell "
            f"{r.cell_id!r}: {r.remaining_params} != {r.model_params} - {r.params_removed}"
        )
    dense = out["method"] == DENSE
    if (out.loc[dense, "params_removed"] != 0).any():
        problems.append("dense rows must have params_removed == 0")
    # Rows of one grid point under two calibrations or task suites (a grown or merged
    # run) are different measurements: the provenance columns, when present, count too.
    keys = [*keys, *(c for c in PROVENANCE_COLUMNS if c in out.columns and c not in keys)]
    dup = out.duplicated(keys, keep=False)
    if dup.any():
        r = out[dup].iloc[0]
        problems.append(
            f"{int(dup.sum())} rows repeat a measurement (same {keys}), "
            f"e.g. cell {r.cell_id!r} task {r.task!r} metric {r.metric!r}"
        )
    if problems:
        raise SchemaError(f"{what} has bad values: " + "; ".join(problems))
    return out.reset_index(drop=True)


def validate_instances(df: pd.DataFrame) -> pd.DataFrame:
    """Check an instance-level table (:data:`INSTANCE_COLUMNS`); ``weight`` defaults to 1.

    Returns it with canonical dtypes; raises :class:`SchemaError` on missing or mistyped
    columns, negative weights and duplicated (cell_id, task, metric, instance_id).
    """
    df = df.copy()
    if "instance_id" in df.columns:
        # ids are often integers; store them as strings so every task's ids share a dtype
        df["instance_id"] = df["instance_id"].map(lambda v: v if isinstance(v, str) else str(v))
    out = _coerce(df, INSTANCE_COLUMNS, "instance table", optional={"weight": 1.0})
    if (out["weight"] < 0).any() or out["weight"].isna().any():
        raise SchemaError("instance table: weight must be >= 0 and not missing")
    dup = out.duplicated(["cell_id", "task", "metric", "instance_id"], keep=False)
    if dup.any():
        r = out[dup].iloc[0]
        raise SchemaError(
            f"instance table repeats instance {r.instance_id!r} of task {r.task!r} metric "
            f"{r.metric!r} in cell {r.cell_id!r}"
        )
    return out.reset_index(drop=True)


def instance_rows(frame: pd.DataFrame, cell_id: str, metrics: Mapping[str, str], *,
                  id_column: str = "instance_id", task_column: str = "task",
                  weight_column: str | None = None) -> pd.DataFrame:
    """Instance table from a wide per-instance frame (one row per instance).

    ``metrics`` maps a column of ``frame`` to the metric name it measures, e.g.
    ``{"correct": "em", "logprob": "logprob"}``; booleans become 1.0/0.0. Returns a frame
    with :data:`INSTANCE_COLUMNS`, validated.
    """
    missing = [c for c in (id_column, task_column, *metrics) if c not in frame.columns]
    if weight_column is not None and weight_column not in frame.columns:
        missing.append(weight_column)
    if missing:
        raise SchemaError(f"per-instance frame is missing column(s) {missing}; "
                          f"it has {list(frame.columns)}")
    parts = []
    for col, metric in metrics.items():
        parts.append(pd.DataFrame({
            "cell_id": cell_id,
            "task": frame[task_column].astype("str").to_numpy(),
            "metric": metric,
            "instance_id": frame[id_column].map(str).to_numpy(),
            "value": frame[col].astype("float64").to_numpy(),
            "weight": (frame[weight_column].astype("float64").to_numpy()
                       if weight_column else 1.0),
        }))
    return validate_instances(pd.concat(parts, ignore_index=True))


def attach_baselines(df: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fill ``baseline`` and ``relative_drop`` from the dense rows.

    The baseline of a row is the value of the dense row with the same model, seed, task and
    metric, taken from ``baselines`` (default: the dense rows of ``df`` itself). Raises a
    ValueError naming the first (model, seed, task, metric) that has no dense row.
    Returns a new frame; ``df`` is not modified.
    """
    keys = ["model", "seed", "task", "metric"]
    src = df if baselines is None else baselines
    missing = [c for c in [*keys, "method", "value"] if c not in src.columns]
    if missing:
        raise SchemaError(f"baselines frame is missing column(s) {missing}")
    dense = src.loc[src["method"] == DENSE, [*keys, "value"]]
    if dense.duplicated(keys).any():
        r = dense[dense.duplicated(keys)].iloc[0]
        raise SchemaError(f"two dense rows for model {r.model!r} seed {r.seed} task "
                          f"{r.task!r} metric {r.metric!r}")
    out = df.drop(columns=["baseline", "relative_drop"], errors="ignore")
    merged = out.merge(dense.rename(columns={"value": "baseline"}), on=keys, how="left",
                       indicator="_dense", validate="many_to_one")
    lost = merged["_dense"] == "left_only"
    if lost.any():
        r = merged[lost].iloc[0]
        raise UsageError(
            f"no dense baseline for model {r.model!r} seed {r.seed} task {r.task!r} "
            f"metric {r.metric!r} ({int(lost.sum())} rows lack one); evaluate the dense "
            f"model (method {DENSE!r}) first"
        )
    merged = merged.drop(columns="_dense")
    merged["relative_drop"] = relative_drop(
        merged["value"].to_numpy(), merged["baseline"].to_numpy(), merged["metric"].tolist()
    ) if len(merged) else np.zeros(0)
    cols = [c for c in RESULT_COLUMNS if c in merged.columns]
    return merged[[*cols, *[c for c in merged.columns if c not in cols]]]


def with_baselines(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every row's dense baseline: the one place readers (thresholds, figures,
    the report) get baselines. Rows written by a sweep carry theirs (the run directory's
    writer attaches them with :func:`attach_baselines` as it writes each cell) and come back unchanged; when
    any row lacks one and ``df`` holds dense rows, they are attached from those rows.
    Returns ``df`` itself or a new frame; ``df`` is not modified."""
    if "method" not in df.columns or not (df["method"] == DENSE).any():
        return df
    if "baseline" in df.columns and not df["baseline"].isna().any():
        return df
    return attach_baselines(df)


#: How the task suite's per-instance columns (``lenskit.tasks.ROW_COLUMNS``) become
#: instance values: metric -> (column, transform). Kept in step with
#: ``lenskit.tasks.EvalResult.summary``, whose aggregates are the (weighted) means of these.
_EVAL_METRICS: dict[str, tuple[str, str]] = {
    "em": ("correct", "identity"),
    "logprob": ("logprob", "identity"),
    "first_token_acc": ("first_token_correct", "identity"),
    "mrr": ("gold_rank", "reciprocal"),
    "memorised_rate": ("memorised", "identity"),
}


def instances_from_eval(rows: pd.DataFrame, cell_id: str,
                        metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """Instance table (:data:`INSTANCE_COLUMNS`) from the task suite's per-instance rows
    (``EvalResult.rows``: task, kind, instance_id, correct, logprob, scored_tokens, ...).

    QA and function tasks give em, logprob, first_token_acc, mrr (1 / gold rank) and, for
    overriding, memorised_rate, each with weight 1. Perplexity windows give perplexity and
    nll_per_token with value ``-logprob / scored_tokens`` (the window's NLL per token) and
    weight ``scored_tokens``, so that the token-weighted mean (exp'd for perplexity) is the
    task's aggregate. ``metrics`` keeps only those metric names. Instances whose value is
    missing (e.g. no gold rank) are dropped.
    """
    need = ["task", "kind", "instance_id", "logprob"]
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise SchemaError(f"evaluation rows lack column(s) {missing}; expected the task "
                          f"suite's EvalResult.rows")
    keep = None if metrics is None else set(metrics)
    parts = []
    ppl = rows[rows["kind"] == "perplexity"]
    if len(ppl):
        tokens = ppl["scored_tokens"].to_numpy(dtype=float, na_value=np.nan)
        nll = -ppl["logprob"].to_numpy(dtype=float, na_value=np.nan) / tokens
        for metric in ("perplexity", "nll_per_token"):
            if keep is None or metric in keep:
                parts.append(pd.DataFrame({"task": ppl["task"].to_numpy(), "metric": metric,
                                           "instance_id": ppl["instance_id"].to_numpy(),
                                           "value": nll, "weight": tokens}))
    qa = rows[rows["kind"] != "perplexity"]
    for metric, (col, how) in _EVAL_METRICS.items():
        if (keep is not None and metric not in keep) or col not in qa.columns or not len(qa):
            continue
        sub = qa[qa["kind"] == "overriding"] if metric == "memorised_rate" else qa
        if not len(sub):
            continue
        v = sub[col].to_numpy(dtype=float, na_value=np.nan)
        if how == "reciprocal":
            with np.errstate(divide="ignore"):
                v = 1.0 / v
        parts.append(pd.DataFrame({"task": sub["task"].to_numpy(), "metric": metric,
                                   "instance_id": sub["instance_id"].to_numpy(),
                                   "value": v, "weight": 1.0}))
    if not parts:
        return validate_instances(pd.DataFrame({c: pd.Series(dtype=d)
                                                for c, d in INSTANCE_COLUMNS.items()}))
    out = pd.concat(parts, ignore_index=True)
    out = out[np.isfinite(out["value"]) & np.isfinite(out["weight"])]
    return validate_instances(out.assign(cell_id=cell_id))
