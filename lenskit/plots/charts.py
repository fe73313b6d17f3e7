"""Chart helpers every figure module shares: the data an altair chart may embed, the
percent axis and titles, the colour of an ability, and tidy results prepared for plotting
(each task on its primary metric, accuracy relative to dense with its interval, means over
tasks with the interval of a mean of independent estimates; see :mod:`lenskit.plots.figures`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lenskit.errors import UsageError
from lenskit.plots.theme import CATEGORY_LABELS, color_scale
from lenskit.results.schema import relative_drop, validate_results, with_baselines
from lenskit.results.thresholds import at_chance_by_model, at_chance_rows, primary_metric
from lenskit.tasks.evaluate import bucket_pools

__all__ = [
    "MAX_ROWS",
    "PCT_AXIS",
    "REL_TITLE",
    "SPARSITY_TITLE",
    "ability_color",
    "chart_data",
    "mean_ci",
    "need_rows",
    "prepare_results",
]

# the figures' logger: what is left out of a figure is reported where the figures are made
log = logging.getLogger("lenskit.plots.figures")

#: altair refuses to embed more rows than this; every figure aggregates below it.
MAX_ROWS = 5000
_ROUND = 6  # plotted numbers are rounded so that specs do not depend on float noise
#: An axis of fractions shown as percentages.
PCT_AXIS = alt.Axis(format="%")
REL_TITLE = "accuracy relative to dense (%)"
SPARSITY_TITLE = "sparsity (% of the scope's weights pruned)"


def prepare_results(results: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    """Validated rows of the wanted categories, each task on its primary metric, with
    baselines, ``rel`` (accuracy relative to dense) with its interval ``rel_low`` /
    ``rel_high`` (NaN without CI bounds), and ``ability`` (display category)."""
    df = with_baselines(validate_results(results))
    df = df[df["category"].isin(list(categories))]
    # A task a dense model does at chance has no ability to lose: its "relative accuracy"
    # would sit at 100% and flatter its ability's mean. Per model: a narrow sibling at
    # chance must not hide a task the wide model learned.
    at_chance = at_chance_by_model(df)
    if at_chance:
        log.info("left out of the figures (dense model at chance): %s",
                 "; ".join(f"{m}: {', '.join(t)}" for m, t in at_chance.items()))
        df = df[~at_chance_rows(df, at_chance)]
    # A task pooled from popularity buckets (lenskit.tasks.pool_buckets) stands for them in
    # an ability's mean: the buckets hold the same instances, not independent estimates
    # (fig5 draws the buckets apart).
    pooled = {t for parts in bucket_pools(df["task"]).values() for t in parts}
    df = df[~df["task"].isin(pooled)]
    primary = df.groupby("task")["metric"].agg(lambda m: primary_metric(m))
    df = df[df["metric"] == df["task"].map(primary)].copy()
    df["rel"] = 1.0 - df["relative_drop"]
    if len(df):
        a = 1.0 - relative_drop(df["ci_low"], df["baseline"], list(df["metric"]))
        b = 1.0 - relative_drop(df["ci_high"], df["baseline"], list(df["metric"]))
        df["rel_low"], df["rel_high"] = np.fmin(a, b), np.fmax(a, b)
    else:
        df["rel_low"] = df["rel_high"] = pd.Series(dtype=float)
    df["ability"] = df["category"].map(lambda c: CATEGORY_LABELS.get(c, c))
    return df


def mean_ci(df: pd.DataFrame, keys: list[str], col: str, low: str, high: str,
             extra: dict | None = None) -> pd.DataFrame:
    """Mean of ``col`` per ``keys`` over tasks (seeds averaged first, bound by bound), with
    the interval of a mean of independent estimates (see the module docstring): columns
    ``col``, ``ci_low``, ``ci_high``, ``n_tasks``, ``tasks`` and those of ``extra``."""
    per_task = df.groupby([*keys, "task"], as_index=False, dropna=False).agg(
        v=(col, "mean"), lo=(low, "mean"), hi=(high, "mean"), **(extra or {}))
    per_task["dlo2"] = (per_task["v"] - per_task["lo"]) ** 2
    per_task["dhi2"] = (per_task["hi"] - per_task["v"]) ** 2
    agg = {"extra_" + k: (k, "mean") for k in (extra or {})}
    out = per_task.groupby(keys, as_index=False, dropna=False).agg(
        **{col: ("v", "mean"), "dlo2": ("dlo2", lambda s: s.sum(min_count=len(s))),
           "dhi2": ("dhi2", lambda s: s.sum(min_count=len(s))), "n_tasks": ("task", "size"),
           "tasks": ("task", lambda s: ", ".join(map(str, s)))}, **agg)
    out["ci_low"] = out[col] - np.sqrt(out["dlo2"]) / out["n_tasks"]
    out["ci_high"] = out[col] + np.sqrt(out["dhi2"]) / out["n_tasks"]
    out = out.drop(columns=["dlo2", "dhi2"])
    return out.rename(columns={"extra_" + k: k for k in (extra or {})})


def chart_data(df: pd.DataFrame,
               narrow: str = "filter the results (fewer models, methods or tasks)"
               ) -> pd.DataFrame:
    """``df`` ready to embed in a chart: a fresh index and floats rounded to 6 digits (so
    that specs do not depend on float noise). Raises ValueError, saying how to ``narrow``
    the input, when it has more than :data:`MAX_ROWS` rows."""
    if len(df) > MAX_ROWS:
        raise UsageError(f"{len(df)} rows to plot after aggregation (altair's limit is "
                         f"{MAX_ROWS}); {narrow}")
    out = df.reset_index(drop=True).copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(_ROUND)
    return out


def ability_color(present: Sequence[str], title: str = "ability") -> alt.Color:
    """The colour encoding of the ``ability`` column: each ability's fixed colour, in the
    colour table's order, for the abilities ``present``."""
    scale = color_scale("ability", present)
    return alt.Color("ability:N", title=title, sort=scale.domain, scale=scale)


def need_rows(df: pd.DataFrame, what: str, **present: Sequence) -> None:
    """Raise UsageError naming ``what`` (and what is present) when ``df`` has no rows."""
    if not len(df):
        have = "; ".join(f"{k}: {sorted(set(map(str, v)))}" for k, v in present.items())
        raise UsageError(f"no rows for {what}" + (f" (present: {have})" if have else ""))
