"""Every site of every family is found, has the right shape, and maps to the right HF entries."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from lenskit.models import MaskSet, Selection, apply_masks, model_info, restore, sites

EXPECTED_COMPONENTS = {
    "gpt2": ("q", "k", "v", "o", "in", "out"),
    "gpt_neox": ("q", "k", "v", "o", "in", "out"),
    "opt": ("q", "k", "v", "o", "in", "out"),
    "llama": ("q", "k", "v", "o", "in", "gate", "out"),
}
D, H, DH, FFN = 32, 4, 8, 64


def expected_shape(family, comp):
    kv_out = (H // 2) * DH if family == "llama" else D
    return {"q": (D, D), "k": (kv_out, D), "v": (kv_out, D), "o": (D, D),
            "in": (FFN, D), "gate": (FFN, D), "out": (D, FFN)}[comp]


def hf_location(family, layer, comp, r, c):
    """Hand-written: which native HF parameter entry holds site weight [r, c] (out, in)."""
    if family == "gpt2":
        if comp in "qkv":
            return f"transformer.h.{layer}.attn.c_attn.weight", (c, "qkv".index(comp) * D + r)
        name = {"o": "attn.c_proj", "in": "mlp.c_fc", "out": "mlp.c_proj"}[comp]
        return f"transformer.h.{layer}.{name}.weight", (c, r)  # Conv1D is [in, out]
    if family == "gpt_neox":
        if comp in "qkv":
            h, j = divmod(r, DH)
            row = h * 3 * DH + "qkv".index(comp) * DH + j
            return f"gpt_neox.layers.{layer}.attention.query_key_value.weight", (row, c)
        name = {"o": "attention.dense", "in": "mlp.dense_h_to_4h", "out": "mlp.dense_4h_to_h"}
        return f"gpt_neox.layers.{layer}.{name[comp]}.weight", (r, c)
    if family == "opt":
        name = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
                "o": "self_attn.out_proj", "in": "fc1", "out": "fc2"}[comp]
        return f"model.decoder.layers.{layer}.{name}.weight", (r, c)
    name = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
            "o": "self_attn.o_proj", "in": "mlp.up_proj", "gate": "mlp.gate_proj",
            "out": "mlp.down_proj"}[comp]
    return f"model.layers.{layer}.{name}.weight", (r, c)


def test_every_site_found_with_right_shape(family, tiny_model):
    info = model_info(tiny_model)
    names = [s.name for s in info.sites]
    expected = [f"blocks.{layer}.{'attn' if c in 'qkvo' else 'mlp'}.{c}"
                for layer in range(2) for c in EXPECTED_COMPONENTS[family]]
    assert names == expected
    for s in info.sites:
        assert s.shape == expected_shape(family, s.component), s.name
        assert s.weight().shape == s.shape
        if s.family == "attn":
            heads = H // 2 if family == "llama" and s.component in "kv" else H
            assert (s.n_heads, s.head_dim) == (heads, DH)
            split = s.shape[s.head_axis]
            assert split == s.n_heads * s.head_dim


def test_site_weights_equal_transformer_lens_views(family, tiny_model):
    """Site q/k/v/o weights match TransformerLens' per-head W_Q, W_K, W_V, W_O."""
    for s in sites(tiny_model, "attn"):
        attn = tiny_model.blocks[s.layer].attn
        tl = {"q": attn.W_Q, "k": attn.W_K, "v": attn.W_V, "o": attn.W_O}[s.component]
        w = s.weight()
        if s.component == "o":  # W_O [head, d_head, d_model]; ours [d_model, head*d_head]
            expect = tl.reshape(-1, tl.shape[-1]).T
        else:  # W_Q [head, d_model, d_head]; ours [head*d_head, d_model]
            expect = tl.permute(0, 2, 1).reshape(-1, tl.shape[1])
        torch.testing.assert_close(w, expect, rtol=0, atol=0)


def test_zeroing_a_site_changes_exactly_its_hf_entries(tiny_dirs, family, tiny_model):
    info = model_info(tiny_model)
    pristine = AutoModelForCausalLM.from_pretrained(tiny_dirs[family]).eval()
    ref = {k: v.clone() for k, v in pristine.state_dict().items()}
    toks = torch.randint(5, 700, (2, 11), generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(0)
    for site in info.sites:
        keep = torch.rand(site.shape, generator=gen) > 0.3
        apply_masks(tiny_model, MaskSet({site.name: keep}))
        now = info.hf.state_dict()
        expected = {k: v.clone() for k, v in ref.items()}
        for r, c in (~keep).nonzero().tolist():
            pname, idx = hf_location(family, site.layer, site.component, r, c)
            expected[pname][idx] = 0.0
        for k, v in expected.items():
            assert torch.equal(now[k], v), f"{site.name}: {k} differs from the expectation"
        # The bridge runs on what the HF model holds: same logits as a natively edited model.
        native = AutoModelForCausalLM.from_pretrained(tiny_dirs[family]).eval()
        native.load_state_dict(expected)
        with torch.no_grad():
            assert (tiny_model(toks) - native(toks).logits).abs().max() < 1e-4, site.name
        restore(tiny_model)
        for k, v in info.hf.state_dict().items():
            assert torch.equal(v, ref[k]), f"{k} not restored after {site.name}"


def test_selection_by_family_layer_component(tiny_model):
    info = model_info(tiny_model)
    attn = sites(tiny_model, "attn")
    mlp = sites(tiny_model, Selection(families=("mlp",)))
    assert {s.family for s in attn} == {"attn"} and {s.family for s in mlp} == {"mlp"}
    assert attn.n_params + mlp.n_params == info.total_params
    assert attn.fraction + mlp.fraction == pytest.approx(1.0)
    qk1 = sites(tiny_model, "attn.q,k@1")
    assert qk1.names == ["blocks.1.attn.q", "blocks.1.attn.k"]
    assert sites(tiny_model, Selection(layers=range(1, 2))).names == \
        [s.name for s in info.sites if s.layer == 1]
    union = sites(tiny_model, ["attn.o", "mlp.out@0"])
    assert union.names == ["blocks.0.attn.o", "blocks.0.mlp.out", "blocks.1.attn.o"]
    assert "params" in repr(union)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("attn@7", "layer 7 out of range"),
        ("ffn", "bad scope 'ffn'"),
        ("attn.in", "component 'in' is not in families"),
        ("mlp.x", "unknown component 'x'"),
        ("attn@a-b", "bad layers"),
    ],
)
def test_bad_selections_name_the_value(tiny_model, scope, message):
    with pytest.raises(ValueError, match=message):
        sites(tiny_model, scope)


def test_gate_on_a_model_without_gate(tiny_dirs):
    from lenskit.models import load_model

    with pytest.raises(ValueError, match="component 'gate' does not exist"):
        sites(load_model(tiny_dirs["gpt2"]), "mlp.gate")
