"""Figures of attention under pruning: drift maps per layer and head, which heads' drift
predicts which ability's drop, and drift against drop for the top heads.

Inputs are the frames of :mod:`lenskit.analysis.attention` (:func:`attention_drift`) and
:mod:`lenskit.analysis.attention_drop` (:func:`drift_vs_drop`, :func:`drift_drop_table`);
every function aggregates before plotting (means over tasks) and returns an altair chart in
the paper theme (:mod:`lenskit.plots.theme`).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from lenskit.plots.charts import chart_data
from lenskit.plots.theme import CATEGORY_COLORS, CATEGORY_LABELS

__all__ = [
    "DRIFT_HEATMAP_METRICS",
    "fig_drift_correlation",
    "fig_drift_heatmaps",
    "fig_drift_scatter",
]

#: (metric, queries) pairs drawn by :func:`fig_drift_heatmaps` by default.
DRIFT_HEATMAP_METRICS: tuple[tuple[str, str], ...] = (
    ("js", "all"), ("entropy", "all"), ("sink", "all"), ("span_mass", "answer"),
)
_TITLES = {
    "js": "JS divergence to dense (bits)",
    "entropy": "change in normalised entropy",
    "sink": "change in first-token mass",
    "span_mass": "change in answer-span mass",
    "induction": "change in induction score",
    "prev_token": "change in previous-token score",
}
_LEGENDS = {"js": "bits", "entropy": "Δ entropy", "sink": "Δ mass", "span_mass": "Δ mass",
            "induction": "Δ score", "prev_token": "Δ score"}
_QUERIES = {"all": "all queries", "answer": "answer position", "repeat": "repeated tokens"}
_NARROW = "select fewer configurations or metrics"


def _need_columns(df, cols: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what} must be a DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def _config_order(df: pd.DataFrame) -> list[str]:
    """Configurations by scope, then sparsity, then label (the order they were given
    where those are missing)."""
    cfg = df[["config", "scope", "sparsity"]].drop_duplicates("config").copy()
    cfg["scope"] = cfg["scope"].fillna("").astype(str)
    return cfg.sort_values(["scope", "sparsity", "config"], kind="stable")["config"].tolist()


def fig_drift_heatmaps(
    drift: pd.DataFrame,
    metrics: Sequence[tuple[str, str]] = DRIFT_HEATMAP_METRICS,
    *,
    category: str | None = None,
    tasks: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
) -> alt.VConcatChart:
    """Layer x head maps of drift (pruned minus dense; the divergence itself for ``js``),
    one row per metric and one column per configuration (ordered by scope and sparsity).

    Args:
        drift: :func:`lenskit.analysis.attention_drift`'s frame.
        metrics: ``(metric, queries)`` pairs to draw; pairs absent from ``drift`` are
            skipped (at least one must be present).
        category, tasks: average over the tasks of one category, or over the tasks named
            (default: all tasks that have the metric).
        configs: configuration labels to draw (default all).
    """
    _need_columns(drift, ["config", "scope", "sparsity", "task", "category", "layer", "head",
                          "metric", "queries", "drift"], "drift")
    df = drift
    if category is not None:
        df = df[df["category"] == category]
        if df.empty:
            raise ValueError(f"no drift rows of category {category!r}; have "
                             f"{sorted(set(drift['category']))}")
    if tasks is not None:
        df = df[df["task"].isin(list(tasks))]
        if df.empty:
            raise ValueError(f"no drift rows of tasks {list(tasks)}; have "
                             f"{sorted(set(drift['task']))}")
    if configs is not None:
        bad = [c for c in configs if c not in set(df["config"])]
        if bad:
            raise ValueError(f"unknown configuration(s) {bad}; have "
                             f"{sorted(set(drift['config']))}")
        df = df[df["config"].isin(list(configs))]
    pairs = [(m, q) for m, q in metrics
             if ((df["metric"] == m) & (df["queries"] == q)).any()]
    if not pairs:
        have = sorted(set(zip(drift["metric"], drift["queries"], strict=True)))
        raise ValueError(f"none of the metrics {list(metrics)} is in the drift; it has {have}")
    order = _config_order(df)
    rows = []
    for metric, queries in pairs:
        sel = df[(df["metric"] == metric) & (df["queries"] == queries)]
        agg = sel.groupby(["config", "layer", "head"], as_index=False).agg(
            drift=("drift", "mean"), n_tasks=("task", "nunique"))
        data = chart_data(agg.sort_values(["config", "layer", "head"]), _NARROW)
        if metric == "js":
            scale = alt.Scale(scheme="blues", domainMin=0)
        else:  # symmetric about 0, so that the colour of a change shows its size and sign
            bound = float(data["drift"].abs().max()) or 1.0
            scale = alt.Scale(scheme="blueorange", domain=[-bound, bound])
        title = f"{_TITLES.get(metric, metric)}, {_QUERIES.get(queries, queries)}"
        chart = alt.Chart(data).mark_rect().encode(
            x=alt.X("head:O", title="head"),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color("drift:Q", title=_LEGENDS.get(metric, metric), scale=scale),
            tooltip=["config:N", "layer:O", "head:O", alt.Tooltip("drift:Q", format=".4f"),
                     "n_tasks:Q"],
        ).properties(width=90, height=90).facet(
            column=alt.Column("config:N", title=None, sort=order),
        ).properties(title=title)
        rows.append(chart)
    return alt.vconcat(*rows).resolve_scale(color="independent").properties(
        title="Attention drift under pruning, per layer and head")


def fig_drift_correlation(corr: pd.DataFrame,
                          categories: Sequence[str] | None = None) -> alt.FacetChart:
    """Per layer and head, the correlation of the head's drift with each ability's drop
    across configurations (from :func:`lenskit.analysis.drift_vs_drop`), abilities side by
    side (in-context learning beside fact recall), on one diverging scale from -1 to 1."""
    _need_columns(corr, ["category", "layer", "head", "metric", "queries", "method", "r",
                         "n_configs"], "corr")
    if categories is not None:
        bad = [c for c in categories if c not in set(corr["category"])]
        if bad:
            raise ValueError(f"unknown categor(y/ies) {bad}; have {sorted(set(corr['category']))}")
        corr = corr[corr["category"].isin(list(categories))]
    if corr.empty:
        raise ValueError("no correlations to draw")
    for col in ("metric", "queries", "method"):
        if corr[col].nunique() > 1:
            raise ValueError(f"corr holds several {col}s {sorted(set(corr[col]))}; draw one")
    cats = list(dict.fromkeys(categories or corr["category"]))
    data = corr[["category", "layer", "head", "r", "n_configs"]].copy()
    data["ability"] = data["category"].map(lambda c: CATEGORY_LABELS.get(c, c))
    data["label"] = data["r"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    data = chart_data(data.sort_values(["category", "layer", "head"]), _NARROW)
    abilities = [CATEGORY_LABELS.get(c, c) for c in cats]
    base = alt.Chart().encode(x=alt.X("head:O", title="head"),
                              y=alt.Y("layer:O", title="layer"))
    rect = base.mark_rect().encode(
        color=alt.Color("r:Q", title="correlation",
                        scale=alt.Scale(scheme="blueorange", domain=[-1, 1])),
        tooltip=["ability:N", "layer:O", "head:O", alt.Tooltip("r:Q", format=".2f"),
                 "n_configs:Q"])
    text = base.mark_text(fontSize=8).encode(text="label:N")
    m = corr.iloc[0]
    title = (f"Correlation of {m['metric']} drift ({_QUERIES.get(m['queries'], m['queries'])})"
             f" with accuracy drop across {int(corr['n_configs'].max())} configurations "
             f"({m['method']})")
    return alt.layer(rect, text, data=data).properties(width=110, height=110).facet(
        column=alt.Column("ability:N", title=None, sort=abilities)).properties(title=title)


def fig_drift_scatter(table: pd.DataFrame, corr: pd.DataFrame, *, top: int = 3
                      ) -> alt.FacetChart:
    """Drift against drop over the configurations for the ``top`` heads of each ability
    (highest correlation in ``corr``), one panel per ability and head, with a least-squares
    line; points coloured by the pruned scope when the table has one.

    Args:
        table: :func:`lenskit.analysis.drift_drop_table`'s frame (the same metric as
            ``corr``).
        corr: :func:`lenskit.analysis.drift_vs_drop`'s frame.
        top: heads per ability.
    """
    _need_columns(table, ["category", "layer", "head", "drift", "drop"], "table")
    _need_columns(corr, ["category", "layer", "head", "r", "metric"], "corr")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be an int >= 1, got {top!r}")
    cats = [c for c in dict.fromkeys(corr["category"]) if c in set(table["category"])]
    if not cats:
        raise ValueError("table and corr share no category")
    picks = []
    for cat in cats:
        best = corr[(corr["category"] == cat) & corr["r"].notna()].sort_values(
            ["r", "layer", "head"], ascending=[False, True, True]).head(top)
        for rank, row in enumerate(best.itertuples(index=False), start=1):
            picks.append({"category": cat, "layer": int(row.layer), "head": int(row.head),
                          "rank": rank, "r": float(row.r)})
    if not picks:
        raise ValueError("no head has a defined correlation (drift or drop never varies)")
    picked = pd.DataFrame(picks)
    data = table.merge(picked, on=["category", "layer", "head"], how="inner")
    data["ability"] = data["category"].map(lambda c: CATEGORY_LABELS.get(c, c))
    data["panel"] = [f"{a}: L{la}H{h} (r = {r:.2f})" for a, la, h, r in
                     zip(data["ability"], data["layer"], data["head"], data["r"], strict=True)]
    keep = ["panel", "ability", "category", "rank", "layer", "head", "drift", "drop"]
    keep += [c for c in ("config", "scope", "sparsity") if c in data.columns]
    data = chart_data(data[keep].sort_values(["category", "rank", "drift"]), _NARROW)
    panels = data.drop_duplicates("panel").sort_values(
        ["category", "rank"], key=lambda s: s.map(cats.index) if s.name == "category" else s
    )["panel"].tolist()
    if "scope" in data.columns:  # which part was pruned: the panel already names the ability
        color = alt.Color("scope:N", title="pruned scope", sort=sorted(set(data["scope"])))
    else:
        domain = [a for a in CATEGORY_COLORS if a in set(data["ability"])]
        color = alt.Color("ability:N", title="ability", sort=domain,
                          scale=alt.Scale(domain=domain,
                                          range=[CATEGORY_COLORS[a] for a in domain]))
    x = alt.X("drift:Q", title=f"head drift ({corr['metric'].iloc[0]})")
    y = alt.Y("drop:Q", title="relative accuracy drop", axis=alt.Axis(format="%"))
    tooltip = [c for c in ("config:N", "scope:N") if c.split(":")[0] in data.columns]
    points = alt.Chart().mark_point(filled=True).encode(
        x=x, y=y, color=color,
        tooltip=[*tooltip, alt.Tooltip("drift:Q", format=".4f"),
                 alt.Tooltip("drop:Q", format=".1%")])
    line = alt.Chart().transform_regression("drift", "drop").mark_line(
        strokeDash=[4, 3], color="#666666").encode(x=x, y=y)
    return alt.layer(points, line, data=data).properties(width=130, height=100).facet(
        facet=alt.Facet("panel:N", title=None, sort=panels), columns=top,
    ).resolve_scale(x="independent").properties(
        title=f"Drift against drop for the top {top} head(s) of each ability")
