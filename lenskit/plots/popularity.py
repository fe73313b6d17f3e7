"""Figures of fact recall by popularity: closed-book accuracy per popularity bucket (head,
torso, tail) against sparsity, and against how often each fact was seen in training.

Both need a zipf organism (its closed-book tasks are ``closed_book_head``,
``closed_book_torso``, ``closed_book_tail``; its ``world.json`` records each fact's
exposure); :func:`lenskit.plots.make_figures` and the run report draw them when the run has
such tasks, and skip them otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from lenskit.errors import UsageError
from lenskit.plots.charts import PCT_AXIS, SPARSITY_TITLE, chart_data, need_rows
from lenskit.results.schema import DENSE, validate_results

__all__ = ["BUCKET_TASKS", "fig_bucket_curves", "fig_recall_by_exposure"]

#: The closed-book tasks of a zipf organism, most popular first.
BUCKET_TASKS: tuple[str, ...] = ("closed_book_head", "closed_book_torso", "closed_book_tail")
_ICL_TASKS = ("open_book", "overriding")
# Fact recall in warm tones from dark (head) to light (tail), in-context tasks in blues
# (Okabe-Ito colours, as the other figures).
_TASK_COLORS = {"closed_book_head": "#D55E00", "closed_book_torso": "#E69F00",
                "closed_book_tail": "#CC79A7", "open_book": "#0072B2", "overriding": "#56B4E9"}


def fig_bucket_curves(results: pd.DataFrame, *, scope: str = "all",
                      structure: str = "unstructured", allocation: str = "uniform",
                      metric: str = "em") -> alt.FacetChart:
    """Exact match (%) against sparsity: one curve per popularity bucket's closed-book task
    and, for comparison, open-book and overriding QA (dashed), with confidence intervals;
    one panel per model (rows) and method (columns). Each curve starts at its dense value."""
    df = validate_results(results)
    tasks = [t for t in (*BUCKET_TASKS, *_ICL_TASKS) if t in set(df["task"])]
    if not any(t in BUCKET_TASKS for t in tasks):
        raise UsageError("no closed-book task per popularity bucket in the results (a zipf "
                         "organism's closed_book_head/_torso/_tail)")
    df = df[df["task"].isin(tasks) & (df["metric"] == metric)]
    pr = df[(df["method"] != DENSE) & (df["scope"] == scope) & (df["structure"] == structure)
            & (df["allocation"] == allocation)]
    need_rows(pr, f"scope {scope!r}, structure {structure!r}, allocation {allocation!r}",
          scope=df["scope"], structure=df["structure"], allocation=df["allocation"])
    dense = df[df["method"] == DENSE]
    starts = (pr[["model", "method", "task"]].drop_duplicates()
              .merge(dense[["model", "task", "value", "ci_low", "ci_high"]],
                     on=["model", "task"]).assign(target_sparsity=0.0))
    cols = ["model", "method", "task", "target_sparsity", "value", "ci_low", "ci_high"]
    seeds = pr.groupby(cols[:4], as_index=False)[["value", "ci_low", "ci_high"]].mean()
    data = pd.concat([starts[cols], seeds[cols]], ignore_index=True).sort_values(cols[:4])
    data["kind"] = ["fact recall" if t in BUCKET_TASKS else "in-context" for t in data["task"]]
    data = chart_data(data)
    x = alt.X("target_sparsity:Q", title=SPARSITY_TITLE, axis=PCT_AXIS,
              scale=alt.Scale(domain=[0, float(data["target_sparsity"].max())]))
    y = alt.Y("value:Q", title="exact match (%)", axis=PCT_AXIS, scale=alt.Scale(domain=[0, 1]))
    scale = alt.Scale(domain=tasks, range=[_TASK_COLORS[t] for t in tasks])
    color = alt.Color("task:N", title="task", sort=tasks, scale=scale)
    dash = alt.StrokeDash("kind:N", title=None, sort=["fact recall", "in-context"],
                          scale=alt.Scale(domain=["fact recall", "in-context"],
                                          range=[[1, 0], [4, 3]]))
    tooltip = ["task:N", alt.Tooltip("target_sparsity:Q", format=".0%", title="sparsity"),
               alt.Tooltip("value:Q", format=".1%", title="exact match"),
               alt.Tooltip("ci_low:Q", format=".1%", title="CI low"),
               alt.Tooltip("ci_high:Q", format=".1%", title="CI high")]
    base = alt.Chart()
    line = base.mark_line(strokeWidth=1.5).encode(x=x, y=y, color=color, strokeDash=dash,
                                                  detail="task:N")
    points = base.mark_point(filled=True, size=30).encode(x=x, y=y, color=color,
                                                          tooltip=tooltip)
    bars = base.mark_rule().encode(x=x, y=alt.Y("ci_low:Q", title="exact match (%)"),
                                   y2="ci_high:Q", color=color)
    return alt.layer(line, bars, points, data=data).facet(
        row=alt.Row("model:N", title=None), column=alt.Column("method:N", title=None),
    ).properties(title=alt.TitleParams("Fact recall by popularity under pruning",
                                       subtitle=f"{scope} · {structure} · {allocation}"))


def fig_recall_by_exposure(table: pd.DataFrame, *, scope: str = "all",
                           structure: str = "unstructured", allocation: str = "uniform",
                           models: Sequence[str] | None = None) -> alt.FacetChart:
    """Closed-book exact match (%) against the exposure of the facts (documents that stated
    them in training; the bin's median, log scale), one line per sparsity (the dense model
    at 0%), with Wilson intervals; one panel per model (rows) and method (columns).
    ``table`` is :func:`lenskit.analysis.exposure.recall_by_exposure`'s."""
    need = {"model", "method", "scope", "structure", "allocation", "target_sparsity",
            "exposure_median", "exposure_bin", "value", "ci_low", "ci_high", "n"}
    missing = sorted(need - set(table.columns))
    if missing:
        raise UsageError(f"the table lacks column(s) {missing}; build it with "
                         "lenskit.analysis.exposure.recall_by_exposure")
    t = table if models is None else table[table["model"].isin(list(models))]
    pr = t[(t["method"] != DENSE) & (t["scope"] == scope) & (t["structure"] == structure)
           & (t["allocation"] == allocation)]
    need_rows(pr, f"scope {scope!r}, structure {structure!r}, allocation {allocation!r}",
          scope=t["scope"], structure=t["structure"], allocation=t["allocation"])
    dense = t[t["method"] == DENSE]
    panels = pr[["model", "method"]].drop_duplicates()
    dense = panels.merge(dense.drop(columns=["method"]), on="model").assign(target_sparsity=0.0)
    data = pd.concat([dense, pr], ignore_index=True)
    # one line per (model, method, sparsity) over its bins; x at the bin's median exposure
    # (at least 1, for the log scale: a fact never stated sits at the left edge)
    data = data.groupby(["model", "method", "target_sparsity", "exposure_bin"],
                        as_index=False).agg(value=("value", "mean"), ci_low=("ci_low", "mean"),
                                            ci_high=("ci_high", "mean"), n=("n", "sum"),
                                            exposure=("exposure_median", "median"))
    data["exposure"] = data["exposure"].clip(lower=1)
    data["sparsity"] = [f"{s:.0%}" for s in data["target_sparsity"]]
    data = chart_data(data.sort_values(["model", "method", "target_sparsity", "exposure"]))
    order = list(dict.fromkeys(data.sort_values("target_sparsity")["sparsity"]))
    x = alt.X("exposure:Q", title="documents stating the fact in training (bin median, log)",
              scale=alt.Scale(type="log"), axis=alt.Axis(format="~s"))
    y = alt.Y("value:Q", title="closed-book exact match (%)", axis=PCT_AXIS,
              scale=alt.Scale(domain=[0, 1]))
    color = alt.Color("sparsity:N", title="sparsity", sort=order,
                      scale=alt.Scale(scheme="viridis", domain=order, reverse=True))
    tooltip = ["sparsity:N", "exposure_bin:N", alt.Tooltip("value:Q", format=".1%"),
               alt.Tooltip("ci_low:Q", format=".1%", title="CI low"),
               alt.Tooltip("ci_high:Q", format=".1%", title="CI high"), "n:Q"]
    base = alt.Chart()
    line = base.mark_line(strokeWidth=1.5).encode(x=x, y=y, color=color, detail="sparsity:N")
    points = base.mark_point(filled=True, size=30).encode(x=x, y=y, color=color,
                                                          tooltip=tooltip)
    bars = base.mark_rule().encode(x=x, y=alt.Y("ci_low:Q", title="closed-book exact match "
                                                "(%)"), y2="ci_high:Q", color=color)
    return alt.layer(line, bars, points, data=data).facet(
        row=alt.Row("model:N", title=None), column=alt.Column("method:N", title=None),
    ).properties(title=alt.TitleParams("Fact recall against exposure in training",
                                       subtitle=f"{scope} · {structure} · {allocation}"))
