"""The study's figures, from tidy results (:mod:`lenskit.results.schema`) to altair charts.

Every function takes a results frame, aggregates it (means over tasks and seeds; charts
never embed raw instance rows) and returns an altair chart; :func:`make_figures` builds
every figure a run's data supports, saves each as SVG, PNG and PDF and writes the captions
(what each figure shows, how to read it, alt text) into ``README.md`` beside them.

"Accuracy relative to dense" is ``1 - relative_drop``: 100% is the dense model, and the
dashed line at ``1 - tolerance`` is the threshold criterion of
:mod:`lenskit.results.thresholds`, so a curve crosses it exactly where its threshold is.
Each task is plotted with its primary metric (exact match first; see
:func:`lenskit.results.thresholds.primary_metric`).

**Uncertainty.** Every measured point carries an error bar from the rows' ``ci_low`` /
``ci_high`` (per-task confidence intervals of the metric; relative values divide them by
the dense baseline, held at its point value). A mean over tasks gets the interval of a mean
of independent estimates: its half-widths are ``sqrt(sum(h_i^2)) / k`` over the k tasks'
half-widths (each side separately); seeds are averaged bound by bound first. Points are
drawn at tested sparsities only; thin lines join neighbouring tested levels.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from lenskit.analysis.exposure import recall_by_exposure, results_exposure
from lenskit.errors import UsageError
from lenskit.plots.captions import write_captions
from lenskit.plots.charts import (
    MAX_ROWS,
    PCT_AXIS,
    REL_TITLE,
    SPARSITY_TITLE,
    ability_color,
    chart_data,
    mean_ci,
    need_rows,
    prepare_results,
)
from lenskit.plots.popularity import fig_bucket_curves, fig_recall_by_exposure
from lenskit.plots.theme import COLORS, color_scale, save_chart
from lenskit.results.comparison import compare_to_study
from lenskit.results.schema import DENSE, validate_results, with_baselines
from lenskit.results.thresholds import (
    STUDY_TOLERANCE,
    at_chance_by_model,
    compute_thresholds,
)
from lenskit.sweep.config import is_attention_scope, is_ffw_scope

__all__ = [
    "MAX_ROWS",
    "fig_attention_vs_ffw",
    "fig_dense_scaling",
    "fig_sparsity_curves",
    "fig_study_comparison",
    "make_figures",
]

log = logging.getLogger(__name__)

# "~s" alone lets vega share one SI prefix across ticks, which prints 0 as "0k"
_COUNT_AXIS = alt.Axis(labelExpr="datum.value == 0 ? '0' : format(datum.value, '~s')")
_POINT = {"size": 42, "filled": True, "opacity": 1}


# ---------------------------------------------------------------------------------------
# Data preparation
# ---------------------------------------------------------------------------------------

def _abilities(data: pd.DataFrame) -> list[str]:
    return [a for a in COLORS["ability"] if a in set(data["ability"])]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")


def _measured(x: alt.X, y: alt.Y, color: alt.Color, tooltip: list, *, detail: str,
              y_title: str = REL_TITLE, y_low: str = "ci_low", y_high: str = "ci_high",
              dash: alt.StrokeDash | None = None) -> list[alt.Chart]:
    """The marks of a measured curve: thin lines joining tested levels, an error bar
    (``y_low`` to ``y_high``) and a filled point at each tested level."""
    enc = {"x": x, "color": color, "detail": detail}
    line_enc = {**enc, "y": y, **({"strokeDash": dash} if dash is not None else {})}
    line = alt.Chart().mark_line(strokeWidth=1.2, opacity=0.8).encode(**line_enc)
    bars = alt.Chart().mark_rule(strokeWidth=1.5).encode(
        **enc, y=alt.Y(f"{y_low}:Q", title=y_title), y2=f"{y_high}:Q")
    points = alt.Chart().mark_point(**_POINT).encode(**enc, y=y, tooltip=tooltip)
    return [line, bars, points]


def _tolerance_rule(tolerance: float) -> alt.Chart:
    return alt.Chart().mark_rule(strokeDash=[4, 3]).encode(
        y=alt.YDatum(1 - tolerance, title=REL_TITLE))


def _ci_tooltip(field: str, fmt: str, title: str) -> list[alt.Tooltip]:
    return [alt.Tooltip(f"{field}:Q", format=fmt, title=title),
            alt.Tooltip("ci_low:Q", format=fmt, title="CI low"),
            alt.Tooltip("ci_high:Q", format=fmt, title="CI high")]


# ---------------------------------------------------------------------------------------
# (a) relative accuracy vs sparsity: fact recall against in-context learning
# ---------------------------------------------------------------------------------------

def fig_sparsity_curves(results: pd.DataFrame, *, scope: str = "all",
                        structure: str = "unstructured", allocation: str = "uniform",
                        tolerance: float = STUDY_TOLERANCE,
                        categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """The study's first figure: accuracy relative to dense (%) against sparsity (% of the
    scope pruned), one curve per ability (the mean of its tasks, with its confidence
    interval as error bars), faceted by model (rows) and method (columns). Only
    ``scope``/``structure``/``allocation`` cells are drawn; each curve starts at the dense
    model (sparsity 0, 100%). Per-task values are in the data (``series == "task"``) for
    tooltips and the run report, not drawn."""
    df = prepare_results(results, categories)
    pr = df[(df["method"] != DENSE) & (df["scope"] == scope) & (df["structure"] == structure)
            & (df["allocation"] == allocation)]
    need_rows(pr, f"scope {scope!r}, structure {structure!r}, allocation {allocation!r}",
          scope=df["scope"], structure=df["structure"], allocation=df["allocation"])
    keys = ["model", "method", "ability"]
    per_task = mean_ci(pr, [*keys, "task", "target_sparsity"], "rel", "rel_low", "rel_high")
    means = mean_ci(pr, [*keys, "target_sparsity"], "rel", "rel_low", "rel_high")
    dense = means[keys].drop_duplicates().assign(target_sparsity=0.0, rel=1.0, ci_low=1.0,
                                                 ci_high=1.0, n_tasks=0, tasks="dense")
    means = pd.concat([dense, means], ignore_index=True).sort_values([*keys, "target_sparsity"])
    cols = [*keys, "task", "series", "target_sparsity", "rel", "ci_low", "ci_high",
            "n_tasks", "tasks"]
    data = chart_data(pd.concat([means.assign(series="mean", task="mean"),
                            per_task.assign(series="task")], ignore_index=True)[cols])
    x = alt.X("target_sparsity:Q", title=SPARSITY_TITLE, axis=PCT_AXIS,
              scale=alt.Scale(domain=[0, float(data["target_sparsity"].max())]))
    y = alt.Y("rel:Q", title=REL_TITLE, axis=PCT_AXIS)
    tooltip = ["ability:N", alt.Tooltip("target_sparsity:Q", format=".0%", title="sparsity"),
               *_ci_tooltip("rel", ".1%", "relative accuracy"), "n_tasks:Q", "tasks:N"]
    marks = [m.transform_filter(alt.datum.series == "mean") for m in
             _measured(x, y, ability_color(data["ability"]), tooltip, detail="ability:N")]
    return alt.layer(_tolerance_rule(tolerance), *marks, data=data).facet(
        row=alt.Row("model:N", title=None), column=alt.Column("method:N", title=None),
    ).properties(title=alt.TitleParams("Accuracy vs sparsity",
                                       subtitle=f"{scope} · {structure} · {allocation}"))


# ---------------------------------------------------------------------------------------
# (b) attention-only vs FFW-only: by matched sparsity and by matched parameters removed
# ---------------------------------------------------------------------------------------

def _part(scope: str) -> str | None:
    try:
        if is_attention_scope(scope):
            return "attention"
        if is_ffw_scope(scope):
            return "FFW"
    except ValueError:
        return None
    return None


def fig_attention_vs_ffw(results: pd.DataFrame, *, model: str | None = None,
                         method: str | None = None, structure: str = "unstructured",
                         tolerance: float = STUDY_TOLERANCE,
                         categories: Sequence[str] = ("fact_recall", "icl")) -> alt.VConcatChart:
    """Attention-only against FFW-only pruning, for one model and method.

    Top row: accuracy relative to dense against the sparsity *of the pruned part* (equal
    fractions: FFW holds about twice the weights, so it loses more). Bottom row: against
    the number of weights removed, where the parameter-matched cells (allocation
    "matched", dashed, drawn only when present) remove from FFW exactly what
    attention-only pruning removes. Columns: abilities (mean over their tasks and seeds,
    with error bars). ``model``/``method`` may be omitted when the results hold only one.
    """
    df = prepare_results(results, categories)
    df = df[(df["method"] != DENSE) & (df["structure"] == structure)
            & df["allocation"].isin(["uniform", "matched"])]
    parts = {s: _part(s) for s in df["scope"].unique()}
    df = df.assign(part=df["scope"].map(parts)).dropna(subset=["part"])
    for name, value in (("model", model), ("method", method)):
        if value is not None:
            df = df[df[name] == value]
        elif df[name].nunique() > 1:
            raise UsageError(f"results hold several {name}s {sorted(df[name].unique())}; "
                             f"choose one with {name}=...")
    need_rows(df, "attention-only or FFW-only scopes",
          scope=results["scope"], model=results["model"], method=results["method"])
    if set(df["part"]) != {"attention", "FFW"}:
        raise UsageError(f"need both an attention-only and an FFW-only scope; got "
                         f"{sorted(set(df['scope']))}")
    model_name, method_name = df["model"].iloc[0], df["method"].iloc[0]
    df["pruning"] = np.where(df["allocation"] == "matched", "matched weights", "same sparsity")
    keys = ["ability", "part", "pruning", "scope", "target_sparsity"]
    agg = mean_ci(df, keys, "rel", "rel_low", "rel_high",
                   extra={"params_removed": ("params_removed", "mean")})
    dense = agg[keys[:4]].drop_duplicates().assign(
        target_sparsity=0.0, rel=1.0, ci_low=1.0, ci_high=1.0, params_removed=0.0,
        n_tasks=0, tasks="dense")
    agg = (pd.concat([agg, dense], ignore_index=True)
           .drop_duplicates(keys).sort_values(["ability", "part", "pruning", "target_sparsity"]))
    data = chart_data(agg)
    y = alt.Y("rel:Q", title=REL_TITLE, axis=PCT_AXIS)
    scale = color_scale("part", data["part"])
    color = alt.Color("part:N", title="pruned part", sort=scale.domain, scale=scale)
    present = [p for p in ("same sparsity", "matched weights") if p in set(data["pruning"])]
    dash = (alt.StrokeDash("pruning:N", title="comparison", sort=present,
                           scale=alt.Scale(domain=present,
                                           range=[[1, 0], [5, 3]][:len(present)]))
            if len(present) > 1 else None)
    tooltip = ["part:N", "scope:N", "pruning:N",
               alt.Tooltip("target_sparsity:Q", format=".0%", title="sparsity of the part"),
               alt.Tooltip("params_removed:Q", format=",.0f", title="weights removed"),
               *_ci_tooltip("rel", ".1%", "relative accuracy"), "tasks:N"]
    columns = alt.Column("ability:N", title=None, sort=_abilities(data))

    def panel(x: alt.X, filt=None, with_dash=False) -> alt.FacetChart:
        marks = _measured(x, y, color, tooltip, detail="scope:N",
                          dash=dash if with_dash else None)
        if filt is not None:
            marks = [m.transform_filter(filt) for m in marks]
        return alt.layer(_tolerance_rule(tolerance), *marks, data=data).facet(column=columns)

    by_sparsity = panel(
        alt.X("target_sparsity:Q", title="sparsity of the pruned part (%)", axis=PCT_AXIS),
        alt.datum.pruning == "same sparsity",
    ).properties(title="by equal sparsity of the part")
    by_params = panel(
        alt.X("params_removed:Q", title="weights removed (count)", axis=_COUNT_AXIS),
        with_dash=True,
    ).properties(title="by weights removed")
    return alt.vconcat(by_sparsity, by_params).properties(
        title=alt.TitleParams("Attention vs FFW pruning", subtitle=f"{model_name} · "
                              f"{method_name} · {structure}"))


# ---------------------------------------------------------------------------------------
# (c) dense scaling beside pruning
# ---------------------------------------------------------------------------------------

def fig_dense_scaling(results: pd.DataFrame, *, methods: Sequence[str] | None = None,
                      scope: str = "all", structure: str = "unstructured",
                      allocation: str = "uniform",
                      categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """Accuracy (mean over an ability's tasks, with error bars) against remaining block
    parameters (count, log scale): the dense models of a family (black line, labelled)
    beside the same models pruned (one colour per method; each pruned curve starts at its
    dense model). Columns: abilities. Needs at least two dense models."""
    df = prepare_results(results, categories)
    dense = df[df["method"] == DENSE]
    if dense["model"].nunique() < 2:
        raise UsageError(f"dense scaling needs dense rows of at least two models; got "
                         f"{sorted(dense['model'].unique())}")
    pr = df[(df["method"] != DENSE) & (df["scope"] == scope) & (df["structure"] == structure)
            & (df["allocation"] == allocation)]
    if methods is not None:
        pr = pr[pr["method"].isin(list(methods))]
    d = mean_ci(dense, ["model", "ability"], "value", "ci_low", "ci_high",
                 extra={"params": ("model_params", "first")})
    d["method"] = DENSE
    d["target_sparsity"] = 0.0
    p = mean_ci(pr, ["model", "method", "ability", "target_sparsity"], "value", "ci_low",
                 "ci_high", extra={"params": ("remaining_params", "mean")})
    starts = (p[["model", "method", "ability"]].drop_duplicates()
              .merge(d.drop(columns=["method"]), on=["model", "ability"]))
    p = pd.concat([starts[p.columns], p], ignore_index=True).sort_values(
        ["model", "method", "ability", "target_sparsity"])
    data = chart_data(pd.concat([d.assign(series="dense"), p.assign(series="pruned")],
                           ignore_index=True))
    x = alt.X("params:Q", title="remaining parameters (log scale)",
              scale=alt.Scale(type="log"), axis=alt.Axis(format="~s", tickCount=5))
    y = alt.Y("value:Q", title="accuracy (mean over tasks, %)", axis=PCT_AXIS)
    scale = color_scale("method", data["method"])
    color = alt.Color("method:N", title="method", sort=scale.domain, scale=scale)
    tooltip = ["model:N", "method:N", alt.Tooltip("target_sparsity:Q", format=".0%",
                                                  title="sparsity"),
               alt.Tooltip("params:Q", format=",.0f", title="parameters"),
               *_ci_tooltip("value", ".1%", "accuracy"), "tasks:N"]
    y_title = "accuracy (mean over tasks, %)"
    pruned = [m.transform_filter(alt.datum.series == "pruned")
              for m in _measured(x, y, color, tooltip, detail="model:N", y_title=y_title)]
    family = [m.transform_filter(alt.datum.series == "dense")
              for m in _measured(x, y, color, tooltip, detail="method:N", y_title=y_title)]
    family[0] = family[0].mark_line(strokeWidth=2.5).encode(order="params:Q")
    labels = alt.Chart().transform_filter(alt.datum.series == "dense").mark_text(
        align="right", baseline="bottom", dx=-5, dy=-4, fontSize=9).encode(
        x=x, y=y, text="model:N")
    return alt.layer(*pruned, *family, labels, data=data).facet(
        column=alt.Column("ability:N", title=None, sort=_abilities(data)),
    ).properties(title=alt.TitleParams("Dense vs pruned models",
                                       subtitle=f"{scope} · {structure} · {allocation}"))


# ---------------------------------------------------------------------------------------
# (d) thresholds: measured vs the study
# ---------------------------------------------------------------------------------------

#: Legend labels of the threshold marker shapes.
MEASURED = "measured"
AT_LEAST = f"at least (every tested level within {STUDY_TOLERANCE:.0%})"


def fig_study_comparison(comparison: pd.DataFrame) -> alt.LayerChart:
    """:func:`lenskit.results.compare_to_study`'s table as a chart: per task group, the
    study's reported threshold (grey band over its range) and the measured mean per method
    (dot, coloured by method; a right-pointing triangle when censored, i.e. every tested
    sparsity was within the tolerance), its confidence interval (line) and the range over
    its tasks and models (small ticks at both ends)."""
    need = {"group", "study_low", "study_high", "method", "measured", "measured_min",
            "measured_max", "ci_low", "ci_high"}
    missing = sorted(need - set(comparison.columns))
    if missing:
        raise UsageError(f"comparison lacks column(s) {missing}; build it with "
                         f"lenskit.results.compare_to_study")
    order = list(dict.fromkeys(comparison["group"]))
    pos = {g: i for i, g in enumerate(order)}
    study = comparison.drop_duplicates("group")[["group", "study_low", "study_high", "study"]]
    study = chart_data(study.assign(y=study["group"].map(pos).astype(float)))
    measured = comparison.dropna(subset=["measured"])
    need_rows(measured, "measured thresholds in the comparison")
    methods = sorted(set(measured["method"].astype(str)))
    # methods side by side within a group's row: numeric offsets, since altair's yOffset
    # does not combine with layers that have no offset field
    spread_of = {m: (i - (len(methods) - 1) / 2) * 0.22 for i, m in enumerate(methods)}
    measured = measured.assign(method=measured["method"].astype(str),
                               reading=np.where(measured["censored"], AT_LEAST, MEASURED))
    measured = chart_data(measured.assign(
        y=measured["group"].map(pos) + measured["method"].map(spread_of))[
        ["group", "method", "y", "measured", "measured_min", "measured_max", "ci_low",
         "ci_high", "n", "tasks", "reading"]])
    x_title = f"largest sparsity with ≤{STUDY_TOLERANCE:.0%} relative drop (% of weights)"
    x_scale = alt.Scale(domain=[0, 1])
    labels = "[" + ", ".join(repr(g) for g in order) + "][datum.value]"
    y_axis = alt.Axis(values=list(range(len(order))), labelExpr=labels, grid=False,
                      ticks=False, domain=False, labelLimit=220, offset=8)
    y_scale = alt.Scale(domain=[len(order) - 0.5, -0.5])
    y = alt.Y("y:Q", title=None, scale=y_scale, axis=y_axis)
    band = alt.Chart(study).transform_calculate(
        lo="datum.y - 0.3", hi="datum.y + 0.3").mark_rect(color="#bbbbbb", opacity=0.6).encode(
        x=alt.X("study_low:Q", title=x_title, scale=x_scale, axis=PCT_AXIS), x2="study_high:Q",
        y=alt.Y("lo:Q", title=None, scale=y_scale, axis=y_axis), y2="hi:Q",
        tooltip=["group:N", alt.Tooltip("study:N", title="study (SparseGPT)")])
    scale = color_scale("method", methods)
    color = alt.Color("method:N", title="method", sort=scale.domain, scale=scale)
    x_mark = alt.X("measured:Q", title=x_title, scale=x_scale, axis=PCT_AXIS)
    ci = alt.Chart(measured).mark_rule(strokeWidth=1.5).encode(
        x=alt.X("ci_low:Q", title=x_title, scale=x_scale, axis=PCT_AXIS), x2="ci_high:Q", y=y,
        color=color)
    ends = alt.Chart(measured).transform_fold(["measured_min", "measured_max"],
                                              as_=["end", "x"]).mark_tick(
        orient="vertical", size=8, thickness=1).encode(
        x=alt.X("x:Q", title=x_title, scale=x_scale, axis=PCT_AXIS), y=y, color=color)
    shapes = [r for r in (MEASURED, AT_LEAST) if r in set(measured["reading"])]
    dots = alt.Chart(measured).mark_point(**{**_POINT, "size": 60}).encode(
        x=x_mark, y=y, color=color,
        shape=alt.Shape("reading:N", title="threshold", sort=shapes, scale=alt.Scale(
            domain=shapes, range=["circle" if s == MEASURED else "triangle-right"
                                  for s in shapes])),
        tooltip=["group:N", "method:N", alt.Tooltip("measured:Q", format=".0%"),
                 alt.Tooltip("ci_low:Q", format=".0%", title="CI low"),
                 alt.Tooltip("ci_high:Q", format=".0%", title="CI high"),
                 alt.Tooltip("measured_min:Q", format=".0%", title="lowest task"),
                 alt.Tooltip("measured_max:Q", format=".0%", title="highest task"),
                 "reading:N", "n:Q", "tasks:N"])
    return alt.layer(band, ci, ends, dots).properties(
        width=260, height=26 * len(order),
        title=alt.TitleParams("Tolerated sparsity: measured vs study",
                              subtitle="grey: study (SparseGPT, 4 models)"))


# ---------------------------------------------------------------------------------------
# All figures of a run
# ---------------------------------------------------------------------------------------

def popularity_figures(df: pd.DataFrame, instances: pd.DataFrame | None, scope: str,
                        attempt) -> None:
    """fig5 (closed-book per popularity bucket) and, with instances and a world recording
    exposure, fig6 (recall against exposure): a zipf organism's figures."""
    # imported here: lenskit.plots.popularity builds on this module's helpers

    attempt("fig5_recall_by_bucket", lambda: fig_bucket_curves(df, scope=scope))
    if instances is None or not len(instances):
        return
    exposure = results_exposure(df)
    if exposure:
        attempt("fig6_recall_by_exposure", lambda: fig_recall_by_exposure(
            recall_by_exposure(df, instances, exposure), scope=scope))


def make_figures(results: pd.DataFrame, out_dir: str | Path, *,
                 instances: pd.DataFrame | None = None,
                 thresholds: pd.DataFrame | None = None,
                 formats: Sequence[str] = ("svg", "png", "pdf")) -> list[Path]:
    """Build and save every figure the results support into ``out_dir``; return the paths.

    - ``fig1_sparsity_curves``: (a), scope "all" (else the first scope present);
    - ``fig2_attention_vs_ffw[_MODEL_METHOD]``: (b), per model and method with both an
      attention-only and an FFW-only scope;
    - ``fig3_dense_scaling``: (c), when there are dense rows of two or more models;
    - ``fig4_study_comparison`` (+ ``study_comparison.csv``): (d), from ``thresholds``
      (computed from ``results``/``instances`` when not given) on scope "all";
    - ``fig5_recall_by_bucket``: closed-book accuracy per popularity bucket (head, torso,
      tail) beside open-book and overriding, when the tasks have buckets (a zipf organism);
    - ``fig6_recall_by_exposure``: closed-book accuracy against each fact's exposure in
      training, per sparsity, from ``instances``, when the pruned model's ``world.json``
      records exposure;
    - ``README.md``: one caption per figure saved (what it shows, how to read it, alt
      text), last in the returned list.

    A figure the data cannot support is skipped with a logged note (logger
    ``lenskit.plots.figures``), never an error.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = with_baselines(validate_results(results))
    paths: list[Path] = []
    charts: dict[str, alt.TopLevelMixin] = {}
    pruned = df[df["method"] != DENSE]

    def attempt(name: str, build) -> None:
        try:
            chart = build()
        except ValueError as e:
            log.info("skipped %s: %s", name, e)
            return
        charts[name] = chart
        paths.extend(save_chart(chart, out / name, formats))

    if not len(pruned):
        log.info("skipped all figures: the results hold no pruned cells")
        return paths
    scopes = list(dict.fromkeys(pruned["scope"]))
    main_scope = "all" if "all" in scopes else scopes[0]
    attempt("fig1_sparsity_curves", lambda: fig_sparsity_curves(df, scope=main_scope))

    pairs = pruned[["model", "method"]].drop_duplicates()
    for model, method in pairs.itertuples(index=False):
        name = ("fig2_attention_vs_ffw" if len(pairs) == 1
                else f"fig2_attention_vs_ffw_{_slug(model)}_{_slug(method)}")
        attempt(name, lambda m=model, k=method: fig_attention_vs_ffw(df, model=m, method=k))

    attempt("fig3_dense_scaling", lambda: fig_dense_scaling(df))
    popularity_figures(df, instances, main_scope, attempt)

    if thresholds is None:
        thresholds = compute_thresholds(df, instances, tolerances=[STUDY_TOLERANCE])
    comparison = compare_to_study(thresholds, exclude_tasks=at_chance_by_model(df))
    if comparison["measured"].notna().any():
        comparison.to_csv(out / "study_comparison.csv", index=False)
        paths.append(out / "study_comparison.csv")
    attempt("fig4_study_comparison", lambda: fig_study_comparison(comparison))
    if charts:
        has_ci = bool(pruned[["ci_low", "ci_high"]].notna().all(axis=1).any())
        if not has_ci:
            log.info("the results carry no confidence intervals: figures without error bars")
        paths.append(write_captions(charts, out, formats, has_ci=has_ci))
    return paths
