"""Figures of causal tracing (:mod:`lenskit.analysis.causal_tracing`) and of its agreement with
the pruning maps (:mod:`lenskit.analysis.trace_agreement`).

- :func:`fig_causal_trace`: per layer, the indirect effect of restoring each part (FFW,
  attention, residual stream) at each token position, with bootstrap intervals over prompts;
- :func:`fig_trace_vs_pruning`: the paper figure: per layer, the causal effect beside the
  pruning drop of the same layer's FFW and attention, one column per model, with the
  Spearman correlations and their intervals in the panel titles;
- :func:`fig_head_trace`: heatmap layer x head of the heads' causal effects.

Colours: FFW and attention keep their fixed colours (``COLORS["part"]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from lenskit.errors import UsageError
from lenskit.plots.charts import chart_data
from lenskit.plots.theme import color_scale

__all__ = ["fig_causal_trace", "fig_head_trace", "fig_trace_vs_pruning"]

_PART = {"mlp": "FFW", "attn": "attention", "resid": "residual stream"}
_POSITION = {"subject_first": "first subject token", "subject_last": "last subject token",
             "subject": "all subject tokens", "last": "last token", "all": "all tokens"}
_METRIC = {"p_restored": "p(answer) restored", "indirect_effect": "indirect effect",
           "normalised_effect": "indirect effect / total effect"}


def _part_color(present) -> alt.Color:
    return alt.Color("part:N", title="part", scale=color_scale("part", present))


def fig_causal_trace(rows: pd.DataFrame, *, metric: str = "indirect_effect",
                     task: str | None = None) -> alt.FacetChart:
    """Lines of ``metric`` against layer for each part, one panel per token position, with
    the rows' bootstrap intervals as error bars (rows of :func:`lenskit.analysis.trace_rows`;
    head rows are left out: see :func:`fig_head_trace`)."""
    need = {"analysis", "metric", "layer", "value", "ci_low", "ci_high", "family", "unit",
            "position", "task"}
    missing = sorted(need - set(rows.columns))
    if missing:
        raise UsageError(f"not a trace frame: missing column(s) {missing}")
    if metric not in _METRIC:
        raise UsageError(f"unknown metric {metric!r}; allowed: {tuple(_METRIC)}")
    sub = rows[(rows["analysis"] == "causal_trace") & (rows["metric"] == metric)
               & (rows["unit"] == "site")]
    if task is not None:
        sub = sub[sub["task"] == task]
    if sub.empty:
        raise UsageError(f"no site rows of metric {metric!r}" + (f" for task {task!r}"
                                                                  if task else ""))
    tasks = sorted(set(sub["task"]))
    if len(tasks) > 1:
        raise UsageError(f"the frame traces several tasks {tasks}; choose one with task=")
    sub = sub.assign(part=sub["family"].map(_PART),
                     where=sub["position"].map(lambda p: _POSITION.get(p, p)))
    data = chart_data(sub[["part", "where", "layer", "value", "ci_low", "ci_high", "scope", "n"]])
    order = [_POSITION[p] for p in _POSITION if _POSITION[p] in set(data["where"])]
    color = _part_color(data["part"])
    x = alt.X("layer:O", title="layer")
    y_title = _METRIC[metric]
    line = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=20, filled=True)).encode(
        x=x, y=alt.Y("value:Q", title=y_title), color=color,
        tooltip=["scope:N", "part:N", "layer:O", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f"),
                 "n:Q"])
    bars = alt.Chart().mark_errorbar(thickness=1).encode(
        x=x, y=alt.Y("ci_low:Q", title=y_title), y2="ci_high:Q", color=color)
    model = ", ".join(sorted(set(rows["model"].map(lambda m: str(m).split("/")[-1]))))
    return alt.layer(bars, line, data=data).facet(
        column=alt.Column("where:N", title="restored at", sort=order),
    ).properties(title=alt.TitleParams(
        f"Causal trace of {tasks[0]}: what restoring one layer's output brings back",
        subtitle=[f"{model}; {y_title}, mean over {int(sub['n'].max())} prompts with 95% "
                  "bootstrap intervals"]))


def fig_trace_vs_pruning(profiles: pd.DataFrame, agreement: pd.DataFrame | None = None
                         ) -> alt.FacetChart:
    """The causal effect and the pruning drop of each layer's FFW and attention, side by side.

    Args:
        profiles: rows of :func:`lenskit.analysis.trace_agreement.layer_profiles`: ``model``,
            ``measure`` (``"causal effect"`` / ``"pruning drop"``), ``family``, ``layer``,
            ``value``, ``ci_low``, ``ci_high``.
        agreement: optional rows with ``model``, ``family`` and ``rho``, ``ci_low``,
            ``ci_high`` (Spearman across layers): shown in each column's header.
    """
    need = {"model", "measure", "family", "layer", "value", "ci_low", "ci_high"}
    missing = sorted(need - set(profiles.columns))
    if missing:
        raise UsageError(f"not a layer-profile frame: missing column(s) {missing}")
    sub = profiles.assign(part=profiles["family"].map(_PART))
    if agreement is not None:
        labels = {}
        for m, g in agreement.groupby("model", sort=False):
            parts = [f"{_PART.get(r.family, r.family)} ρ={r.rho:+.2f} [{r.ci_low:+.2f}, "
                     f"{r.ci_high:+.2f}]" for r in g.itertuples()]
            labels[m] = f"{m}: " + "; ".join(parts)
        sub = sub.assign(model=sub["model"].map(lambda m: labels.get(m, m)))
    data = chart_data(sub[["model", "measure", "part", "layer", "value", "ci_low", "ci_high"]])
    color = _part_color(data["part"])
    x = alt.X("layer:Q", title="layer", axis=alt.Axis(format="d", tickMinStep=1))
    line = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=16, filled=True)).encode(
        x=x, y=alt.Y("value:Q", title=None), color=color,
        tooltip=["model:N", "measure:N", "part:N", "layer:Q",
                 alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("ci_low:Q", format=".3f"),
                 alt.Tooltip("ci_high:Q", format=".3f")])
    band = alt.Chart().mark_area(opacity=0.2).encode(
        x=x, y=alt.Y("ci_low:Q", title=None), y2="ci_high:Q", color=color)
    measures = list(dict.fromkeys(data["measure"]))
    return alt.layer(band, line, data=data).facet(
        column=alt.Column("model:N", title=None, header=alt.Header(labelLimit=600)),
        row=alt.Row("measure:N", title=None, sort=measures),
    ).resolve_scale(y="independent", x="independent").properties(title=alt.TitleParams(
        "Where causal tracing and pruning locate a fact, layer by layer",
        subtitle=["causal effect: p(answer) restored minus corrupted (noise on the subject); "
                  "pruning drop: loss of the answer's log-probability when the layer's part "
                  "alone is pruned; 95% bootstrap intervals over prompts; ρ: Spearman "
                  "across layers"]))


def fig_head_trace(rows: pd.DataFrame, *, metric: str = "indirect_effect",
                   tasks: Sequence[str] | None = None) -> alt.FacetChart:
    """Heatmap layer x head of the heads' ``metric`` (rows of
    :func:`lenskit.analysis.trace_rows` with ``unit == "head"``), one panel per task."""
    sub = rows[(rows["unit"] == "head") & (rows["metric"] == metric)]
    if tasks is not None:
        sub = sub[sub["task"].isin(list(tasks))]
    if sub.empty:
        raise UsageError(f"no head rows of metric {metric!r}")
    data = chart_data(sub.assign(head=sub["head"].astype("int64"))[
        ["task", "layer", "head", "value", "ci_low", "ci_high", "scope"]])
    top = float(max(abs(data["value"]).max(), 1e-9))
    return alt.Chart(data).mark_rect().encode(
        x=alt.X("head:O", title="head"), y=alt.Y("layer:O", title="layer", sort="descending"),
        color=alt.Color("value:Q", title=_METRIC[metric],
                        scale=alt.Scale(scheme="redblue", reverse=True, domain=[-top, top])),
        tooltip=["scope:N", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("ci_low:Q", format=".3f"), alt.Tooltip("ci_high:Q", format=".3f")],
    ).properties(width=26 * int(data["head"].nunique()),
                 height=26 * int(data["layer"].nunique())).facet(
        column=alt.Column("task:N", title=None),
    ).properties(title="Causal effect of restoring one attention head at the last token")
