"""prune() and Pruner end to end on tiny models of every family."""

import itertools

import pytest
import torch
from pruning_helpers import site_hashes, site_inputs, weights_hash

from lenskit.models import MaskSet, apply_masks, model_info, restore
from lenskit.pruning import METHODS, Pruner, PruneResult, prune
from lenskit.pruning.reference import reference_sparsegpt
from lenskit.pruning.statistics import BlockWalker, group_sites
from lenskit.pruning.structure import n_to_prune


def wanda_by_hand(model, tokens, sites, sparsity) -> dict[str, torch.Tensor]:
    """Wanda's masks from the formula, with inputs captured by TransformerLens hooks."""
    inputs = site_inputs(model, tokens, sites)
    out = {}
    for s in sites:
        score = s.weight().double().abs() * inputs[s.name].norm(dim=0)[None, :]
        order = torch.argsort(score, dim=1, stable=True)[:, :n_to_prune(sparsity, s.shape[1])]
        out[s.name] = torch.ones(s.shape, dtype=torch.bool).scatter_(1, order, False)
    return out


def test_every_method_prunes_every_family_exactly(family, tiny_model, cal):
    for method in METHODS:
        check_method_prunes_exactly(tiny_model, cal, method)


def check_method_prunes_exactly(tiny_model, cal, method):
    h0 = weights_hash(tiny_model)
    r = prune(tiny_model, method, 0.5, calibration=cal)
    assert isinstance(r, PruneResult)
    info = model_info(tiny_model)
    assert set(r.masks) == {s.name for s in info.sites}
    for s in info.sites:
        keep = r.masks[s.name]
        w = s.weight()
        assert torch.equal(w == 0, ~keep)  # applied: exactly the pruned weights are zero
        if method == "wanda":
            assert ((~keep).sum(1) == n_to_prune(0.5, s.shape[1])).all()  # per row
        else:
            assert int((~keep).sum()) == n_to_prune(0.5, s.numel)  # per matrix
    rep = r.report()
    assert list(rep.columns) == ["site", "layer", "family", "component", "numel",
                                 "target_sparsity", "achieved_sparsity", "pruned"]
    assert (rep["target_sparsity"] == 0.5).all()
    assert r.params_removed == int(rep["pruned"].sum())
    assert r.achieved_sparsity == pytest.approx(r.params_removed / rep["numel"].sum())
    assert (r.weights is not None) == (method == "sparsegpt")
    assert r.masks.fingerprint == info.fingerprint and r.masks.meta["method"] == method
    assert r.config["method"] == method and r.config["sparsity"] == 0.5
    restore(tiny_model)
    assert weights_hash(tiny_model) == h0


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("mode", ["dense", "sequential"])
def test_calibrated_methods_run_in_both_modes_on_every_family(family, tiny_model, cal, method,
                                                              mode):
    r = prune(tiny_model, method, 0.6, calibration=cal, mode=mode, apply=False)
    assert r.achieved_sparsity == pytest.approx(
        sum(n_to_prune(0.6, s.shape[1]) * s.shape[0] if method == "wanda"
            else n_to_prune(0.6, s.numel) for s in model_info(tiny_model).sites)
        / model_info(tiny_model).total_params)
    with r.applied(tiny_model):
        logits = tiny_model(cal.tokens[:2])
    assert torch.isfinite(logits).all()


def test_wanda_equals_its_formula_on_hooked_activations(family, tiny_model, cal):
    # wanda_by_hand scores every block on the unpruned model's activations: dense mode
    r = prune(tiny_model, "wanda", 0.5, calibration=cal, mode="dense", apply=False)
    sites = model_info(tiny_model).sites
    expected = wanda_by_hand(tiny_model, cal.tokens, sites, 0.5)
    for s in sites:
        assert torch.equal(r.masks[s.name], expected[s.name]), s.name


