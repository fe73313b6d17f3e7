"""Thresholds on hand-made frames: every expected number is worked out by hand below."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lenskit.results import (
    STUDY_THRESHOLDS,
    compare_to_study,
    compute_thresholds,
    format_study_comparison,
    format_thresholds,
    threshold_from_curve,
)
from lenskit.results.schema import relative_drop
from lenskit.results.thresholds import RULES

from .frames import curve, frame


def one(thr: pd.DataFrame, tol: float, **keys) -> pd.Series:
    sel = np.isclose(thr["tolerance"], tol)
    for k, v in keys.items():
        sel &= thr[k] == v
    assert sel.sum() == 1, thr[sel]
    return thr[sel].iloc[0]


def test_monotone_curve_each_tolerance():
    # baseline 0.80; drops: 0.1 -> 0, 0.2 -> 0.0125, 0.3 -> 0.0375, 0.4 -> 0.075, 0.5 -> 0.25
    df = frame(curve(0.80, {0.1: 0.80, 0.2: 0.79, 0.3: 0.77, 0.4: 0.74, 0.5: 0.60}))
    thr = compute_thresholds(df)
    assert one(thr, 0.02)["threshold"] == pytest.approx(0.2)
    assert one(thr, 0.05)["threshold"] == pytest.approx(0.3)
    assert one(thr, 0.10)["threshold"] == pytest.approx(0.4)
    r = one(thr, 0.05)
    assert not r["censored"] and r["n_sparsities"] == 5 and r["max_sparsity"] == 0.5
    assert r["ci_method"] == "none" and np.isnan(r["ci_low"])
    assert (r["kind"], r["category"], r["metric"]) == ("closed_book", "fact_recall", "em")


def test_non_monotone_first_crossing_vs_largest_within():
    # drops: 0.1 -> 0, 0.2 -> 0.125 (crosses 5%), 0.3 -> 0.0125, 0.4 -> 0.025
    df = frame(curve(0.80, {0.1: 0.80, 0.2: 0.70, 0.3: 0.79, 0.4: 0.78}))
    first = one(compute_thresholds(df), 0.05)
    assert first["threshold"] == pytest.approx(0.1) and not first["censored"]
    last = one(compute_thresholds(df, rule="largest_within"), 0.05)
    # the highest level is within 5% again, so the curve is censored at the top
    assert last["threshold"] == pytest.approx(0.4) and last["censored"]
    assert threshold_from_curve([0.4, 0.1, 0.3, 0.2], [0.025, 0, 0.0125, 0.125], 0.05) \
        == (pytest.approx(0.1), False)


def test_tie_at_tolerance_is_within():
    # (1.0 - 0.95) / 1.0 is 0.05000000000000004 in floating point: still within 5%
    df = frame(curve(1.0, {0.2: 0.95, 0.4: 0.949}))
    assert one(compute_thresholds(df), 0.05)["threshold"] == pytest.approx(0.2)


def test_dense_point_when_first_level_already_breaks():
    df = frame(curve(0.5, {0.1: 0.40, 0.2: 0.30}))  # drop 0.2 at the first level
    r = one(compute_thresholds(df), 0.10)
    assert r["threshold"] == 0.0 and not r["censored"]


def test_missing_levels_and_censoring():
    # tested 0.1, 0.3, 0.6 only: within up to 0.3, broken at 0.6 -> 0.3 (0.4, 0.5 unknown)
    df = frame(curve(0.6, {0.6: 0.3, 0.1: 0.6, 0.3: 0.59}))
    assert one(compute_thresholds(df), 0.05)["threshold"] == pytest.approx(0.3)
    # everything within -> the highest tested level, censored
    df = frame(curve(0.6, {0.1: 0.6, 0.3: 0.59}))
    r = one(compute_thresholds(df), 0.05)
    assert r["threshold"] == pytest.approx(0.3) and r["censored"]


def test_lower_is_better_metric():
    # perplexity 10 -> 10.1 (+1%), 10.6 (+6%), 13 (+30%)
    df = frame(curve(10.0, {0.1: 10.1, 0.2: 10.6, 0.3: 13.0}, metric="perplexity",
                     kind="perplexity", task="ppl"))
    thr = compute_thresholds(df)
    assert one(thr, 0.05)["threshold"] == pytest.approx(0.1)
    assert one(thr, 0.10)["threshold"] == pytest.approx(0.2)
    assert relative_drop(10.6, 10.0, "perplexity") == pytest.approx(0.06)
    assert relative_drop(0.7, 0.8, "em") == pytest.approx(0.125)
    assert relative_drop(-3.0, -2.0, "logprob") == pytest.approx(0.5)  # less likely = worse


def test_seeds_are_averaged_before_the_drop():
    # seed 0: dense 0.8, s=0.2 -> 0.8; seed 1: dense 0.6, s=0.2 -> 0.5
    # mean value 0.65 vs mean baseline 0.70 -> drop 0.0714: beyond 5%, within 10%
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.8}, seed=0), curve(0.6, {0.1: 0.6, 0.2: 0.5}, seed=1))
    thr = compute_thresholds(df)
    assert one(thr, 0.05)["threshold"] == pytest.approx(0.1)
    assert one(thr, 0.10)["threshold"] == pytest.approx(0.2)
    assert one(thr, 0.10)["n_seeds"] == 2


def test_groups_are_separate_curves():
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.6}, scope="attn"),
               curve(0.8, {0.1: 0.8, 0.2: 0.8}, scope="mlp"),
               curve(0.5, {0.1: 0.2, 0.2: 0.1}, scope="mlp", task="u", kind="open_book"))
    thr = compute_thresholds(df, tolerances=[0.05])
    assert len(thr) == 3
    assert one(thr, 0.05, scope="attn")["threshold"] == pytest.approx(0.1)
    assert one(thr, 0.05, scope="mlp", task="t")["threshold"] == pytest.approx(0.2)
    assert one(thr, 0.05, scope="mlp", task="u")["threshold"] == 0.0
    assert one(thr, 0.05, task="u")["category"] == "icl"


def test_ci_bounds_bracket():
    # baseline 0.80. level: value [ci_low, ci_high] -> drops at value / ci_low / ci_high
    # 0.1: 0.80 [0.78, 0.82] -> 0     / 0.025 / -0.025
    # 0.2: 0.78 [0.75, 0.81] -> 0.025 / 0.0625 / -0.0125
    # 0.3: 0.74 [0.70, 0.77] -> 0.075 / 0.125 / 0.0375
    # 0.4: 0.60 [0.55, 0.65] -> 0.25  / ...   / 0.1875
    # tol 5%: point 0.2, pessimistic 0.1, optimistic 0.3
    rows = curve(0.80, {})
    from .frames import make_row
    for s, v, lo, hi in [(0.1, 0.80, 0.78, 0.82), (0.2, 0.78, 0.75, 0.81),
                         (0.3, 0.74, 0.70, 0.77), (0.4, 0.60, 0.55, 0.65)]:
        rows.append(make_row(value=v, sparsity=s, ci=(lo, hi)))
    r = one(compute_thresholds(frame(rows)), 0.05)
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == pytest.approx((0.2, 0.1, 0.3))
    assert r["ci_method"] == "ci_bounds"


def _instances(df: pd.DataFrame, values: dict, metric: str = "em", weights=None) -> pd.DataFrame:
    """values: sparsity (0 = dense) -> per-instance values."""
    rows = []
    for _, r in df.iterrows():
        s = 0.0 if r["method"] == "dense" else round(r["target_sparsity"], 6)
        for i, v in enumerate(values[s]):
            rows.append({"cell_id": r["cell_id"], "task": r["task"], "metric": metric,
                         "instance_id": i, "value": v,
                         "weight": 1.0 if weights is None else weights[i]})
    return pd.DataFrame(rows)


def test_bootstrap_ci_by_hand():
    # 10 instances. dense: all right. 0.1: all right (drop 0 in every resample).
    # 0.2: one wrong -> resampled drop = (# draws of the wrong one) / 10, <= 5% only when
    # it is never drawn: P = 0.9**10 = 0.349. 0.3: all wrong (always broken).
    # Threshold per resample: 0.2 w.p. 0.349, else 0.1 -> 95% CI [0.1, 0.2]; point 0.1.
    values = {0.0: [1] * 10, 0.1: [1] * 10, 0.2: [1] * 9 + [0], 0.3: [0] * 10}
    df = frame(curve(1.0, {0.1: 1.0, 0.2: 0.9, 0.3: 0.0}))
    thr = compute_thresholds(df, _instances(df, values), tolerances=[0.05], n_boot=2000)
    r = one(thr, 0.05)
    assert r["ci_method"] == "bootstrap"
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == pytest.approx((0.1, 0.1, 0.2))
    # at 10% the wrong instance may be drawn once (0.9**10 + 10 * 0.1 * 0.9**9 = 0.736)
    r = one(compute_thresholds(df, _instances(df, values), tolerances=[0.10]), 0.10)
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == pytest.approx((0.2, 0.1, 0.2))
    # deterministic given the seed
    again = compute_thresholds(df, _instances(df, values), tolerances=[0.05], n_boot=2000)
    pd.testing.assert_frame_equal(thr, again)


def test_bootstrap_is_paired():
    # The pruned model answers exactly like the dense one at 0.1 (half right), so every
    # paired resample has drop 0 there; unpaired resampling would often exceed 2%.
    values = {0.0: [1, 0] * 10, 0.1: [1, 0] * 10, 0.2: [0] * 20}
    df = frame(curve(0.5, {0.1: 0.5, 0.2: 0.0}))
    r = one(compute_thresholds(df, _instances(df, values), tolerances=[0.02]), 0.02)
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == (0.1, 0.1, 0.1)


def test_bootstrap_perplexity_weighted():
    # windows' mean NLL with token weights; level 0.1 equals dense, level 0.2 is far worse
    nll = [2.0, 2.5, 3.0]
    w = [10.0, 20.0, 30.0]
    ppl = float(np.exp(np.average(nll, weights=w)))
    values = {0.0: nll, 0.1: nll, 0.2: [x + 1 for x in nll]}
    df = frame(curve(ppl, {0.1: ppl, 0.2: ppl * np.e}, metric="perplexity",
                     kind="perplexity", task="ppl"))
    r = one(compute_thresholds(df, _instances(df, values, "perplexity", w),
                               tolerances=[0.05]), 0.05)
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == (0.1, 0.1, 0.1)


def test_bad_arguments():
    df = frame(curve(0.8, {0.1: 0.8}))
    with pytest.raises(ValueError, match="unknown rule 'best'"):
        compute_thresholds(df, rule="best")
    with pytest.raises(ValueError, match="tolerances"):
        compute_thresholds(df, tolerances=[-0.1])
    with pytest.raises(ValueError, match=r"metric\(s\) \['acc'\] not in results"):
        compute_thresholds(df, metrics=["acc"])
    no_dense = df[df["method"] != "dense"]
    # without dense rows the stored baseline column is used
    assert one(compute_thresholds(no_dense), 0.05)["threshold"] == pytest.approx(0.1)


def test_format_thresholds_table():
    df = frame(
        curve(0.8, {0.1: 0.8, 0.2: 0.79, 0.3: 0.5}, scope="all", task="capitals"),
        curve(0.8, {0.1: 0.8, 0.2: 0.5, 0.3: 0.5}, scope="attn", task="capitals"),
        curve(0.6, {0.1: 0.6, 0.2: 0.6, 0.3: 0.6}, scope="all", task="copy",
              kind="open_book"),
        curve(0.8, {0.1: 0.8, 0.2: 0.79, 0.3: 0.5}, scope="all", task="capitals",
              metric="logprob"),
    )
    text = format_thresholds(compute_thresholds(df))
    lines = text.splitlines()
    assert "m · wanda · unstructured · uniform" in lines[0] and "5%" in lines[0]
    header = lines[2].split()
    assert header[-2:] == ["all", "attn"]
    # fact recall rows come before in-context rows; primary metric em is shown
    fact, icl = text.index("fact recall"), text.index("in-context")
    assert fact < text.index("capitals (em)") < icl < text.index("copy (em)")
    cap = next(line for line in lines if "capitals" in line).split()
    assert cap[-2:] == ["20%", "10%"]
    # every level within: said in words, no degenerate interval
    copy = next(line for line in lines if "copy" in line)
    assert "≥30% (all levels within 5%)" in copy and copy.split()[-1] == "-"
    assert "logprob" not in text
    failing = frame(curve(0.8, {0.1: 0.5, 0.2: 0.5}, scope="all", task="capitals"))
    assert "0% (fails at lowest level)" in format_thresholds(compute_thresholds(failing))
    assert "logprob" not in text


def _study_frame() -> pd.DataFrame:
    return frame(
        curve(0.8, {0.1: 0.8, 0.2: 0.8, 0.3: 0.78, 0.4: 0.6}, task="capital_closed"),
        curve(0.8, {0.1: 0.8, 0.2: 0.6, 0.3: 0.6, 0.4: 0.6}, task="capital_closed",
              model="m2"),
        curve(0.9, {0.1: 0.9, 0.2: 0.9, 0.3: 0.9, 0.4: 0.9}, task="fn_linear", kind="function"),
        curve(0.9, {0.1: 0.9, 0.2: 0.9, 0.3: 0.5, 0.4: 0.5}, task="fn_tree", kind="function"),
        curve(0.9, {0.1: 0.9, 0.2: 0.9, 0.3: 0.5, 0.4: 0.5}, task="fn_tree", kind="function",
              scope="attn"),
    )


def test_compare_to_study():
    cmp = compare_to_study(compute_thresholds(_study_frame()))
    assert list(cmp["group"]) == list(dict.fromkeys(STUDY_THRESHOLDS["group"]))
    closed = cmp[cmp["group"] == "closed-book QA"].iloc[0]
    # m: 0.3, m2: 0.1 -> mean 0.2 over 2 thresholds; study 30-40%
    assert closed["measured"] == pytest.approx(0.2) and closed["n"] == 2
    assert (closed["measured_min"], closed["measured_max"]) == pytest.approx((0.1, 0.3))
    assert (closed["study_low"], closed["study_high"]) == (0.3, 0.4)
    assert "TriviaQA 30%" in closed["study"] and "WebQuestions 40%" in closed["study"]
    lin = cmp[cmp["group"] == "function: linear"].iloc[0]
    assert lin["measured"] == pytest.approx(0.4) and lin["censored"]
    tree = cmp[cmp["group"] == "function: decision tree"].iloc[0]
    assert tree["measured"] == pytest.approx(0.2) and tree["n"] == 1  # scope "all" only
    assert tree["study_low"] == 0.7
    missing = cmp[cmp["group"] == "overriding QA"].iloc[0]
    assert pd.isna(missing["method"]) and np.isnan(missing["measured"])
    text = format_study_comparison(cmp)
    assert "not measured" in text and "≥40%" in text


def test_empty_results_give_empty_thresholds():
    df = frame(curve(0.8, {}))
    thr = compute_thresholds(df)
    assert len(thr) == 0
    assert "no thresholds" in format_thresholds(thr)
    assert compare_to_study(thr)["measured"].isna().all()


def test_real_evaluation_rows_instances_and_bootstrap(tiny_dirs, tmp_path):
    """A dense + magnitude-pruned tiny Llama evaluated by the task suite: rows and instance
    tables built from the suite's output agree with its aggregates, go through the store,
    and give bootstrap thresholds."""
    import torch

    from lenskit.models import load_model, model_info, pruned
    from lenskit.results import instances_from_eval
    from lenskit.results.schema import aggregate
    from lenskit.rundir import RunStore
    from lenskit.sweep import SweepConfig
    from lenskit.tasks import default_suite, evaluate_suite

    torch.set_num_threads(1)
    model = load_model(tiny_dirs["llama"])
    info = model_info(model)
    suite = default_suite(model, "small", 0)
    names = ["countries_capital_closed_book", "countries_capital_overriding",
             "fn_linear_d4_n32_k2", "perplexity"]
    cfg = SweepConfig(models=[str(tiny_dirs["llama"])], methods=["magnitude"],
                      sparsities=[0.5, 0.9], scopes=["all"], matched=False, tasks=names)
    tasks = cfg.select_tasks(suite)
    assert list(tasks) == names
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        cfg.with_overrides({"tasks": "nope"}).select_tasks(suite)
    counts = {s: info.select(s).n_params for s in cfg.scopes_needed()}
    with RunStore.open(tmp_path / "run", cfg) as store:
        for cell in cfg.cells():
            masks = {}
            for site in info.select(cell.scope):
                w = site.weight().abs().flatten()
                k = round(cell.resolve_sparsity(counts) * w.numel())
                keep = torch.ones_like(w, dtype=torch.bool)
                keep[torch.argsort(w, stable=True)[:k]] = False
                masks[site.name] = keep.reshape(site.shape)
            with pruned(model, masks):
                res = evaluate_suite(model, tasks, batch_size=64, n_bootstrap=50)
            removed = sum(int((~m).sum()) for m in masks.values())
            summary = res.summary()
            rows = cell.to_rows(summary, scope_params=counts, params_removed=removed)
            inst = instances_from_eval(res.rows, cell.cell_id)
            # every aggregate of the suite is the (weighted) mean of our instance values
            for _, s in summary.iterrows():
                sub = inst[(inst.task == s.task) & (inst.metric == s.metric)]
                agg = aggregate(sub["value"].to_numpy(), sub["weight"].to_numpy(), s.metric)
                assert agg == pytest.approx(s.value, rel=1e-9, abs=1e-12), (s.task, s.metric)
            store.write_cell(cell.cell_id, rows, instances=inst)
    results = RunStore(tmp_path / "run").results()
    dense = results[results.method == "dense"]
    assert (dense.remaining_params == counts["all"]).all()
    pruned_rows = results[results.method == "magnitude"]
    assert sorted(set(pruned_rows.achieved_sparsity.round(3))) == [0.5, 0.9]
    thr = compute_thresholds(results, RunStore(tmp_path / "run").instances(), n_boot=200)
    assert set(thr.ci_method) == {"bootstrap"}
    assert set(thr.task) == set(names)
    assert set(thr.threshold) <= {0.0, 0.5, 0.9}
    assert set(thr.ci_low) <= {0.0, 0.5, 0.9} and (thr.ci_low <= thr.ci_high).all()


def test_baselines_are_attached_once_and_read_back_as_written():
    from lenskit.results import attach_baselines, with_baselines

    rows = pd.DataFrame(curve(0.8, {0.2: 0.6, 0.5: 0.4}) + curve(0.5, {0.2: 0.5}, task="u"))
    assert rows["baseline"].isna().all()
    attached = with_baselines(rows)  # no baseline yet: taken from the dense rows
    assert list(attached["baseline"]) == [0.8, 0.8, 0.8, 0.5, 0.5]
    assert attached["relative_drop"].tolist() == pytest.approx([0.0, 0.25, 0.5, 0.0, 0.0])
    assert with_baselines(attached) is attached  # rows as a sweep writes them: unchanged
    no_dense = attached[attached["method"] != "dense"]
    assert with_baselines(no_dense) is no_dense
    # thresholds read the same baselines whether the rows carry them or not
    a = compute_thresholds(rows, tolerances=[0.3])
    b = compute_thresholds(attach_baselines(rows), tolerances=[0.3])
    pd.testing.assert_frame_equal(a, b)


def test_format_thresholds_exact_text():
    """The whole table, worked out by hand from the format's rules: scopes in the order
    all, attn, mlp; categories fact recall before in-context; a CI shown as [lo-hi] unless a
    censored or zero threshold's CI collapses onto one value; "-" where not measured."""
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.79, 0.3: 0.5}, scope="all", task="capitals"),
               curve(0.8, {0.1: 0.8, 0.2: 0.5, 0.3: 0.5}, scope="mlp", task="capitals"),
               curve(0.6, {0.1: 0.6, 0.2: 0.6, 0.3: 0.6}, scope="all", task="copy",
                     kind="open_book"),
               curve(0.6, {0.1: 0.3, 0.2: 0.3}, scope="attn", task="copy", kind="open_book"))
    thr = compute_thresholds(df, tolerances=[0.05])
    # CIs set by hand: capitals/all 20% [10-30]; capitals/mlp 10% [0-20]; copy/all censored
    # 30% with a CI collapsed onto 30 (not shown); copy/attn 0% with CI 0-10 (shown).
    cis = {("all", "capitals"): (0.1, 0.3), ("mlp", "capitals"): (0.0, 0.2),
           ("all", "copy"): (0.3, 0.3), ("attn", "copy"): (0.0, 0.1)}
    thr["ci_low"] = [cis[(s, t)][0] for s, t in zip(thr["scope"], thr["task"], strict=True)]
    thr["ci_high"] = [cis[(s, t)][1] for s, t in zip(thr["scope"], thr["task"], strict=True)]
    thr["ci_method"] = "bootstrap"
    got = format_thresholds(thr, tolerance=0.05, at_chance=["copy"])
    assert got.splitlines()[:2] == [
        "Largest sparsity with <= 5% relative drop from dense: m · wanda · unstructured · "
        "uniform", "[CI: bootstrap]"]
    rows = [line.split("  ") for line in got.splitlines()[2:]]
    cells = [[c.strip() for c in r if c.strip()] for r in rows]
    assert cells == [
        ["task (metric)", "all", "attn", "mlp"],
        [c for c in got.splitlines()[3].split("  ") if c],
        ["fact recall"],
        ["capitals (em)", "20% [10-30]", "-", "10% [0-20]"],
        ["in-context"],
        ["copy (em) [dense at chance]", "≥30% (all levels within 5%)",
         "0% (fails at lowest level) [0-10]", "-"],
    ]
    # the rule line is as wide as each column
    widths = [len(c) for c in got.splitlines()[3].split("  ")]
    assert all(len(line.rstrip()) <= sum(widths) + 2 * (len(widths) - 1)
               for line in got.splitlines()[2:])
    assert all(set(c) == {"-"} for c in got.splitlines()[3].split("  "))
    # without CIs: no brackets and "[no CI]"; the metric can be chosen
    plain = compute_thresholds(df, tolerances=[0.05])
    text = format_thresholds(plain, tolerance=0.05)
    assert text.splitlines()[1] == "[no CI]" and "[" not in "".join(text.splitlines()[2:])
    assert "capitals (em)" in format_thresholds(plain, tolerance=0.05, metric="em")
    assert format_thresholds(plain, tolerance=0.05, metric="logprob").count("(em)") == 0
    with pytest.raises(ValueError) as err:
        format_thresholds(plain, tolerance=0.1)
    assert str(err.value) == "no thresholds at tolerance 0.1; present: [0.05]"
    assert format_thresholds(plain.iloc[:0]) == "no thresholds (no pruned cells in the results)"


