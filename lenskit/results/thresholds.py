"""Tolerance thresholds: how much sparsity a task survives.

**Definition.** For one curve (a model, method, structure, allocation, scope, task and
metric, measured at several tested sparsities, seeds averaged), the threshold at tolerance
``tol`` is, by default (``rule="first_crossing"``),

    the largest tested sparsity s such that the relative drop from dense at s AND at every
    lower tested sparsity is <= tol.

The dense model is the point (0, drop 0), so the threshold is 0 when the lowest tested
sparsity already drops by more than ``tol``. A drop exactly equal to ``tol`` is within it.
A NaN drop (no baseline) counts as beyond the tolerance. Noise that brings a curve back
under the tolerance after it has crossed does not raise the threshold; the alternative
``rule="largest_within"`` (the largest tested sparsity whose own drop is <= tol, whatever
happens below it) is available for comparison. When every tested sparsity is within the
tolerance the threshold is the highest one tested and ``censored`` is True: the model
survives at least that much. Only tested sparsities count: a threshold of 40% with tested
levels 30%, 40%, 60% means "fine at 40%, broken at 60%, 50% unknown".

The study's headline number is the threshold at a 5% relative drop (:data:`STUDY_TOLERANCE`).

**Confidence intervals.** Two ways, recorded in the ``ci_method`` column:

- ``"bootstrap"``: when per-instance rows are given (``instances``; schema
  :data:`~lenskit.results.schema.INSTANCE_COLUMNS`), the task's instances are resampled
  with replacement, the *same* resample for the dense model and every sparsity (the
  instances are the same questions, so the comparison is paired), independently per seed;
  each resample gives a whole curve and a threshold; the CI is the (alpha/2, 1-alpha/2)
  quantiles of those thresholds, taken as observed values (``inverted_cdf``), so both
  bounds are tested sparsities. The point estimate still comes from the aggregate rows.
- ``"ci_bounds"``: with aggregates only, the curve is re-evaluated with every value at its
  pessimistic CI bound (``ci_low`` for higher-is-better metrics) and at its optimistic
  bound, the dense baseline held at its point value. The two thresholds bracket the point
  threshold. This is a sensitivity bracket, wider than a bootstrap CI of the threshold
  (it moves every level to its bound at once), not a confidence interval in the strict
  sense.
- ``"none"``: neither instances nor CI bounds are available.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lenskit.errors import UsageError
from lenskit.results.schema import (
    DENSE,
    EXP_METRICS,
    higher_is_better,
    relative_drop,
    validate_instances,
    with_baselines,
)
from lenskit.stats import bootstrap_means, percentile_interval

__all__ = [
    "GROUP_KEYS",
    "PRIMARY_METRICS",
    "RULES",
    "STUDY_TOLERANCE",
    "THRESHOLD_COLUMNS",
    "TOLERANCES",
    "AtChance",
    "at_chance_by_model",
    "at_chance_rows",
    "chance_level",
    "compute_thresholds",
    "format_thresholds",
    "primary_metric",
    "primary_rows",
    "tasks_at_chance",
    "threshold_from_curve",
]

log = logging.getLogger(__name__)

TOLERANCES: tuple[float, ...] = (0.02, 0.05, 0.10)
STUDY_TOLERANCE = 0.05
RULES: tuple[str, ...] = ("first_crossing", "largest_within")
GROUP_KEYS: tuple[str, ...] = ("model", "method", "structure", "allocation", "scope", "task",
                               "metric")
#: The metric each task is judged by, in order of preference (exact match first).
PRIMARY_METRICS: tuple[str, ...] = ("em", "accuracy", "acc", "first_token_acc", "perplexity")
THRESHOLD_COLUMNS: tuple[str, ...] = (
    *GROUP_KEYS[:6], "kind", "category", "metric", "tolerance", "threshold", "ci_low",
    "ci_high", "ci_method", "censored", "n_sparsities", "max_sparsity", "n_seeds", "rule",
)
_EPS = 1e-9  # a drop equal to the tolerance, up to float error, is within it
_DIGITS = 6

def primary_metric(metrics: Iterable[str]) -> str | None:
    """The metric a task is judged by: the first of :data:`PRIMARY_METRICS` present, else
    the first metric given (None when there is none)."""
    metrics = list(dict.fromkeys(metrics))
    for m in PRIMARY_METRICS:
        if m in metrics:
            return m
    return metrics[0] if metrics else None


def chance_level(results: pd.DataFrame, task: str, metric: str | None = None
                 ) -> float | None:
    """The chance level recorded for ``task`` on ``metric`` (its primary metric by default)
    in ``results``' ``chance`` column: the accuracy a model reaches by guessing, which the
    task carried when it was evaluated (:attr:`lenskit.tasks.TaskSet.chance`: ``1/K`` for
    K-class function learning, 0 for open-ended QA). ``None`` when the rows record none
    (perplexity, log-probabilities, or rows written before chance was recorded). Nothing
    is read from the task's name."""
    rows = results[results["task"] == task]
    if metric is None:
        metric = primary_metric(rows["metric"])
    if "chance" not in results.columns or metric is None:
        return None
    values = rows.loc[rows["metric"] == metric, "chance"].dropna().unique()
    if len(values) > 1:
        raise UsageError(f"task {task!r} ({metric}) records several chance levels "
                         f"{sorted(values)}: two different tasks share a name")
    return float(values[0]) if len(values) else None


