
import re

import numpy as np
import pytest
import torch
from weight_hashes import weights_hash  # tests/ is on the path

from lenskit.models import (
    MaskSet,
    apply_masks,
    check_consistency,
    check_masks,
    check_sparsity,
    load_model,
    model_info,
    parse_site_name,
    pruned,
    restore,
)
from lenskit.models.masks import tensor_checksum


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


def hand_masks() -> MaskSet:
    """Three masks whose counts are known by hand (layer 1 first: insertion order is not
    the sorted order), and an empty one."""
    q = torch.ones(4, 4, dtype=torch.bool)
    q[0] = False  # 4 of 16 pruned
    mlp = torch.zeros(2, 8, dtype=torch.bool)
    mlp[0, :4] = True  # 12 of 16 pruned
    return MaskSet({"blocks.1.mlp.in": mlp, "blocks.0.attn.q": q,
                    "blocks.1.attn.q": torch.ones(2, 2, dtype=torch.bool),
                    "blocks.2.attn.k": torch.ones(0, 4, dtype=torch.bool)},
                   fingerprint="f1", model="m1", meta={"method": "hand"})


def test_report_and_grouped_sparsity_by_hand():
    ms = hand_masks()
    rep = ms.report()
    assert list(rep.columns) == ["site", "layer", "family", "component", "numel", "pruned",
                                 "kept", "sparsity"]
    assert rep.values.tolist() == [
        ["blocks.1.mlp.in", 1, "mlp", "in", 16, 12, 4, 0.75],
        ["blocks.0.attn.q", 0, "attn", "q", 16, 4, 12, 0.25],
        ["blocks.1.attn.q", 1, "attn", "q", 4, 0, 4, 0.0],
        ["blocks.2.attn.k", 2, "attn", "k", 0, 0, 0, 0.0],  # an empty matrix: 0, not NaN
    ]
    assert ms.sparsity() == 16 / 36 and ms.n_pruned == 16 and ms.n_params == 36
    by_layer = ms.sparsity(by="layer")
    assert len(by_layer) == 3
    assert by_layer.values[:2].tolist() == [[0, 16, 4, 12, 0.25], [1, 20, 12, 8, 0.6]]
    by_site = ms.sparsity(by="site").set_index("site")["pruned"].to_dict()
    assert by_site == {"blocks.0.attn.q": 4, "blocks.1.attn.q": 0, "blocks.1.mlp.in": 12,
                       "blocks.2.attn.k": 0}
    assert MaskSet({}).sparsity() == 0.0  # no weights: nothing pruned, not 0/0
    assert repr(ms) == "MaskSet(4 sites, sparsity 44.44%, model='m1')"


def test_restrict_and_union_keep_the_identity_and_intersect_kept_weights():
    ms = hand_masks()
    sub = ms.restrict(["blocks.0.attn.q", "blocks.9.attn.q"])
    assert list(sub) == ["blocks.0.attn.q"]
    assert (sub.fingerprint, sub.model, sub.meta) == ("f1", "m1", {"method": "hand"})
    other_q = torch.ones(4, 4, dtype=torch.bool)
    other_q[:, 0] = False
    other = MaskSet({"blocks.0.attn.q": other_q, "blocks.3.mlp.out": torch.ones(1, 1).bool()})
    for u in (sub | other, other | sub):
        assert set(u) == {"blocks.0.attn.q", "blocks.3.mlp.out"}
        # kept only where both keep: row 0 and column 0 pruned, 7 of 16 in all
        want = torch.ones(4, 4, dtype=torch.bool)
        want[0], want[:, 0] = False, False
        assert torch.equal(u["blocks.0.attn.q"], want)
        assert (u.fingerprint, u.model) == ("f1", "m1")  # from whichever side has one
    assert (sub | other).meta == {"method": "hand"} and (other | sub).meta == {}
    with pytest.raises(ValueError, match=r"cannot combine masks of different models \(f1 vs f2\)"):
        sub | MaskSet({}, fingerprint="f2")


def test_check_sparsity_accepts_the_ends_and_numbers_as_text():
    assert check_sparsity(0) == 0.0 and check_sparsity(1) == 1.0
    assert check_sparsity("0.25") == 0.25 and isinstance(check_sparsity(1), float)
    with pytest.raises(ValueError, match=r"^keep must be in \[0, 1\], got nan$"):
        check_sparsity(float("nan"), "keep")
    with pytest.raises(ValueError, match=r"^sparsity must be a number in \[0, 1\], got None$"):
        check_sparsity(None)


def test_checksum_is_sha256_of_names_dtypes_shapes_and_bytes():
    import hashlib

    t = torch.tensor([1, 2, 255], dtype=torch.uint8)
    e = torch.zeros(0, 3, dtype=torch.bool)
    # the documented layout, in name order: "name|dtype|shape|" then the raw bytes
    want = hashlib.sha256(b"a|torch.bool|(0, 3)|" + b"b|torch.uint8|(3,)|\x01\x02\xff")
    assert tensor_checksum({"b": t, "a": e}) == want.hexdigest()
    assert tensor_checksum({"b": t.flip(0), "a": e}) != want.hexdigest()