def test_statistics_equal_hooked_activations(family, tiny_model, cal):
    info = model_info(tiny_model)
    inputs = site_inputs(tiny_model, cal.tokens, info.sites)
    groups = group_sites(info.sites)
    wanted = {}
    for g, members in groups.items():
        wanted.setdefault(members[0].layer, {})[g] = (members[0], "hessian")
    got = {}
    BlockWalker(info, cal.tokens, batch_size=3).walk(wanted, lambda _l, st: got.update(st))
    assert set(got) == set(groups)
    for g, members in groups.items():
        x = inputs[members[0].name]
        for s in members[1:]:  # one statistic per input group: its sites read one tensor
            assert torch.equal(inputs[s.name], x)
        assert got[g].n_sequences == cal.n_samples and got[g].n_tokens == x.shape[0]
        expected = 2 / cal.n_samples * x.T @ x
        assert torch.allclose(got[g].hessian().double(), expected, rtol=1e-4, atol=1e-5), g
        assert torch.allclose(got[g].norms().double(), x.norm(dim=0), rtol=1e-5, atol=1e-6)


def test_sparsegpt_equals_the_reference_on_hooked_activations(family, tiny_model, cal):
    r = prune(tiny_model, "sparsegpt", 0.5, calibration=cal, mode="dense", apply=False)
    sites = model_info(tiny_model).sites
    inputs = site_inputs(tiny_model, cal.tokens, sites)
    for s in sites:
        x = inputs[s.name]
        ref = reference_sparsegpt(s.weight(), (2 / cal.n_samples * x.T @ x).float(), 0.5,
                                  exact=True)
        # Same counts; near-ties of the discrete choice may flip with float rounding of H
        # (tiny models' H are singular), so compare the masks' overlap and the errors.
        assert (r.masks[s.name] == (ref != 0)).float().mean() > 0.95, s.name
        w = s.weight().double()
        err = (x @ (w - r.weights[s.name].double()).T).norm() / (x @ w.T).norm()
        err_ref = (x @ (w - ref.double()).T).norm() / (x @ w.T).norm()
        assert abs(err - err_ref) <= 0.02 * err_ref + 1e-6, (s.name, err, err_ref)


def test_dense_and_sequential_agree_on_layer_0_and_differ_later(family, tiny_model, cal):
    for method in ("wanda", "sparsegpt"):
        dense = prune(tiny_model, method, 0.5, calibration=cal, mode="dense", apply=False)
        seq = prune(tiny_model, method, 0.5, calibration=cal, apply=False)  # the default
        assert seq.config["mode"] == "sequential" and dense.config["mode"] == "dense"
        assert "fast approximation" in dense.config["mode_note"]
        assert "reference" in seq.config["mode_note"]
        for s in model_info(tiny_model).sites:
            same = torch.equal(dense.masks[s.name], seq.masks[s.name])
            if method == "sparsegpt":
                same = same and torch.equal(dense.weights[s.name], seq.weights[s.name])
            if s.layer == 0:
                assert same, (method, s.name)
        later = [s for s in model_info(tiny_model).sites if s.layer == 1]
        assert any(not torch.equal(dense.masks[s.name], seq.masks[s.name]) for s in later)


def test_sequential_wanda_calibrates_later_blocks_on_pruned_outputs(llama, llama_cal):
    seq = prune(llama, "wanda", 0.5, calibration=llama_cal, mode="sequential", apply=False)
    info = model_info(llama)
    layer0 = {n: m for n, m in seq.masks.items() if n.startswith("blocks.0.")}
    apply_masks(llama, layer0)
    later = [s for s in info.sites if s.layer == 1]
    expected = wanda_by_hand(llama, llama_cal.tokens, later, 0.5)
    for s in later:
        assert torch.equal(seq.masks[s.name], expected[s.name]), s.name
    restore(llama)


def test_sparsity_zero_changes_nothing(family, tiny_model, cal):
    h0 = weights_hash(tiny_model)
    for method in METHODS:
        r = prune(tiny_model, method, 0.0, calibration=cal)
        assert r.params_removed == 0 and all(m.all() for m in r.masks.values())
        assert weights_hash(tiny_model) == h0, method  # applied, bit for bit the same


def test_sparsity_one_prunes_everything_in_scope(family, tiny_model, cal):
    before = site_hashes(tiny_model)
    for method in METHODS:
        r = prune(tiny_model, method, 1.0, scope="mlp", calibration=cal)
        assert r.achieved_sparsity == 1.0
        for s in model_info(tiny_model).sites:
            if s.family == "mlp":
                assert not s.weight().any()
            else:
                assert site_hashes(tiny_model)[s.name] == before[s.name]
        assert torch.isfinite(tiny_model(cal.tokens[:1])).all()
        restore(tiny_model)


