"""Tasks done at chance by the dense model are recognised and left out of the figures."""

import pandas as pd
import pytest

from lenskit.plots import fig_sparsity_curves
from lenskit.results import chance_level, tasks_at_chance


def _row(task, kind, category, method, sparsity, value, ci_low, ci_high):
    return dict(model="m", model_params=1000, method=method, structure="unstructured",
                allocation="uniform", scope="all", target_sparsity=sparsity,
                achieved_sparsity=sparsity, params_removed=int(1000 * sparsity),
                remaining_params=1000 - int(1000 * sparsity), task=task, kind=kind,
                category=category, metric="em", value=value, n=300, ci_low=ci_low,
                ci_high=ci_high, seed=0, baseline=float("nan"), relative_drop=float("nan"),
                cell_id=f"{method}-{sparsity}")


@pytest.fixture
def results():
    rows = []
    # (task, kind, category, dense value, CI)
    spec = [("closed_book", "closed_book", "fact_recall", 0.9, (0.86, 0.93)),
            ("fn_linear_d1_n16_k2", "function", "icl", 0.5, (0.44, 0.56)),
            ("fn_linear_d2_n16_k2", "function", "icl", 0.8, (0.75, 0.85)),
            ("fn_linear_d2_n16_k4", "function", "icl", 0.3, (0.25, 0.35))]
    for task, kind, cat, v, (lo, hi) in spec:
        rows.append(_row(task, kind, cat, "dense", 0.0, v, lo, hi))
        rows.append(_row(task, kind, cat, "wanda", 0.5, v / 2, lo / 2, hi / 2))
    return pd.DataFrame(rows)


def test_chance_levels():
    assert chance_level("fn_linear_d1_n16_k2", "function", "em") == 0.5
    assert chance_level("fn_linear_d4_n32_k4", "function", "first_token_acc") == 0.25
    assert chance_level("closed_book", "closed_book", "em") == 0.0
    assert chance_level("perplexity", "perplexity", "perplexity") is None


def test_tasks_at_chance_use_the_dense_ci(results):
    # K=2 at 50% is chance; K=4 at 30% has a CI (25-35%) that reaches chance (25%).
    assert tasks_at_chance(results) == ["fn_linear_d1_n16_k2", "fn_linear_d2_n16_k4"]


def test_sparsity_curves_leave_tasks_at_chance_out(results):
    spec = fig_sparsity_curves(results).to_dict()
    tasks = {r["task"] for r in spec["datasets"][next(iter(spec["datasets"]))]} \
        if "datasets" in spec else {r["task"] for r in spec["data"]["values"]}
    assert "fn_linear_d2_n16_k2" in tasks and "closed_book" in tasks
    assert "fn_linear_d1_n16_k2" not in tasks and "fn_linear_d2_n16_k4" not in tasks


def test_study_comparison_names_and_drops_tasks_at_chance(results):
    from lenskit.results import compute_thresholds, study_comparison

    said = []
    cmp = study_comparison(compute_thresholds(results), tasks_at_chance(results),
                           echo=said.append)
    assert said and "fn_linear_d1_n16_k2" in said[0]
    measured = ",".join(cmp["tasks"].fillna(""))
    assert "fn_linear_d1_n16_k2" not in measured and "closed_book" in measured


def test_threshold_table_marks_tasks_at_chance(results):
    from lenskit.results import compute_thresholds, format_thresholds

    text = format_thresholds(compute_thresholds(results), at_chance=tasks_at_chance(results))
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "[dense at chance]" in lines["fn_linear_d1_n16_k2"]
    assert "[dense at chance]" not in lines["closed_book"]