def at_chance_by_model(results: pd.DataFrame) -> dict[str, list[str]]:
    """For each model of ``results``, the tasks its dense model is not above chance on, on
    their primary metric: the 95% interval of the dense accuracy (a Wilson interval for
    exact match) includes the task's recorded chance level (:func:`chance_level`), or lies
    below it; with no interval, the point value is not above it. Relative drops of such a
    (model, task) measure noise, not an ability: figures and the study comparison leave
    that model's curve of the task out, and only that model's. Tasks without a recorded
    chance level are never flagged. Models with no task at chance are absent; tasks are
    sorted by name."""
    dense = results[results["method"] == DENSE]
    if "chance" not in dense.columns:
        return {}
    out: dict[str, list[str]] = {}
    for (model, task), g in dense.groupby(["model", "task"], sort=True):
        metric = primary_metric(g["metric"])
        for r in g[g["metric"] == metric].itertuples():
            if pd.isna(r.chance):
                continue
            low = r.ci_low if pd.notna(r.ci_low) else r.value
            if low <= float(r.chance) + 1e-9:
                out.setdefault(str(model), []).append(str(task))
                break
    return out


def tasks_at_chance(results: pd.DataFrame, model: str | None = None) -> list[str]:
    """The tasks (sorted) that ``model``'s dense model does not do above chance
    (:func:`at_chance_by_model`); with no ``model``, those at chance in at least one model
    of ``results`` (to name them; to leave curves out, use :func:`at_chance_by_model`, which
    keeps a sibling at chance from hiding a model that learned the task)."""
    by_model = at_chance_by_model(results)
    if model is not None:
        return by_model.get(model, [])
    return sorted({t for tasks in by_model.values() for t in tasks})


#: Tasks at chance: a mapping ``model -> tasks`` (:func:`at_chance_by_model`), or task names
#: that count for every model.
AtChance = Sequence[str] | Mapping[str, Sequence[str]]


def at_chance_rows(frame: pd.DataFrame, at_chance: AtChance) -> pd.Series:
    """A boolean mask of ``frame``'s rows (with ``model`` and ``task`` columns) whose model
    does its task at chance, by ``at_chance`` (a mapping per model, or task names for every
    model)."""
    if isinstance(at_chance, Mapping):
        pairs = [(str(m), str(t)) for m, tasks in at_chance.items() for t in tasks]
        keys = pd.MultiIndex.from_frame(frame[["model", "task"]].astype(str))
        return pd.Series(keys.isin(pairs), index=frame.index, dtype=bool)
    return frame["task"].isin(list(at_chance))


def threshold_from_curve(sparsities: Sequence[float], drops: Sequence[float], tolerance: float,
                         rule: str = "first_crossing") -> tuple[float, bool]:
    """The threshold of one curve: ``(threshold, censored)``.

    ``sparsities`` are the tested levels (any order, distinct), ``drops`` the relative
    drops there (positive = worse; NaN = beyond tolerance). See the module docstring for
    the rules. An empty curve gives ``(0.0, True)``: nothing tested beyond dense.
    """
    if rule not in RULES:
        raise UsageError(f"unknown rule {rule!r}; allowed: {', '.join(RULES)}")
    if len(sparsities) != len(drops):
        raise UsageError(f"{len(sparsities)} sparsities but {len(drops)} drops")
    if not tolerance >= 0:
        raise UsageError(f"tolerance must be >= 0, got {tolerance}")
    order = np.argsort(np.asarray(sparsities, dtype=float), kind="stable")
    sp = np.asarray(sparsities, dtype=float)[order]
    within = _within(np.asarray(drops, dtype=float)[order][None, :], tolerance)
    thr, censored = _thresholds(sp, within, rule)
    return float(thr[0]), bool(censored[0])


