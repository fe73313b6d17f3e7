"""Figures of the maps (:mod:`lenskit.analysis.sensitivity`, :mod:`~lenskit.analysis.ablation`,
:mod:`~lenskit.analysis.allocation_fit`): where in the network pruning or ablation hurts fact
recall, and where it hurts in-context learning.

- :func:`fig_sensitivity_map`: heatmaps layer x component (or family) of the relative
  drop, fact recall beside in-context learning;
- :func:`fig_cumulative_map`: accuracy relative to dense as more layers are pruned, from
  the bottom up and from the top down;
- :func:`fig_head_ablation` / :func:`fig_neuron_ablation`: heatmaps layer x head and
  layer x neuron group;
- :func:`fig_allocation_fit`: the fitted relation between achieved per-family sparsity and
  the relative drop (partial-residual scatter, fitted line, bootstrap band).

Each task enters with its primary metric (exact match first) unless ``metric`` is given;
categories are averaged over their tasks (so a cell is "the mean relative drop of the
fact-recall tasks"). Colours: red is worse than dense, blue better, white unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from lenskit.plots.charts import PCT_AXIS, ability_color, chart_data
from lenskit.plots.theme import CATEGORY_COLORS, CATEGORY_LABELS
from lenskit.results.thresholds import primary_metric

__all__ = [
    "fig_allocation_fit",
    "fig_cumulative_map",
    "fig_head_ablation",
    "fig_neuron_ablation",
    "fig_sensitivity_map",
]

_COMPONENT_ORDER = ("q", "k", "v", "o", "in", "gate", "out", "attn", "mlp", "all")
_CELL = 26  # px per heatmap cell


def _select(df: pd.DataFrame, analysis: Sequence[str], metric: str | None,
            categories: Sequence[str]) -> pd.DataFrame:
    """Rows of the wanted analyses and categories, each task on one metric, with the
    display category ``ability``."""
    need = {"analysis", "task", "metric", "category", "layer", "relative_drop"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise ValueError(f"not a map frame: missing column(s) {missing}")
    sub = df[df["analysis"].isin(list(analysis)) & df["category"].isin(list(categories))]
    if sub.empty:
        raise ValueError(f"no rows of analysis {list(analysis)} and categories "
                         f"{list(categories)} (present: analysis "
                         f"{sorted(set(df['analysis']))}, categories "
                         f"{sorted(set(df['category']))})")
    if metric is None:
        primary = sub.groupby("task")["metric"].agg(lambda m: primary_metric(m))
        sub = sub[sub["metric"] == sub["task"].map(primary)]
    else:
        if metric not in set(sub["metric"]):
            raise ValueError(f"no rows for metric {metric!r}; have {sorted(set(sub['metric']))}")
        sub = sub[sub["metric"] == metric]
    sub = sub.copy()
    sub["ability"] = sub["category"].map(lambda c: CATEGORY_LABELS.get(c, c))
    return sub


def _ability_sort(present) -> list[str]:
    return [a for a in CATEGORY_COLORS if a in set(present)]


def _percent_label(v: float) -> str:
    text = f"{100 * v:.0f}"
    return "0" if text == "-0" else text


def _heatmap(sub: pd.DataFrame, x_field: str, x_title: str, x_sort: list, title: str,
             row_field: str | None, row_title: str | None) -> alt.FacetChart:
    keys = ["ability", "layer", x_field] + ([row_field] if row_field else [])
    agg = sub.groupby(keys, as_index=False, sort=False).agg(
        relative_drop=("relative_drop", "mean"), n_tasks=("task", "nunique"),
        params_removed=("params_removed", "mean"), scope=("scope", "first"))
    agg = agg.sort_values(keys).reset_index(drop=True)
    # cells show the drop in percent; "-0" would only be noise
    agg["label"] = agg["relative_drop"].map(_percent_label)
    # a symmetric colour domain: saturation means the same size of change either way
    top = max(float(agg["relative_drop"].abs().max()), 1e-9)
    agg["strong"] = agg["relative_drop"].abs() >= 0.5 * top
    data = chart_data(agg)
    layers = sorted(set(data["layer"]), reverse=True)  # layer 0 at the bottom
    x = alt.X(f"{x_field}:O", title=x_title, sort=x_sort, axis=alt.Axis(labelAngle=0))
    y = alt.Y("layer:O", title="layer", sort=layers)
    tooltip = ["scope:N", "layer:O", alt.Tooltip(f"{x_field}:N", title=x_title),
               alt.Tooltip("relative_drop:Q", format=".1%", title="relative drop"),
               alt.Tooltip("n_tasks:Q", title="tasks"),
               alt.Tooltip("params_removed:Q", format=",.0f", title="weights removed")]
    rect = alt.Chart().mark_rect().encode(
        x=x, y=y, tooltip=tooltip,
        color=alt.Color("relative_drop:Q", title="relative drop",
                        scale=alt.Scale(scheme="redblue", reverse=True,
                                        domain=[-round(top, 6), round(top, 6)]),
                        legend=alt.Legend(format=".0%")))
    text = alt.Chart().mark_text(fontSize=8).encode(
        x=x, y=y, text="label:N",
        color=alt.condition(alt.datum.strong, alt.value("white"), alt.value("#222222")))
    n_x, n_y = len(x_sort), len(layers)
    facet = {"column": alt.Column("ability:N", title=None,
                                  sort=_ability_sort(data["ability"]))}
    if row_field:
        facet["row"] = alt.Row(f"{row_field}:N", title=row_title)
    return alt.layer(rect, text, data=data).properties(
        width=_CELL * n_x, height=_CELL * n_y).facet(**facet).properties(title=title)


def _levels_field(sub: pd.DataFrame) -> pd.DataFrame:
    return sub.assign(level=sub["target_sparsity"].map(lambda s: f"{s:.0%}"))


def fig_sensitivity_map(df: pd.DataFrame, *, metric: str | None = None,
                        categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """Heatmaps of a :func:`~lenskit.analysis.sensitivity_map`: layer (bottom: 0) x
    component (or family / whole layer), cells coloured and labelled by the mean relative
    drop (in %) of the category's tasks; one panel per ability, one row per sparsity."""
    sub = _select(df, ("sensitivity",), metric, categories)
    if (sub["component"] != "all").any():
        x_field, x_title = "component", "component"
    elif (sub["family"] != "all").any():
        x_field, x_title = "family", "family"
    else:
        x_field, x_title = "family", "layer pruned whole"
    present = set(sub[x_field])
    x_sort = [c for c in _COMPONENT_ORDER if c in present]
    sub = _levels_field(sub)
    multi = sub["level"].nunique() > 1
    method = ", ".join(sorted(set(sub["method"])))
    level_text = "" if multi else f" at {sub['level'].iloc[0]} sparsity"
    title = (f"Relative drop when one group is pruned alone ({method}{level_text}); "
             "cells: drop in %, red: worse than dense")
    return _heatmap(sub, x_field, x_title, x_sort, title, "level" if multi else None,
                    "sparsity")


