"""Tiny random models of every supported family, saved as local HF directories.

Used by the tests, the benchmarks and the docs: each is built from a config (no download),
shares the organism world's word-level tokenizer so that task prompts tokenize to real
tokens, and loads back through :func:`lenskit.load_model` like any local model.
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

from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import WorldConfig

__all__ = ["TINY_FAMILIES", "make_tiny_model"]

TINY_FAMILIES = ("gpt2", "gpt_neox", "opt", "llama")


def _tokenizer():
    return build_tokenizer(organism_vocabulary(WorldConfig().build()))


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
    """Build a random ``family`` model (``gpt2``, ``gpt_neox``, ``opt``, ``llama``) and save
    it with its tokenizer to ``directory``; returns the directory.

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
        raise ValueError(f"unknown family {family!r}; allowed: {TINY_FAMILIES}")
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    # Random init gives GPT-2 and OPT near-zero biases; make them non-zero so that tests
    # notice a bias that is mistaken for a weight.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
    out = Path(directory)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