def test_threshold_from_curve_edges_and_messages():
    assert threshold_from_curve([], [], 0.05) == (0.0, True)
    # every level within: the highest, censored (both rules)
    for rule in ("first_crossing", "largest_within"):
        assert threshold_from_curve([0.2, 0.1], [0.01, 0.0], 0.05, rule) == (0.2, True)
    # tolerance 0 is allowed: only no drop at all is within
    assert threshold_from_curve([0.1, 0.2], [0.0, 0.001], 0.0) == (0.1, False)
    # a NaN drop counts as beyond the tolerance
    assert threshold_from_curve([0.1, 0.2], [0.0, float("nan")], 0.05) == (0.1, False)
    for args, message in [
        (([0.1], [0.0], 0.05, "median"),
         "unknown rule 'median'; allowed: first_crossing, largest_within"),
        (([0.1, 0.2], [0.0], 0.05), "2 sparsities but 1 drops"),
        (([0.1], [0.0], -0.01), "tolerance must be >= 0, got -0.01"),
    ]:
        with pytest.raises(ValueError) as err:
            threshold_from_curve(*args)
        assert str(err.value) == message


def test_bootstrap_cis_are_seeded_per_curve():
    base = frame(curve(0.8, {0.1: 0.78, 0.2: 0.74, 0.3: 0.6}, task="a"))
    both = frame(curve(0.8, {0.1: 0.78, 0.2: 0.74, 0.3: 0.6}, task="a"),
                 curve(0.8, {0.1: 0.78, 0.2: 0.74, 0.3: 0.6}, task="b"))
    rng = np.random.default_rng(0)
    per = {s: (rng.random(120) < v).astype(float)
           for s, v in {0.0: 0.8, 0.1: 0.78, 0.2: 0.74, 0.3: 0.6}.items()}
    inst_a, inst_both = _instances(base, per), _instances(both, per)

    def ci(thr, task="a"):
        r = one(thr[thr["task"] == task], 0.05)
        return r["ci_low"], r["ci_high"], r["ci_method"]

    a = ci(compute_thresholds(base, inst_a, n_boot=200))
    assert a[2] == "bootstrap"
    assert a == ci(compute_thresholds(base, inst_a, n_boot=200))  # reproducible
    # a curve's CI does not depend on which other curves are present
    with_b = compute_thresholds(both, inst_both, n_boot=200)
    assert ci(with_b) == a
    # the seed matters (the CI is in tested levels, so some seeds agree by chance)
    draws = [compute_thresholds(base, inst_a, n_boot=200, seed=s) for s in range(6)]
    assert len({ci(d)[:2] for d in draws}) > 1


