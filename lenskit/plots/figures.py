"""The study's figures, from tidy results (:mod:`lenskit.study.schema`) to altair charts.

Every function takes a results frame, aggregates it (means over tasks and seeds; charts
never embed raw instance rows) and returns an altair chart; :func:`make_figures` builds
every figure a run's data supports and saves each as SVG, PNG and PDF.

"Accuracy relative to dense" is ``1 - relative_drop``: 100% is the dense model, and the
dashed line at ``1 - tolerance`` is the threshold criterion of
:mod:`lenskit.study.thresholds`, so a curve crosses it exactly where its threshold is.
Each task is plotted with its primary metric (exact match first; see
:func:`lenskit.study.thresholds.primary_metric`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from lenskit.plots.theme import CATEGORY_COLORS, CATEGORY_LABELS, OKABE_ITO, save_chart
from lenskit.study.comparison import compare_to_study
from lenskit.study.config import is_attention_scope, is_ffw_scope
from lenskit.study.schema import DENSE, attach_baselines, validate_results
from lenskit.study.thresholds import (
    STUDY_TOLERANCE,
    compute_thresholds,
    primary_metric,
    tasks_at_chance,
)

__all__ = [
    "MAX_ROWS",
    "fig_attention_vs_ffw",
    "fig_dense_scaling",
    "fig_sparsity_curves",
    "fig_study_comparison",
    "make_figures",
]

log = logging.getLogger(__name__)

#: altair refuses to embed more rows than this; every figure aggregates below it.
MAX_ROWS = 5000
_ROUND = 6  # plotted numbers are rounded so that specs do not depend on float noise
PART_COLORS = {"attention": OKABE_ITO[0], "FFW": OKABE_ITO[2]}
_PCT = alt.Axis(format="%")


# ---------------------------------------------------------------------------------------
# Data preparation
# ---------------------------------------------------------------------------------------

def _prepare(results: pd.DataFrame, categories: Sequence[str]) -> pd.DataFrame:
    """Validated rows of the wanted categories, each task on its primary metric, with
    baselines, ``rel`` (accuracy relative to dense) and ``ability`` (display category)."""
    df = validate_results(results)
    if (df["method"] == DENSE).any() and df["baseline"].isna().any():
        df = attach_baselines(df)
    df = df[df["category"].isin(list(categories))]
    # A task the dense model does at chance has no ability to lose: its "relative accuracy"
    # would sit at 100% and flatter its ability's mean.
    at_chance = tasks_at_chance(df)
    if at_chance:
        log.info("left out of the figures (dense model at chance): %s", ", ".join(at_chance))
        df = df[~df["task"].isin(at_chance)]
    primary = df.groupby("task")["metric"].agg(lambda m: primary_metric(m))
    df = df[df["metric"] == df["task"].map(primary)].copy()
    df["rel"] = 1.0 - df["relative_drop"]
    df["ability"] = df["category"].map(lambda c: CATEGORY_LABELS.get(c, c))
    return df


def _data(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) > MAX_ROWS:
        raise ValueError(f"{len(df)} rows to plot after aggregation (altair's limit is "
                         f"{MAX_ROWS}); filter the results (fewer models, methods or tasks)")
    out = df.reset_index(drop=True).copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(_ROUND)
    return out


def _ability_color(present: Sequence[str], title: str = "ability") -> alt.Color:
    domain = [a for a in CATEGORY_COLORS if a in set(present)]
    return alt.Color("ability:N", title=title, sort=domain,
                     scale=alt.Scale(domain=domain, range=[CATEGORY_COLORS[a] for a in domain]))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")


def _need(df: pd.DataFrame, what: str, **present: Sequence) -> None:
    if not len(df):
        have = "; ".join(f"{k}: {sorted(set(map(str, v)))}" for k, v in present.items())
        raise ValueError(f"no rows for {what}" + (f" (present: {have})" if have else ""))


# ---------------------------------------------------------------------------------------
# (a) relative accuracy vs sparsity: fact recall against in-context learning
# ---------------------------------------------------------------------------------------

def fig_sparsity_curves(results: pd.DataFrame, *, scope: str = "all",
                        structure: str = "unstructured", allocation: str = "uniform",
                        tolerance: float = STUDY_TOLERANCE,
                        categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """The study's first figure: accuracy relative to dense against sparsity, one thin
    line per task and a thick line per ability (the mean of its tasks), coloured by
    ability (fact recall vs in-context learning), faceted by model (rows) and method
    (columns). Only ``scope``/``structure``/``allocation`` cells are drawn; each curve
    starts at the dense model (sparsity 0, 100%)."""
    df = _prepare(results, categories)
    pr = df[(df["method"] != DENSE) & (df["scope"] == scope) & (df["structure"] == structure)
            & (df["allocation"] == allocation)]
    _need(pr, f"scope {scope!r}, structure {structure!r}, allocation {allocation!r}",
          scope=df["scope"], structure=df["structure"], allocation=df["allocation"])
    keys = ["model", "method", "ability", "task"]
    per_task = pr.groupby([*keys, "target_sparsity"], as_index=False).agg(
        rel=("rel", "mean"), value=("value", "mean"), metric=("metric", "first"))
    dense = pr.groupby(keys, as_index=False).agg(value=("baseline", "mean"),
                                                 metric=("metric", "first"))
    dense = dense.assign(target_sparsity=0.0, rel=1.0)
    per_task = (pd.concat([per_task, dense[per_task.columns]], ignore_index=True)
                .drop_duplicates([*keys, "target_sparsity"], keep="first")
                .sort_values([*keys, "target_sparsity"]))
    means = per_task.groupby(["model", "method", "ability", "target_sparsity"],
                             as_index=False).agg(rel=("rel", "mean"), n_tasks=("task", "size"))
    means["task"] = "mean: " + means["ability"]
    data = _data(pd.concat([per_task.assign(series="task"), means.assign(series="mean")],
                           ignore_index=True)[["model", "method", "ability", "task", "series",
                                               "target_sparsity", "rel", "value", "metric"]])
    x = alt.X("target_sparsity:Q", title="sparsity (fraction of weights pruned)", axis=_PCT,
              scale=alt.Scale(domain=[0, float(data["target_sparsity"].max())]))
    y_title = "accuracy relative to dense"
    y = alt.Y("rel:Q", title=y_title, axis=_PCT)
    color = _ability_color(data["ability"])
    base = alt.Chart()
    rule = base.mark_rule(strokeDash=[4, 3]).encode(y=alt.YDatum(1 - tolerance, title=y_title))
    thin = base.transform_filter(alt.datum.series == "task").mark_line(
        strokeWidth=1, opacity=0.45).encode(
        x=x, y=y, color=color, detail="task:N",
        tooltip=["task:N", "metric:N", alt.Tooltip("target_sparsity:Q", format=".0%"),
                 alt.Tooltip("rel:Q", format=".1%", title="relative"),
                 alt.Tooltip("value:Q", format=".3f")])
    thick = base.transform_filter(alt.datum.series == "mean").mark_line(
        strokeWidth=3, point=alt.OverlayMarkDef(size=30, filled=True)).encode(
        x=x, y=y, color=color, detail="task:N",
        tooltip=["task:N", alt.Tooltip("target_sparsity:Q", format=".0%"),
                 alt.Tooltip("rel:Q", format=".1%", title="relative")])
    title = (f"Accuracy relative to dense vs sparsity ({scope}, {structure}, {allocation}); "
             f"thin: tasks, thick: mean; dashed: {tolerance:.0%} drop")
    return alt.layer(rule, thin, thick, data=data).facet(
        row=alt.Row("model:N", title=None), column=alt.Column("method:N", title=None),
    ).properties(title=title)


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
    "matched", dashed) remove from FFW exactly what attention-only pruning removes.
    Columns: abilities (mean over their tasks and seeds). ``model``/``method`` may be
    omitted when the results hold only one.
    """
    df = _prepare(results, categories)
    df = df[(df["method"] != DENSE) & (df["structure"] == structure)
            & df["allocation"].isin(["uniform", "matched"])]
    parts = {s: _part(s) for s in df["scope"].unique()}
    df = df.assign(part=df["scope"].map(parts)).dropna(subset=["part"])
    for name, value in (("model", model), ("method", method)):
        if value is not None:
            df = df[df[name] == value]
        elif df[name].nunique() > 1:
            raise ValueError(f"results hold several {name}s {sorted(df[name].unique())}; "
                             f"choose one with {name}=...")
    _need(df, "attention-only or FFW-only scopes",
          scope=results["scope"], model=results["model"], method=results["method"])
    if set(df["part"]) != {"attention", "FFW"}:
        raise ValueError(f"need both an attention-only and an FFW-only scope; got "
                         f"{sorted(set(df['scope']))}")
    model_name, method_name = df["model"].iloc[0], df["method"].iloc[0]
    df["pruning"] = np.where(df["allocation"] == "matched", "matched weights", "same sparsity")
    agg = df.groupby(["ability", "part", "pruning", "scope", "target_sparsity"],
                     as_index=False).agg(rel=("rel", "mean"),
                                         params_removed=("params_removed", "mean"))
    dense = agg[["ability", "part", "pruning", "scope"]].drop_duplicates().assign(
        target_sparsity=0.0, rel=1.0, params_removed=0.0)
    agg = (pd.concat([agg, dense], ignore_index=True)
           .drop_duplicates(["ability", "part", "pruning", "scope", "target_sparsity"])
           .sort_values(["ability", "part", "pruning", "target_sparsity"]))
    data = _data(agg)
    y_title = "accuracy relative to dense"
    y = alt.Y("rel:Q", title=y_title, axis=_PCT)
    domain = [p for p in PART_COLORS if p in set(data["part"])]
    color = alt.Color("part:N", title="pruned part", sort=domain,
                      scale=alt.Scale(domain=domain, range=[PART_COLORS[p] for p in domain]))
    dash = alt.StrokeDash("pruning:N", title="comparison",
                          sort=["same sparsity", "matched weights"],
                          scale=alt.Scale(domain=["same sparsity", "matched weights"],
                                          range=[[1, 0], [5, 3]]))
    rule = alt.Chart().mark_rule(strokeDash=[4, 3]).encode(
        y=alt.YDatum(1 - tolerance, title=y_title))
    tooltip = ["scope:N", "pruning:N", alt.Tooltip("target_sparsity:Q", format=".0%"),
               alt.Tooltip("params_removed:Q", format=",.0f"),
               alt.Tooltip("rel:Q", format=".1%", title="relative")]

    def panel(x: alt.X, filt=None) -> alt.FacetChart:
        line = (alt.Chart() if filt is None else alt.Chart().transform_filter(filt)).mark_line(
            point=alt.OverlayMarkDef(size=24, filled=True)).encode(
            x=x, y=y, color=color, strokeDash=dash, detail="scope:N", tooltip=tooltip)
        return alt.layer(rule, line, data=data).facet(
            column=alt.Column("ability:N", title=None,
                              sort=[a for a in CATEGORY_COLORS if a in set(data["ability"])]))

    by_sparsity = panel(
        alt.X("target_sparsity:Q", title="sparsity of the pruned part", axis=_PCT),
        alt.datum.pruning == "same sparsity",
    ).properties(title="by matched sparsity")
    by_params = panel(
        alt.X("params_removed:Q", title="weights removed", axis=alt.Axis(format="~s")),
    ).properties(title="by matched weights removed")
    return alt.vconcat(by_sparsity, by_params).properties(
        title=f"Attention-only vs FFW-only pruning: {model_name}, {method_name}")


