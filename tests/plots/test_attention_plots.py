"""Attention figures: spec snapshots on small hand-made frames and what the specs hold.

Snapshots: tests/plots/snapshots/attention_*.json (regenerate with
``LENSKIT_UPDATE_SNAPSHOTS=1 pytest tests/plots/test_attention_plots.py``).
"""

from __future__ import annotations

import pandas as pd
import pytest

from lenskit.analysis.attention import DRIFT_COLUMNS
from lenskit.analysis.attention_drop import drift_drop_table, drift_vs_drop
from lenskit.plots import chart_spec
from lenskit.plots.attention import fig_drift_correlation, fig_drift_heatmaps, fig_drift_scatter

from .test_figures import assert_snapshot, data_of

# label -> (scope, sparsity); given out of order on purpose
CONFIGS = {"mlp 60%": ("mlp", 0.6), "attn 30%": ("attn", 0.3), "attn 60%": ("attn", 0.6),
           "mlp 30%": ("mlp", 0.3)}
TASKS = {"open_book": "icl", "closed_book": "fact_recall"}


def drop(label: str, category: str) -> float:
    scope, s = CONFIGS[label]
    if category == "icl":
        return s * (1.0 if scope == "attn" else 0.25)
    return s * (1.0 if scope == "mlp" else 0.5)


def head_drift(label: str, layer: int, head: int, metric: str) -> float:
    """(0, 0) tracks the ICL drop, (1, 1) the fact drop, others a fixed pattern."""
    scope, s = CONFIGS[label]
    if (layer, head) == (0, 0):
        base = drop(label, "icl")
    elif (layer, head) == (1, 1):
        base = drop(label, "fact_recall")
    else:
        base = 0.1 * (layer + 1) * (head + 1) * (1 if scope == "attn" else 2) * (1 - s)
    return base if metric == "js" else -base / 2


def drift_frame() -> pd.DataFrame:
    rows = []
    for label, (scope, s) in CONFIGS.items():
        for task, cat in TASKS.items():
            pairs = [("js", "all"), ("entropy", "all"), ("sink", "all")]
            if task == "open_book":
                pairs.append(("span_mass", "answer"))
            for metric, queries in pairs:
                for layer in (0, 1):
                    for head in (0, 1):
                        d = head_drift(label, layer, head, metric) * (1.0 if cat == "icl"
                                                                      else 0.5)
                        dense = 0.0 if metric == "js" else 0.5
                        rows.append({"config": label, "method": "magnitude",
                                     "structure": "unstructured", "allocation": "uniform",
                                     "scope": scope, "sparsity": s, "achieved_sparsity": s,
                                     "task": task, "kind": task, "category": cat,
                                     "layer": layer, "head": head, "metric": metric,
                                     "queries": queries, "dense": dense, "value": dense + d,
                                     "drift": d, "n": 20})
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))


def drops_frame() -> pd.DataFrame:
    return pd.DataFrame([{"config": c, "task": t, "category": cat, "metric": "em",
                          "relative_drop": drop(c, cat)}
                         for c in CONFIGS for t, cat in TASKS.items()])


def test_drift_heatmaps():
    drift = drift_frame()
    spec = chart_spec(fig_drift_heatmaps(drift))
    assert_snapshot("attention_drift_heatmaps", spec)
    rows = spec["vconcat"]
    assert len(rows) == 4
    assert [r["title"] for r in rows] == [
        "JS divergence to dense (bits), all queries", "change in normalised entropy, all queries",
        "change in first-token mass, all queries", "change in answer-span mass, answer position"]
    # columns by scope, then sparsity
    assert rows[0]["facet"]["column"]["sort"] == ["attn 30%", "attn 60%", "mlp 30%", "mlp 60%"]
    js = data_of(spec, rows[0])
    # the mean over the two tasks: the fact-recall prompts carry half the ICL drift
    row = js[(js.config == "attn 60%") & (js.layer == 0) & (js["head"] == 0)].iloc[0]
    assert row.drift == pytest.approx(0.6 * 0.75) and row.n_tasks == 2
    assert rows[0]["spec"]["encoding"]["color"]["scale"]["scheme"] == "blues"
    # signed changes on a scale symmetric about 0: entropy drift here is -drift_js / 2,
    # largest in magnitude for head (0, 0) at "attn 60%": (0.6 + 0.3) / 2 / 2
    ent_scale = rows[1]["spec"]["encoding"]["color"]["scale"]
    assert ent_scale["scheme"] == "blueorange"
    assert ent_scale["domain"] == pytest.approx([-0.225, 0.225])
    assert spec["resolve"]["scale"]["color"] == "independent"
    # one category, a subset of configurations
    spec = chart_spec(fig_drift_heatmaps(drift, [("js", "all")], category="fact_recall",
                                         configs=["mlp 30%"]))
    part = spec["vconcat"][0]
    d = data_of(spec, part if "data" in part else None)  # altair hoists a single dataset
    assert set(d.config) == {"mlp 30%"} and (d.n_tasks == 1).all()
    assert len(d) == 4


def test_drift_correlation():
    corr = drift_vs_drop(drift_frame(), drops_frame(), n_bootstrap=0)
    spec = chart_spec(fig_drift_correlation(corr))
    assert_snapshot("attention_drift_correlation", spec)
    d = data_of(spec)
    got = d.set_index(["ability", "layer", "head"])["r"]
    assert got[("in-context learning", 0, 0)] == pytest.approx(1.0)
    assert got[("fact recall", 1, 1)] == pytest.approx(1.0)
    assert spec["facet"]["column"]["sort"] == ["in-context learning", "fact recall"]
    assert spec["spec"]["layer"][0]["encoding"]["color"]["scale"]["domain"] == [-1, 1]
    assert "across 4 configurations (spearman)" in spec["title"]


def test_drift_scatter():
    drift, drops = drift_frame(), drops_frame()
    corr = drift_vs_drop(drift, drops, n_bootstrap=0)
    table = drift_drop_table(drift, drops)
    spec = chart_spec(fig_drift_scatter(table, corr, top=2))
    assert_snapshot("attention_drift_scatter", spec)
    d = data_of(spec)
    panels = spec["facet"]["sort"]
    assert len(panels) == 4 and panels[0].startswith("in-context learning: L0H0 (r = 1.00)")
    assert panels[2].startswith("fact recall: L1H1 (r = 1.00)")
    # every configuration is a point of every panel
    assert d.groupby("panel").size().tolist() == [4, 4, 4, 4]
    icl = d[d.panel == panels[0]].sort_values("drift")
    assert list(icl["drop"]) == pytest.approx(sorted(drop(c, "icl") for c in CONFIGS))


def test_bad_inputs():
    drift = drift_frame()
    with pytest.raises(ValueError, match="none of the metrics"):
        fig_drift_heatmaps(drift, [("induction", "repeat")])
    with pytest.raises(ValueError, match="no drift rows of category 'lm'"):
        fig_drift_heatmaps(drift, category="lm")
    with pytest.raises(ValueError, match=r"unknown configuration\(s\) \['x'\]"):
        fig_drift_heatmaps(drift, configs=["x"])
    with pytest.raises(ValueError, match="lacks column"):
        fig_drift_heatmaps(drift.drop(columns="drift"))
    corr = drift_vs_drop(drift, drops_frame(), n_bootstrap=0)
    with pytest.raises(ValueError, match="several methods"):
        fig_drift_correlation(pd.concat([corr, corr.assign(method="pearson")]))
    with pytest.raises(ValueError, match="top must be an int >= 1"):
        fig_drift_scatter(drift_drop_table(drift, drops_frame()), corr, top=0)