def test_n_m_pattern_is_exact_in_the_model(family, tiny_model, cal):
    for method in METHODS:
        r = prune(tiny_model, method, structure="2:4", calibration=cal)
        for s in model_info(tiny_model).sites:
            assert torch.equal(s.weight() == 0, ~r.masks[s.name])
            assert ((~r.masks[s.name]).view(s.shape[0], -1, 4).sum(-1) == 2).all()
        assert r.achieved_sparsity == 0.5 and r.config["structure"] == "2:4"
    r = prune(tiny_model, "wanda", structure="3:8", calibration=cal, apply=False)
    assert all(((~m).view(m.shape[0], -1, 8).sum(-1) == 3).all() for m in r.masks.values())


def test_scope_isolation_attention_versus_ffw(family, tiny_model, cal):
    for method in METHODS:
        check_scope_isolation(tiny_model, cal, method)


def check_scope_isolation(tiny_model, cal, method):
    before = site_hashes(tiny_model)
    for scope, untouched in (("attn", "mlp"), ("mlp", "attn")):
        r = prune(tiny_model, method, 0.7, scope=scope, calibration=cal)
        assert {n.split(".")[2] for n in r.masks} == {scope}
        after = site_hashes(tiny_model)
        for s in model_info(tiny_model).sites:
            if s.family == untouched:
                assert after[s.name] == before[s.name], (scope, s.name)
            else:
                assert after[s.name] != before[s.name]
        restore(tiny_model)
    # other scopes: some components, some layers
    r = prune(tiny_model, method, 0.5, scope="attn.q,k@1", calibration=cal)
    assert list(r.masks) == ["blocks.1.attn.q", "blocks.1.attn.k"]
    after = site_hashes(tiny_model)
    assert [n for n in after if after[n] != before[n]] == list(r.masks)
    restore(tiny_model)


def test_random_masks_are_seeded_and_independent_of_scope(tiny_model):
    a = prune(tiny_model, "random", 0.4, seed=3, apply=False)
    b = prune(tiny_model, "random", 0.4, seed=3, scope="attn", apply=False)
    c = prune(tiny_model, "random", 0.4, seed=4, apply=False)
    for name, m in b.masks.items():
        assert torch.equal(m, a.masks[name])
    assert any(not torch.equal(a.masks[n], c.masks[n]) for n in a.masks)
    per_row = prune(tiny_model, "random", 0.4, per_row=True, apply=False)
    for s in model_info(tiny_model).sites:
        assert ((~per_row.masks[s.name]).sum(1) == n_to_prune(0.4, s.shape[1])).all()


def test_magnitude_per_row_and_per_matrix(tiny_model):
    mat = prune(tiny_model, "magnitude", 0.3, apply=False)
    row = prune(tiny_model, "magnitude", 0.3, per_row=True, apply=False)
    for s in model_info(tiny_model).sites:
        w = s.weight().abs()
        keep = mat.masks[s.name]
        assert int((~keep).sum()) == n_to_prune(0.3, s.numel)
        assert w[~keep].max() <= w[keep].min()
        keep = row.masks[s.name]
        assert ((~keep).sum(1) == n_to_prune(0.3, s.shape[1])).all()
        for r in range(s.shape[0]):
            assert w[r][~keep[r]].max() <= w[r][keep[r]].min()


@pytest.mark.parametrize("method,allocation", [
    ("magnitude", "uniform"), ("wanda", "uniform"), ("sparsegpt", "uniform"),
    ("random", "global"), ("wanda", "global"), ("magnitude", "owl"), ("wanda", "matched"),
])
def test_sweep_equals_individual_prunes(llama, llama_cal, method, allocation):
    levels = [0.2, 0.5, 0.7] if allocation != "matched" else [0.1, 0.2]
    scope = "all" if allocation != "matched" else "mlp"
    pruner = Pruner(llama, method, scope=scope, allocation=allocation, calibration=llama_cal)
    assert pruner.mode == "dense"  # the many-levels path: one calibration pass, and says so
    assert f"mode 'dense' ({pruner.mode_note})" in repr(pruner)
    sweep = pruner.sweep(levels)
    assert list(sweep) == levels
    for s in levels:
        single = prune(llama, method, s, scope=scope, allocation=allocation,
                       calibration=llama_cal, mode="dense", apply=False)
        assert single.config == sweep[s].config and single.target == sweep[s].target
        again = pruner.prune(s)  # a second call on the same Pruner (cached statistics)
        for name in single.masks:
            assert torch.equal(single.masks[name], sweep[s].masks[name])
            assert torch.equal(again.masks[name], single.masks[name])
            if method == "sparsegpt":
                assert torch.equal(single.weights[name], sweep[s].weights[name])
    if method != "sparsegpt":
        for lo, hi in itertools.pairwise(levels):
            assert sweep[lo].masks.is_nested_in(sweep[hi].masks)


