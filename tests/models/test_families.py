"""The family matrix: every decoder-only family that transformers and the TransformerLens
bridge support, each as a tiny random model saved to a local directory, through loading,
sites, prune/restore, sequential calibration and evaluation.

Everything a family needs is derived from its TransformerLens adapter: no family here has
lenskit code of its own (``lenskit.models.architectures.ARCHITECTURES`` is empty).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from lenskit.models import (
    ARCHITECTURES,
    check_consistency,
    load_model,
    make_tiny_model,
    model_info,
    restore,
    sites,
)
from lenskit.models.families import UNSUPPORTED, families_tested
from lenskit.pruning import CalibrationData, calibration_from_source, prune
from lenskit.pruning.statistics import BlockWalker, group_sites
from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import evaluate, organism_suite
from lenskit.tasks.encoding import answer_token_ids, encode_texts, stop_token_mask

FAMILIES = families_tested()
MOE = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("families")
    return {f: make_tiny_model(f, root / f) for f in FAMILIES}


@pytest.fixture(scope="module")
def open_book():
    return organism_suite(WorldConfig().build(), size="small", seed=0)["open_book"].subset(
        3, seed=2)


def _block_linears(info) -> dict[str, torch.nn.Parameter]:
    """Every weight matrix (or stack of expert matrices) inside the transformer blocks,
    read from the HF module tree, except routers (the router is never a site)."""
    hf = info.hf
    blocks = info.arch.blocks + "."
    out = {}
    for name, p in hf.named_parameters():
        if not name.startswith(blocks) or p.ndim < 2 or name.endswith("bias"):
            continue
        leaf = name.split(".")[-2] if name.endswith(".weight") else name.split(".")[-1]
        # MoE routers: [n_experts, d_model] "gate"/"router", Qwen-MoE's shared_expert_gate
        if info.arch.n_experts and (leaf in ("gate", "router", "shared_expert_gate")):
            continue
        out[name] = p
    return out


def _is_attention(name: str) -> bool:
    return any(part in ("attn", "self_attn", "attention", "self_attention")
               for part in name.split("."))


@pytest.mark.parametrize("family", FAMILIES)
def test_family(family, family_dirs, open_book):
    model = load_model(family_dirs[family])
    info = model_info(model)
    assert info.arch.source == "adapter" and family not in ARCHITECTURES

    # sites: every element of every block linear is exactly one site's, attention and FFW
    # sites add up to the attention and FFW weights
    linears = _block_linears(info)
    by_id = {id(p): n for n, p in linears.items()}
    counts = {n: torch.zeros(p.shape, dtype=torch.int32) for n, p in linears.items()}
    for s in info.sites:
        hb = s.bindings[0]
        assert id(hb.param) in by_id, f"{s.name} is not a block linear: {hb.where}"
        hb.view_fn(counts[by_id[id(hb.param)]]).add_(1)
        assert s.weight().shape == s.shape
    for n, c in counts.items():
        assert bool((c == 1).all()), f"{family}: {n} covered {c.min()}..{c.max()} times"
    attn = sum(s.numel for s in info.sites if s.family == "attn")
    ffw = sum(s.numel for s in info.sites if s.family == "mlp")
    assert attn == sum(p.numel() for n, p in linears.items() if _is_attention(n))
    assert ffw == sum(p.numel() for n, p in linears.items() if not _is_attention(n))
    assert attn + ffw == sum(p.numel() for p in linears.values()) == info.total_params
    assert {s.component for s in info.sites if s.family == "attn"} == {"q", "k", "v", "o"}
    if family in MOE:
        assert info.arch.n_experts == 4
        assert len(sites(model, "mlp.e*")) == 4 * info.n_layers * len(
            {s.component for s in info.sites if s.expert == "e0"})
        assert all(s.expert is not None for s in sites(model, "mlp"))

    pristine = {n: p.detach().clone() for n, p in info.hf.named_parameters()}
    mirrors = [(b, b.read()) for s in info.sites for b in s.bindings[1:]]

    # a fused or stacked site is pruned exactly where it lies, nothing else moves
    scope = "mlp.e1.in@0" if family in MOE else "attn.q@0"
    (one,) = sites(model, scope)
    prune(model, "magnitude", 0.5, scope=scope)
    changed = {n: p.detach() != pristine[n] for n, p in info.hf.named_parameters()}
    mine = torch.zeros(one.bindings[0].param.shape, dtype=torch.bool)
    one.bindings[0].view_fn(mine).fill_(True)
    target = by_id[id(one.bindings[0].param)]
    assert bool(changed[target].any()) and not bool((changed[target] & ~mine).any())
    assert not any(bool(c.any()) for n, c in changed.items() if n != target)
    check_consistency(model)
    restore(model)

    # prune everything, then restore bitwise (HF parameters and the bridge's own copies)
    r = prune(model, "magnitude", 0.5)
    assert r.masks.sparsity() == pytest.approx(0.5, abs=0.01)
    for s in info.sites:
        assert bool((s.weight()[~r.masks[s.name]] == 0).all())
    check_consistency(model)
    tokens = torch.tensor([[1, 5, 9, 12, 7, 3]])
    with torch.no_grad():  # the bridge computes with the pruned weights too
        torch.testing.assert_close(model(tokens), info.hf(tokens).logits, rtol=0, atol=1e-4)
    restore(model)
    for n, p in info.hf.named_parameters():
        assert torch.equal(p, pristine[n]), f"{family}: {n} not restored bitwise"
    for b, before in mirrors:
        assert torch.equal(b.read(), before), b.where

    # calibration statistics, block by block, equal the full forward pass's (every layer
    # with its own mask and rotary embeddings; each expert on the tokens routed to it)
    cal = calibration_from_source(model, "random", n_samples=4, seq_len=16, seed=0)
    assert isinstance(cal, CalibrationData)
    _check_walker_statistics(info, cal.tokens)

    # sequential calibration with Wanda and SparseGPT
    for method in ("wanda", "sparsegpt"):
        res = prune(model, method, 0.5, mode="sequential", calibration=cal, apply=True)
        assert res.masks.sparsity() == pytest.approx(0.5, abs=0.01), method
        assert all(bool(torch.isfinite(s.weight()).all()) for s in info.sites)
        check_consistency(model)
        with torch.no_grad():
            assert bool(torch.isfinite(info.hf(cal.tokens[:1]).logits).all())
        restore(model)
        for n, p in info.hf.named_parameters():
            assert torch.equal(p, pristine[n]), f"{family}/{method}: {n} not restored"

    # evaluation (batched, key-value cache) equals HF's greedy generation, on a pruned model
    prune(model, "magnitude", 0.3)
    tok, hf = info.tokenizer, info.hf
    result = evaluate(model, open_book, batch_size=3, max_new_tokens=3)
    stop = stop_token_mask(tok, hf.config.vocab_size)
    for inst, row in zip(open_book, result.rows.itertuples(), strict=True):
        prompt = encode_texts(tok, [inst.prompt])[0]
        (gold,), _ = answer_token_ids(tok, [inst.prompt], [inst.gold])
        with torch.no_grad():  # the gold's log-probability, from HF's own logits
            logp = torch.log_softmax(hf(torch.tensor([prompt + gold])).logits[0].float(), -1)
        ref = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(gold))
        assert row.logprob == pytest.approx(ref, abs=1e-4), family
        with torch.no_grad():
            out = hf.generate(torch.tensor([prompt]),
                              attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                              max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
        gen = out[0, len(prompt):].tolist()
        cut = next((k + 1 for k, t in enumerate(gen) if stop[t]), len(gen))
        gen = [t for t in gen[:cut] if t != tok.eos_token_id]
        text = tok.decode(gen, clean_up_tokenization_spaces=False).split("\n")[0].strip()
        assert row.prediction == text, (family, inst.prompt)
    restore(model)


def _check_walker_statistics(info, tokens: torch.Tensor) -> None:
    """Input norms of every site group of the last layer from the block walker, against a
    full forward pass: HF pre-hooks for dense sites; for experts, the tokens the router
    sent to each (the experts module's own ``top_k_index`` argument) and, for their ``out``,
    ``act(gate x) * (up x)`` computed here from the expert's weights."""
    last = info.n_layers - 1
    groups = group_sites([s for s in info.sites if s.layer == last])
    got: dict[str, torch.Tensor] = {}
    BlockWalker(info, tokens, batch_size=2).walk(
        {last: {g: (m[0], "norms") for g, m in groups.items()}},
        lambda _layer, stats: got.update({g: st.norms() for g, st in stats.items()}))
    want = {g: torch.zeros(m[0].shape[1], dtype=torch.float64) for g, m in groups.items()}
    handles = []
    for g, members in groups.items():
        site = members[0]
        module = info.hf.get_submodule(site.hf_path)
        if site.route is None:
            def pre(_m, args, g=g):
                want[g] += args[0].detach().double().reshape(-1, want[g].numel()).square().sum(0)
            handles.append(module.register_forward_pre_hook(pre))
            continue
        e = site.route[1]
        by_comp = {s.component: s for s in info.sites if s.layer == last and s.expert == f"e{e}"}

        def pre_expert(m, args, g=g, e=e, comp=site.component, by_comp=by_comp):
            if len(args) > 1:  # (hidden, top_k_index, top_k_weights): the routed tokens
                x = args[0][(args[1] == e).any(-1)].detach().double()
            else:  # Llama-4: every token, scaled by its router score (0 if not routed)
                x = args[0].view(m.gate_up_proj.shape[0], -1, args[0].shape[-1])[e].double()
            if comp == "out":
                if hasattr(m, "_apply_gate") and "gate_up_proj" in m._parameters:
                    # the experts module's own gating of its fused gate/up output
                    w = m.gate_up_proj[e].double()
                    gu = x @ (w if m.is_transposed else w.T)
                    if getattr(m, "has_bias", False):
                        gu = gu + m.gate_up_proj_bias[e].double()
                    x = m._apply_gate(gu)
                else:
                    up = x @ by_comp["in"].weight().double().T
                    x = m.act_fn(x @ by_comp["gate"].weight().double().T) * up
            want[g] += x.square().sum(0)
        handles.append(module.register_forward_pre_hook(pre_expert))
    try:
        with torch.no_grad():
            for i in range(0, tokens.shape[0], 2):
                info.hf(input_ids=tokens[i:i + 2], use_cache=False)
    finally:
        for h in handles:
            h.remove()
    for g in groups:
        torch.testing.assert_close(got[g].double(), want[g].sqrt(), rtol=1e-4, atol=1e-5,
                                   msg=lambda m, g=g: f"{g}: {m}")


def test_at_least_25_families_and_the_named_ones():
    named = {"gpt2", "gpt_neox", "llama", "opt", "qwen2", "qwen3", "mistral", "mixtral",
             "gemma", "gemma2", "gemma3_text", "phi", "phi3", "gptj", "falcon", "bloom", "olmo",
             "olmo2", "stablelm", "gpt_bigcode", "starcoder2", "granite", "cohere"}
    assert len(FAMILIES) >= 25 and named <= set(FAMILIES)


def test_models_that_refuse_sdpa_load_with_eager(family_dirs):
    """Gemma-2 and BLOOM refuse sdpa: loaded with eager, and the reason is recorded."""
    for family in ("gemma2", "bloom"):
        with pytest.raises(ValueError, match=r"scaled_dot_product_attention|sdpa"):
            AutoModelForCausalLM.from_pretrained(family_dirs[family], attn_implementation="sdpa")
        info = model_info(load_model(family_dirs[family]))
        assert info.attn_implementation == "eager"
        assert "sdpa" in info.attn_fallback


# How each family of UNSUPPORTED fails (the reason the family table gives).
FAILURES = {
    "codegen": (AttributeError, "embed_positions"),
    "deepseek_v2": (ValueError, "kv_a_proj_with_mqa"),
    "deepseek_v3": (ValueError, "kv_a_proj_with_mqa"),
    "qwen3_next": (ValueError, "linear_attn.in_proj"),
    "lfm2": (ValueError, r"conv\.in_proj"),
    "jetmoe": (ValueError, "no stacked expert parameters"),
    "mamba": (ValueError, "no attention or FFW linear weights"),
}


@pytest.mark.parametrize("family", sorted(UNSUPPORTED))
def test_unsupported_families_fail_for_the_reason_the_table_gives(family, tmp_path):
    """Each fails as the table says (the test fails once a new bridge fixes it)."""
    exc, pattern = FAILURES[family]
    with pytest.raises(exc, match=pattern):
        model = load_model(make_tiny_model(family, tmp_path / family))
        model(torch.tensor([[1, 2, 3]]))


def test_readme_family_table_is_the_generated_one(capsys):
    """The README's table is `lenskit families`' output, row for row."""
    from pathlib import Path

    from lenskit.cli import main
    from lenskit.models.families import family_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("<!-- families:start -->\n", 1)[1].split("<!-- families:end -->", 1)[0]
    assert main(["families"]) == 0
    printed = capsys.readouterr().out
    assert block == printed == family_table()
    rows = [r for r in printed.splitlines()[2:]]
    assert sum("supported (tested)" in r for r in rows) == len(FAMILIES) >= 25
    for family in UNSUPPORTED:
        assert f"`{family}`" in printed and UNSUPPORTED[family] in printed