def test_saved_file_is_packed_and_carries_the_identity(tmp_path):
    from safetensors import safe_open

    ms = hand_masks()
    path = tmp_path / "m.safetensors"
    ms.save(path)  # packed by default: one bit per weight
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert f.get_tensor("blocks.0.attn.q").tolist() == [0b00001111, 0b11111111]
    assert meta["packed"] == "true" and meta["sha256"] == tensor_checksum(
        {n: torch.from_numpy(np.packbits(m.numpy().reshape(-1))) for n, m in ms.items()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    back = MaskSet.load(path)
    assert (back.fingerprint, back.model, back.meta) == ("f1", "m1", {"method": "hand"})
    assert all(torch.equal(back[n], ms[n]) for n in ms)
    MaskSet({"blocks.0.attn.q": ms["blocks.0.attn.q"]}).save(path)  # no identity: none back
    back = MaskSet.load(path)
    assert (back.fingerprint, back.model, back.meta) == (None, None, {})


def test_load_names_damaged_and_tampered_files(tmp_path):
    from lenskit.errors import CorruptFileError

    path = tmp_path / "m.safetensors"
    hand_masks().save(path, packed=False)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one mask bit of the last tensor flipped: a valid file, wrong content
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"^mask file .*tampered.safetensors is corrupt: "
                       r"its content does not match the checksum stored when it was saved; "
                       r"it cannot be used: compute the masks again") as err:
        MaskSet.load(bad)
    assert err.value.path == str(bad)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CorruptFileError, match=r"^mask file .*cut.safetensors is damaged or not a "
                       r"safetensors file \(\w+Error: .+\); it cannot be used") as err:
        MaskSet.load(cut)
    assert err.value.path == str(cut)
    with pytest.raises(ValueError, match=r"is a directory, not a mask file: pass the "
                       r"\.safetensors file written by MaskSet\.save$"):
        MaskSet.load(tmp_path)


def test_load_names_the_format_of_a_foreign_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "x.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"\(format 'pt', expected 'lenskit.masks.v1'\): pass "
                       r"a file written by MaskSet\.save$"):
        MaskSet.load(tmp_path / "x.safetensors")


def test_dense_and_from_weights_masks(tiny_dirs):
    model = load_model(tiny_dirs["llama"])
    info = model_info(model)
    dense = MaskSet.dense(model, "attn")
    assert list(dense) == [s.name for s in info.sites if s.family == "attn"]
    assert all(m.dtype == torch.bool and m.all() and tuple(m.shape) == info.site_map[n].shape
               for n, m in dense.items())
    assert (dense.fingerprint, dense.model) == (info.fingerprint, info.spec)
    assert MaskSet.from_weights(model, "mlp").n_pruned == 0  # random weights: none exactly 0
    masks = random_masks(model, "mlp", p=0.4, seed=5)
    check_masks(model, masks)  # fits: nothing raised, nothing changed
    apply_masks(model, masks)
    now = MaskSet.from_weights(model, "mlp")
    assert list(now) == list(masks) and all(torch.equal(now[n], masks[n]) for n in masks)
    assert (now.fingerprint, now.model) == (info.fingerprint, info.spec)
    assert len(MaskSet.from_weights(model)) == len(info.sites)


def test_check_masks_refuses_and_modifies_nothing(tiny_dirs):
    model = load_model(tiny_dirs["opt"])
    info = model_info(model)
    h0 = weights_hash(model)
    s = info.sites[0]
    with pytest.raises(ValueError, match=rf"mask for {s.name} has shape \(3, 3\)"):
        check_masks(model, {s.name: torch.ones(3, 3, dtype=torch.bool)})
    keep = torch.ones(s.shape, dtype=torch.bool)
    with pytest.raises(ValueError, match=f"replacement weight for {s.name} has non-finite"):
        check_masks(model, {s.name: keep}, {s.name: torch.full(s.shape, float("nan"))})
    with pytest.raises(ValueError, match="another model"):
        check_masks(model, MaskSet({s.name: keep}, fingerprint="0" * 16))
    assert weights_hash(model) == h0


def test_check_consistency_finds_a_transformerlens_copy_that_differs(tiny_dirs):
    model = load_model(tiny_dirs["gpt_neox"])  # its attention sites have a bridge copy
    site = next(s for s in model_info(model).sites if len(s.bindings) > 1)
    check_consistency(model)
    copy = site.bindings[1]
    copy.write_(copy.read() + 1)
    with pytest.raises(AssertionError, match=rf"^{copy.where} differs from the HF weight of "
                       rf"{site.name}$"):
        check_consistency(model)


