"""Which decoder-only families lenskit supports, and the README table that says so.

lenskit finds every site from the TransformerLens bridge's architecture adapter, so a
family is supported when the installed transformers can build it, the bridge has an adapter
for it, and lenskit's test matrix (``tests/models/test_families.py``, one tiny random model
per family, see :data:`lenskit.models.tiny.FAMILY_CONFIGS`) passes on it. Families that
cannot work are listed with the reason (:data:`UNSUPPORTED`). :func:`family_table` is the
table in the README (``lenskit families`` prints it; a test checks that they are equal).
"""

from __future__ import annotations

import functools

__all__ = ["UNSUPPORTED", "bridge_architectures", "families_tested", "family_rows",
           "family_table"]

#: Decoder-only families that cannot be used, with the reason (checked by tests where the
#: reason is a fact about the installed libraries).
UNSUPPORTED: dict[str, str] = {
    "codegen": "the bridge's forward fails with transformers 5 ('CodeGenAttention' object "
               "has no attribute 'embed_positions'); sites and HF evaluation would work",
    "deepseek_v2": "multi-head latent attention: k and v come from a shared low-rank "
                   "projection (kv_a_proj / kv_b_proj), not from q/k/v sites",
    "deepseek_v3": "multi-head latent attention (as deepseek_v2)",
    "gpt_oss": "attention sinks and experts with interleaved biases; not in the matrix yet",
    "mamba": "a state-space model: no attention, no q/k/v/o",
    "rwkv": "a recurrent model: no attention, no q/k/v/o",
    "llama4": "not a plain decoder-only causal LM in transformers (multimodal wrapper)",
}


@functools.cache
def bridge_architectures() -> frozenset[str]:
    """HF architecture class names (``LlamaForCausalLM``...) the installed TransformerLens
    bridge has an adapter for."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    return frozenset(SUPPORTED_ARCHITECTURES)


def _causal_lm_class(model_type: str) -> str | None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)


def families_tested() -> tuple[str, ...]:
    """The ``model_type`` of every family in lenskit's test matrix."""
    from lenskit.models.tiny import FAMILY_CONFIGS, TINY_FAMILIES

    return tuple(TINY_FAMILIES) + tuple(f for f in FAMILY_CONFIGS if f not in TINY_FAMILIES)


def family_rows() -> list[dict[str, str]]:
    """One row per family: ``model_type``, HF class, TransformerLens adapter, status
    (``"supported"``, or ``"unsupported: <reason>"``)."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    rows = []
    for mt in families_tested() + tuple(UNSUPPORTED):
        cls = _causal_lm_class(mt)
        adapter = SUPPORTED_ARCHITECTURES.get(cls) if cls else None
        if mt in UNSUPPORTED:
            status = f"unsupported: {UNSUPPORTED[mt]}"
        elif cls is None:
            status = "unsupported: the installed transformers has no causal LM for it"
        elif adapter is None:
            status = "unsupported: the TransformerLens bridge has no adapter for it"
        else:
            status = "supported (tested)"
        rows.append({"model_type": mt, "hf_class": cls or "—",
                     "adapter": adapter.__name__ if adapter else "—", "status": status})
    return rows


def family_table() -> str:
    """The Markdown table of :func:`family_rows` (the README's family table)."""
    lines = ["| `model_type` | HF class | TransformerLens adapter | status |",
             "|---|---|---|---|"]
    for r in family_rows():
        lines.append(f"| `{r['model_type']}` | `{r['hf_class']}` | `{r['adapter']}` | "
                     f"{r['status']} |")
    return "\n".join(lines) + "\n"
