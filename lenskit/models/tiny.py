"""Tiny random models of every tested family, saved as local HF directories.

Used by the tests, the benchmarks and the docs: each is built from a config (no download),
shares the organism world's word-level tokenizer so that task prompts tokenize to real
tokens, and loads back through :func:`lenskit.load_model` like any local model.

``TINY_FAMILIES`` are the four families with hand-checked layouts (GPT-2, GPT-NeoX, OPT,
Llama with GQA); ``FAMILY_CONFIGS`` holds the config of every family of the test matrix
(HF ``model_type`` -> the config arguments that make it tiny and exercise its features:
fused projections, parallel blocks, MQA/GQA, biases, partial rotary, experts ...).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    OPTForCausalLM,
)

from lenskit.errors import UsageError
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import WorldConfig

__all__ = ["FAMILY_CONFIGS", "PROBLEM_CONFIGS", "TINY_FAMILIES", "make_tiny_model",
           "tiny_config"]

TINY_FAMILIES = ("gpt2", "gpt_neox", "opt", "llama")

_MOE = {"num_local_experts": 4, "num_experts": 4, "num_experts_per_tok": 2,
        "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
        "output_router_logits": False}

#: model_type -> config arguments on top of the generic tiny sizes (see ``tiny_config``).
FAMILY_CONFIGS: dict[str, dict] = {
    "qwen2": {},
    "qwen3": {"head_dim": 8},
    # sliding windows shorter than the test sequences, so that local attention matters
    "mistral": {"head_dim": 8, "sliding_window": 4},
    "mixtral": {**_MOE, "head_dim": 8},
    "qwen2_moe": {**_MOE, "decoder_sparse_step": 1, "mlp_only_layers": []},
    "qwen3_moe": {**_MOE, "head_dim": 8, "decoder_sparse_step": 1, "mlp_only_layers": []},
    "olmoe": {**_MOE},
    "gemma": {"head_dim": 8},
    "gemma2": {"head_dim": 8, "sliding_window": 4, "query_pre_attn_scalar": 8},
    "gemma3_text": {"head_dim": 8, "sliding_window": 4, "query_pre_attn_scalar": 8,
                    "layer_types": ["sliding_attention", "full_attention"]},
    "phi": {"partial_rotary_factor": 0.5},
    "phi3": {},
    "gptj": {"rotary_dim": 4, "n_inner": 64},
    "falcon": {"new_decoder_architecture": False, "multi_query": True, "parallel_attn": True,
               "bias": True},
    "bloom": {"n_head": 4},
    "olmo": {},
    "olmo2": {},
    "stablelm": {"partial_rotary_factor": 0.25, "use_qkv_bias": True},
    "gpt_bigcode": {"multi_query": True, "n_inner": 64},
    "starcoder2": {"use_bias": True},
    "granite": {},
    "cohere": {"use_qk_norm": False},
    "gpt_neo": {"attention_types": [[["local", "global"], 1]], "window_size": 4},
    "glm": {"head_dim": 8, "partial_rotary_factor": 0.5},
    "nemotron": {"head_dim": 8, "partial_rotary_factor": 0.5},
    "smollm3": {"no_rope_layers": [1, 0]},
    "xglm": {"ffn_dim": 64},
    "gpt_oss": {"num_local_experts": 4, "num_experts_per_tok": 2, "head_dim": 8,
                "sliding_window": 4},
    "llama4_text": {**_MOE, "head_dim": 8, "intermediate_size_mlp": 64,
                    "interleave_moe_layer_step": 2},  # layer 0 dense, layer 1 experts
    "granitemoe": {**_MOE},
    "cohere2": {"head_dim": 8, "sliding_window": 4},
    "exaone4": {"head_dim": 8, "sliding_window": 4},
    "glm4": {"head_dim": 8},
    "apertus": {"head_dim": 8},
    "arcee": {"head_dim": 8},
    "seed_oss": {"head_dim": 8},
    "hunyuan_v1_dense": {"head_dim": 8},
    "ernie4_5": {"head_dim": 8},
    "bitnet": {"head_dim": 8},
    "olmo3": {"head_dim": 8, "sliding_window": 4},
    "vaultgemma": {"head_dim": 8, "sliding_window": 4, "query_pre_attn_scalar": 8},
    "mpt": {"expansion_ratio": 2},
    "ernie4_5_moe": {"moe_num_experts": 4, "moe_k": 2, "moe_intermediate_size": 32,
                     "moe_layer_start_index": 1, "head_dim": 8},  # layer 0 dense
}

#: Families that transformers and the bridge both list but that do not work (see
#: ``lenskit.models.families.UNSUPPORTED``); their tiny configs let tests check the reason.
_MLA = {"n_routed_experts": 4, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
        "kv_lora_rank": 16, "q_lora_rank": None, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4,
        "v_head_dim": 8, "moe_intermediate_size": 32, "n_shared_experts": 1, "n_group": 1,
        "topk_group": 1}
PROBLEM_CONFIGS: dict[str, dict] = {
    "codegen": {"rotary_dim": 4, "n_inner": 64, "n_ctx": 512},
    "deepseek_v2": _MLA,
    "deepseek_v3": _MLA,
    "qwen3_next": {**_MOE, "head_dim": 8, "layer_types": ["linear_attention", "full_attention"],
                   "linear_num_value_heads": 4, "linear_num_key_heads": 2,
                   "linear_key_head_dim": 8, "linear_value_head_dim": 8},
    "lfm2": {"head_dim": 8, "layer_types": ["conv", "full_attention"]},
    "jetmoe": {"num_local_experts": 4, "num_experts_per_tok": 2, "kv_channels": 8},
    "mamba": {},
}


def _tokenizer():
    return build_tokenizer(organism_vocabulary(WorldConfig().build()))


def tiny_config(family: str, vocab_size: int, ids: dict, *, d_model: int = 32,
                n_layers: int = 2, n_heads: int = 4, d_ffn: int = 64, n_ctx: int = 512):
    """The tiny config of ``family`` (a ``model_type`` of ``FAMILY_CONFIGS``): the generic
    sizes under their common HF names (configs map them to their own attribute names),
    grouped-query attention where the family has it (``n_heads // 2`` key-value heads), and
    the family's own arguments."""
    from transformers import CONFIG_MAPPING

    extra = FAMILY_CONFIGS.get(family, PROBLEM_CONFIGS.get(family))
    if extra is None:
        raise UsageError(f"unknown family {family!r}; allowed: "
                         f"{sorted(set(TINY_FAMILIES) | set(FAMILY_CONFIGS))}")
    kwargs = dict(vocab_size=vocab_size, hidden_size=d_model, num_hidden_layers=n_layers,
                  num_attention_heads=n_heads, num_key_value_heads=max(1, n_heads // 2),
                  intermediate_size=d_ffn, max_position_embeddings=n_ctx,
                  tie_word_embeddings=False, **ids)
    kwargs.update(extra)
    return CONFIG_MAPPING[family](**kwargs)


def make_tiny_model(
    family: str,
    directory: str | Path,
    *,
    d_model: int = 32,
    n_layers: int = 2,
    n_heads: int = 4,
    d_ffn: int = 64,
    n_ctx: int = 512,
    seed: int = 0,
) -> Path:
    """Build a random ``family`` model (``gpt2``, ``gpt_neox``, ``opt``, ``llama`` or any
    ``model_type`` of ``FAMILY_CONFIGS``) and save it with its tokenizer to ``directory``;
    returns the directory.

    Llama uses grouped-query attention (``n_heads // 2`` key-value heads); GPT-NeoX uses
    partial rotary embeddings and its parallel residual, as Pythia does.
    """
    tok = _tokenizer()
    v = len(tok)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}
    if family == "gpt2":
        cfg = GPT2Config(vocab_size=v, n_positions=n_ctx, n_ctx=n_ctx, n_embd=d_model,
                         n_layer=n_layers, n_head=n_heads, n_inner=d_ffn, **ids)
        cls = GPT2LMHeadModel
    elif family == "gpt_neox":
        cfg = GPTNeoXConfig(vocab_size=v, max_position_embeddings=n_ctx, hidden_size=d_model,
                            num_hidden_layers=n_layers, num_attention_heads=n_heads,
                            intermediate_size=d_ffn, rotary_pct=0.25,
                            use_parallel_residual=True, **ids)
        cls = GPTNeoXForCausalLM
    elif family == "opt":
        cfg = OPTConfig(vocab_size=v, max_position_embeddings=n_ctx, hidden_size=d_model,
                        num_hidden_layers=n_layers, num_attention_heads=n_heads, ffn_dim=d_ffn,
                        word_embed_proj_dim=d_model, **ids)
        cls = OPTForCausalLM
    elif family == "llama":
        cfg = LlamaConfig(vocab_size=v, max_position_embeddings=n_ctx, hidden_size=d_model,
                          num_hidden_layers=n_layers, num_attention_heads=n_heads,
                          num_key_value_heads=max(1, n_heads // 2), intermediate_size=d_ffn,
                          **ids)
        cls = LlamaForCausalLM
    else:
        cfg = tiny_config(family, v, ids, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                          d_ffn=d_ffn, n_ctx=n_ctx)
        cls = None
    torch.manual_seed(seed)
    if cls is None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_config(cfg).eval()
    else:
        model = cls(cfg).eval()
    # Random init gives GPT-2 and OPT near-zero biases; make them non-zero so that tests
    # notice a bias that is mistaken for a weight.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif p.ndim == 3 or (p.ndim >= 2 and float(p.abs().max()) == 0.0):
                # Stacked experts start uninitialised (torch.empty) and some families
                # zero-initialise projections: draw every matrix so that no site is all-zero.
                p.normal_(0.0, 0.02)
    out = Path(directory)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
