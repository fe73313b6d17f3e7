"""drift_vs_drop on synthetic frames with known correlations; ranks, bootstrap, joins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from lenskit.analysis.attention import DRIFT_COLUMNS
from lenskit.analysis.attention_drop import (
    CORRELATION_COLUMNS,
    accuracy_drops,
    correlate,
    drift_drop_table,
    drift_vs_drop,
)
from lenskit.tasks import ROW_COLUMNS, EvalResult

SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SCOPES = ("attn", "mlp")


def configs():
    return [(f"mag {sc} {s:.0%}", sc, s) for sc in SCOPES for s in SPARSITIES]


def drops_by_config():
    """ICL drop grows with sparsity of attention pruning; fact-recall drop with FFW
    pruning (plus a small sparsity term so that nothing is constant)."""
    out = {}
    for label, scope, s in configs():
        icl = s * (1.0 if scope == "attn" else 0.2)
        fact = s * (1.0 if scope == "mlp" else 0.3) + 0.01 * (s * 10 % 3)
        out[label] = {"icl": icl, "fact_recall": fact}
    return out


def drift_frame(noise_seed: int = 0) -> pd.DataFrame:
    """Three heads: (0, 0) drifts like the ICL drop, (0, 1) like minus the fact drop, (1, 0)
    is noise; measured on one ICL and one fact-recall task (the same drift on both)."""
    rng = np.random.default_rng(noise_seed)
    drops = drops_by_config()
    rows = []
    for label, scope, s in configs():
        d = drops[label]
        heads = {(0, 0): d["icl"], (0, 1): -d["fact_recall"], (1, 0): float(rng.normal())}
        for task, category in (("open_book", "icl"), ("closed_book", "fact_recall")):
            for (layer, head), v in heads.items():
                rows.append({"config": label, "method": "magnitude", "structure": "unstructured",
                             "allocation": "uniform", "scope": scope, "sparsity": s,
                             "achieved_sparsity": s, "task": task,
                             "kind": task, "category": category, "layer": layer,
                             "head": head, "metric": "js", "queries": "all", "dense": 0.0,
                             "value": v, "drift": v, "n": 10})
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))


def drops_frame() -> pd.DataFrame:
    rows = []
    for label, d in drops_by_config().items():
        rows.append({"config": label, "task": "open_book", "kind": "open_book",
                     "category": "icl", "metric": "em", "relative_drop": d["icl"]})
        rows.append({"config": label, "task": "closed_book", "kind": "closed_book",
                     "category": "fact_recall", "metric": "em",
                     "relative_drop": d["fact_recall"]})
    return pd.DataFrame(rows)


def spearman_by_pandas(x, y) -> float:
    return float(np.corrcoef(pd.Series(x).rank(), pd.Series(y).rank())[0, 1])


def test_known_correlations():
    corr = drift_vs_drop(drift_frame(), drops_frame(), n_bootstrap=300)
    assert list(corr.columns) == list(CORRELATION_COLUMNS)
    assert list(dict.fromkeys(corr["category"])) == ["icl", "fact_recall"]
    icl = corr[corr.category == "icl"].set_index(["layer", "head"])
    fact = corr[corr.category == "fact_recall"].set_index(["layer", "head"])
    assert icl.loc[(0, 0), "r"] == pytest.approx(1.0)
    assert fact.loc[(0, 1), "r"] == pytest.approx(-1.0)
    # sorted by r descending within a category: the ICL head first for ICL
    assert tuple(corr[corr.category == "icl"].iloc[0][["layer", "head"]]) == (0, 0)
    assert (corr["n_configs"] == 16).all()
    d = drops_by_config()
    icl_drop = [d[c[0]]["icl"] for c in configs()]
    fact_drop = [d[c[0]]["fact_recall"] for c in configs()]
    head01 = [-v for v in fact_drop]
    # cross-head, cross-ability values against an independent computation
    assert icl.loc[(0, 1), "r"] == pytest.approx(spearman_by_pandas(head01, icl_drop))
    assert fact.loc[(0, 0), "r"] == pytest.approx(spearman_by_pandas(icl_drop, fact_drop))
    pear = drift_vs_drop(drift_frame(), drops_frame(), method="pearson", n_bootstrap=0)
    p_icl = pear[pear.category == "icl"].set_index(["layer", "head"])
    assert p_icl.loc[(0, 1), "r"] == pytest.approx(np.corrcoef(head01, icl_drop)[0, 1])
    assert p_icl["ci_low"].isna().all()  # no bootstrap, no interval
    # intervals hold the estimate; the perfect head's interval is degenerate at 1
    ok = corr.dropna(subset=["ci_low"])
    assert ((ok.ci_low <= ok.r + 1e-12) & (ok.r <= ok.ci_high + 1e-12)).all()
    assert icl.loc[(0, 0), "ci_low"] == pytest.approx(1.0)
    assert icl.loc[(0, 0), "mean_drift"] == pytest.approx(np.mean(icl_drop))
    # deterministic given the seed
    again = drift_vs_drop(drift_frame(), drops_frame(), n_bootstrap=300)
    pd.testing.assert_frame_equal(corr, again)


def test_sweep_results_join_and_table():
    # a sweep-style results table: no config label, the cell's columns instead
    res = []
    for label, scope, s in configs():
        d = drops_by_config()[label]
        for task, cat in (("open_book", "icl"), ("closed_book", "fact_recall")):
            for seed in (0, 1):  # seeds are averaged
                res.append({"model": "m", "method": "magnitude", "structure": "unstructured",
                            "allocation": "uniform", "scope": scope, "target_sparsity": s,
                            "seed": seed, "task": task, "category": cat, "metric": "em",
                            "relative_drop": d[cat] + (0.01 if seed else -0.01)})
            res.append({"model": "m", "method": "magnitude", "structure": "unstructured",
                        "allocation": "uniform", "scope": scope, "target_sparsity": s,
                        "seed": 0, "task": task, "category": cat, "metric": "logprob",
                        "relative_drop": 99.0})  # not the primary metric: ignored
    table = drift_drop_table(drift_frame(), pd.DataFrame(res))
    assert {"method", "structure", "allocation", "scope", "sparsity"} <= set(table.columns)
    row = table[(table.category == "icl") & (table.scope == "attn") & (table.sparsity == 0.5)
                & (table.layer == 0) & (table["head"] == 0)].iloc[0]
    assert row["drop"] == pytest.approx(0.5) and row["drift"] == pytest.approx(0.5)
    corr = drift_vs_drop(drift_frame(), pd.DataFrame(res), n_bootstrap=0)
    assert corr.set_index(["category", "layer", "head"]).loc[("icl", 0, 0), "r"] == 1.0
    with pytest.raises(ValueError, match="several models"):
        drift_drop_table(drift_frame(), pd.DataFrame(res).assign(
            model=["a", "b"] * (len(res) // 2)))


def test_match_category_uses_the_category_prompts():
    drift = drift_frame()
    # on the fact-recall prompts head (1, 0) now tracks the fact drop exactly
    d = drops_by_config()
    mask = (drift.category == "fact_recall") & (drift.layer == 1)
    drift.loc[mask, "drift"] = [d[c]["fact_recall"] for c in drift.loc[mask, "config"]]
    corr = drift_vs_drop(drift, drops_frame(), n_bootstrap=0).set_index(
        ["category", "layer", "head"])
    assert corr.loc[("fact_recall", 1, 0), "r"] == pytest.approx(1.0)
    assert abs(corr.loc[("icl", 1, 0), "r"]) < 0.9  # the ICL prompts' noise
    mixed = drift_vs_drop(drift, drops_frame(), n_bootstrap=0, match_category=False) \
        .set_index(["category", "layer", "head"])
    assert mixed.loc[("fact_recall", 1, 0), "r"] < 1.0


def test_ranks_and_correlate_edge_cases():
    # Spearman with ties is scipy's (average ranks) column by column
    x = np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 5.0], [3.0, 1.0], [0.5, 2.0]])
    y = np.array([2.0, 1.0, 1.0, 4.0, 0.0])
    r, _, _ = correlate(x, y, n_bootstrap=0)
    for j in range(2):
        assert r[j] == pytest.approx(scipy.stats.spearmanr(x[:, j], y).statistic, rel=1e-12)
    # a constant column has no correlation; too few configurations is an error
    r, lo, _ = correlate(np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]]),
                         np.array([1.0, 2.0, 3.0]), n_bootstrap=50)
    assert np.isnan(r[0]) and r[1] == pytest.approx(1.0) and np.isnan(lo[0])
    with pytest.raises(ValueError, match="at least 3 configurations, got 2"):
        correlate(np.ones((2, 1)), np.ones(2))
    with pytest.raises(ValueError, match="unknown correlation 'kendall'"):
        correlate(np.ones((3, 1)), np.ones(3), "kendall")
    with pytest.raises(ValueError, match="must be finite"):
        correlate(np.array([[1.0], [np.nan], [2.0]]), np.ones(3))


def _eval(values: dict[str, list[bool]]) -> EvalResult:
    rows = []
    for task, correct in values.items():
        kind = "closed_book" if task == "facts" else "open_book"
        cat = "fact_recall" if task == "facts" else "icl"
        for i, c in enumerate(correct):
            rows.append({"task": task, "kind": kind, "category": cat, "instance_id": f"{i}",
                         "prompt_tokens": 5, "prediction": "x", "gold": "x", "correct": c,
                         "logprob": -1.0, "scored_tokens": 1, "gold_rank": 1,
                         "first_token_correct": c, "memorised": pd.NA,
                         "generated_tokens": 1, "stopped": True})
    df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    for col in ("correct", "first_token_correct", "memorised", "stopped"):
        df[col] = df[col].astype("boolean")
    return EvalResult(rows=df, n_bootstrap=0)


def test_accuracy_drops_from_eval_results():
    dense = _eval({"facts": [True] * 4, "ctx": [True, True, False, False]})
    half = _eval({"facts": [True, True, False, False], "ctx": [True, False, False, False]})
    drops = accuracy_drops(dense, {"half": half})
    got = drops.set_index("task")
    assert got.loc["facts", "relative_drop"] == pytest.approx(0.5)
    assert got.loc["ctx", "relative_drop"] == pytest.approx(0.5)
    assert set(drops["metric"]) == {"em"} and set(drops["config"]) == {"half"}
    with pytest.raises(ValueError, match="non-empty dict label -> EvalResult"):
        accuracy_drops(dense, {})
    with pytest.raises(ValueError, match="has no metric 'perplexity'"):
        accuracy_drops(dense, {"half": half}, metric="perplexity")


def test_bad_inputs():
    with pytest.raises(ValueError, match="lacks column"):
        drift_vs_drop(pd.DataFrame({"x": [1]}), drops_frame())
    with pytest.raises(ValueError, match="no drift rows for metric 'sink'"):
        drift_vs_drop(drift_frame(), drops_frame(), metric="sink")
    with pytest.raises(ValueError, match="category 'lm' is not in the results"):
        drift_vs_drop(drift_frame(), drops_frame(), categories=("icl", "lm"))
    with pytest.raises(ValueError, match="no configuration of the drift matches"):
        drift_vs_drop(drift_frame(), drops_frame().assign(config="other"))
    with pytest.raises(ValueError, match="results lacks column"):
        drift_vs_drop(drift_frame(), pd.DataFrame({"config": ["a"]}))


def test_partial_correlation_controls_for_sparsity():
    """Both heads drift with sparsity; only head (0, 0) also carries the drop's own part."""
    rng = np.random.default_rng(5)
    labels = [f"c{i}" for i in range(12)]
    sparsity = np.repeat([0.2, 0.4, 0.6, 0.8], 3)
    own = rng.normal(size=12)
    noise = rng.normal(size=12)
    drop = 2 * sparsity + 0.1 * own
    drift_rows, drop_rows = [], []
    for i, c in enumerate(labels):
        for (layer, head), v in {(0, 0): sparsity[i] + 0.1 * own[i],
                                 (0, 1): sparsity[i] + 0.1 * noise[i]}.items():
            drift_rows.append({"config": c, "method": "m", "structure": "u", "allocation": "u",
                               "scope": "all", "sparsity": sparsity[i],
                               "achieved_sparsity": sparsity[i], "task": "t", "kind": "open_book",
                               "category": "icl", "layer": layer, "head": head,
                               "metric": "js", "queries": "all", "dense": 0.0, "value": v,
                               "drift": v, "n": 1})
        drop_rows.append({"config": c, "task": "t", "category": "icl", "metric": "em",
                          "relative_drop": drop[i]})
    drift = pd.DataFrame(drift_rows, columns=list(DRIFT_COLUMNS))
    drops = pd.DataFrame(drop_rows)
    plain = drift_vs_drop(drift, drops, categories=("icl",), method="pearson",
                          n_bootstrap=0).set_index("head")
    part = drift_vs_drop(drift, drops, categories=("icl",), method="pearson",
                         control="achieved_sparsity", n_bootstrap=200).set_index("head")
    assert part.loc[0, "r"] == pytest.approx(1.0)
    # by hand: residuals of each on sparsity (least squares), then Pearson
    def resid(v):
        return v - np.polyval(np.polyfit(sparsity, v, 1), sparsity)
    hand = np.corrcoef(resid(sparsity + 0.1 * noise), resid(drop))[0, 1]
    assert part.loc[1, "r"] == pytest.approx(hand)
    assert abs(part.loc[1, "r"]) < 0.7 < plain.loc[1, "r"]  # sparsity made it look good
    assert set(part["method"]) == {"pearson | achieved_sparsity"}
    spear = drift_vs_drop(drift, drops, categories=("icl",), control="sparsity",
                          n_bootstrap=0).set_index("head")
    assert spear.loc[0, "r"] > 0.9
    with pytest.raises(ValueError, match="control must be a numeric configuration column"):
        drift_vs_drop(drift, drops, categories=("icl",), control="task")
