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

from lenskit.models.tiny import FAMILY_CONFIGS, TINY_FAMILIES

__all__ = ["ALSO_LISTED", "UNSUPPORTED", "bridge_architectures", "families_tested", "family_rows",
           "family_table"]

#: Families that transformers and the bridge both list but lenskit cannot prune, with the
#: reason; tests/models/test_families.py shows each failure on a tiny model of the family.
UNSUPPORTED: dict[str, str] = {
    "codegen": "the bridge's forward fails with the installed transformers ('CodeGenAttention' "
               "object has no attribute 'embed_positions')",
    "deepseek_v2": "multi-head latent attention: the adapter maps q/k/v to no HF linear "
                   "(kv_a_proj_with_mqa, kv_b_proj), so attention would have no sites",
    "deepseek_v3": "multi-head latent attention (as deepseek_v2)",
    "qwen3_next": "its linear-attention (Gated DeltaNet) layers' projections are mapped to "
                  "no attention component",
    "lfm2": "its short-convolution layers' projections (conv.in_proj, conv.out_proj) are "
            "mapped to no component",
    "jetmoe": "mixture of attention heads and experts held in ParallelExperts modules, "
              "not in stacked [expert, out, in] parameters",
    "mamba": "a state-space model: no attention or FFW linear weights",
}

#: Families often asked for that the installed bridge (or transformers) lacks; the table
#: computes the reason.
ALSO_LISTED = ("phimoe", "ministral", "helium")


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
    return tuple(TINY_FAMILIES) + tuple(f for f in FAMILY_CONFIGS if f not in TINY_FAMILIES)


def family_rows() -> list[dict[str, str]]:
    """One row per family: ``model_type``, HF class, TransformerLens adapter, status
    (``"supported"``, or ``"unsupported: <reason>"``)."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    rows = []
    for mt in families_tested() + tuple(UNSUPPORTED) + ALSO_LISTED:
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