def test_primary_metric_and_rows():
    from lenskit.results.thresholds import PRIMARY_METRICS, primary_metric, primary_rows

    assert primary_metric(["logprob", "em", "mrr"]) == "em"
    assert primary_metric(["zeta", "alpha", "zeta"]) == "zeta"  # none listed: the first given
    assert primary_metric([]) is None
    assert primary_metric(list(reversed(PRIMARY_METRICS))) == PRIMARY_METRICS[0]
    thr = pd.DataFrame({"task": ["a", "a", "b", "b"], "metric": ["logprob", "em", "zeta", "eta"]})
    assert primary_rows(thr, None).to_dict("list") == {"task": ["a", "b"],
                                                       "metric": ["em", "zeta"]}
    assert primary_rows(thr, "logprob").to_dict("list") == {"task": ["a"],
                                                            "metric": ["logprob"]}


def test_bootstrap_uses_the_instances_every_level_shares_and_says_why_not(caplog):
    df = frame(curve(0.8, {0.1: 0.78, 0.2: 0.74, 0.3: 0.6}, task="a"))
    rng = np.random.default_rng(1)
    per = {s: (rng.random(80) < v).astype(float)
           for s, v in {0.0: 0.8, 0.1: 0.78, 0.2: 0.74, 0.3: 0.6}.items()}
    inst = _instances(df, per)
    ci = [tuple(one(compute_thresholds(df, inst, n_boot=200, seed=s), 0.05)[
        ["ci_low", "ci_high"]]) for s in range(6)]
    assert ci == [tuple(one(compute_thresholds(df, inst, n_boot=200, seed=s), 0.05)[
        ["ci_low", "ci_high"]]) for s in range(6)]  # the same seeds, the same intervals
    # Extra instances that some level lacks are left out: the CI equals that of the
    # instances every level shares.
    levels = inst["cell_id"].unique()
    extra = pd.concat([inst[inst["cell_id"] != levels[2]].assign(
        instance_id=lambda d: d["instance_id"] + 1000)])
    padded = pd.concat([inst, extra], ignore_index=True)
    for s in range(3):
        got = one(compute_thresholds(df, padded, n_boot=200, seed=s), 0.05)
        assert tuple(got[["ci_low", "ci_high"]]) == ci[s] and got["ci_method"] == "bootstrap"
    # Missing instance rows, or no instance shared by every level: no bootstrap, said so.
    key = "'model': 'm'"
    with caplog.at_level("INFO", logger="lenskit.results.thresholds"):
        r = one(compute_thresholds(df, inst[inst["cell_id"] != levels[1]], n_boot=50), 0.05)
        assert r["ci_method"] != "bootstrap"
        assert any(m.startswith("no bootstrap for {") and key in m
                   and m.endswith("instance rows missing") for m in caplog.messages)
        caplog.clear()
        disjoint = inst.assign(instance_id=inst["instance_id"]
                               + 1000 * (inst["cell_id"] == levels[1]))
        r = one(compute_thresholds(df, disjoint, n_boot=50), 0.05)
        assert r["ci_method"] != "bootstrap"
        assert any(key in m and m.endswith("no instance shared by every level")
                   for m in caplog.messages)
        caplog.clear()
        no_dense = inst[inst["cell_id"] != levels[0]]
        one(compute_thresholds(df, no_dense, n_boot=50), 0.05)
        assert any(key in m and m.endswith("instance rows missing") for m in caplog.messages)


