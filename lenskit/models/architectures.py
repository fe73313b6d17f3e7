"""Which module is which, per architecture: one row per Hugging Face ``model_type``.

lenskit names every prunable linear weight of a transformer block by layer, family and
component: ``attn`` has ``q``, ``k``, ``v``, ``o``; ``mlp`` has ``in``, ``gate`` (gated FFW
only) and ``out``. A row of ``ARCHITECTURES`` says where each component lives in the native
HF block and how its weight is stored, so adding a family is adding a row:

- ``linear``: an ``nn.Linear`` weight, already ``[out_features, in_features]``;
- ``conv1d``: GPT-2's ``Conv1D`` weight, ``[in_features, out_features]`` (transposed view);
- ``fused_concat``: GPT-2's ``c_attn`` (``Conv1D``), q | k | v concatenated along outputs;
- ``fused_interleaved``: GPT-NeoX's ``query_key_value`` (``nn.Linear``), whose output rows
  are grouped per head as ``[head, (q | k | v), d_head]``.

Every row's components are reached in TransformerLens 4.x under the same names
(``blocks.{l}.attn.q`` ... ``blocks.{l}.mlp.out``), whatever the HF module names are.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ARCHITECTURES",
    "ATTN_COMPONENTS",
    "COMPONENTS",
    "FAMILIES",
    "MLP_COMPONENTS",
    "ArchitectureSpec",
    "ComponentSpec",
    "architecture_for",
]

FAMILIES = ("attn", "mlp")
ATTN_COMPONENTS = ("q", "k", "v", "o")
MLP_COMPONENTS = ("in", "gate", "out")
COMPONENTS = ATTN_COMPONENTS + MLP_COMPONENTS
LAYOUTS = ("linear", "conv1d", "fused_concat", "fused_interleaved")


@dataclass(frozen=True)
class ComponentSpec:
    """Where one component's weight lives inside an HF block, and how it is stored."""

    path: str  # module path relative to the block, e.g. "self_attn.q_proj"
    layout: str = "linear"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; allowed: {LAYOUTS}")


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture: the path of its block list and its components' specs."""

    name: str
    blocks: str  # path of the ModuleList of blocks from the *ForCausalLM model
    attention: str  # path of the attention module inside a block (its output holds patterns)
    components: dict[str, ComponentSpec]

    @property
    def family_components(self) -> dict[str, tuple[str, ...]]:
        return {
            "attn": tuple(c for c in ATTN_COMPONENTS if c in self.components),
            "mlp": tuple(c for c in MLP_COMPONENTS if c in self.components),
        }


def _row(name: str, blocks: str, attention: str,
         **components: tuple[str, str] | str) -> ArchitectureSpec:
    specs = {}
    for comp, value in components.items():
        comp = comp.rstrip("_")  # "in_" -> "in" (a Python keyword)
        path, layout = (value, "linear") if isinstance(value, str) else value
        specs[comp] = ComponentSpec(path, layout)
    return ArchitectureSpec(name, blocks, attention, specs)


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "gpt2": _row(
        "gpt2", "transformer.h", "attn",
        q=("attn.c_attn", "fused_concat"), k=("attn.c_attn", "fused_concat"),
        v=("attn.c_attn", "fused_concat"), o=("attn.c_proj", "conv1d"),
        in_=("mlp.c_fc", "conv1d"), out=("mlp.c_proj", "conv1d"),
    ),
    "gpt_neox": _row(
        "gpt_neox", "gpt_neox.layers", "attention",
        q=("attention.query_key_value", "fused_interleaved"),
        k=("attention.query_key_value", "fused_interleaved"),
        v=("attention.query_key_value", "fused_interleaved"),
        o="attention.dense", in_="mlp.dense_h_to_4h", out="mlp.dense_4h_to_h",
    ),
    "opt": _row(
        "opt", "model.decoder.layers", "self_attn",
        q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj",
        o="self_attn.out_proj", in_="fc1", out="fc2",
    ),
    "llama": _row(
        "llama", "model.layers", "self_attn",
        q="self_attn.q_proj", k="self_attn.k_proj", v="self_attn.v_proj",
        o="self_attn.o_proj", gate="mlp.gate_proj", in_="mlp.up_proj", out="mlp.down_proj",
    ),
}


def architecture_for(model_type: str) -> ArchitectureSpec:
    """The row for an HF ``config.model_type``; a clear error for unsupported ones."""
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"model_type {model_type!r} is not supported by lenskit; supported: "
            f"{sorted(ARCHITECTURES)} (add a row to lenskit.models.architectures.ARCHITECTURES)"
        )
    return ARCHITECTURES[model_type]
