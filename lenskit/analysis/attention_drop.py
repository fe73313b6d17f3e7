"""Which heads' attention drift predicts which accuracy drop.

Across pruning configurations (sparsities x scopes x methods), each head's drift (e.g. its
Jensen-Shannon divergence to the dense pattern, from :func:`attention_drift`) is set against
each ability's relative accuracy drop (fact recall, in-context learning): per head and
ability, a rank (Spearman) or linear (Pearson) correlation over the configurations, with a
bootstrap percentile interval from resampling configurations (:mod:`lenskit.stats`).

    drift = attention_drift(model, suite, results)               # label -> PruneResult
    drops = accuracy_drops(dense_eval, {label: eval_result})     # or a sweep's results
    table = drift_vs_drop(drift, drops)                          # sorted by correlation

Reading: with few configurations the intervals are wide, and drift and drop both grow with
sparsity, so every head correlates with every drop to some degree; the informative part is
the *difference* between abilities (a head whose drift tracks the ICL drop but not the
fact-recall drop), and the configurations should vary the scope, not only the sparsity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from lenskit.analysis.attention import DRIFT_COLUMNS
from lenskit.errors import UsageError
from lenskit.results.schema import DENSE, relative_drop, with_baselines
from lenskit.results.thresholds import primary_metric
from lenskit.stats import percentile_interval
from lenskit.tasks import EvalResult

__all__ = [
    "CORRELATIONS",
    "CORRELATION_COLUMNS",
    "accuracy_drops",
    "correlate",
    "drift_drop_table",
    "drift_vs_drop",
]

CORRELATIONS = ("spearman", "pearson")
CORRELATION_COLUMNS: tuple[str, ...] = (
    "category", "layer", "head", "metric", "queries", "method", "r", "ci_low", "ci_high",
    "n_configs", "mean_drift", "mean_drop",
)
_CONFIG_KEYS = ("method", "structure", "allocation", "scope", "sparsity")
# Elements of one bootstrap chunk (resamples x configs x heads).
_CHUNK_ELEMENTS = 1 << 22


def accuracy_drops(dense, pruned: Mapping[str, object], metric: str | None = None
                   ) -> pd.DataFrame:
    """Relative accuracy drops of pruned evaluations against the dense one.

    Args:
        dense: the dense model's :class:`~lenskit.tasks.EvalResult`.
        pruned: configuration label (as in :func:`attention_drift`) -> EvalResult.
        metric: the metric per task; default each task's primary metric (exact match for
            QA and function tasks, perplexity for perplexity; see
            :func:`lenskit.results.thresholds.primary_metric`).

    Returns:
        Columns ``config, task, kind, category, metric, value, baseline, relative_drop``
        (positive = worse than dense, :func:`lenskit.results.relative_drop`).
    """
    if not isinstance(dense, EvalResult):
        raise UsageError(f"dense must be an EvalResult, got {type(dense).__name__}")
    if not isinstance(pruned, Mapping) or not pruned:
        raise UsageError("pruned must be a non-empty dict label -> EvalResult")
    base = dense.summary(n_bootstrap=0)
    out = []
    for label, res in pruned.items():
        if not isinstance(res, EvalResult):
            raise UsageError(f"pruned[{label!r}] must be an EvalResult, got "
                             f"{type(res).__name__}")
        s = res.summary(n_bootstrap=0)
        for task, rows in s.groupby("task", sort=False):
            m = metric or primary_metric(rows["metric"])
            if m not in set(rows["metric"]):
                raise UsageError(f"task {task!r} has no metric {m!r}; it has "
                                 f"{sorted(set(rows['metric']))}")
            b = base[(base["task"] == task) & (base["metric"] == m)]
            if b.empty:
                raise UsageError(f"task {task!r} of {label!r} is not in the dense result")
            v = float(rows.loc[rows["metric"] == m, "value"].iloc[0])
            bv = float(b["value"].iloc[0])
            out.append({"config": label, "task": task, "kind": rows["kind"].iloc[0],
                        "category": rows["category"].iloc[0], "metric": m, "value": v,
                        "baseline": bv, "relative_drop": float(relative_drop(v, bv, m))})
    return pd.DataFrame(out, columns=["config", "task", "kind", "category", "metric", "value",
                                      "baseline", "relative_drop"])


def _category_drops(results: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Mean relative drop per configuration and category, and the join keys."""
    if not isinstance(results, pd.DataFrame):
        raise UsageError(f"results must be a DataFrame, got {type(results).__name__}")
    need = {"task", "category", "metric"}
    missing = sorted(need - set(results.columns))
    if missing:
        raise UsageError(f"results lacks column(s) {missing}; pass accuracy_drops(...) or a "
                         "sweep's results table")
    df = results.copy()
    if "relative_drop" not in df.columns or df["relative_drop"].isna().all():
        if "method" in df.columns and (df["method"] == DENSE).any():
            df = with_baselines(df)
        if "relative_drop" not in df.columns or df["relative_drop"].isna().all():
            raise UsageError("results has no relative_drop and no dense rows to compute it")
    if "model" in df.columns and df["model"].nunique() > 1:
        raise UsageError(f"results hold several models {sorted(df['model'].unique())}; "
                         "filter to the model the drift was measured on")
    if "method" in df.columns:
        df = df[df["method"] != DENSE]
    primary = df.groupby("task")["metric"].agg(lambda m: primary_metric(m))
    df = df[df["metric"] == df["task"].map(primary)]
    if "config" in df.columns:
        keys = ["config"]
    else:
        df = df.rename(columns={"target_sparsity": "sparsity"})
        keys = [k for k in _CONFIG_KEYS if k in df.columns]
        if not keys:
            raise UsageError("results need a 'config' column or the configuration columns "
                             f"{list(_CONFIG_KEYS)} to match the drift's configurations")
    if "sparsity" in keys:
        df["sparsity"] = df["sparsity"].astype(float).round(6)
    # Seeds (and tasks) of one configuration and category are averaged.
    drops = df.groupby([*keys, "category"], as_index=False, dropna=False)["relative_drop"] \
        .mean().rename(columns={"relative_drop": "drop"})
    return drops, keys