def test_format_thresholds_blocks_matched_note_and_unknown_categories():
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.79, 0.3: 0.5}, scope="all", task="capitals"),
               curve(0.6, {0.1: 0.6, 0.2: 0.3}, scope="all", task="copy", kind="open_book"))
    thr = compute_thresholds(df, tolerances=[0.05])
    matched = thr.assign(allocation="matched")
    matched.loc[matched["task"] == "copy", "category"] = "zz_other"  # not a known category
    blocks = format_thresholds(pd.concat([thr, matched]), tolerance=0.05).split("\n\n")
    assert len(blocks) == 2  # one block per model, method, structure and allocation
    assert blocks[0].splitlines()[:2] == [
        "Largest sparsity with <= 5% relative drop from dense: m · wanda · unstructured · "
        "uniform", "[no CI]"]
    assert blocks[1].splitlines()[:2] == [
        "Largest sparsity with <= 5% relative drop from dense: m · wanda · unstructured · "
        "matched", "[no CI] matched: each scope is pruned to remove as many weights as its "
        "reference scope; % are fractions of the scope shown"]
    labels = [line.strip() for line in blocks[1].splitlines()[4:] if not line.startswith("  ")]
    assert labels == ["fact recall", "zz_other"]  # an unknown category is shown by its name


def test_bootstrap_needs_every_level_in_every_seed_and_says_so(caplog):
    # seed 1 lacks the 0.2 level: no bootstrap (and no crash), the reason logged
    df = frame(curve(0.8, {0.1: 0.78, 0.2: 0.74}, task="a", seed=0),
               curve(0.8, {0.1: 0.78}, task="a", seed=1))
    per = {0.0: [1.0] * 8 + [0.0] * 2, 0.1: [1.0] * 8 + [0.0] * 2, 0.2: [1.0] * 7 + [0.0] * 3}
    with caplog.at_level("INFO", logger="lenskit.results.thresholds"):
        r = one(compute_thresholds(df, _instances(df, per), n_boot=50), 0.05)
    assert r["ci_method"] != "bootstrap"
    said = [m for m in caplog.messages if m.startswith("no bootstrap for {")]
    assert len(said) == 1 and "'task': 'a'" in said[0]
    assert said[0].endswith(": dense cell or levels missing for seed 1")