def fig_head_ablation(df: pd.DataFrame, *, metric: str | None = None,
                      categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """Heatmaps of a :func:`~lenskit.analysis.head_ablation_map`: layer x head, mean
    relative drop per ability; one row per ablation mode when the frame holds several."""
    sub = _select(df, ("head_ablation",), metric, categories)
    sub = sub.assign(head=sub["head"].astype("int64"))
    x_sort = sorted(set(sub["head"]))
    modes = sorted(set(sub["method"]))
    multi = len(modes) > 1
    title = (f"Relative drop when one attention head is ablated "
             f"({' / '.join(modes)} ablation at the o projection's input)")
    return _heatmap(sub.rename(columns={"method": "mode"}), "head", "head", x_sort, title,
                    "mode" if multi else None, "ablation")


def fig_neuron_ablation(df: pd.DataFrame, *, metric: str | None = None,
                        categories: Sequence[str] = ("fact_recall", "icl")
                        ) -> alt.FacetChart:
    """Heatmaps of a :func:`~lenskit.analysis.neuron_ablation_map`: layer x neuron group
    (chunks in index order, or norm fractions in increasing size)."""
    sub = _select(df, ("neuron_ablation",), metric, categories)
    chunks = sub["unit_label"].str.extract(r"^chunk (\d+)/(\d+)$")
    if chunks[0].notna().all():
        sub = sub.assign(neurons=chunks[0].astype(int).astype(str))
        x_sort = [str(k) for k in sorted(set(chunks[0].astype(int)))]
        x_title = f"neuron chunk (of {'/'.join(sorted(set(chunks[1])))}, in index order)"
    else:
        kinds = sorted(set(sub["unit_label"].str.split(" ").str[0]))
        sub = sub.assign(neurons=sub["target_sparsity"].map(lambda f: f"{f:.0%}"))
        x_sort = [f"{f:.0%}" for f in sorted(set(sub["target_sparsity"]))]
        x_title = f"{' / '.join(kinds)} neurons ablated"
    modes = sorted(set(sub["method"]))
    multi = len(modes) > 1
    title = (f"Relative drop when a group of FFW neurons is ablated "
             f"({' / '.join(modes)} ablation at the out projection's input)")
    return _heatmap(sub.rename(columns={"method": "mode"}), "neurons", x_title, x_sort,
                    title, "mode" if multi else None, "ablation")


def fig_cumulative_map(df: pd.DataFrame, *, metric: str | None = None,
                       categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """Accuracy relative to dense (mean of each ability's tasks) against the number of
    layers pruned, from the bottom (layers ``0..k``, solid) and from the top (``k..L-1``,
    dashed); one panel per family x sparsity. Every curve starts at the dense model."""
    sub = _select(df, ("cumulative",), metric, categories)
    sub = _levels_field(sub).assign(
        n_layers=lambda d: d["last_layer"] - d["first_layer"] + 1,
        direction=lambda d: d["direction"].map(
            {"bottom_up": "bottom-up (0..k)", "top_down": "top-down (k..L-1)"}),
        rel=lambda d: 1.0 - d["relative_drop"])
    keys = ["family", "level", "direction", "ability"]
    agg = sub.groupby([*keys, "n_layers"], as_index=False).agg(
        rel=("rel", "mean"), scope=("scope", "first"), n_tasks=("task", "nunique"))
    start = agg[keys].drop_duplicates().assign(n_layers=0, rel=1.0, scope="dense", n_tasks=0)
    data = chart_data(pd.concat([start, agg], ignore_index=True).sort_values([*keys, "n_layers"]))
    dash_domain = ["bottom-up (0..k)", "top-down (k..L-1)"]
    line = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=26, filled=True)).encode(
        x=alt.X("n_layers:Q", title="layers pruned",
                axis=alt.Axis(values=list(range(int(data["n_layers"].max()) + 1)),
                              format="d")),
        y=alt.Y("rel:Q", title="accuracy relative to dense", axis=PCT_AXIS),
        color=ability_color(data["ability"]),
        strokeDash=alt.StrokeDash("direction:N", title="direction", sort=dash_domain,
                                  scale=alt.Scale(domain=dash_domain,
                                                  range=[[1, 0], [5, 3]])),
        detail="ability:N",
        tooltip=["scope:N", "direction:N", "ability:N", "n_layers:Q",
                 alt.Tooltip("rel:Q", format=".1%", title="relative"),
                 alt.Tooltip("n_tasks:Q", title="tasks")])
    method = ", ".join(sorted(set(sub["method"])))
    return alt.layer(line, data=data).facet(
        column=alt.Column("family:N", title="pruned family"),
        row=alt.Row("level:N", title="sparsity"),
    ).properties(title=f"Pruning growing blocks of layers ({method}): which end holds what")


