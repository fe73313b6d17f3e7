"""Sensitivity and cumulative maps on tiny real models: what is pruned when, baselines,
exactness of sharing one pruner, the copying model's anatomy, tables, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from results.frames import curve, frame  # tests/results (tests/ is on the path)

from lenskit.analysis.mapping import MAP_COLUMNS, validate_maps
from lenskit.analysis.sensitivity import cumulative_map, sensitivity_map, sensitivity_table
from lenskit.models import load_model, model_info, pruned, restore
from lenskit.pruning import Pruner, default_calibration
from lenskit.results.schema import RESULT_COLUMNS, SchemaError, validate_results
from lenskit.tasks import evaluate_suite

from .maps_helpers import (
    ZeroRecorder,
    build_copy_model,
    copy_tasks,
    single_thread,  # noqa: F401 (a fixture)
    small_suite,
    weights_hash,
)

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"progress": False, "n_bootstrap": 0}


@pytest.fixture(scope="module")
def llama(tiny_dirs):
    return load_model(tiny_dirs["llama"])


@pytest.fixture(scope="module")
def suite():
    return small_suite(4)


def _summary(model, suite):
    s = evaluate_suite(model, suite, batch_size=64, n_bootstrap=0).summary(n_bootstrap=0)
    return s.set_index(["task", "metric"])["value"]


def test_each_group_is_pruned_alone_and_the_model_is_restored(llama, suite):
    info = model_info(llama)
    before = weights_hash(llama)
    rec = ZeroRecorder(llama)
    try:
        df = sensitivity_map(llama, suite, sparsities=(0.5,), layers=[1], **FAST)
    finally:
        rec.close()
    assert weights_hash(llama) == before and not info.originals
    groups = list(dict.fromkeys(df["scope"]))
    layer1 = [s for s in info.sites if s.layer == 1]
    assert groups == [f"{s.family}.{s.component}@1" for s in layer1]
    # the dense evaluation sees no zero at all, then each group's evaluation sees exactly
    # its own site at exactly 50%, in the order of the rows
    states = rec.states()
    assert states[0] == {}
    assert states[1:] == [{s.name: 0.5} for s in layer1]
    assert list(df.columns) == list(MAP_COLUMNS)
    assert (df["achieved_sparsity"] == 0.5).all() and (df["analysis"] == "sensitivity").all()
    sizes = {f"{s.family}.{s.component}@1": s.numel for s in layer1}
    assert (df["params_removed"] == df["scope"].map(sizes) // 2).all()
    assert (df["group_params"] == df["scope"].map(sizes)).all()
    assert (df["model_params"] == info.total_params).all()
    assert df.attrs["evaluations"] == len(groups)


def test_rows_equal_separate_evaluations_with_a_pruner_on_the_group(llama, suite):
    """One shared wanda pruner sliced per group gives what a pruner on the group gives."""
    cal = default_calibration(llama, n_samples=4, seq_len=16, seed=0)
    df = sensitivity_map(llama, suite, method="wanda", sparsities=(0.3, 0.7), groups="family",
                         layers=[0], calibration=cal, **FAST)
    dense = _summary(llama, suite)
    assert np.array_equal(df["baseline"].to_numpy(),
                          dense.loc[list(zip(df["task"], df["metric"], strict=True))].to_numpy())
    for (group, s), rows in df.groupby(["scope", "target_sparsity"]):
        r = Pruner(llama, "wanda", scope=group, calibration=cal).prune(s)
        with pruned(llama, r.masks):
            ref = _summary(llama, suite)
        got = rows.set_index(["task", "metric"])["value"]
        assert np.array_equal(got.to_numpy(), ref.loc[got.index].to_numpy()), (group, s)
        assert (rows["params_removed"] == r.params_removed).all()
    assert set(df["component"]) == {"all"} and set(df["family"]) == {"attn", "mlp"}


def test_zero_sparsity_changes_nothing_and_drop_follows_the_metric(llama):
    tasks = small_suite(4, perplexity=True)
    df = sensitivity_map(llama, tasks, sparsities=(0.0, 0.9), groups="layer", layers=[0],
                         progress=False, n_bootstrap=50)
    zero = df[df["target_sparsity"] == 0.0]
    assert (zero["value"] == zero["baseline"]).all()
    assert (zero["drop"] == 0).all() and (zero["relative_drop"] == 0).all()
    assert (zero["relative_drop_low"] == 0).all() and (zero["relative_drop_high"] == 0).all()
    hi = df[df["target_sparsity"] == 0.9]
    ppl = hi[hi["metric"] == "perplexity"].iloc[0]
    # perplexity: lower is better, so a positive drop means the value went up
    assert np.sign(ppl["drop"]) == np.sign(ppl["value"] - ppl["baseline"]) != 0
    lp = hi[hi["metric"] == "logprob"]
    assert np.allclose(lp["drop"], lp["baseline"] - lp["value"])
    assert np.allclose(lp["relative_drop"], lp["drop"] / lp["baseline"].abs())
    assert (hi["relative_drop_low"] <= hi["relative_drop_high"]).all()
    again = sensitivity_map(llama, tasks, sparsities=(0.0, 0.9), groups="layer", layers=[0],
                            progress=False, n_bootstrap=50)
    pd.testing.assert_frame_equal(df, again)


def test_cumulative_maps_cover_the_stack_and_end_at_the_whole_family(llama, suite):
    n = model_info(llama).n_layers
    df = cumulative_map(llama, suite, direction="both", family="mlp", sparsities=(0.6,),
                        **FAST)
    spans = df[["direction", "layer", "first_layer", "last_layer", "scope"]].drop_duplicates()
    bottom = spans[spans["direction"] == "bottom_up"]
    top = spans[spans["direction"] == "top_down"]
    assert list(bottom["last_layer"]) == list(range(n)) and set(bottom["first_layer"]) == {0}
    assert list(top["first_layer"]) == list(range(n)) and set(top["last_layer"]) == {n - 1}
    assert list(bottom["scope"]) == [f"mlp@0-{k}" if k else "mlp@0" for k in range(n)]
    # the whole stack is measured once and reported in both directions
    assert df.attrs["evaluations"] == 2 * n - 1
    # the same scope from both directions is two map measurements, not a repeat
    validate_maps(df)
    whole_b = df[(df["direction"] == "bottom_up") & (df["layer"] == n - 1)]
    whole_t = df[(df["direction"] == "top_down") & (df["layer"] == 0)]
    assert np.array_equal(whole_b["value"].to_numpy(), whole_t["value"].to_numpy())
    r = Pruner(llama, "magnitude", scope="mlp").prune(0.6)
    with pruned(llama, r.masks):
        ref = _summary(llama, suite)
    got = whole_b.set_index(["task", "metric"])["value"]
    assert np.array_equal(got.to_numpy(), ref.loc[got.index].to_numpy())
    assert (whole_b["params_removed"] == r.params_removed).all()
    assert set(df["family"]) == {"mlp"} and set(df["component"]) == {"all"}
    table = sensitivity_table(df, "logprob", "icl")
    assert list(table.index) == list(range(1, n + 1)) and table.index.name == "layers_pruned"
    assert list(table.columns) == ["bottom_up", "top_down"]
    assert table.loc[n, "bottom_up"] == table.loc[n, "top_down"]
    one_top = df[(df["direction"] == "top_down") & (df["layer"] == n - 1)
                 & (df["category"] == "icl") & (df["metric"] == "logprob")]
    assert table.loc[1, "top_down"] == pytest.approx(one_top["relative_drop"].mean())


def test_copying_model_anatomy(tmp_path):
    """The hand-wired copier: its MLP is zero (pruning it changes nothing) and its attention
    copies. Its o projection is mostly exact zeros, so magnitude pruning at 50% removes
    only zeros (no drop), while removing all of o or v loses every answer."""
    model = load_model(build_copy_model(tmp_path / "copy"))
    tasks = copy_tasks()
    df = sensitivity_map(model, tasks, sparsities=(0.5, 1.0), metrics=["em"], **FAST)
    assert df["baseline"].eq(1.0).all()
    em = df.set_index(["scope", "target_sparsity"])["relative_drop"]
    for comp in ("in", "gate", "out"):
        assert em[(f"mlp.{comp}@0", 0.5)] == em[(f"mlp.{comp}@0", 1.0)] == 0.0
    assert em[("attn.o@0", 0.5)] == 0.0
    assert em[("attn.o@0", 1.0)] == em[("attn.v@0", 1.0)] == 1.0
    table = sensitivity_table(df, "em", "icl", sparsity=1.0)
    assert table.loc[0, "o"] == 1.0 and table.loc[0, "out"] == 0.0


def test_sensitivity_table_pivots_the_means(llama, suite):
    df = sensitivity_map(llama, suite, sparsities=(0.8,), layers=[0, 1], metrics=["logprob"],
                         **FAST)
    both = sensitivity_table(df, "logprob")
    assert list(both.columns.get_level_values(0).unique()) == ["fact_recall", "icl"]
    icl = sensitivity_table(df, "logprob", "icl")
    assert list(icl.index) == [0, 1]
    assert list(icl.columns) == ["q", "k", "v", "o", "in", "gate", "out"]
    rows = df[(df["category"] == "icl") & (df["scope"] == "attn.v@1")]
    assert icl.loc[1, "v"] == pytest.approx(rows["relative_drop"].mean())
    assert sensitivity_table(df, "logprob", "fact_recall", value="value").loc[0, "q"] == \
        pytest.approx(df[(df.category == "fact_recall") & (df.scope == "attn.q@0")].value.mean())
    with pytest.raises(ValueError, match="no rows for metric 'em'"):
        sensitivity_table(df, "em")
    with pytest.raises(ValueError, match="no tasks of category 'lm'"):
        sensitivity_table(df, "logprob", "lm")
    two = pd.concat([df, df.assign(target_sparsity=0.9)])
    with pytest.raises(ValueError, match="several sparsities"):
        sensitivity_table(two, "logprob")
    assert sensitivity_table(two, "logprob", "icl", sparsity=0.9).shape == (2, 7)


def test_structured_pattern(llama, suite):
    df = sensitivity_map(llama, suite, sparsities=(0.5,), structure="2:4", layers=[0],
                         groups="family", **FAST)
    assert (df["achieved_sparsity"] == 0.5).all()
    with pytest.raises(ValueError, match="contradict"):
        sensitivity_map(llama, suite, sparsities=(0.3,), structure="2:4", **FAST)


def test_bad_inputs_fail_before_anything_runs(llama, suite):
    before = weights_hash(llama)
    cases = [
        ({"groups": "head"}, r"unknown groups 'head'; allowed: \('component', 'family', "),
        ({"method": "obs"}, "unknown method 'obs'"),
        ({"sparsities": (0.5, 1.5)}, r"sparsities must hold numbers in \[0, 1\], got 1.5"),
        ({"sparsities": ()}, "sparsities is empty"),
        ({"layers": [0, 7]}, r"layers must be ints in 0..1 .* got 7"),
        ({"tasks": ["trivia"]}, r"unknown task\(s\) \['trivia'\]"),
        ({"metrics": ["bleu"]}, r"unknown metric\(s\) \['bleu'\]"),
        ({"n_per_task": 0}, "n_per_task must be an int >= 1"),
        ({"blocksize": 64}, "unknown parameter 'blocksize' for method 'magnitude'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            sensitivity_map(llama, suite, **{**FAST, **kwargs})
    with pytest.raises(ValueError, match=r"unknown direction 'sideways'"):
        cumulative_map(llama, suite, direction="sideways", **FAST)
    with pytest.raises(ValueError, match=r"unknown family 'ffn'"):
        cumulative_map(llama, suite, family="ffn", **FAST)
    assert weights_hash(llama) == before
    Pruner(llama, "magnitude", scope="attn@0").prune(0.5, apply=True)
    try:
        with pytest.raises(ValueError, match=r"modified site\(s\).*lenskit.restore"):
            sensitivity_map(llama, suite, **FAST)
    finally:
        restore(llama)
    assert weights_hash(llama) == before


def test_maps_and_sweep_results_concatenate(llama, suite):
    """Map rows carry the sweep's columns under the same names: a sweep table and a map
    concatenate into one table the results schema accepts."""
    sweep = validate_results(frame(curve(0.8, {0.5: 0.6, 0.9: 0.1}, task="facts"),
                                   curve(0.5, {0.5: 0.5}, task="copy", kind="open_book")))
    maps = validate_maps(sensitivity_map(llama, suite, sparsities=(0.5,), layers=[1],
                                         method="magnitude", **FAST))
    assert list(maps.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    both = pd.concat([sweep, maps], ignore_index=True)
    assert list(both.columns) == list(MAP_COLUMNS)  # the schema's columns, then the map's
    checked = validate_results(both)
    assert len(checked) == len(sweep) + len(maps)
    assert checked["analysis"].isna().sum() == len(sweep)
    # the same concepts line up: at 50% sparsity both sources give drops from their dense
    half = checked[(checked["target_sparsity"] == 0.5)
                   & checked["metric"].isin(["em", "logprob"]) & (checked["baseline"] != 0)]
    assert set(half["scope"]) >= {"all", "attn.q@1"}
    assert np.allclose(half["relative_drop"], (half["baseline"] - half["value"])
                       / half["baseline"].abs())
    assert (maps["remaining_params"] == maps["model_params"] - maps["params_removed"]).all()
    with pytest.raises(SchemaError, match=r"map table has bad values: method \['prune'\]"):
        validate_maps(maps.assign(method="prune"))
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['unit'\]"):
        validate_maps(maps.drop(columns="unit"))