def test_threshold_cells_show_their_intervals_by_the_rules():
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.79, 0.3: 0.5}, scope="all", task="capitals"),
               curve(0.8, {0.9: 0.8, 0.95: 0.2}, scope="mlp", task="capitals"))
    thr = compute_thresholds(df, tolerances=[0.05])  # all: 20%; mlp: 90%
    cells = {("all", 0.2, 0.2): "20% [20-20]",  # a collapsed CI of a crossing: shown
             ("all", 0.2, float("nan")): "20%",  # half an interval: none shown
             ("mlp", 0.9, 0.95): "90% [90-95]"}  # 0.9 -> "90", not rounded up
    for (scope, lo, hi), text in cells.items():
        t = thr.copy()
        sel = t["scope"] == scope
        t.loc[sel, ["ci_low", "ci_high"]] = [lo, hi]
        t["ci_method"] = ["bootstrap", "wilson"] * (len(t) // 2)  # two methods in one block
        got = format_thresholds(t, tolerance=0.05)
        assert got.splitlines()[1] == "[CI: bootstrap, wilson]"
        row = [c for c in got.splitlines()[5].strip().split("  ") if c]
        assert row[1 if scope == "all" else 2] == text, (text, got)
    zero = frame(curve(0.8, {0.1: 0.5}, scope="all", task="capitals"))
    t = compute_thresholds(zero, tolerances=[0.05]).assign(ci_low=0.0, ci_high=0.0,
                                                             ci_method="bootstrap")
    assert format_thresholds(t, tolerance=0.05).splitlines()[5].endswith(
        "0% (fails at lowest level)")  # a zero threshold's collapsed CI is not shown


def test_chance_level_without_a_recorded_level_is_none():
    from lenskit.results import chance_level

    df = frame(curve(0.8, {0.1: 0.8}, task="a"))
    df["chance"] = float("nan")
    assert chance_level(df, "a") is None and chance_level(df, "a", "em") is None


@pytest.mark.parametrize("case", ["weights", "exp"])
def test_bootstrap_of_perplexity_uses_weights_and_exponentiates(case):
    dense_nll = [2.0] * 10
    if case == "weights":
        # one window of 1 token 1 nat worse beside nine of 100 tokens: the weighted mean NLL
        # rises ~0.001 (within 5% in every resample), an unweighted one 0.1 (beyond)
        w, level = [100.0] * 9 + [1.0], [2.0] * 9 + [3.0]
        want = (0.1, 0.1)
    else:
        # +0.08 nats on every window: perplexity rises e^0.08 - 1 = 8.3% (beyond 5%),
        # while the NLL itself rises only 4%
        w, level = [1.0] * 10, [2.08] * 10
        want = (0.0, 0.0)
    values = {0.0: dense_nll, 0.1: level, 0.2: [x + 1 for x in dense_nll]}
    ppl = {s: float(np.exp(np.average(v, weights=w))) for s, v in values.items()}
    df = frame(curve(ppl[0.0], {0.1: ppl[0.1], 0.2: ppl[0.2]}, metric="perplexity",
                     kind="perplexity", task="ppl"))
    r = one(compute_thresholds(df, _instances(df, values, "perplexity", w), tolerances=[0.05],
                               n_boot=400), 0.05)
    assert r["ci_method"] == "bootstrap"
    assert (r["ci_low"], r["ci_high"]) == want


def test_format_thresholds_lines_in_full():
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.79, 0.3: 0.5}, scope="all", task="zebra"),
               curve(0.8, {0.1: 0.8, 0.2: 0.5}, scope="all", task="capitals"),
               curve(0.6, {0.1: 0.6, 0.2: 0.3}, scope="all", task="copy", kind="open_book"))
    text = format_thresholds(compute_thresholds(df, tolerances=[0.05]), tolerance=0.05)
    # first column left-justified, the others right-justified; tasks in the data's order
    assert text.splitlines()[2:] == [
        "task (metric)    all",
        "---------------  ---",
        "fact recall",
        "  zebra (em)     20%",
        "  capitals (em)  10%",
        "in-context",
        "  copy (em)      10%",
    ]