def test_prune_defaults_to_sequential_calibration(llama, llama_cal):
    # prune() is the references' method by default; Pruner's sweeps stay dense (and say so)
    default = prune(llama, "sparsegpt", 0.5, calibration=llama_cal, apply=False)
    seq = Pruner(llama, "sparsegpt", calibration=llama_cal, mode="sequential").prune(0.5)
    dense = Pruner(llama, "sparsegpt", calibration=llama_cal).prune(0.5)
    assert default.config == seq.config and default.config["mode"] == "sequential"
    for name in default.masks:
        assert torch.equal(default.masks[name], seq.masks[name])
        assert torch.equal(default.weights[name], seq.weights[name])
    assert any(not torch.equal(default.masks[n], dense.masks[n]) for n in default.masks)
    assert dense.config["mode"] == "dense" and "approximation" in dense.config["mode_note"]
    # one ranking across blocks needs dense statistics: global Wanda defaults to dense
    glob = prune(llama, "wanda", 0.5, allocation="global", calibration=llama_cal, apply=False)
    assert glob.config["mode"] == "dense"
    mag = prune(llama, "magnitude", 0.5, apply=False)
    assert mag.config["mode_note"] == "no calibration: the mode does not matter"


def test_applied_restores_bitwise_and_apply_is_reversible(tiny_model, cal):
    h0 = weights_hash(tiny_model)
    r = prune(tiny_model, "sparsegpt", 0.5, calibration=cal, apply=False)
    assert weights_hash(tiny_model) == h0  # apply=False leaves the model alone
    with r.applied(tiny_model):
        assert weights_hash(tiny_model) != h0
        s = model_info(tiny_model).sites[0]
        assert torch.equal(s.weight(), r.weights[s.name])
    assert weights_hash(tiny_model) == h0
    r.apply(tiny_model)
    restore(tiny_model)
    assert weights_hash(tiny_model) == h0


def test_pruning_an_already_pruned_model_uses_the_original_weights(llama, llama_cal):
    first = prune(llama, "magnitude", 0.5, scope="mlp")
    attn_only = prune(llama, "wanda", 0.5, scope="attn", calibration=llama_cal, apply=False)
    restore(llama)
    fresh = prune(llama, "wanda", 0.5, scope="attn", calibration=llama_cal, apply=False)
    for name in fresh.masks:
        assert torch.equal(attn_only.masks[name], fresh.masks[name])
    # and the earlier pruning is left as it was, exactly
    first.apply(llama)
    h = weights_hash(llama)
    prune(llama, "sparsegpt", 0.5, scope="attn", calibration=llama_cal, apply=False)
    assert weights_hash(llama) == h
    restore(llama)


def test_config_reproduces_the_result(llama, llama_cal):
    r = prune(llama, "wanda", 0.4, scope=["attn.q", "mlp@1"], calibration=llama_cal,
              apply=False)
    cfg = r.config
    again = prune(llama, cfg["method"], cfg["sparsity"], scope=cfg["scope"],
                  structure=cfg["structure"], allocation=cfg["allocation"], mode=cfg["mode"],
                  seed=cfg["seed"], calibration=llama_cal, apply=False, **cfg["method_kwargs"])
    assert list(again.masks) == list(r.masks)
    assert all(torch.equal(again.masks[n], r.masks[n]) for n in r.masks)
    assert cfg["calibration"]["n_samples"] == 8 and cfg["fingerprint"]


def test_masks_save_and_load_with_their_metadata(llama, llama_cal, tmp_path):
    r = prune(llama, "sparsegpt", 0.5, calibration=llama_cal, blocksize=16, percdamp=0.05,
              apply=False)
    r.masks.save(tmp_path / "m.safetensors")
    back = MaskSet.load(tmp_path / "m.safetensors", llama)
    assert back.meta["params"] == {"blocksize": 16, "percdamp": 0.05}
    assert "random tokens" in back.meta["calibration"]