def drift_drop_table(
    drift: pd.DataFrame,
    results: pd.DataFrame,
    *,
    metric: str = "js",
    queries: str = "all",
    categories: Sequence[str] = ("icl", "fact_recall"),
    match_category: bool = True,
) -> pd.DataFrame:
    """Per configuration, category and head: the head's drift and the category's drop.

    Args:
        drift: :func:`attention_drift`'s frame.
        results: :func:`accuracy_drops`' frame (joined on ``config``) or a sweep's results
            table (joined on method, structure, allocation, scope and sparsity; dense rows
            and other metrics than each task's primary one are ignored; seeds averaged).
        metric, queries: which drift (e.g. ``"js"``/``"all"``, ``"span_mass"``/``"answer"``,
            ``"induction"``/``"repeat"``).
        categories: the abilities to relate (task categories of ``results``).
        match_category: measure a category's drift on that category's prompts (the ICL
            drop against the drift on ICL prompts) when the drift has them; otherwise, and
            for metrics measured on other inputs (``induction`` on repeated tokens), the
            mean drift over all tasks.

    Returns:
        Columns: the join keys, ``category``, ``layer``, ``head``, ``drift``, ``drop``
        (mean relative drop of the category's tasks; positive = worse), and what describes
        each configuration (``config``, ``method``, ``structure``, ``allocation``, ``scope``,
        ``sparsity``, ``achieved_sparsity``, from the drift).
    """
    if not isinstance(drift, pd.DataFrame):
        raise UsageError(f"drift must be a DataFrame, got {type(drift).__name__}")
    missing = [c for c in DRIFT_COLUMNS if c not in drift.columns]
    if missing:
        raise UsageError(f"drift lacks column(s) {missing}; pass attention_drift's frame")
    if isinstance(categories, str) or not categories:
        raise UsageError(f"categories must be a non-empty list, got {categories!r}")
    sel = drift[(drift["metric"] == metric) & (drift["queries"] == queries)]
    if sel.empty:
        have = sorted(set(zip(drift["metric"], drift["queries"], strict=True)))
        raise UsageError(f"no drift rows for metric {metric!r} at queries {queries!r}; the "
                         f"drift has {have}")
    drops, keys = _category_drops(results)
    have_cats = sorted(set(drops["category"]))
    for c in categories:
        if c not in have_cats:
            raise UsageError(f"category {c!r} is not in the results; they have {have_cats}")
    sel = sel.copy()
    if "sparsity" in keys:
        sel["sparsity"] = sel["sparsity"].astype(float).round(6)
    # One row per configuration label (two labels may share a sweep cell); what describes
    # a configuration (method, scope, sparsities) rides along.
    group = ["config", *[k for k in keys if k != "config"]]
    desc_cols = [c for c in (*_CONFIG_KEYS, "achieved_sparsity") if c not in group]
    desc = sel.groupby("config", as_index=False, sort=False)[desc_cols].first()
    parts = []
    for cat in categories:
        rows = sel
        if match_category and (sel["category"] == cat).any():
            rows = sel[sel["category"] == cat]
        per = rows.groupby([*group, "layer", "head"], as_index=False, dropna=False)["drift"] \
            .mean()
        d = drops[drops["category"] == cat].drop(columns="category")
        joined = per.merge(d, on=keys, how="inner").merge(desc, on="config", how="left")
        joined.insert(len(group), "category", cat)
        parts.append(joined)
    out = pd.concat(parts, ignore_index=True)
    if out.empty:
        raise UsageError(f"no configuration of the drift matches the results on {keys}: drift "
                         f"has {sorted(map(str, sel[keys].drop_duplicates().values.tolist()))[:5]},"
                         f" results have "
                         f"{sorted(map(str, drops[keys].drop_duplicates().values.tolist()))[:5]}")
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along axis -2 of ``x`` ``[..., C, P]`` with ``y`` ``[..., C, 1]``; NaN
    where either is constant."""
    xc = x - x.mean(-2, keepdims=True)
    yc = y - y.mean(-2, keepdims=True)
    num = (xc * yc).sum(-2)
    den = np.sqrt((xc * xc).sum(-2) * (yc * yc).sum(-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    return np.where(den > 1e-12 * np.maximum(1.0, np.abs(num)), np.clip(r, -1.0, 1.0), np.nan)


def _residual(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``v`` minus its least-squares line on ``z`` along axis -2 (``z`` ``[..., C, 1]``);
    ``v`` centred when ``z`` is constant."""
    zc = z - z.mean(-2, keepdims=True)
    vc = v - v.mean(-2, keepdims=True)
    var = (zc * zc).sum(-2, keepdims=True)
    beta = np.where(var > 0, (vc * zc).sum(-2, keepdims=True) / np.where(var > 0, var, 1), 0)
    return vc - beta * zc