# ---------------------------------------------------------------------------------------
# (c) dense scaling beside pruning
# ---------------------------------------------------------------------------------------

def fig_dense_scaling(results: pd.DataFrame, *, methods: Sequence[str] | None = None,
                      scope: str = "all", structure: str = "unstructured",
                      allocation: str = "uniform",
                      categories: Sequence[str] = ("fact_recall", "icl")) -> alt.FacetChart:
    """Accuracy against remaining block parameters: the dense models of a family (black,
    labelled) beside the same models pruned (one colour per model, one dash per method;
    each pruned curve starts at its dense model). Columns: abilities (mean of their tasks'
    absolute accuracy). Needs at least two dense models."""
    df = _prepare(results, categories)
    dense = df[df["method"] == DENSE]
    if dense["model"].nunique() < 2:
        raise ValueError(f"dense scaling needs dense rows of at least two models; got "
                         f"{sorted(dense['model'].unique())}")
    pr = df[(df["method"] != DENSE) & (df["scope"] == scope) & (df["structure"] == structure)
            & (df["allocation"] == allocation)]
    if methods is not None:
        pr = pr[pr["method"].isin(list(methods))]
    d = dense.groupby(["model", "ability"], as_index=False).agg(
        value=("value", "mean"), params=("model_params", "first"))
    d["method"] = DENSE
    d["target_sparsity"] = 0.0
    p = pr.groupby(["model", "method", "ability", "target_sparsity"], as_index=False).agg(
        value=("value", "mean"), params=("remaining_params", "mean"))
    starts = (p[["model", "method", "ability"]].drop_duplicates()
              .merge(d.drop(columns=["method"]), on=["model", "ability"]))
    p = pd.concat([starts[p.columns], p], ignore_index=True).sort_values(
        ["model", "method", "ability", "target_sparsity"])
    data = _data(pd.concat([d.assign(series="dense"), p.assign(series="pruned")],
                           ignore_index=True))
    x = alt.X("params:Q", title="remaining block parameters",
              scale=alt.Scale(type="log"), axis=alt.Axis(format="~s", tickCount=5))
    y = alt.Y("value:Q", title="accuracy (mean over tasks)")
    tooltip = ["model:N", "method:N", alt.Tooltip("target_sparsity:Q", format=".0%"),
               alt.Tooltip("params:Q", format=",.0f"), alt.Tooltip("value:Q", format=".3f")]
    pruned = alt.Chart().transform_filter(alt.datum.series == "pruned").mark_line(
        point=alt.OverlayMarkDef(size=18, filled=True), opacity=0.85).encode(
        x=x, y=y, color=alt.Color("model:N", title="pruned model"),
        strokeDash=alt.StrokeDash("method:N", title="method"), detail="method:N",
        tooltip=tooltip)
    family = alt.Chart().transform_filter(alt.datum.series == "dense")
    dense_line = family.mark_line(color="black", strokeWidth=2.5,
                                  point=alt.OverlayMarkDef(color="black", size=40)).encode(
        x=x, y=y, order="params:Q", tooltip=tooltip)
    labels = family.mark_text(align="left", dx=5, dy=-7, fontSize=8).encode(
        x=x, y=y, text="model:N")
    order = [a for a in CATEGORY_COLORS if a in set(data["ability"])]
    return alt.layer(pruned, dense_line, labels, data=data).facet(
        column=alt.Column("ability:N", title=None, sort=order),
    ).properties(title=f"Dense models (black) vs pruned models ({scope}, {structure}, "
                       f"{allocation})")


