"""A tiny Llama whose weights are set by hand so that a fact flows through known sites.

A real three-layer Llama checkpoint (grouped-query attention: 2 query heads share 1
key-value head), saved and loaded back with ``lenskit.load_model``; nothing hooks it.
Every weight not listed is zero, so the other sites write nothing at all.

Residual stream (``d = 3V + 2`` for a vocabulary of ``V`` tokens):

- ``[0, V)``: one-hot of the current token (embedding);
- ``V``: 1 at a subject (entity) token; ``V + 1``: 1 at ``:`` (where the answer is asked);
- ``[V + 2, 2V + 2)``: the *fact slot*, written by layer 1's FFW at the entity's position:
  one-hot of that entity's value (the fact is stored in this FFW and nowhere else);
- ``[2V + 2, 3V + 2)``: the *answer slot*, written by layer 2's attention head 0 at ``:``:
  a copy of the fact slot of the position it attends to (the entity: its key is the entity
  flag, its query the ``:`` flag). Head 1's output projection is zero.

The unembedding reads the answer slot. So by construction: the FFW of layer 1 at the last
subject token carries the fact, attention of layer 2 (head 0) at the last token moves it;
layers 0's and 2's FFW, attention of layers 0 and 1 and head 1 carry nothing.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lenskit.synthetic.tokenizer import build_tokenizer
from lenskit.tasks import TaskSet
from lenskit.tasks.core import TaskInstance

ENTITIES = ("Brirul", "Trosh", "Vexan", "Molda", "Kirath", "Zoubel", "Dravis", "Pelorn")
VALUES = ("Kolan", "Maibe", "Druvan", "Selot", "Harrow", "Tibbin", "Quarle", "Onsk")
SCAFFOLD = ("Q", "A", "what", "is", "the", "capital", "of")
FACT_LAYER, MOVE_LAYER, MOVE_HEAD = 1, 2, 0


def fact(entity: str) -> str:
    """The value the model stores for ``entity``."""
    return VALUES[(ENTITIES.index(entity) * 3) % len(VALUES)]


def build_trace_model(directory: str | Path) -> Path:
    """Save the hand-wired model and its word-level tokenizer to ``directory``."""
    tok = build_tokenizer([*SCAFFOLD, *ENTITIES, *VALUES])
    V = len(tok)
    d = 3 * V + 2
    head_dim = V + (V % 2)
    qk = head_dim // 2 - 1  # the rotary pair with the lowest frequency (theta 1e9)
    cfg = LlamaConfig(
        vocab_size=V, hidden_size=d, intermediate_size=len(ENTITIES), num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=1, head_dim=head_dim,
        max_position_embeddings=256, rope_theta=1e9, tie_word_embeddings=False,
        rms_norm_eps=1e-6, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg).eval()
    ent = [tok.convert_tokens_to_ids(e) for e in ENTITIES]
    colon = tok.convert_tokens_to_ids(":")
    fact_slot, answer_slot = V + 2, 2 * V + 2
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for layer in model.model.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.post_attention_layernorm.weight.fill_(1.0)
        model.model.norm.weight.fill_(1.0)
        emb = model.model.embed_tokens.weight
        emb[torch.arange(V), torch.arange(V)] = 1.0
        emb[ent, V] = 1.0
        emb[colon, V + 1] = 1.0
        mlp = model.model.layers[FACT_LAYER].mlp
        for n, (e, t) in enumerate(zip(ENTITIES, ent, strict=True)):
            mlp.gate_proj.weight[n, t] = 1.0
            mlp.up_proj.weight[n, t] = 1.0
            value = tok.convert_tokens_to_ids(fact(e))
            mlp.down_proj.weight[fact_slot + value, n] = 0.2
        attn = model.model.layers[MOVE_LAYER].self_attn
        attn.q_proj.weight[MOVE_HEAD * head_dim + qk, V + 1] = 10.0
        attn.k_proj.weight[qk, V] = 1.0
        attn.v_proj.weight[torch.arange(V), fact_slot + torch.arange(V)] = 1.0
        attn.o_proj.weight[answer_slot + torch.arange(V),
                           MOVE_HEAD * head_dim + torch.arange(V)] = 6.0
        model.lm_head.weight[torch.arange(V), answer_slot + torch.arange(V)] = 2.0
    out = Path(directory)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def trace_task(n: int | None = None) -> TaskSet:
    """Closed-book questions about every entity, their subject recorded in ``meta``."""
    instances = [TaskInstance(f"fact-{e}", f"Q: what is the capital of {e}?\nA:", (fact(e),),
                              meta={"entity": e})
                 for e in itertools.islice(ENTITIES, n)]
    return TaskSet(name="closed_book", kind="closed_book", instances=tuple(instances))