@pytest.mark.parametrize("name, parsed", [
    ("blocks.3.mlp.gate", (3, "mlp", "gate")), ("blocks.12.attn.o", (12, "attn", "o")),
    ("blocks.3.mlp.e5.in", (3, "mlp", "in")), ("blocks.0.mlp.shared.out", (0, "mlp", "out")),
    ("blocks.3.attn.e5.q", None), ("blocks.3.mlp.x5.in", None), ("blocks.3.mlp.e.in", None),
    ("blocks.3.mlp.e5.in.x", None), ("blockz.3.attn.q", None), ("blocks.x.attn.q", None),
    ("blocks.3.attn", None),
])
def test_parse_site_name(name, parsed):
    if parsed is not None:
        assert parse_site_name(name) == parsed
        return
    with pytest.raises(ValueError, match=re.escape(
            f"bad site name {name!r}; expected 'blocks.<layer>.<family>.<component>' or, for "
            "an expert, 'blocks.<layer>.mlp.e<i>.<component>'")):
        parse_site_name(name)


def test_validation_messages_name_the_bad_value(tiny_dirs):
    model = load_model(tiny_dirs["opt"])
    info = model_info(model)
    s = info.sites[0]
    keep = torch.ones(s.shape, dtype=torch.bool)
    cases = [
        (MaskSet({s.name: keep}, fingerprint="0" * 16, model="other"),
         None, f"these masks were made for another model (fingerprint {'0' * 16}, model "
               f"'other'); this model {info.spec!r} has fingerprint {info.fingerprint}"),
        ({"blocks.9.attn.q": keep}, None,
         f"unknown site 'blocks.9.attn.q'; this model's sites are {list(info.site_map)[:8]}... "
         f"({len(info.site_map)} in all)"),
        ({s.name: keep.float()}, None, f"mask for {s.name} must be a bool tensor, got "
                                       "torch.float32"),
        ({s.name: keep.tolist()}, None, f"mask for {s.name} must be a bool tensor, got "
                                        "<class 'list'>"),
        ({s.name: keep}, {info.sites[1].name: torch.zeros(info.sites[1].shape)},
         f"replacement weight for {info.sites[1].name} has no mask"),
        ({s.name: keep}, {s.name: torch.zeros(2, 3)},
         f"replacement weight for {s.name} has shape (2, 3), expected {s.shape}"),
        ({s.name: keep}, {s.name: torch.full(s.shape, float("inf"))},
         f"replacement weight for {s.name} has non-finite values"),
    ]
    for masks, weights, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            check_masks(model, masks, weights)
    check_masks(model, {s.name: keep}, {s.name: torch.zeros(s.shape)})  # a good weight passes
    with pytest.raises(ValueError, match=re.escape(
            "mask for blocks.0.attn.q must be a 2-D bool tensor, got torch.float32 of shape "
            "(2, 2)")):
        MaskSet({"blocks.0.attn.q": torch.ones(2, 2)})


def test_apply_masks_with_replacement_weights(tiny_dirs):
    model = load_model(tiny_dirs["llama"])
    info = model_info(model)
    a, b = info.sites[0], info.sites[1]
    before_b = b.weight()
    g = torch.Generator().manual_seed(3)
    new_a = torch.randn(a.shape, generator=g, dtype=torch.float64)  # cast to the model's dtype
    masks = {a.name: torch.rand(a.shape, generator=g) > 0.3,
             b.name: torch.rand(b.shape, generator=g) > 0.3}
    apply_masks(model, masks, {a.name: new_a})
    want_a = torch.where(masks[a.name], new_a.float(), torch.zeros(()))
    assert a.weight().dtype == torch.float32 and torch.equal(a.weight(), want_a)
    assert torch.equal(b.weight(), torch.where(masks[b.name], before_b, torch.zeros(())))
    restore(model)
    assert torch.equal(b.weight(), before_b)  # the original, not the replacement, comes back


def test_apply_masks_refuses_a_bad_replacement_weight_before_writing(tiny_dirs):
    model = load_model(tiny_dirs["opt"])
    s = model_info(model).sites[0]
    h0 = weights_hash(model)
    with pytest.raises(ValueError, match=f"replacement weight for {s.name} has non-finite"):
        apply_masks(model, {s.name: torch.ones(s.shape, dtype=torch.bool)},
                    {s.name: torch.full(s.shape, float("nan"))})
    assert weights_hash(model) == h0


def test_a_mask_that_is_not_a_tensor_is_named_by_its_type():
    with pytest.raises(ValueError, match=re.escape(
            "mask for blocks.0.attn.q must be a 2-D bool tensor, got <class 'list'> of shape ()")):
        MaskSet({"blocks.0.attn.q": [[True]]})


def test_a_file_without_identity_or_checksum_loads_with_empty_meta(tmp_path):
    from safetensors.torch import save_file

    # what a writer that recorded no metadata besides the format and shapes leaves
    save_file({"blocks.0.attn.q": torch.tensor([[True, False]])}, str(tmp_path / "m.safetensors"),
              metadata={"format": "lenskit.masks.v1", "packed": "false",
                        "shapes": '{"blocks.0.attn.q": [1, 2]}'})
    back = MaskSet.load(tmp_path / "m.safetensors")
    assert (back.fingerprint, back.model, back.meta) == (None, None, {})
    assert back["blocks.0.attn.q"].tolist() == [[True, False]]