def test_compute_thresholds_arguments_at_their_bounds():
    import re

    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.5}), curve(0.8, {0.1: 0.8}, metric="logprob"))
    for bad, message in [({"tolerances": [0.0]}, "tolerances must be fractions in (0, 1)"),
                         ({"tolerances": [1.0]}, "tolerances must be fractions in (0, 1)"),
                         ({"ci": 0.0}, "ci must be in (0, 1), got 0.0"),
                         ({"ci": 1.0}, "ci must be in (0, 1), got 1.0"),
                         ({"n_boot": 0}, "n_boot must be >= 1, got 0"),
                         ({"rule": "best"}, "unknown rule 'best'; allowed: first_crossing, "
                                            "largest_within")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            compute_thresholds(df, **bad)
    # the inner bounds are allowed: n_boot = 1, a tolerance of 0.99, one metric chosen
    r = compute_thresholds(df, tolerances=[0.99], n_boot=1, metrics=["em"])
    assert set(r["metric"]) == {"em"} and one(r, 0.99)["threshold"] == pytest.approx(0.2)


def _ci_rows(dense: float, levels: list[tuple[float, float, float, float]], **keys) -> list:
    """A curve whose pruned rows carry CI bounds: levels are (sparsity, value, low, high)."""
    from .frames import make_row

    rows = curve(dense, {}, **keys)
    rows += [make_row(value=v, sparsity=s, ci=(lo, hi), **keys) for s, v, lo, hi in levels]
    return rows


def test_ci_bounds_of_a_lower_is_better_metric_come_from_the_right_side():
    # perplexity, baseline 10: the pessimistic end is ci_high (a higher perplexity is worse).
    # level: value [ci_low, ci_high] -> drops at value / ci_low / ci_high, by hand
    # 0.1: 10.0 [ 9.8, 10.2] -> 0     / -0.02 / 0.02
    # 0.2: 10.3 [10.0, 10.7] -> 0.03  /  0    / 0.07
    # 0.3: 10.8 [10.4, 11.2] -> 0.08  /  0.04 / 0.12
    # 0.4: 13.0 [12.0, 14.0] -> 0.30  /  0.20 / 0.40
    # tol 5%: point 0.2; pessimistic (ci_high) 0.1; optimistic (ci_low) 0.3
    df = frame(_ci_rows(10.0, [(0.1, 10.0, 9.8, 10.2), (0.2, 10.3, 10.0, 10.7),
                               (0.3, 10.8, 10.4, 11.2), (0.4, 13.0, 12.0, 14.0)],
                        metric="perplexity", kind="perplexity", task="ppl"))
    r = one(compute_thresholds(df, tolerances=[0.05]), 0.05)
    assert r["ci_method"] == "ci_bounds"
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == pytest.approx((0.2, 0.1, 0.3))
    # tol 10%: point 0.3; pessimistic 0.2 (0.12 > 10% at 0.3); optimistic 0.3
    r = one(compute_thresholds(df, tolerances=[0.10]), 0.10)
    assert (r["threshold"], r["ci_low"], r["ci_high"]) == pytest.approx((0.3, 0.2, 0.3))


@pytest.mark.parametrize("rule", ["first_crossing", "largest_within"])
def test_the_rule_decides_the_intervals_too_and_is_recorded(rule):
    # A curve that breaks at 0.2 and recovers at 0.3, at its point value, at both CI
    # bounds and in every bootstrap resample (all instances right at 0.1 and 0.3, all wrong
    # at 0.2): first_crossing gives 0.1 everywhere, largest_within 0.3 (censored).
    want, censored = (0.1, False) if rule == "first_crossing" else (0.3, True)
    levels = [(0.1, 0.8, 0.78, 0.82), (0.2, 0.0, 0.0, 0.05), (0.3, 0.8, 0.78, 0.82)]
    bounds = compute_thresholds(frame(_ci_rows(0.8, levels)), tolerances=[0.05], rule=rule)
    r = one(bounds, 0.05)
    assert r["ci_method"] == "ci_bounds"
    assert (r["threshold"], r["ci_low"], r["ci_high"], r["censored"]) == (
        want, want, want, censored)
    df = frame(curve(1.0, {0.1: 1.0, 0.2: 0.0, 0.3: 1.0}))
    values = {0.0: [1.0] * 10, 0.1: [1.0] * 10, 0.2: [0.0] * 10, 0.3: [1.0] * 10}
    boot = compute_thresholds(df, _instances(df, values), tolerances=[0.05, 0.1], rule=rule,
                              n_boot=20)
    for tol in (0.05, 0.1):
        r = one(boot, tol)
        assert r["ci_method"] == "bootstrap"
        assert (r["threshold"], r["ci_low"], r["ci_high"], r["censored"]) == (
            want, want, want, censored)
    # the rule is recorded in every row, whichever CI method made it
    assert list(bounds["rule"]) == [rule] and list(boot["rule"]) == [rule, rule]


def test_largest_within_edges_and_censored_both_ways():
    # the censored flag is whether the HIGHEST tested level is within the tolerance
    for rule in ("first_crossing", "largest_within"):
        # nothing within (or no finite drop at all): threshold 0, not censored
        assert threshold_from_curve([0.1, 0.2], [0.3, 0.4], 0.05, rule) == (0.0, False)
        nan = float("nan")
        assert threshold_from_curve([0.1, 0.2, 0.3], [nan, nan, nan], 0.05, rule) == (
            0.0, False)
        assert threshold_from_curve([0.1], [0.0], 0.05, rule) == (0.1, True)
        assert threshold_from_curve([0.1], [0.2], 0.05, rule) == (0.0, False)
    # largest_within: the last level within but the one below it not -> censored at 0.3;
    # the one below within but the last not -> 0.2, not censored
    assert threshold_from_curve([0.1, 0.2, 0.3], [0.0, 0.2, 0.0], 0.05, "largest_within") \
        == (0.3, True)
    assert threshold_from_curve([0.1, 0.2, 0.3], [0.0, 0.0, 0.2], 0.05, "largest_within") \
        == (0.2, False)
    # the same through compute_thresholds, both ways, for both rules
    df = frame(curve(1.0, {0.1: 1.0, 0.2: 0.5, 0.3: 1.0}, task="back"),
               curve(1.0, {0.1: 1.0, 0.2: 1.0, 0.3: 0.5}, task="down"),
               curve(1.0, {0.1: 0.5, 0.2: 0.5}, task="none"))
    got = {(rule, t): tuple(one(compute_thresholds(df, tolerances=[0.05], rule=rule), 0.05,
                                task=t)[["threshold", "censored"]])
           for rule in RULES for t in ("back", "down", "none")}
    assert got == {("first_crossing", "back"): (0.1, False),
                   ("first_crossing", "down"): (0.2, False),
                   ("first_crossing", "none"): (0.0, False),
                   ("largest_within", "back"): (0.3, True),
                   ("largest_within", "down"): (0.2, False),
                   ("largest_within", "none"): (0.0, False)}


def _coin_values() -> tuple[pd.DataFrame, dict]:
    """10 instances; dense and 0.1 all right, 0.2 one wrong, 0.3 all wrong. A resample's
    threshold at 5% is 0.2 when it never draws the wrong instance (P = 0.9**10 = 0.349),
    else 0.1."""
    values = {0.0: [1] * 10, 0.1: [1] * 10, 0.2: [1] * 9 + [0], 0.3: [0] * 10}
    return frame(curve(1.0, {0.1: 1.0, 0.2: 0.9, 0.3: 0.0})), values


def test_bootstrap_interval_level_and_bounds_at_tested_levels():
    df, values = _coin_values()
    inst = _instances(df, values)
    # 95%: the 2.5% and 97.5% quantiles of {0.1 w.p. 0.651, 0.2 w.p. 0.349} -> [0.1, 0.2];
    # 20%: the 40% and 60% quantiles, both below 0.651 -> [0.1, 0.1]
    for ci, want in [(0.95, (0.1, 0.2)), (0.2, (0.1, 0.1))]:
        r = one(compute_thresholds(df, inst, tolerances=[0.05], n_boot=2000, ci=ci), 0.05)
        assert (r["ci_low"], r["ci_high"]) == want, ci
    # Both bounds are resampled thresholds (tested levels), never a value between two: with
    # 2 resamples of 0.1 and 0.2 the interval is [0.1, 0.2] (an interpolated quantile would
    # be 0.1025 and 0.1975). Some seeds draw two different thresholds.
    ends = [tuple(one(compute_thresholds(df, inst, tolerances=[0.05], n_boot=2, seed=s),
                      0.05)[["ci_low", "ci_high"]]) for s in range(12)]
    assert set(ends) <= {(0.1, 0.1), (0.1, 0.2), (0.2, 0.2)}
    assert (0.1, 0.2) in ends


def _many_levels() -> tuple[pd.DataFrame, dict]:
    """Two curves (tasks a and b) with the same data: 40 instances, dense 90% right, ten
    levels losing about 1.5 points each, so that one resample's threshold can be any of
    several levels."""
    rng = np.random.default_rng(7)
    levels = [round(0.05 * i, 2) for i in range(1, 11)]
    right = rng.random(40) < 0.9
    values = {0.0: right.astype(float)}
    for i, s in enumerate(levels, start=1):
        lost = rng.random(40) < 0.015 * i
        values[s] = (right & ~lost).astype(float)
    pts = {s: float(v.mean()) for s, v in values.items() if s > 0}
    df = frame(curve(float(values[0.0].mean()), pts, task="a"),
               curve(float(values[0.0].mean()), pts, task="b"))
    return df, values


def test_bootstrap_streams_are_reproducible_and_independent_between_curves():
    df, values = _many_levels()
    inst = _instances(df, values)
    tols = [0.02, 0.05, 0.10, 0.20]

    def draws(seed: int) -> dict[str, list[float]]:
        # one resample per curve: its threshold at each tolerance (ci_low == ci_high)
        thr = compute_thresholds(df, inst, tolerances=tols, n_boot=1, seed=seed)
        return {task: [one(thr, t, task=task)["ci_low"] for t in tols] for task in "ab"}

    first = [draws(s) for s in range(4)]
    assert first == [draws(s) for s in range(4)]  # the same seed, the same resamples
    a, b = [d["a"] for d in first], [d["b"] for d in first]
    # curves with the same data draw their own resamples: a and b differ
    assert a != b
    assert len({tuple(x) for x in a}) > 1  # and so do seeds


def test_curves_get_distinct_bootstrap_seeds():
    from lenskit.results.thresholds import _group_seed

    # distinct curves (keys) get distinct seeds, so no two curves share a resampling stream
    keys = [("m", "wanda", "unstructured", "uniform", "all", f"task{i}", "em")
            for i in range(5000)]
    for seed in (0, 1):
        seeds = [_group_seed(seed, k) for k in keys]
        assert len(set(seeds)) == len(keys)
        assert seeds == [_group_seed(seed, k) for k in keys]
    assert _group_seed(0, keys[0]) != _group_seed(1, keys[0])


def test_bootstrap_defaults_are_1000_resamples_and_seed_0():
    # Eight curves of the same data: 10 instances, dense all right; at 0.1 one instance is
    # wrong, at 0.2 all are. A resample's threshold at tolerance 0.4 is 0 when it draws the
    # wrong instance 5 times or more (P = 0.0016, about 1.6 resamples in 1000), else 0.1;
    # at 0.5, 6 times or more (P = 0.00015). With ci = 0.998001 the lower bound is the
    # (1 - ci) / 2 = 0.0009995 quantile: the smallest of 1000 resamples (1000 * 0.0009995
    # < 1) but the second smallest of 1001; a curve whose rare resample occurs once tells
    # 1000 resamples from 1001, and its stream tells the seed.
    tasks = [f"t{i}" for i in range(8)]
    df = frame(*[curve(1.0, {0.1: 0.9, 0.2: 0.0}, task=t) for t in tasks])
    values = {0.0: [1.0] * 10, 0.1: [1.0] * 9 + [0.0], 0.2: [0.0] * 10}
    inst = _instances(df, values)
    default = compute_thresholds(df, inst, tolerances=[0.4, 0.5], ci=0.998001)
    assert set(default["ci_low"]) == {0.0, 0.1}  # the rare resample occurs in some curves
    pd.testing.assert_frame_equal(
        default, compute_thresholds(df, inst, tolerances=[0.4, 0.5], ci=0.998001, n_boot=1000,
                                    seed=0))


def test_threshold_table_columns_dtypes_and_index():
    from lenskit.results.thresholds import THRESHOLD_COLUMNS

    empty = compute_thresholds(frame(curve(0.8, {})))
    assert list(empty.columns) == list(THRESHOLD_COLUMNS) and len(empty) == 0
    assert (empty["threshold"].dtype, empty["tolerance"].dtype, empty["censored"].dtype) == (
        np.float64, np.float64, np.bool_)
    df = frame(curve(0.8, {0.1: 0.8, 0.2: 0.5}), curve(0.8, {0.1: 0.7}, task="u"))
    thr = compute_thresholds(df, tolerances=[0.05, 0.10])
    assert list(thr.columns) == list(THRESHOLD_COLUMNS)
    assert list(thr.index) == [0, 1, 2, 3]
    # no CI: both ends NaN floats
    assert thr["ci_low"].dtype == np.float64 and thr["ci_high"].dtype == np.float64
    assert thr["ci_low"].isna().all() and thr["ci_high"].isna().all()
    assert set(thr["ci_method"]) == {"none"}


def test_bootstrap_with_a_dense_cell_listed_twice():
    # A merged run lists the dense cell once per task suite (the provenance column differs,
    # so both rows are kept): the bootstrap uses that one dense cell's instances.
    df, values = _coin_values()
    inst = _instances(df, values)
    want = compute_thresholds(df, inst, tolerances=[0.05], n_boot=200)
    dense = df[df["method"] == "dense"]
    merged = pd.concat([df.assign(tasks="suite-1"), dense.assign(tasks="suite-2")],
                       ignore_index=True)
    got = compute_thresholds(merged, inst, tolerances=[0.05], n_boot=200)
    assert got["ci_method"].tolist() == ["bootstrap"]
    pd.testing.assert_frame_equal(got, want)


def test_format_thresholds_right_justifies_a_narrow_cell():
    # "5%" is narrower than its column ("all", 3 wide): right-justified to " 5%", while the
    # task column is left-justified (widths 13, 3, 3, worked out by hand)
    df = frame(curve(0.8, {0.05: 0.8, 0.1: 0.5}, scope="all", task="a"),
               curve(0.8, {0.05: 0.8, 0.1: 0.8, 0.2: 0.5}, scope="mlp", task="a"))
    text = format_thresholds(compute_thresholds(df, tolerances=[0.05]), tolerance=0.05)
    assert text.splitlines()[2:] == [
        "task (metric)  all  mlp",
        "-------------  ---  ---",
        "fact recall",
        "  a (em)        5%  10%",
    ]
