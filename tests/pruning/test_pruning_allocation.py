"""Allocations (matched, OWL, global) and bad input, on a tiny Llama."""

import itertools

import pytest
import torch
from pruning_helpers import weights_hash

from lenskit.models import model_info, restore
from lenskit.pruning import (
    ALLOCATIONS,
    CalibrationData,
    Pruner,
    matched_sparsities,
    prune,
)
from lenskit.pruning.structure import n_to_prune


def test_matched_sparsities_remove_the_same_number_of_parameters(llama, llama_cal):
    info = model_info(llama)
    n_attn, n_mlp = info.select("attn").n_params, info.select("mlp").n_params
    assert n_mlp > n_attn  # FFW holds more parameters: equal sparsity is unfair
    n = n_attn // 2
    sp = matched_sparsities(llama, ["attn", "mlp"], n_params=n)
    assert sp == pytest.approx({"attn": n / n_attn, "mlp": n / n_mlp})
    for method in ("magnitude", "wanda"):
        removed = {}
        for scope in ("attn", "mlp"):
            r = prune(llama, method, scope=scope, allocation="matched", n_params=n,
                      calibration=llama_cal, apply=False)
            rows = sum(s.shape[0] for s in info.select(scope))
            # per-row flooring removes at most one parameter per row less than asked
            assert n - (rows if method == "wanda" else len(r.masks)) <= r.params_removed <= n
            assert r.config["n_params"] == n
            removed[scope] = r.params_removed
        assert abs(removed["attn"] - removed["mlp"]) <= 0.01 * n
    # a sweep over numbers of parameters: one calibration pass, nested masks
    ns = [n // 4, n // 2, n]
    sweep = Pruner(llama, "wanda", scope="mlp", allocation="matched",
                   calibration=llama_cal).sweep(n_params=ns)
    assert list(sweep) == ns
    for a, b in itertools.pairwise(ns):
        assert sweep[a].masks.is_nested_in(sweep[b].masks)
    single = prune(llama, "wanda", scope="mlp", allocation="matched", n_params=n // 2,
                   calibration=llama_cal, apply=False)
    assert all(torch.equal(single.masks[k], sweep[n // 2].masks[k]) for k in single.masks)


def test_matched_sparsity_as_a_fraction_of_all_block_linear_params(llama):
    total = model_info(llama).total_params
    r = prune(llama, "magnitude", 0.2, scope="attn", allocation="matched", apply=False)
    assert abs(r.params_removed - 0.2 * total) <= len(r.masks)
    assert r.config["scope_sparsity"] == pytest.approx(n_to_prune(0.2, total) /
                                                        model_info(llama).select("attn").n_params)
    sweep = Pruner(llama, "magnitude", scope="mlp", allocation="matched").sweep([0.1, 0.2])
    assert sweep[0.1].masks.is_nested_in(sweep[0.2].masks)
    assert abs(sweep[0.2].params_removed - r.params_removed) <= 2 * len(sweep[0.2].masks)


def test_matched_rejects_more_parameters_than_the_scope_holds(llama):
    n_attn = model_info(llama).select("attn").n_params
    with pytest.raises(ValueError, match=rf"n_params={n_attn + 1}.*{n_attn}"):
        matched_sparsities(llama, ["attn", "mlp"], n_params=n_attn + 1)
    with pytest.raises(ValueError, match="larger than scope"):
        prune(llama, "magnitude", 0.9, scope="attn", allocation="matched")
    with pytest.raises(ValueError, match="exactly one"):
        prune(llama, "magnitude", 0.1, scope="attn", allocation="matched", n_params=10)


def test_owl_gives_outlier_rich_blocks_lower_sparsity(llama, llama_cal):
    r = prune(llama, "wanda", 0.5, allocation="owl", owl_lambda=0.1, calibration=llama_cal,
              apply=False)
    owl = r.diagnostics["owl"]
    ratios = {int(k): v for k, v in owl["outlier_ratio"].items()}
    layer_s = {int(k): v for k, v in owl["layer_sparsity"].items()}
    assert ratios[0] != ratios[1]
    rich, poor = sorted(ratios, key=ratios.get, reverse=True)
    assert layer_s[rich] < layer_s[poor]
    assert layer_s[poor] - layer_s[rich] == pytest.approx(0.2)  # 2 lambda with two blocks
    assert (layer_s[0] + layer_s[1]) / 2 == pytest.approx(0.5)  # equal-size blocks
    info = model_info(llama)
    for s in info.sites:
        assert r.target[s.name] == layer_s[s.layer]
        assert ((~r.masks[s.name]).sum(1) == n_to_prune(layer_s[s.layer], s.shape[1])).all()
    rep = r.report()
    assert (rep["target_sparsity"] == rep["layer"].map(layer_s)).all()
    # the outlier ratio is the share of Wanda scores above owl_m x the block mean
    assert r.config["method_kwargs"] == {"owl_m": 5.0, "owl_lambda": 0.1}
    for method in ("magnitude", "sparsegpt"):  # OWL spreads sparsity for any method
        other = prune(llama, method, 0.5, allocation="owl", owl_lambda=0.1,
                      calibration=llama_cal, apply=False)
        assert other.diagnostics["owl"]["layer_sparsity"] == owl["layer_sparsity"]


def test_global_allocation_uses_one_ranking_across_the_selection(llama, llama_cal):
    r = prune(llama, "magnitude", 0.4, allocation="global", apply=False)
    info = model_info(llama)
    pruned = torch.cat([info.site_map[n].weight().abs()[~m] for n, m in r.masks.items()])
    kept = torch.cat([info.site_map[n].weight().abs()[m] for n, m in r.masks.items()])
    assert pruned.numel() == n_to_prune(0.4, info.total_params)
    assert pruned.max() <= kept.min()
    assert len({round(t, 6) for t in r.target.values()}) > 1  # sites end up unequal
    assert r.report()["target_sparsity"].equals(r.report()["achieved_sparsity"])
    w = prune(llama, "wanda", 0.4, allocation="global", calibration=llama_cal, apply=False)
    assert w.params_removed == n_to_prune(0.4, info.total_params)
    sweep = Pruner(llama, "wanda", allocation="global", calibration=llama_cal).sweep([0.3, 0.6])
    assert sweep[0.3].masks.is_nested_in(sweep[0.6].masks)


def test_allocations_are_the_documented_ones():
    assert ALLOCATIONS == ("uniform", "global", "owl", "matched")


BAD = [
    (dict(method="obs", sparsity=0.5), "unknown method 'obs'"),
    (dict(method="wanda", sparsity=1.5), "sparsity must be in"),
    (dict(method="wanda", sparsity=-0.1), "sparsity must be in"),
    (dict(method="wanda", sparsity="half"), "sparsity must be a number"),
    (dict(method="wanda", sparsity=None), "sparsity is required"),
    (dict(method="wanda", sparsity=0.5, allocation="layerwise"), "unknown allocation"),
    (dict(method="wanda", sparsity=0.5, structure="5:4"), "'5:4'"),
    (dict(method="wanda", sparsity=0.5, structure="2-4"), "'2-4'"),
    (dict(method="wanda", sparsity=0.5, scope="attention"), "bad scope 'attention'"),
    (dict(method="wanda", sparsity=0.5, scope="attn@7"), "layer 7 out of range"),
    (dict(method="wanda", structure="3:7"), "divisible by 7"),
    (dict(method="wanda", sparsity=0.3, structure="2:4"), "contradicts"),
    (dict(method="wanda", structure="2:4", allocation="owl"), "allocation='uniform'"),
    (dict(method="wanda", sparsity=0.5, mode="greedy"), "unknown mode"),
    (dict(method="wanda", sparsity=0.5, blocksize=64), "unknown parameter 'blocksize'"),
    (dict(method="wanda", sparsity=0.5, owl_m=3), "allocation='owl'"),
    (dict(method="sparsegpt", sparsity=0.5, percdamp=-1), "percdamp"),
    (dict(method="sparsegpt", sparsity=0.5, blocksize=0), "blocksize"),
    (dict(method="sparsegpt", sparsity=0.5, allocation="global"), "not defined for sparsegpt"),
    (dict(method="wanda", sparsity=0.5, allocation="global", mode="sequential"), "dense"),
    (dict(method="magnitude", sparsity=0.5, allocation="global", per_row=True), "per_row"),
    (dict(method="magnitude", sparsity=0.5, per_row="yes"), "per_row"),
    (dict(method="wanda", sparsity=0.5, allocation="owl", owl_lambda=0.7), "owl_lambda"),
    (dict(method="wanda", sparsity=0.5, n_params=100), "only for allocation='matched'"),
    (dict(method="wanda", sparsity=0.5, seed=1.5), "seed"),
    (dict(method="wanda", sparsity=0.5, batch_size=0), "batch_size"),
    (dict(method="wanda", sparsity=0.5,
          calibration=CalibrationData.from_tokens(torch.full((2, 8), 10**6))), "vocabulary"),
    (dict(method="wanda", sparsity=0.5,
          calibration=CalibrationData.from_tokens(torch.ones(2, 600, dtype=torch.long))),
     "positions"),
    (dict(method="wanda", sparsity=0.5, calibration=torch.ones(2, 8)), "CalibrationData"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_before_anything_is_modified(llama, kwargs, message):
    first = prune(llama, "magnitude", 0.3, scope="mlp")  # a pruned state to preserve
    h = weights_hash(llama)
    with pytest.raises(ValueError, match=message):
        prune(llama, **kwargs)
    assert weights_hash(llama) == h
    assert first.masks.fingerprint == model_info(llama).fingerprint
    restore(llama)


def test_bad_sweep_levels_are_rejected(llama):
    pruner = Pruner(llama, "magnitude")
    with pytest.raises(ValueError, match="sparsity must be in"):
        pruner.sweep([0.1, 1.2])
    with pytest.raises(ValueError, match="at least one"):
        pruner.sweep([])
    with pytest.raises(ValueError, match="n_params"):
        pruner.sweep()
    with pytest.raises(ValueError, match="only for allocation='matched'"):
        pruner.sweep(n_params=[10])
    with pytest.raises(ValueError, match="contradicts"):
        Pruner(llama, "magnitude", structure="2:4").sweep([0.5, 0.6])
    assert list(Pruner(llama, "magnitude", structure="2:4").sweep([0.5])) == [0.5]


def test_a_model_not_loaded_by_lenskit_is_rejected():
    with pytest.raises(ValueError, match="load_model"):
        prune(torch.nn.Linear(2, 2), "magnitude", 0.5)