# ---------------------------------------------------------------------------------------
# (d) thresholds: measured vs the study
# ---------------------------------------------------------------------------------------

def fig_study_comparison(comparison: pd.DataFrame) -> alt.LayerChart:
    """:func:`lenskit.analysis.compare_to_study`'s table as a chart: per task group, the
    study's reported threshold (grey band over its range, a tick at each end) and the
    measured mean per method (dot; a line over the range of its tasks and models;
    a triangle when censored, i.e. the highest tested sparsity was still within 5%)."""
    need = {"group", "study_low", "study_high", "method", "measured", "measured_min",
            "measured_max"}
    missing = sorted(need - set(comparison.columns))
    if missing:
        raise ValueError(f"comparison lacks column(s) {missing}; build it with "
                         f"lenskit.analysis.compare_to_study")
    order = list(dict.fromkeys(comparison["group"]))
    pos = {g: i for i, g in enumerate(order)}
    study = comparison.drop_duplicates("group")[["group", "study_low", "study_high", "study"]]
    study = _data(study.assign(y=study["group"].map(pos).astype(float)))
    measured = comparison.dropna(subset=["measured"])
    _need(measured, "measured thresholds in the comparison")
    methods = sorted(set(measured["method"].astype(str)))
    # methods side by side within a group's row: numeric offsets, since altair's yOffset
    # does not combine with layers that have no offset field
    spread_of = {m: (i - (len(methods) - 1) / 2) * 0.22 for i, m in enumerate(methods)}
    measured = measured.assign(method=measured["method"].astype(str))
    measured = _data(measured.assign(
        y=measured["group"].map(pos) + measured["method"].map(spread_of))[
        ["group", "method", "y", "measured", "measured_min", "measured_max", "n", "tasks",
         "censored"]])
    x_title = f"largest sparsity with ≤{STUDY_TOLERANCE:.0%} relative drop"
    x_scale = alt.Scale(domain=[0, 1])
    labels = "[" + ", ".join(repr(g) for g in order) + "][datum.value]"
    y_axis = alt.Axis(values=list(range(len(order))), labelExpr=labels, grid=False,
                      ticks=False, domain=False)
    y_scale = alt.Scale(domain=[len(order) - 0.5, -0.5])
    y = alt.Y("y:Q", title=None, scale=y_scale, axis=y_axis)
    band = alt.Chart(study).transform_calculate(
        lo="datum.y - 0.3", hi="datum.y + 0.3").mark_rect(color="#bbbbbb", opacity=0.6).encode(
        x=alt.X("study_low:Q", title=x_title, scale=x_scale, axis=_PCT), x2="study_high:Q",
        y=alt.Y("lo:Q", title=None, scale=y_scale, axis=y_axis), y2="hi:Q",
        tooltip=["group:N", "study:N"])
    ticks = alt.Chart(study).transform_fold(["study_low", "study_high"], as_=["end", "x"]
                                            ).transform_calculate(
        lo="datum.y - 0.3", hi="datum.y + 0.3").mark_rule(color="#555555", strokeWidth=2
                                                          ).encode(
        x=alt.X("x:Q", title=x_title, scale=x_scale, axis=_PCT),
        y=alt.Y("lo:Q", title=None, scale=y_scale, axis=y_axis), y2="hi:Q")
    color = alt.Color("method:N", title="measured (method)", sort=methods)
    spread = alt.Chart(measured).mark_rule(strokeWidth=1.5).encode(
        x=alt.X("measured_min:Q", title=x_title, scale=x_scale, axis=_PCT),
        x2="measured_max:Q", y=y, color=color)
    dots = alt.Chart(measured).mark_point(filled=True, size=55, opacity=1).encode(
        x=alt.X("measured:Q", title=x_title, scale=x_scale, axis=_PCT), y=y, color=color,
        shape=alt.Shape("censored:N", title="censored (≥)",
                        scale=alt.Scale(domain=[False, True],
                                        range=["circle", "triangle-right"])),
        tooltip=["group:N", "method:N", alt.Tooltip("measured:Q", format=".0%"),
                 alt.Tooltip("measured_min:Q", format=".0%"),
                 alt.Tooltip("measured_max:Q", format=".0%"), "n:Q", "tasks:N"])
    return alt.layer(band, ticks, spread, dots).properties(
        width=260, height=24 * len(order),
        title="Tolerated sparsity: study (grey; SparseGPT, mean of 4 models) vs measured")


# ---------------------------------------------------------------------------------------
# All figures of a run
# ---------------------------------------------------------------------------------------

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
      (computed from ``results``/``instances`` when not given) on scope "all".

    A figure the data cannot support is skipped with a logged note (logger
    ``lenskit.plots.figures``), never an error.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = validate_results(results)
    if (df["method"] == DENSE).any() and df["baseline"].isna().any():
        df = attach_baselines(df)
    paths: list[Path] = []
    pruned = df[df["method"] != DENSE]

    def attempt(name: str, build) -> None:
        try:
            chart = build()
        except ValueError as e:
            log.info("skipped %s: %s", name, e)
            return
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

    if thresholds is None:
        thresholds = compute_thresholds(df, instances, tolerances=[STUDY_TOLERANCE])
    comparison = compare_to_study(thresholds, exclude_tasks=tasks_at_chance(df))
    if comparison["measured"].notna().any():
        comparison.to_csv(out / "study_comparison.csv", index=False)
        paths.append(out / "study_comparison.csv")
    attempt("fig4_study_comparison", lambda: fig_study_comparison(comparison))
    return paths
