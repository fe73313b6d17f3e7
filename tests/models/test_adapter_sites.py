"""Sites derived from the TransformerLens adapter: strided layouts, expert scopes, override
rows, and load errors that name their cause."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lenskit.models import (
    ARCHITECTURES,
    MaskSet,
    ModelLoadError,
    Selection,
    load_model,
    make_tiny_model,
    model_info,
    parse_site_name,
    register_architecture,
    sites,
)
from lenskit.models.sites import is_attention_scope, is_ffw_scope
from lenskit.models.strided import strided_layout


@given(st.lists(st.integers(1, 4), min_size=4, max_size=4), st.integers(0, 7),
       st.permutations(range(4)), st.booleans())
def test_strided_layout_recovers_any_permuted_slice(shape, offset, perm, every_other):
    """The positions of a transposed, offset and row-strided view of a parameter (as fused
    and interleaved layouts are) are found as one strided view of the same elements, in the
    same order."""
    n = int(torch.tensor(shape).prod())
    param = torch.arange(offset + n + 8)
    index = param[offset:offset + n].view(shape).permute(*perm)
    if every_other and index.shape[0] > 1:
        index = index[::2]
    layout = strided_layout(index)
    assert torch.equal(layout.view(param).reshape(-1), index.reshape(-1))
    assert torch.equal(layout.indices(), index.reshape(-1))


def test_strided_layout_refuses_what_no_view_can_be():
    with pytest.raises(ValueError, match="strided"):
        strided_layout(torch.tensor([0, 1, 2, 5, 6, 9]))
    with pytest.raises(ValueError, match="repeat"):
        strided_layout(torch.tensor([3, 3, 4]))


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    return load_model(make_tiny_model("mixtral", tmp_path_factory.mktemp("m") / "mixtral"))


def test_expert_scopes(mixtral):
    """Experts are named in scopes; "mlp" and "mlp.in" include them; the router is no site."""
    info = model_info(mixtral)
    assert sites(mixtral, "mlp.e3.in").names == ["blocks.0.mlp.e3.in", "blocks.1.mlp.e3.in"]
    assert len(sites(mixtral, "mlp.e*")) == 4 * 3 * 2 == len(sites(mixtral, "mlp"))
    assert sites(mixtral, "mlp.e0,e1.out@1").names == ["blocks.1.mlp.e0.out",
                                                        "blocks.1.mlp.e1.out"]
    assert len(sites(mixtral, "mlp.in")) == 8 and len(sites(mixtral, "in,gate")) == 16
    assert Selection.parse("mlp.e2.gate@0").describe() == "mlp.e2.gate@0"
    assert is_ffw_scope("mlp.e*") and not is_attention_scope("mlp.e1")
    assert parse_site_name("blocks.1.mlp.e3.gate") == (1, "mlp", "gate")
    assert not any("gate.weight" in s.hf_path for s in info.sites)  # router untouched
    with pytest.raises(ValueError, match=r"expert 'e9' does not exist.*e0\.\.e3"):
        sites(mixtral, "mlp.e9")
    with pytest.raises(ValueError, match="bad expert"):
        Selection.parse("mlp.ex.in")
    with pytest.raises(ValueError, match="belong to family 'mlp'"):
        Selection(families=("attn",), experts=("e1",))
    # masks of experts save, load and report like any other
    m = MaskSet.dense(mixtral, "mlp.e2")
    assert m.report()["component"].tolist() == ["in", "gate", "out"] * 2


def test_expert_sites_are_the_expert_slices(mixtral):
    """blocks.L.mlp.eE.{gate,in,out} are gate_up_proj[E] rows 0:F, F:2F and down_proj[E]."""
    info = model_info(mixtral)
    for layer in range(2):
        experts = info.hf.model.layers[layer].mlp.experts
        f = experts.gate_up_proj.shape[1] // 2
        for e in range(4):
            sm = info.site_map
            torch.testing.assert_close(sm[f"blocks.{layer}.mlp.e{e}.gate"].weight(),
                                       experts.gate_up_proj[e, :f], rtol=0, atol=0)
            torch.testing.assert_close(sm[f"blocks.{layer}.mlp.e{e}.in"].weight(),
                                       experts.gate_up_proj[e, f:], rtol=0, atol=0)
            torch.testing.assert_close(sm[f"blocks.{layer}.mlp.e{e}.out"].weight(),
                                       experts.down_proj[e], rtol=0, atol=0)


ROWS = {
    "gpt2": dict(blocks="transformer.h", attention="attn",
                 q=("attn.c_attn", "fused_concat"), k=("attn.c_attn", "fused_concat"),
                 v=("attn.c_attn", "fused_concat"), o=("attn.c_proj", "conv1d"),
                 in_=("mlp.c_fc", "conv1d"), out=("mlp.c_proj", "conv1d")),
    "gpt_neox": dict(blocks="gpt_neox.layers", attention="attention",
                     q=("attention.query_key_value", "fused_interleaved"),
                     k=("attention.query_key_value", "fused_interleaved"),
                     v=("attention.query_key_value", "fused_interleaved"),
                     o="attention.dense", in_="mlp.dense_h_to_4h", out="mlp.dense_4h_to_h"),
}


@pytest.mark.parametrize("family", sorted(ROWS))
def test_override_row_gives_the_sites_the_adapter_gives(family, tiny_dirs):
    """The hand-written rows lenskit used before (GPT-2's fused c_attn, GPT-NeoX's
    interleaved query_key_value) find the very elements the adapter-derived sites find."""
    derived = model_info(load_model(tiny_dirs[family]))
    row = ROWS[family]
    register_architecture(family, row.pop("blocks"), row.pop("attention"), **row)
    try:
        hand = model_info(load_model(tiny_dirs[family]))
    finally:
        del ARCHITECTURES[family]
    assert hand.arch.source == "override" and derived.arch.source == "adapter"
    assert [s.name for s in hand.sites] == [s.name for s in derived.sites]
    for a, b in zip(hand.sites, derived.sites, strict=True):
        assert a.hf_path == b.hf_path and a.shape == b.shape
        assert a.bindings[0].param.shape == b.bindings[0].param.shape
        marks = []
        for site in (a, b):  # number the site's elements, in matrix order, in its parameter
            mark = torch.zeros(site.bindings[0].param.shape, dtype=torch.float64)
            view = site.bindings[0].view_fn(mark)
            view.copy_(torch.arange(1, site.numel + 1, dtype=torch.float64).reshape(view.shape))
            marks.append(mark)
        assert torch.equal(marks[0], marks[1]), a.name
        torch.testing.assert_close(a.weight(), b.weight(), rtol=0, atol=0)


def test_register_architecture_checks_its_row():
    with pytest.raises(ValueError, match="unknown component 'up'"):
        register_architecture("x", "model.layers", "self_attn", up="mlp.up_proj")
    with pytest.raises(ValueError, match="layout 'slice' is not for override rows"):
        register_architecture("x", "model.layers", "self_attn", q=("a", "slice"))
    assert "x" not in ARCHITECTURES


def test_load_errors_name_the_cause(tiny_dirs, tmp_path):
    import shutil

    # damaged weights: the file is named as damaged
    bad = tmp_path / "damaged"
    shutil.copytree(tiny_dirs["llama"], bad)
    weights = next(bad.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match="truncated or damaged"):
        load_model(bad)
    # an unknown model_type: transformers is named, not the weights
    unknown = tmp_path / "unknown"
    shutil.copytree(tiny_dirs["llama"], unknown)
    cfg = json.loads((unknown / "config.json").read_text())
    cfg["model_type"] = "no_such_family"
    (unknown / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"no_such_family.*transformers") as err:
        load_model(unknown)
    assert "damaged" not in str(err.value)