def fig_allocation_fit(fit, *, features: Sequence[str] | None = None) -> alt.FacetChart:
    """The fitted relation of a :class:`~lenskit.analysis.SparsityFit`, one panel per
    feature: observations as partial residuals (the response with the other features'
    effects removed), the fitted line with the others at their mean, and the bootstrap
    band; colour: the fit's groups (abilities when grouped by category)."""
    feats = list(features) if features is not None else list(fit.features)
    unknown = [f for f in feats if f not in fit.features]
    if unknown or not feats:
        raise ValueError(f"unknown feature(s) {unknown or feats}; the fit has {fit.features}")
    points = pd.concat([fit.partial_residuals(f)[["group", "feature", "cluster", "task", "x",
                                                  "partial"]] for f in feats],
                       ignore_index=True).rename(columns={"partial": "y"})
    lines = pd.concat([fit.partial(f) for f in feats], ignore_index=True).rename(
        columns={"fit": "y"})
    labelled = all(g in CATEGORY_LABELS for g in fit.groups)
    name = (lambda g: CATEGORY_LABELS[g]) if labelled else str
    frame = pd.concat([points.assign(series="observation"), lines.assign(series="fit")],
                      ignore_index=True)
    frame["ability"] = frame["group"].map(name)
    frame["feature"] = frame["feature"].str.replace("s_", "", n=1)
    data = chart_data(frame)
    color = (ability_color(data["ability"], title="tasks") if labelled
             else alt.Color("ability:N", title="group"))
    x = alt.X("x:Q", title="achieved sparsity of the part", axis=PCT_AXIS)
    y_title = f"{fit.response.replace('_', ' ')} (partial)"
    y = alt.Y("y:Q", title=y_title, axis=PCT_AXIS)
    base = alt.Chart()
    band = base.transform_filter(alt.datum.series == "fit").mark_area(opacity=0.18).encode(
        x=x, y=alt.Y("low:Q", title=y_title), y2="high:Q", color=color)
    line = base.transform_filter(alt.datum.series == "fit").mark_line().encode(
        x=x, y=y, color=color)
    dots = base.transform_filter(alt.datum.series == "observation").mark_point(
        size=22, opacity=0.7).encode(
        x=x, y=y, color=color,
        tooltip=["cluster:N", "task:N", alt.Tooltip("x:Q", format=".1%"),
                 alt.Tooltip("y:Q", format=".2%", title=y_title)])
    terms = fit.coefficients[fit.coefficients["term"].isin(feats)]
    slopes = "; ".join(f"{CATEGORY_LABELS.get(r.group, r.group)} {r.term[2:]}: {r.coef:+.2f}"
                       for r in terms.itertuples())
    title = alt.TitleParams(
        f"Relative drop vs achieved sparsity (OLS, {fit.ci:.0%} bootstrap band)",
        subtitle=[f"slopes: {slopes}"])
    return alt.layer(band, line, dots, data=data).facet(
        column=alt.Column("feature:N", title=None, sort=[f.replace("s_", "", 1)
                                                         for f in feats]),
    ).properties(title=title)
