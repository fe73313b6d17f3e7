"""Rank agreement between causal traces and the pruning / ablation maps: the per-prompt
tables reproduce the maps, and the bootstrap correlation behaves as a correlation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from lenskit.analysis import head_ablation_map, sensitivity_map, trace_items
from lenskit.analysis.trace_agreement import (
    head_ablation_items,
    layer_sensitivity_items,
    rank_agreement,
    trace_effects,
)
from lenskit.models import load_model

from .maps_helpers import single_thread, small_suite, weights_hash  # noqa: F401
from .trace_model import FACT_LAYER, build_trace_model, trace_task

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("fam", ["mlp", "attn"])
def test_layer_sensitivity_items_reproduce_the_map(tiny_dirs, fam):
    model = load_model(tiny_dirs["llama"])
    task = small_suite(6)["closed_book"]
    before = weights_hash(model)
    items = layer_sensitivity_items(model, task, family=fam, method="magnitude", sparsity=0.5)
    assert weights_hash(model) == before
    df = sensitivity_map(model, {"closed_book": task}, method="magnitude", sparsities=(0.5,),
                         groups="family", metrics=["logprob"], n_bootstrap=0, progress=False)
    df = df[df["family"] == fam].set_index("scope")
    got = items.groupby("unit")["pruned"].mean()
    for unit, value in got.items():
        assert value == pytest.approx(df.loc[unit, "value"], rel=1e-6, abs=1e-9)
        assert items[items["unit"] == unit]["dense"].mean() == pytest.approx(
            df.loc[unit, "baseline"], rel=1e-6)
    np.testing.assert_allclose(items["value"], items["dense"] - items["pruned"])


def test_head_ablation_items_reproduce_the_map(tiny_dirs):
    model = load_model(tiny_dirs["gpt2"])
    task = small_suite(5)["open_book"]
    items = head_ablation_items(model, task, layers=1)
    df = head_ablation_map(model, {"open_book": task}, layers=1, metrics=["logprob"],
                           n_bootstrap=0, progress=False)
    want = df.set_index("head")["value"]
    got = items.groupby("head")["pruned"].mean()
    assert sorted(got.index) == sorted(want.index)
    for h in got.index:
        assert got[h] == pytest.approx(want[h], rel=1e-6)


def _frame(matrix: np.ndarray) -> pd.DataFrame:
    units, items = matrix.shape
    return pd.DataFrame({"unit": np.repeat([f"u{k}" for k in range(units)], items),
                         "instance_id": np.tile([f"i{j}" for j in range(items)], units),
                         "value": matrix.reshape(-1)})


def test_rank_agreement_is_spearman_of_means_with_an_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 40)) + np.arange(6)[:, None]
    b = rng.normal(size=(6, 40)) + np.array([0, 2, 1, 3, 5, 4])[:, None]
    got = rank_agreement(_frame(a), _frame(b), n_bootstrap=500, seed=1)
    assert got["rho"] == pytest.approx(spearmanr(a.mean(1), b.mean(1)).statistic)
    assert got["ci_low"] <= got["rho"] <= got["ci_high"] and got["n_units"] == 6
    assert got["n_items"] == 40
    assert rank_agreement(_frame(a), _frame(b), n_bootstrap=500, seed=1) == got
    flipped = rank_agreement(_frame(a), _frame(-b), n_bootstrap=500, seed=1)
    assert flipped["rho"] == pytest.approx(-got["rho"])
    fixed = rank_agreement(_frame(a), {f"u{k}": float(k) for k in range(6)}, n_bootstrap=200)
    assert fixed["rho"] == pytest.approx(1.0)
    # noise-only units: the interval covers 0
    noise = rank_agreement(_frame(rng.normal(size=(8, 30))), _frame(rng.normal(size=(8, 30))),
                           n_bootstrap=500)
    assert noise["ci_low"] < 0 < noise["ci_high"]


def test_rank_agreement_refuses_bad_tables():
    a = _frame(np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 3 units"):
        rank_agreement(a, a)
    with pytest.raises(ValueError, match="lacks column"):
        rank_agreement(a.drop(columns="value"), a)


def test_trace_and_pruning_agree_on_the_wired_model(tmp_path):
    model = load_model(build_trace_model(tmp_path / "m"))
    task = trace_task()
    items = trace_items(model, {"closed_book": task}, kinds=("mlp",), positions=("all",),
                        corruption="counterfactual", progress=False)
    causal = trace_effects(items, kind="mlp", position="all")
    assert causal.groupby("unit")["value"].mean().idxmax() == f"mlp@{FACT_LAYER}"
    sens = layer_sensitivity_items(model, task, family="mlp", method="magnitude",
                                   sparsity=1.0)
    # pruning the FFW that stores the facts loses them; the other FFWs are already zero
    drops = sens.groupby("unit")["value"].mean()
    assert drops.idxmax() == f"mlp@{FACT_LAYER}" and drops.drop(f"mlp@{FACT_LAYER}").abs(
    ).max() < 1e-6
    got = rank_agreement(causal, sens, n_bootstrap=200)
    assert got["rho"] == pytest.approx(1.0)


def test_layer_profiles_give_means_and_intervals_per_layer(tmp_path):
    from lenskit.analysis.trace_agreement import layer_profiles

    model = load_model(build_trace_model(tmp_path / "m"))
    task = trace_task()
    items = trace_items(model, {"closed_book": task}, kinds=("mlp", "attn"),
                        corruption="counterfactual", progress=False)
    sens = pd.concat([layer_sensitivity_items(model, task, family=f, method="magnitude",
                                              sparsity=1.0).assign(family=f)
                      for f in ("mlp", "attn")])
    prof = layer_profiles(items, sens, model="wired", n_bootstrap=100)
    assert len(prof) == 2 * 2 * 3 and set(prof["measure"]) == {"causal effect", "pruning drop"}
    causal = prof[prof["measure"] == "causal effect"].set_index(["family", "layer"])["value"]
    assert causal[("mlp", FACT_LAYER)] == pytest.approx(1.0)
    assert (prof["ci_low"] <= prof["value"] + 1e-12).all()
    assert (prof["value"] <= prof["ci_high"] + 1e-12).all()


def test_layer_agreement_covers_families_and_positions(tmp_path):
    from lenskit.analysis.trace_agreement import layer_agreement

    model = load_model(build_trace_model(tmp_path / "m"))
    task = trace_task()
    items = trace_items(model, {"closed_book": task}, kinds=("mlp", "attn"),
                        positions=("subject_last", "last"), corruption="counterfactual",
                        progress=False)
    sens = pd.concat([layer_sensitivity_items(model, task, family=f, method="magnitude",
                                              sparsity=1.0) for f in ("mlp", "attn")])
    table = layer_agreement(items, sens, n_bootstrap=100)
    # "all" is not traced: skipped; "rome" pairs mlp@subject_last with attn@last
    assert list(table["position"].unique()) == ["subject_last", "last", "rome"]
    assert set(table["family"]) == {"mlp", "attn", "mlp+attn"}
    rome = table[table["position"] == "rome"].set_index("family")
    assert rome.loc["mlp", "rho"] == pytest.approx(1.0)
    assert rome.loc["mlp+attn", "n_units"] == 6

    # ROME's sites only (FFW at the subject, attention at the last token): no mixed position
    from lenskit.analysis import trace_sites

    rome_sites = [*trace_sites(model, kinds=("mlp",), positions=("subject_last",)),
                  *trace_sites(model, kinds=("attn",), positions=("last",))]
    rome_items = trace_items(model, {"closed_book": task}, sites=rome_sites,
                             corruption="counterfactual", progress=False)
    table = layer_agreement(rome_items, sens, n_bootstrap=50)
    assert [(r.family, r.position) for r in table.itertuples()] == [
        ("mlp", "subject_last"), ("attn", "last"), ("mlp", "rome"), ("attn", "rome"),
        ("mlp+attn", "rome")]
