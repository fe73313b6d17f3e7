"""One self-contained HTML page about a run: ``lenskit report RUN_DIR``.

The page holds an interactive explorer (pick model, method, scope and task from drop-down
menus; click a legend entry to pick an ability; hover a point for its values and
confidence interval), the run's figures with tooltips, the threshold table, the comparison
with the study and the manifest; and, when the run has causal traces (``RUN_DIR/traces/``,
written by ``lenskit trace``), one trace figure per traced task. Vega, Vega-Lite and vega-embed are inlined (the bundle
from vl-convert), so the page opens offline from a ``file://`` address.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import vl_convert as vlc

from lenskit.analysis.trace_store import load_traces
from lenskit.errors import UsageError
from lenskit.plots.charts import PCT_AXIS, SPARSITY_TITLE, mean_ci, prepare_results
from lenskit.plots.figures import (
    fig_attention_vs_ffw,
    fig_dense_scaling,
    fig_sparsity_curves,
    fig_study_comparison,
    popularity_figures,
)
from lenskit.plots.theme import chart_spec, color_scale
from lenskit.plots.traces import fig_causal_trace, fig_head_trace
from lenskit.results.comparison import compare_to_study
from lenskit.results.schema import DENSE, validate_results, with_baselines
from lenskit.results.thresholds import (
    STUDY_TOLERANCE,
    at_chance_by_model,
    compute_thresholds,
    primary_metric,
)
from lenskit.rundir.store import RunStore

__all__ = ["ALL", "explorer_chart", "report_html", "write_report"]

log = logging.getLogger(__name__)

#: The drop-down entry that selects every value.
ALL = "(all)"
_KEYS = ["model", "method", "structure", "allocation", "scope", "ability", "task"]


def _explorer_data(results: pd.DataFrame) -> pd.DataFrame:
    df = prepare_results(results, ("fact_recall", "icl"))
    pr = df[df["method"] != DENSE]
    if not len(pr):
        raise UsageError("the results hold no pruned cells to explore")
    # one "mean" over a single task each: seeds averaged, the task's own interval kept
    per = mean_ci(pr.assign(task_name=pr["task"]),
                   [*_KEYS[:-1], "task_name", "target_sparsity"], "rel", "rel_low", "rel_high")
    per = per.drop(columns=["tasks", "n_tasks"]).rename(columns={"task_name": "task"})
    start = per[_KEYS].drop_duplicates().assign(target_sparsity=0.0, rel=1.0, ci_low=1.0,
                                                ci_high=1.0)
    out = pd.concat([start, per], ignore_index=True).sort_values([*_KEYS, "target_sparsity"])
    return out.round(6).reset_index(drop=True)


def _select(name: str, values: list[str], default: str) -> alt.Parameter:
    return alt.param(name=f"pick_{name}", value=default,
                     bind=alt.binding_select(options=[ALL, *values], name=f"{name} "))


def explorer_chart(results: pd.DataFrame) -> alt.LayerChart:
    """Relative accuracy (%) against sparsity (%) per task, with error bars, filtered by
    drop-down menus (model, method, scope, task; "(all)" keeps every value) and by a
    click on the ability legend. Defaults: the first model and method, scope "all"."""
    data = _explorer_data(results)
    picks = {}
    for name in ("model", "method", "scope", "task"):
        values = list(dict.fromkeys(data[name].astype(str)))
        default = ("all" if name == "scope" and "all" in values else
                   ALL if name == "task" else values[0])
        picks[name] = _select(name, values, default)
    cond = " && ".join(f"(pick_{n} == '{ALL}' || datum.{n} == pick_{n})" for n in picks)
    ability = alt.selection_point(fields=["ability"], bind="legend", name="pick_ability")
    scale = color_scale("ability", data["ability"])
    color = alt.Color("ability:N", title="ability (click)", sort=scale.domain, scale=scale)
    x = alt.X("target_sparsity:Q", title=SPARSITY_TITLE, axis=PCT_AXIS)
    y = alt.Y("rel:Q", title="accuracy relative to dense (%)", axis=PCT_AXIS)
    opacity = alt.condition(ability, alt.value(1.0), alt.value(0.12))
    detail = alt.Detail(["model:N", "method:N", "structure:N", "allocation:N", "scope:N",
                         "task:N"])
    tooltip = ["model:N", "method:N", "scope:N", "structure:N", "allocation:N", "task:N",
               alt.Tooltip("target_sparsity:Q", format=".0%", title="sparsity"),
               alt.Tooltip("rel:Q", format=".1%", title="relative accuracy"),
               alt.Tooltip("ci_low:Q", format=".1%", title="CI low"),
               alt.Tooltip("ci_high:Q", format=".1%", title="CI high")]
    base = alt.Chart(data).transform_filter(cond)
    line = base.mark_line(strokeWidth=1).encode(x=x, y=y, color=color, detail=detail,
                                                opacity=opacity)
    bars = base.mark_rule(strokeWidth=1.2).encode(
        x=x, y=alt.Y("ci_low:Q", title="accuracy relative to dense (%)"), y2="ci_high:Q",
        color=color, detail=detail, opacity=opacity)
    points = base.mark_point(filled=True, size=40).encode(
        x=x, y=y, color=color, detail=detail, opacity=opacity, tooltip=tooltip)
    rule = alt.Chart().mark_rule(strokeDash=[4, 3]).encode(y=alt.YDatum(1 - STUDY_TOLERANCE))
    return alt.layer(rule, line, bars, points).add_params(*picks.values(), ability).properties(
        width=520, height=300, title=alt.TitleParams(
            "Explore: accuracy vs sparsity per task",
            subtitle="menus below the chart pick model, method, scope and task"))


def _threshold_table(thr: pd.DataFrame) -> pd.DataFrame:
    t = thr[np.isclose(thr["tolerance"], STUDY_TOLERANCE)]
    if not len(t):
        return pd.DataFrame()
    keep = t.groupby("task")["metric"].agg(lambda m: primary_metric(m))
    t = t[t["metric"] == t["task"].map(keep)]

    def pct(v: float) -> str:
        return "" if pd.isna(v) else f"{100 * v:.0f}%"

    def reading(r: pd.Series) -> str:
        if r["censored"]:
            return f"every tested level within {STUDY_TOLERANCE:.0%} (a lower bound)"
        if r["threshold"] == 0:
            return "fails at the lowest tested level"
        return ""

    return pd.DataFrame({
        "model": t["model"], "method": t["method"], "structure": t["structure"],
        "allocation": t["allocation"], "scope": t["scope"], "task": t["task"],
        "metric": t["metric"],
        "threshold": [("≥" if c else "") + pct(v) for v, c in zip(t["threshold"],
                                                                  t["censored"], strict=True)],
        "CI": [f"{pct(lo)}-{pct(hi)}" if pd.notna(lo) else "" for lo, hi in
               zip(t["ci_low"], t["ci_high"], strict=True)],
        "CI method": t["ci_method"], "reading": [reading(r) for _, r in t.iterrows()]})


def _charts(df: pd.DataFrame, comparison: pd.DataFrame,
            instances: pd.DataFrame | None = None) -> list[tuple[str, alt.TopLevelMixin]]:
    pruned = df[df["method"] != DENSE]
    scopes = list(dict.fromkeys(pruned["scope"]))
    main = "all" if "all" in scopes else (scopes[0] if scopes else "all")
    builds: list[tuple[str, Callable[[], alt.TopLevelMixin]]] = [
        ("explorer", lambda: explorer_chart(df)),
        ("fig1_sparsity_curves", lambda: fig_sparsity_curves(df, scope=main))]
    for model, method in pruned[["model", "method"]].drop_duplicates().itertuples(index=False):
        builds.append((f"fig2_attention_vs_ffw ({model}, {method})",
                       lambda m=model, k=method: fig_attention_vs_ffw(df, model=m, method=k)))
    builds += [("fig3_dense_scaling", lambda: fig_dense_scaling(df))]
    out = []
    for name, build in builds:
        try:
            out.append((name, build()))
        except ValueError as e:
            log.info("report: skipped %s: %s", name, e)

    def attempt(name: str, build: Callable[[], alt.TopLevelMixin]) -> None:
        try:
            out.append((name, build()))
        except ValueError as e:
            log.info("report: skipped %s: %s", name, e)

    popularity_figures(df, instances, main, attempt)
    attempt("fig4_study_comparison", lambda: fig_study_comparison(comparison))
    return out


_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { padding: 2px 8px;
       border-bottom: 1px solid #eee; text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow: auto; font-size: 0.8em; max-height: 30em; }
.chart { display: block !important; margin: 1em 0; } .note { color: #555; font-size: 0.9em; }
"""