def _within(drops: np.ndarray, tol: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(drops, nan=np.inf) <= tol + _EPS


def _thresholds(sp: np.ndarray, within: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised rule over rows of ``within`` ([curves, levels], levels ascending)."""
    n = sp.shape[0]
    if n == 0:
        return np.zeros(within.shape[0]), np.ones(within.shape[0], dtype=bool)
    if rule == "first_crossing":
        k = np.cumprod(within, axis=1).sum(axis=1)  # leading levels within tolerance
        thr = np.where(k > 0, sp[np.maximum(k - 1, 0)], 0.0)
        return thr, k == n
    levels = np.where(within, sp[None, :], -np.inf).max(axis=1)
    return np.where(np.isfinite(levels), levels, 0.0), within[:, -1]


def _group_seed(seed: int, key: tuple) -> int:
    digest = hashlib.sha256(repr(key).encode()).hexdigest()
    return (seed + int(digest[:8], 16)) % (2**32)


def compute_thresholds(results: pd.DataFrame, instances: pd.DataFrame | None = None, *,
                       tolerances: Sequence[float] = TOLERANCES, rule: str = "first_crossing",
                       metrics: Sequence[str] | None = None, n_boot: int = 1000,
                       ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Thresholds of every curve in ``results`` (tidy results, schema columns).

    Returns one row per (model, method, structure, allocation, scope, task, metric,
    tolerance) with :data:`THRESHOLD_COLUMNS`: ``threshold`` (a tested sparsity, fraction
    of the scope), ``ci_low``/``ci_high`` and ``ci_method`` (see the module docstring),
    ``censored`` (every tested level was within tolerance), the number of tested levels
    and seeds. Baselines are recomputed from the dense rows when ``results`` has them,
    else taken from its ``baseline`` column. ``instances`` (per-instance rows of the same
    cells) switches the CI to a paired bootstrap of ``n_boot`` resamples, seeded by
    ``seed`` and each curve's key (so results do not depend on which curves are present).
    """
    if rule not in RULES:
        raise UsageError(f"unknown rule {rule!r}; allowed: {', '.join(RULES)}")
    tolerances = [float(t) for t in tolerances]
    if not tolerances or any(not (0 < t < 1) for t in tolerances):
        raise UsageError(f"tolerances must be fractions in (0, 1) (0.05 = a 5% drop), "
                         f"got {tolerances}")
    if not 0 < ci < 1:
        raise UsageError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 1:
        raise UsageError(f"n_boot must be >= 1, got {n_boot}")
    df = with_baselines(results)
    if metrics is not None:
        unknown = sorted(set(metrics) - set(df["metric"]))
        if unknown:
            raise UsageError(f"metric(s) {unknown} not in results; present: "
                             f"{sorted(set(df['metric']))}")
        df = df[df["metric"].isin(list(metrics))]
    pruned = df[df["method"] != DENSE].copy()
    pruned["_s"] = pruned["target_sparsity"].round(_DIGITS)

    inst_by = None
    if instances is not None and len(instances):
        inst = validate_instances(instances)
        inst_by = {k: g for k, g in inst.groupby(["cell_id", "task", "metric"], sort=False)}
        dense_cells = (df[df["method"] == DENSE]
                       .drop_duplicates(["model", "seed", "task", "metric"])
                       .set_index(["model", "seed", "task", "metric"])["cell_id"])

    out = []
    for key, g in pruned.groupby(list(GROUP_KEYS), sort=False):
        keyd = dict(zip(GROUP_KEYS, key, strict=True))
        metric = keyd["metric"]
        per = g.groupby("_s").agg(value=("value", "mean"), baseline=("baseline", "mean"),
                                  ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
                                  n_ci=("ci_low", "count"), n=("value", "size")).sort_index()
        sp = per.index.to_numpy(dtype=float)
        drops = relative_drop(per["value"].to_numpy(), per["baseline"].to_numpy(), metric)
        boot = None
        if inst_by is not None:
            boot = _bootstrap(g, keyd, inst_by, dense_cells, sp, n_boot,
                              _group_seed(seed, key))
        hib = higher_is_better(metric)
        has_ci = bool((per["n_ci"] == per["n"]).all())
        for tol in tolerances:
            thr, censored = _thresholds(sp, _within(np.atleast_1d(drops)[None, :], tol), rule)
            row = {**keyd, "kind": g["kind"].iloc[0], "category": g["category"].iloc[0],
                   "tolerance": tol, "threshold": float(thr[0]), "censored": bool(censored[0]),
                   "n_sparsities": len(sp), "max_sparsity": float(sp.max()),
                   "n_seeds": int(g["seed"].nunique()), "rule": rule}
            if boot is not None:
                bt, _ = _thresholds(sp, _within(boot, tol), rule)
                lo, hi = percentile_interval(bt, ci, method="inverted_cdf")
                row.update(ci_low=float(lo), ci_high=float(hi), ci_method="bootstrap")
            elif has_ci:
                pess = per["ci_low" if hib else "ci_high"].to_numpy()
                opt = per["ci_high" if hib else "ci_low"].to_numpy()
                base = per["baseline"].to_numpy()
                lo = _thresholds(sp, _within(relative_drop(pess, base, metric)[None, :], tol),
                                 rule)[0][0]
                hi = _thresholds(sp, _within(relative_drop(opt, base, metric)[None, :], tol),
                                 rule)[0][0]
                row.update(ci_low=float(lo), ci_high=float(hi), ci_method="ci_bounds")
            else:
                row.update(ci_low=np.nan, ci_high=np.nan, ci_method="none")
            out.append(row)
    table = pd.DataFrame(out, columns=list(THRESHOLD_COLUMNS))
    if not len(table):
        return table.astype({"threshold": float, "tolerance": float, "censored": bool})
    return table.reset_index(drop=True)


def _bootstrap(g: pd.DataFrame, keyd: dict, inst_by: dict, dense_cells: pd.Series,
               sp: np.ndarray, n_boot: int, rng_seed: int) -> np.ndarray | None:
    """Bootstrap drops [n_boot, levels] for one curve, or None (logged) when the instance
    rows do not cover the dense model and every level of every seed."""
    task, metric = keyd["task"], keyd["metric"]
    rng = np.random.default_rng(rng_seed)
    seeds = sorted(g["seed"].unique())
    per_seed_means, per_seed_dense = [], []
    for s in seeds:
        gs = g[g["seed"] == s]
        dense_id = dense_cells.get((keyd["model"], s, task, metric))
        ids = dict(zip(gs["_s"], gs["cell_id"], strict=True))
        if dense_id is None or set(ids) != set(sp):
            log.info("no bootstrap for %s: dense cell or levels missing for seed %s", keyd, s)
            return None
        frames = [inst_by.get((cid, task, metric)) for cid in [dense_id, *(ids[x] for x in sp)]]
        if any(f is None for f in frames):
            log.info("no bootstrap for %s: instance rows missing", keyd)
            return None
        common = set(frames[0]["instance_id"])
        for f in frames[1:]:
            common &= set(f["instance_id"])
        if not common:
            log.info("no bootstrap for %s: no instance shared by every level", keyd)
            return None
        order = sorted(common)
        mats = [f.set_index("instance_id").loc[order] for f in frames]
        vals = np.stack([m["value"].to_numpy(float) for m in mats])  # [1 + levels, n]
        w = mats[0]["weight"].to_numpy(float)
        # [B, 1 + levels]: every level resampled on the dense model's instances
        means = bootstrap_means(vals, w, n_boot, rng, exp=metric in EXP_METRICS)
        per_seed_dense.append(means[:, 0])
        per_seed_means.append(means[:, 1:])
    dense = np.mean(per_seed_dense, axis=0)
    levels = np.mean(per_seed_means, axis=0)
    return relative_drop(levels, dense[:, None] * np.ones_like(levels), metric)


# ---------------------------------------------------------------------------------------
# Reading thresholds: a terminal table, and the study's numbers beside them
# ---------------------------------------------------------------------------------------

_CATEGORY_LABELS = {"fact_recall": "fact recall", "icl": "in-context", "lm": "language modelling"}
_SCOPE_ORDER = ("all", "attn", "mlp")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def _cell_text(r: pd.Series) -> str:
    """One cell of :func:`format_thresholds`: the threshold with its CI, said in words where
    an interval would mislead (a censored threshold whose CI collapses onto it: no drop
    beyond the tolerance at any tested level, a lower bound; a threshold of 0: the lowest tested level
    already drops too much)."""
    has_ci = pd.notna(r["ci_low"]) and pd.notna(r["ci_high"])
    degenerate = has_ci and _pct(r["ci_low"]) == _pct(r["ci_high"])
    if r["censored"]:
        text = f"≥{_pct(r['threshold'])}% (all levels within {_pct(r['tolerance'])}%)"
    elif r["threshold"] == 0:
        text = "0% (fails at lowest level)"
    else:
        text = _pct(r["threshold"]) + "%"
    if has_ci and not (degenerate and (r["censored"] or r["threshold"] == 0)):
        text += f" [{_pct(r['ci_low'])}-{_pct(r['ci_high'])}]"
    return text


def primary_rows(thr: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    """The rows of ``thr`` on ``metric``, or on each task's :func:`primary_metric`."""
    if metric is not None:
        return thr[thr["metric"] == metric]
    keep = thr.groupby("task")["metric"].agg(lambda m: primary_metric(m))
    return thr[thr["metric"] == thr["task"].map(keep)]


def format_thresholds(thresholds: pd.DataFrame, *, tolerance: float = STUDY_TOLERANCE,
                      metric: str | None = None, at_chance: AtChance = ()) -> str:
    """A readable table of thresholds at one ``tolerance``: one block per model, method,
    structure and allocation; rows are tasks grouped by category; columns are scopes;
    cells read "40% [30-50]" (threshold [CI], in % of the scope), "≥90% (all levels within
    5%)" when every tested level was within the tolerance (the CI is shown only when it
    is not that same value), "0% (fails at lowest level)" when the lowest tested level
    already dropped beyond it, "-" when not measured. Each task shows its
    primary metric (:func:`primary_metric`) unless ``metric`` is given. Tasks named in
    ``at_chance`` (:func:`at_chance_by_model`: per model; or task names, for every model) are
    marked in that model's block: their thresholds measure noise."""
    if not len(thresholds):
        return "no thresholds (no pruned cells in the results)"
    thr = thresholds[np.isclose(thresholds["tolerance"], tolerance)]
    if not len(thr):
        raise UsageError(f"no thresholds at tolerance {tolerance}; present: "
                         f"{sorted(set(thresholds['tolerance']))}")
    thr = primary_rows(thr, metric)
    blocks = []
    block_keys = ["model", "method", "structure", "allocation"]
    for key, b in thr.groupby(block_keys, sort=False):
        scopes = [s for s in _SCOPE_ORDER if s in set(b["scope"])]
        scopes += [s for s in dict.fromkeys(b["scope"]) if s not in scopes]
        ci_methods = sorted(set(b["ci_method"]) - {"none"})
        title = (f"Largest sparsity with <= {tolerance:.0%} relative drop from dense: "
                 + " · ".join(str(k) for k in key))
        note = ("[CI: " + ", ".join(ci_methods) + "]") if ci_methods else "[no CI]"
        if key[3] == "matched":
            note += (" matched: each scope is pruned to remove as many weights as its "
                     "reference scope; % are fractions of the scope shown")
        rows: list[list[str]] = [["task (metric)", *scopes]]
        present = set(b["category"])
        cats = [c for c in _CATEGORY_LABELS if c in present] + sorted(present - set(
            _CATEGORY_LABELS))
        for cat in cats:
            rows.append([_CATEGORY_LABELS.get(cat, cat), *[""] * len(scopes)])
            sub = b[b["category"] == cat]
            for task, t in sub.groupby("task", sort=False):
                by_scope = {r["scope"]: _cell_text(r) for _, r in t.iterrows()}
                mark = " [dense at chance]" if bool(at_chance_rows(t, at_chance).any()) else ""
                rows.append([f"  {task} ({t['metric'].iloc[0]}){mark}",
                             *[by_scope.get(s, "-") for s in scopes]])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [title, note]
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                                   for j, (c, w) in enumerate(zip(r, widths, strict=True)))
                         .rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


