"""Tasks done at chance by the dense model are recognised and left out of the figures."""

import pandas as pd
import pytest

from lenskit.plots import fig_sparsity_curves
from lenskit.results import at_chance_by_model, chance_level, tasks_at_chance


def _row(task, kind, category, method, sparsity, value, ci_low, ci_high, chance):
    return dict(model="m", model_params=1000, method=method, structure="unstructured",
                allocation="uniform", scope="all", target_sparsity=sparsity,
                achieved_sparsity=sparsity, params_removed=int(1000 * sparsity),
                remaining_params=1000 - int(1000 * sparsity), task=task, kind=kind,
                category=category, metric="em", value=value, n=300, ci_low=ci_low,
                ci_high=ci_high, chance=chance, seed=0, baseline=float("nan"),
                relative_drop=float("nan"),
                cell_id=f"{method}-{sparsity}")


@pytest.fixture
def results():
    rows = []
    # (task, kind, category, dense value, CI, chance): the chance level is data the task
    # carried, whatever its name (fn_mlp_2: K=2, fn_tree_4: K=4, fn_linear: K=2)
    spec = [("closed_book", "closed_book", "fact_recall", 0.9, (0.86, 0.93), 0.0),
            ("fn_mlp_2", "function", "icl", 0.625, (0.50, 0.73), 0.5),
            ("fn_linear", "function", "icl", 0.8, (0.75, 0.85), 0.5),
            ("fn_tree_4", "function", "icl", 0.3, (0.25, 0.35), 0.25)]
    for task, kind, cat, v, (lo, hi), chance in spec:
        rows.append(_row(task, kind, cat, "dense", 0.0, v, lo, hi, chance))
        rows.append(_row(task, kind, cat, "wanda", 0.5, v / 2, lo / 2, hi / 2, chance))
    return pd.DataFrame(rows)


def test_chance_levels_are_read_from_the_rows(results):
    assert chance_level(results, "fn_mlp_2") == 0.5
    assert chance_level(results, "fn_tree_4", "em") == 0.25
    assert chance_level(results, "closed_book") == 0.0
    assert chance_level(results.drop(columns="chance"), "fn_mlp_2") is None
    twice = pd.concat([results, results.assign(chance=0.25, cell_id="x")])
    with pytest.raises(ValueError, match="several chance levels"):
        chance_level(twice, "fn_mlp_2")


def test_tasks_at_chance_use_the_dense_ci(results):
    # the case: 0.625 with CI [0.50, 0.73] includes chance 0.5 (its name says
    # nothing); K=4 at 30% has a CI (25-35%) that reaches chance (25%)
    assert tasks_at_chance(results) == ["fn_mlp_2", "fn_tree_4"]
    # no recorded chance (a table written before it was recorded): never flagged
    assert tasks_at_chance(results.assign(chance=float("nan"))) == []
    # the schema keeps the column, and fills it with NaN in older tables
    from lenskit.results import validate_results

    assert validate_results(results)["chance"].tolist() == results["chance"].tolist()
    assert validate_results(results.drop(columns="chance"))["chance"].isna().all()


def test_sparsity_curves_leave_tasks_at_chance_out(results):
    spec = fig_sparsity_curves(results).to_dict()
    tasks = {r["task"] for r in spec["datasets"][next(iter(spec["datasets"]))]} \
        if "datasets" in spec else {r["task"] for r in spec["data"]["values"]}
    assert "fn_linear" in tasks and "closed_book" in tasks
    assert "fn_mlp_2" not in tasks and "fn_tree_4" not in tasks


def test_study_comparison_names_and_drops_tasks_at_chance(results):
    from lenskit.results import compute_thresholds, study_comparison

    said = []
    cmp = study_comparison(compute_thresholds(results), tasks_at_chance(results),
                           echo=said.append)
    assert said and "fn_mlp_2" in said[0]
    measured = ",".join(cmp["tasks"].fillna(""))
    assert "fn_mlp_2" not in measured and "closed_book" in measured
    # the table itself says what was left out, and why
    notes = cmp.set_index("group")["note"]
    assert notes["function: 2-layer net"] == "left out, dense model at chance: fn_mlp_2"
    assert notes["function: decision tree"] == "left out, dense model at chance: fn_tree_4"
    assert notes["closed-book QA"] == ""
    net = cmp[cmp["group"] == "function: 2-layer net"].iloc[0]
    assert pd.isna(net["method"]) and net["n"] == 0  # no "2-layer net 0%" from noise
    from lenskit.results.comparison import format_study_comparison

    assert "left out, dense model at chance: fn_mlp_2" in format_study_comparison(cmp)


def test_threshold_table_marks_tasks_at_chance(results):
    from lenskit.results import compute_thresholds, format_thresholds

    text = format_thresholds(compute_thresholds(results), at_chance=tasks_at_chance(results))
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "[dense at chance]" in lines["fn_mlp_2"]
    assert "[dense at chance]" not in lines["closed_book"]


def test_tasks_at_chance_edges_by_hand():
    nan = float("nan")

    def dense(task, value, ci_low, chance, model="m"):
        return {"model": model, "method": "dense", "task": task, "metric": "em",
                "value": value, "ci_low": ci_low, "chance": chance}

    rows = pd.DataFrame([
        dense("zeta", 0.30, 0.20, 0.25),  # its interval reaches chance
        dense("alpha", 0.50, 0.25, 0.25),  # exactly at chance: not above it
        dense("beta", 0.25, nan, 0.25),  # no interval: the point value is at chance
        dense("gamma", 0.90, nan, 0.25),  # no interval, well above chance
        dense("delta", 0.90, 0.80, nan, model="a"),  # no chance level in one model...
        dense("delta", 0.30, 0.10, 0.25, model="b"),  # ...at chance in another
        dense("eps", 0.90, 0.80, nan),  # no chance level anywhere: never flagged
    ])
    assert tasks_at_chance(rows) == ["alpha", "beta", "delta", "zeta"]  # sorted by task