def correlate(x: np.ndarray, y: np.ndarray, method: str = "spearman", *,
              control: np.ndarray | None = None, n_bootstrap: int = 1000, ci: float = 0.95,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlation of each column of ``x`` ``[C, P]`` with ``y`` ``[C]`` over the ``C``
    rows, with a bootstrap percentile interval (rows resampled with replacement; resamples
    where a column or ``y`` is constant are skipped). Returns ``(r, low, high)``, each
    ``[P]``.

    With ``control`` ``[C]`` (e.g. each configuration's sparsity), the partial correlation:
    ``x`` and ``y`` (their ranks, for Spearman, and the control's ranks) are replaced by
    their residuals from a least-squares line on the control before correlating, so that
    what both owe to the control alone does not count.
    """
    if method not in CORRELATIONS:
        raise UsageError(f"unknown correlation {method!r}; allowed: {CORRELATIONS}")
    if not 0 < ci < 1:
        raise UsageError(f"ci must be in (0, 1), got {ci}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
            or n_bootstrap < 0:
        raise UsageError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise UsageError(f"x must be [C, P] and y [C]; got {x.shape} and {y.shape}")
    if x.shape[0] < 3:
        raise UsageError(f"a correlation needs at least 3 configurations, got {x.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UsageError("drift and drop must be finite (a configuration lacks a value?)")
    z = None
    if control is not None:
        z = np.asarray(control, dtype=np.float64)
        if z.shape != y.shape or not np.isfinite(z).all():
            raise UsageError(f"control must be [C] = {y.shape} finite values, got {z.shape}")

    def stat(xb: np.ndarray, yb: np.ndarray, zb: np.ndarray | None) -> np.ndarray:
        if method == "spearman":
            xb, yb = rankdata(xb, axis=-2), rankdata(yb, axis=-2)
            zb = None if zb is None else rankdata(zb, axis=-2)
        if zb is not None:
            xb, yb = _residual(xb, zb), _residual(yb, zb)
        return _pearson(xb, yb)

    r = stat(x, y[:, None], None if z is None else z[:, None])
    low = np.full(x.shape[1], np.nan)
    high = np.full(x.shape[1], np.nan)
    if n_bootstrap:
        c, p = x.shape
        rng = np.random.default_rng(seed)
        chunk = max(1, _CHUNK_ELEMENTS // (c * p))
        samples = []
        done = 0
        while done < n_bootstrap:
            b = min(chunk, n_bootstrap - done)
            idx = rng.integers(0, c, size=(b, c))
            samples.append(stat(x[idx], y[idx][..., None],
                                None if z is None else z[idx][..., None]))
            done += b
        boot = np.concatenate(samples)  # [n_bootstrap, P]
        ok = np.isfinite(boot).any(0)
        if ok.any():
            low[ok], high[ok] = percentile_interval(boot[:, ok], ci)
    return r, low, high


def drift_vs_drop(
    drift: pd.DataFrame,
    results: pd.DataFrame,
    *,
    metric: str = "js",
    queries: str = "all",
    method: str = "spearman",
    categories: Sequence[str] = ("icl", "fact_recall"),
    match_category: bool = True,
    control: str | None = None,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Per head and ability: how well the head's drift predicts the ability's drop.

    Arguments as in :func:`drift_drop_table` and :func:`correlate`; ``control``: a
    configuration column (``"achieved_sparsity"``, ``"sparsity"``) to partial out, since
    drift and drop both grow with sparsity (see the module docstring). Every head is
    correlated over the same configurations (those present in both frames; at least 3).

    Returns:
        Columns :data:`CORRELATION_COLUMNS`: ``category``, ``layer``, ``head``, ``metric``,
        ``queries``, ``method``, ``r`` (NaN where drift or drop does not vary), ``ci_low``,
        ``ci_high``, ``n_configs``, ``mean_drift``, ``mean_drop``; sorted by category (in
        the order given), then ``r`` descending (the heads whose drift best predicts the
        drop first).
    """
    table = drift_drop_table(drift, results, metric=metric, queries=queries,
                             categories=categories, match_category=match_category)
    if control is not None and (control not in table.columns
                                or not pd.api.types.is_numeric_dtype(table[control])):
        raise UsageError(f"control must be a numeric configuration column such as "
                         f"'achieved_sparsity' or 'sparsity', got {control!r}")
    out = []
    for i, cat in enumerate(categories):
        t = table[table["category"] == cat]
        wide = t.pivot_table(index="config", columns=["layer", "head"], values="drift",
                             aggfunc="mean")
        # Every head over the same configurations: those where all heads have a drift.
        wide = wide.dropna(axis=1, how="all").dropna(axis=0, how="any")
        drop = t.groupby("config")["drop"].first().reindex(wide.index)
        z = (None if control is None else
             t.groupby("config")[control].first().reindex(wide.index).to_numpy(float))
        r, lo, hi = correlate(wide.to_numpy(), drop.to_numpy(), method, control=z,
                              n_bootstrap=n_bootstrap, ci=ci, seed=seed + i)
        heads = wide.columns
        frame = pd.DataFrame({
            "category": cat,
            "layer": [int(h[0]) for h in heads], "head": [int(h[1]) for h in heads],
            "metric": metric, "queries": queries,
            "method": method if control is None else f"{method} | {control}",
            "r": r, "ci_low": lo, "ci_high": hi, "n_configs": len(wide),
            "mean_drift": wide.mean(axis=0).to_numpy(), "mean_drop": float(drop.mean()),
        })
        out.append(frame.sort_values(["r", "layer", "head"], ascending=[False, True, True],
                                     na_position="last", kind="stable"))
    return pd.concat(out, ignore_index=True)[list(CORRELATION_COLUMNS)]
