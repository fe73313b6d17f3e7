"""A tiny Llama whose weights are set by hand so that it copies the answer from its context.

Nothing here hooks or post-processes the model: it is a real one-layer Llama checkpoint,
loaded back with ``lenskit.load_model``, whose attention head implements copying.

Residual stream (``d = 2V + 2`` for a vocabulary of ``V`` tokens):

- ``[0, V)``: one-hot of the current token (embedding);
- ``V``: 1 when the current token is a *value* (an answer word);
- ``V + 1``: 1 when the current token is ``:`` (where an answer is asked for);
- ``[V + 2, 2V + 2)``: written by attention: the token it copies.

The single head's query is large only at ``:`` and its key marks value tokens, so the
answer position attends to the passage's value word; its value/output maps copy that
word's identity into the copy slots, which the unembedding reads as logits. At a value
token the query is zero, so attention is diffuse and the direct path "value -> newline"
wins: after copying the word the model ends its answer. The query/key live in the head
dimension with the lowest rotary frequency (``rope_theta = 1e9``), so positions do not
matter. The MLP is zero.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lenskit.synthetic.tokenizer import build_tokenizer

ENTITIES = ("Brirul", "Trosh", "Vexan", "Molda", "Kirath", "Zoubel", "Dravis", "Pelorn")
VALUES = ("Kolan", "Maibe", "Druvan", "Selot", "Harrow", "Tibbin", "Quarle", "Onsk")
SCAFFOLD = ("Q", "A", "The", "capital", "of", "is", "what", "the", "far", "city")


def build_copy_model(directory: str | Path, query_scale: float = 10.0,
                     copy_gain: float = 4.0, newline_gain: float = 6.0) -> Path:
    """Save the hand-wired copying model and its word-level tokenizer to ``directory``."""
    tok = build_tokenizer([*SCAFFOLD, *ENTITIES, *VALUES])
    vocab = len(tok)
    d = 2 * vocab + 2
    head_dim = vocab + (vocab % 2)
    qk = head_dim // 2 - 1  # the rotary pair with the lowest frequency
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=d, intermediate_size=8, num_hidden_layers=1,
        num_attention_heads=1, num_key_value_heads=1, head_dim=head_dim,
        max_position_embeddings=512, rope_theta=1e9, tie_word_embeddings=False,
        rms_norm_eps=1e-6, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg).eval()
    value_ids = [tok.convert_tokens_to_ids(v) for v in VALUES]
    colon = tok.convert_tokens_to_ids(":")
    newline = tok.convert_tokens_to_ids("\n")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = model.model.embed_tokens.weight
        emb[torch.arange(vocab), torch.arange(vocab)] = 1.0
        emb[value_ids, vocab] = 1.0
        emb[colon, vocab + 1] = 1.0
        for norm in (model.model.layers[0].input_layernorm,
                     model.model.layers[0].post_attention_layernorm, model.model.norm):
            norm.weight.fill_(1.0)
        attn = model.model.layers[0].self_attn
        attn.q_proj.weight[qk, vocab + 1] = query_scale
        attn.k_proj.weight[qk, vocab] = 1.0
        attn.v_proj.weight[torch.arange(vocab), torch.arange(vocab)] = 1.0
        attn.o_proj.weight[vocab + 2 + torch.arange(vocab), torch.arange(vocab)] = copy_gain
        head = model.lm_head.weight
        head[torch.arange(vocab), vocab + 2 + torch.arange(vocab)] = 1.0
        head[newline, vocab] = newline_gain
    out = Path(directory)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