def test_a_sibling_at_chance_hides_only_its_own_curves(results):
    """The default study's shape: a wide model pruned, a narrow sibling dense beside it.
    The sibling at chance on fn_linear must not hide the wide model's fn_linear."""
    from lenskit.plots.charts import prepare_results
    from lenskit.results import (
        at_chance_by_model,
        compare_to_study,
        compute_thresholds,
        format_thresholds,
        study_comparison,
    )

    narrow = results[results["method"] == "dense"].assign(model="narrow", model_params=500,
                                                            remaining_params=500,
                                                            cell_id="narrow-dense")
    narrow.loc[narrow["task"] == "fn_linear", ["value", "ci_low", "ci_high"]] = \
        [0.52, 0.45, 0.60]  # its interval holds chance (0.5)
    both = pd.concat([results, narrow], ignore_index=True)

    assert at_chance_by_model(both) == {"m": ["fn_mlp_2", "fn_tree_4"],
                                        "narrow": ["fn_linear", "fn_mlp_2", "fn_tree_4"]}
    assert tasks_at_chance(both, model="m") == ["fn_mlp_2", "fn_tree_4"]
    assert tasks_at_chance(both, model="absent") == []
    assert tasks_at_chance(both) == ["fn_linear", "fn_mlp_2", "fn_tree_4"]  # in any model

    kept = prepare_results(both, ["icl", "fact_recall"])
    pairs = set(zip(kept["model"], kept["task"], strict=True))
    assert ("m", "fn_linear") in pairs and ("narrow", "fn_linear") not in pairs
    assert ("narrow", "closed_book") in pairs and ("m", "fn_mlp_2") not in pairs

    thr = compute_thresholds(both)
    said = []
    cmp = study_comparison(thr, at_chance_by_model(both), echo=said.append)
    assert said == ["dense model at chance (left out of figures and the study comparison): "
                    "fn_mlp_2 (m), fn_tree_4 (m), fn_linear (narrow), fn_mlp_2 (narrow), "
                    "fn_tree_4 (narrow)"]
    linear = cmp[cmp["group"] == "function: linear"].iloc[0]
    assert linear["tasks"] == "fn_linear" and linear["models"] == "m" and linear["n"] == 1
    # the narrow model has no pruned curve, so nothing of fn_linear is left out
    assert linear["note"] == ""
    # with task names (every model), the wide model's fn_linear goes too
    by_name = compare_to_study(thr, exclude_tasks=["fn_linear"]).set_index("group")
    assert by_name.loc["function: linear", "n"] == 0
    assert by_name.loc["function: linear", "note"] == "left out, dense model at chance: fn_linear"

    text = format_thresholds(thr, at_chance={"m": ["fn_linear"]})
    assert "fn_linear (em) [dense at chance]" in text
    assert "[dense at chance]" not in format_thresholds(thr, at_chance={"other": ["fn_linear"]})


def test_a_task_left_out_for_one_model_only_is_named_with_it():
    """Two pruned models, one at chance on the task: the comparison keeps the other's
    threshold and its note names the model that lost it."""
    from lenskit.results import at_chance_by_model, compare_to_study, compute_thresholds

    rows = []
    for model, dense in (("a", (0.8, 0.75, 0.85)), ("b", (0.52, 0.45, 0.6))):
        for method, s, f in (("dense", 0.0, 1.0), ("wanda", 0.5, 0.99)):
            r = _row("fn_linear", "function", "icl", method, s, dense[0] * f, dense[1] * f,
                     dense[2] * f, 0.5)
            rows.append({**r, "model": model, "cell_id": f"{model}-{method}"})
    df = pd.DataFrame(rows)
    cmp = compare_to_study(compute_thresholds(df), exclude_tasks=at_chance_by_model(df))
    linear = cmp.set_index("group").loc["function: linear"]
    assert linear["models"] == "a" and linear["n"] == 1 and linear["measured"] == 0.5
    assert linear["note"] == "left out, dense model at chance: fn_linear (b)"


def test_a_dense_row_without_chance_does_not_hide_one_with_it():
    """A model's dense rows of a task from two seeds, the first written before chance was
    recorded (NaN), the second at chance: the model is at chance on the task."""
    nan = float("nan")
    rows = pd.DataFrame([
        {"model": "m", "method": "dense", "task": "fn", "metric": "em", "seed": 0,
         "value": 0.5, "ci_low": 0.4, "chance": nan},
        {"model": "m", "method": "dense", "task": "fn", "metric": "em", "seed": 1,
         "value": 0.5, "ci_low": 0.4, "chance": 0.5},
    ])
    assert at_chance_by_model(rows) == {"m": ["fn"]}


def test_at_chance_rows_keep_the_frames_index():
    """The mask is indexed like the frame it masks (a filtered frame has gaps)."""
    from lenskit.results.thresholds import at_chance_rows

    frame = pd.DataFrame({"model": ["a", "b", "b"], "task": ["x", "x", "y"]},
                         index=[10, 20, 30])
    mask = at_chance_rows(frame, {"b": ["x"]})
    assert mask.index.tolist() == [10, 20, 30] and mask.tolist() == [False, True, False]
    assert frame[~mask].index.tolist() == [10, 30]
    assert at_chance_rows(frame, ["y"]).tolist() == [False, False, True]
