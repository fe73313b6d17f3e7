
import pytest
import torch
from weight_hashes import weights_hash  # tests/ is on the path

from lenskit.models import (
    MaskSet,
    apply_masks,
    check_consistency,
    check_sparsity,
    load_model,
    model_info,
    pruned,
    restore,
)


def random_masks(model, scope=None, p=0.5, seed=0) -> MaskSet:
    info = model_info(model)
    gen = torch.Generator().manual_seed(seed)
    return MaskSet({s.name: torch.rand(s.shape, generator=gen) > p for s in info.select(scope)},
                   fingerprint=info.fingerprint, model=info.spec)


def test_apply_zeroes_exactly_the_pruned_entries(tiny_model):
    masks = random_masks(tiny_model)
    info = model_info(tiny_model)
    before = {s.name: s.weight() for s in info.sites}
    apply_masks(tiny_model, masks)
    check_consistency(tiny_model)
    for s in info.sites:
        w = s.weight()
        assert torch.equal(w[~masks[s.name]], torch.zeros_like(w[~masks[s.name]]))
        assert torch.equal(w[masks[s.name]], before[s.name][masks[s.name]])


def test_restore_is_bitwise_exact(tiny_model):
    h0 = weights_hash(tiny_model)
    apply_masks(tiny_model, random_masks(tiny_model, p=0.7))
    assert weights_hash(tiny_model) != h0
    apply_masks(tiny_model, random_masks(tiny_model, p=0.2, seed=3))  # replaces, not compounds
    restore(tiny_model)
    assert weights_hash(tiny_model) == h0
    check_consistency(tiny_model)


def test_apply_is_relative_to_the_original(tiny_model):
    info = model_info(tiny_model)
    s = info.sites[0]
    original = s.weight()
    a = torch.zeros(s.shape, dtype=torch.bool)
    apply_masks(tiny_model, {s.name: a})
    apply_masks(tiny_model, {s.name: ~a})
    assert torch.equal(s.weight(), original)


def test_context_manager_restores_also_on_exceptions(tiny_model):
    h0 = weights_hash(tiny_model)
    toks = torch.randint(5, 700, (2, 9))
    with torch.no_grad():
        dense = tiny_model(toks)
    with pytest.raises(RuntimeError, match="boom"), \
            pruned(tiny_model, random_masks(tiny_model, p=0.9)):
        with torch.no_grad():
            assert not torch.allclose(tiny_model(toks), dense)
        raise RuntimeError("boom")
    assert weights_hash(tiny_model) == h0


def test_context_manager_returns_to_previous_pruned_state(tiny_model):
    outer = random_masks(tiny_model, "attn", p=0.5, seed=1)
    apply_masks(tiny_model, outer)
    h_outer = weights_hash(tiny_model)
    with pruned(tiny_model, random_masks(tiny_model, p=0.8, seed=2)):
        assert weights_hash(tiny_model) != h_outer
    assert weights_hash(tiny_model) == h_outer


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda info: {"blocks.9.attn.q": torch.ones(2, 2, dtype=torch.bool)}, "unknown site"),
        (lambda info: {info.sites[0].name: torch.ones(3, 3, dtype=torch.bool)}, "shape"),
        (lambda info: {info.sites[0].name: torch.ones(info.sites[0].shape)}, "bool"),
        (lambda info: MaskSet({info.sites[0].name: torch.ones(info.sites[0].shape,
                                                              dtype=torch.bool)},
                              fingerprint="0123456789abcdef", model="other"), "another model"),
    ],
)
def test_bad_masks_raise_before_anything_is_modified(tiny_model, make, message):
    info = model_info(tiny_model)
    h0 = weights_hash(tiny_model)
    good = {s.name: torch.zeros(s.shape, dtype=torch.bool) for s in info.sites[1:]}
    bad = dict(make(info)) if not isinstance(make(info), MaskSet) else make(info)
    masks = bad if isinstance(bad, MaskSet) else {**good, **bad}
    with pytest.raises(ValueError, match=message):
        apply_masks(tiny_model, masks)
    assert weights_hash(tiny_model) == h0


def test_mask_set_rejects_non_bool_and_bad_names():
    with pytest.raises(ValueError, match="2-D bool"):
        MaskSet({"blocks.0.attn.q": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="bad site name"):
        MaskSet({"layer0.q": torch.ones(2, 2, dtype=torch.bool)})


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "half"])
def test_check_sparsity_names_the_bad_value(value):
    with pytest.raises(ValueError, match="sparsity must"):
        check_sparsity(value)


def test_sparsity_accounting(tiny_dirs):
    model = load_model(tiny_dirs["llama"])
    info = model_info(model)
    masks = {}
    for s in info.sites:
        m = torch.ones(s.shape, dtype=torch.bool)
        if s.family == "mlp":
            m[:, : s.shape[1] // 2] = False  # exactly half of every FFW matrix
        masks[s.name] = m
    ms = MaskSet(masks)
    fam = ms.sparsity(by="family").set_index("family")
    assert fam.loc["mlp", "sparsity"] == 0.5 and fam.loc["attn", "sparsity"] == 0.0
    mlp_params = sum(s.numel for s in info.sites if s.family == "mlp")
    assert ms.n_pruned == mlp_params // 2
    assert ms.sparsity() == pytest.approx(ms.n_pruned / info.total_params)
    by_comp = ms.sparsity(by="component").set_index("component")
    assert by_comp.loc["gate", "pruned"] == 2 * 64 * 16
    by_layer = ms.sparsity(by=["layer", "family"])
    assert len(by_layer) == 4
    with pytest.raises(ValueError, match="cannot group by 'head'"):
        ms.sparsity(by="head")


@pytest.mark.parametrize("packed", [True, False])
def test_masks_save_and_load(tmp_path, tiny_dirs, packed):
    model = load_model(tiny_dirs["gpt_neox"])
    masks = random_masks(model, p=0.37)
    masks.meta["method"] = "random"
    path = tmp_path / "m.safetensors"
    masks.save(path, packed=packed)
    back = MaskSet.load(path, model=model)
    assert set(back) == set(masks) and back.meta == {"method": "random"}
    assert all(torch.equal(back[n], masks[n]) for n in masks)
    assert back.fingerprint == model_info(model).fingerprint
    other = load_model(tiny_dirs["opt"])
    with pytest.raises(ValueError, match="another model"):
        MaskSet.load(path, model=other)


def test_load_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a lenskit mask file"):
        MaskSet.load(tmp_path / "x.safetensors")


def test_nesting_and_union(tiny_model):
    lo = random_masks(tiny_model, p=0.0)  # prunes (almost) nothing
    info = model_info(tiny_model)
    hi = MaskSet({n: m & (torch.rand(m.shape) > 0.5) for n, m in lo.items()},
                 fingerprint=info.fingerprint)
    assert lo.is_nested_in(hi) and not hi.is_nested_in(lo)
    u = lo.restrict(["blocks.0.attn.q"]) | hi.restrict(["blocks.0.attn.q", "blocks.1.attn.o"])
    assert set(u) == {"blocks.0.attn.q", "blocks.1.attn.o"}