def _json_for_script(obj: Any) -> str:
    # "</" would end the <script> element early; "<\/" is the same string in JavaScript
    return json.dumps(obj).replace("</", "<\\/")


def _trace_charts(traces: pd.DataFrame) -> list[tuple[str, alt.TopLevelMixin]]:
    out = []
    for (trace, task), g in traces.groupby(["trace", "task"], sort=False):
        for name, build in ((f"causal trace ({trace}, {task})", fig_causal_trace),
                            (f"head trace ({trace}, {task})", fig_head_trace)):
            try:
                out.append((name, build(g)))
            except ValueError as e:  # e.g. a trace without head sites
                log.info("report: skipped %s: %s", name, e)
    return out


def report_html(results: pd.DataFrame, *, instances: pd.DataFrame | None = None,
                thresholds: pd.DataFrame | None = None,
                manifest: dict[str, Any] | None = None, title: str = "lenskit run",
                traces: pd.DataFrame | None = None) -> str:
    """The report page (a complete HTML document) of a run's ``results`` (tidy rows),
    ``thresholds`` (computed from ``results``/``instances`` at a 5% drop when not given),
    ``manifest`` and causal ``traces`` (rows of :func:`lenskit.analysis.trace_rows` with a
    ``trace`` column, as :func:`lenskit.analysis.trace_store.load_traces` reads them)."""
    df = with_baselines(validate_results(results))
    if thresholds is None:
        thresholds = compute_thresholds(df, instances, tolerances=[STUDY_TOLERANCE])
    comparison = compare_to_study(thresholds, exclude_tasks=at_chance_by_model(df))
    charts = _charts(df, comparison, instances)
    body = [f"<h1>{html.escape(title)}</h1>",
            "<p class='note'>Error bars are confidence intervals; points are tested "
            "sparsities; the dashed line is a 5% relative drop. Hover a point for its "
            "values.</p>"]
    scripts = []
    for i, (name, chart) in enumerate(charts):
        if name == "fig4_study_comparison":
            body.append("<h2>Comparison with the study</h2>")
        elif i < 2:
            body.append(f"<h2>{'Explorer' if i == 0 else 'Figures'}</h2>")
        body.append(f"<div class='chart' id='chart{i}' data-name='{html.escape(name)}'></div>")
        scripts.append(f"vegaEmbed('#chart{i}', {_json_for_script(chart_spec(chart))}, "
                       "{actions: false, renderer: 'svg'}).catch(e => console.error(e));")
    if traces is not None and len(traces):
        body.append("<h2>Causal traces</h2>")
        body.append("<p class='note'>Noise (or a counterfactual) on the subject, one site's "
                    "clean output restored: how much of the answer's probability comes back. "
                    "Error bars: 95% bootstrap intervals over prompts.</p>")
        for name, chart in _trace_charts(traces):
            i = len(scripts)
            body.append(f"<div class='chart' id='chart{i}' data-name='{html.escape(name)}'>"
                        "</div>")
            scripts.append(f"vegaEmbed('#chart{i}', {_json_for_script(chart_spec(chart))}, "
                           "{actions: false, renderer: 'svg'}).catch(e => console.error(e));")
    table = _threshold_table(thresholds)
    body.append(f"<h2>Thresholds (largest sparsity with ≤{STUDY_TOLERANCE:.0%} relative "
                "drop)</h2>")
    body.append(table.to_html(index=False, border=0) if len(table)
                else "<p>no thresholds (no pruned cells)</p>")
    shown = comparison.drop(columns=[c for c in ("kind",) if c in comparison.columns])
    body.append(shown.to_html(index=False, border=0, na_rep="", float_format="{:.2f}".format))
    body.append("<h2>Manifest</h2>")
    body.append("<pre>" + html.escape(json.dumps(manifest or {}, indent=1, default=str))
                + "</pre>")
    bundle = vlc.javascript_bundle(vl_version="6.4").replace("</script", "<\\/script")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
            f"<script>{bundle}</script></head><body>\n" + "\n".join(body)
            + "\n<script>\n" + "\n".join(scripts) + "\n</script>\n</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the run in ``run_dir`` to ``out`` (default
    ``RUN_DIR/report.html``); returns the path. Uses the run's stored thresholds table
    when there is one."""
    store = RunStore(run_dir)
    manifest = store.manifest()
    results = store.results()
    inst = store.instances()
    try:
        thr = store.read_table("thresholds")
    except (FileNotFoundError, KeyError):
        thr = None
    name = manifest.get("config", {}).get("name") or Path(run_dir).name
    page = report_html(results, instances=inst if len(inst) else None, thresholds=thr,
                       manifest=manifest, title=f"lenskit run: {name}",
                       traces=load_traces(run_dir))
    path = Path(out) if out is not None else store.dir / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
