"""Which module is which: the uniform component names, and hand-written override rows.

lenskit names every prunable linear weight of a transformer block by layer, family and
component: ``attn`` has ``q``, ``k``, ``v``, ``o``; ``mlp`` has ``in``, ``gate`` (gated FFW
only) and ``out`` (and, in a mixture-of-experts FFW, each expert has its own ``in``, ``gate``
and ``out``). Where each of them lives is derived from the TransformerLens 4.x architecture
adapter of the loaded model (:mod:`lenskit.models.sites_build`), so a family the bridge
supports needs no lenskit code.

``ARCHITECTURES`` holds override rows, keyed by HF ``model_type``, for an adapter whose
mapping lenskit cannot use; none is needed by the families lenskit tests (the README's
family table is generated from the code, ``lenskit families``). A row says where each
component lives in the native HF block and how its weight is stored:

- ``linear``: an ``nn.Linear`` weight, already ``[out_features, in_features]``;
- ``conv1d``: GPT-2's ``Conv1D`` weight, ``[in_features, out_features]`` (transposed view);
- ``fused_concat``: GPT-2's ``c_attn`` (``Conv1D``), q | k | v concatenated along outputs;
- ``fused_interleaved``: GPT-NeoX's ``query_key_value`` (``nn.Linear``), whose output rows
  are grouped per head as ``[head, (q | k | v), d_head]``.

Rows derived from an adapter also use ``slice`` (a strided part of a fused parameter, found
from the adapter's own split function) and ``experts`` (one expert of a stacked expert
parameter). Register an override with :func:`register_architecture`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lenskit.errors import UsageError

__all__ = [
    "ARCHITECTURES",
    "ATTN_COMPONENTS",
    "COMPONENTS",
    "FAMILIES",
    "MLP_COMPONENTS",
    "ArchitectureSpec",
    "ComponentSpec",
    "architecture_for",
    "register_architecture",
]

FAMILIES = ("attn", "mlp")
ATTN_COMPONENTS = ("q", "k", "v", "o")
MLP_COMPONENTS = ("in", "gate", "out")
COMPONENTS = ATTN_COMPONENTS + MLP_COMPONENTS
LAYOUTS = ("linear", "conv1d", "fused_concat", "fused_interleaved", "slice", "experts")
OVERRIDE_LAYOUTS = LAYOUTS[:4]


@dataclass(frozen=True)
class ComponentSpec:
    """Where one component's weight lives inside an HF block, and how it is stored."""

    path: str  # module path relative to the block, e.g. "self_attn.q_proj"
    layout: str = "linear"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise UsageError(f"unknown layout {self.layout!r}; allowed: {LAYOUTS}")


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture: the path of its block list and its components' specs.

    ``source`` is ``"adapter"`` for a row derived from the TransformerLens adapter (then
    ``adapter`` names its class) and ``"override"`` for a hand-written row.
    """

    name: str
    blocks: str  # path of the ModuleList of blocks from the *ForCausalLM model
    attention: str  # path of the attention module inside a block (its output holds patterns)
    components: dict[str, ComponentSpec]
    source: str = "override"
    adapter: str | None = None
    mlp: str | None = None  # path of the FFW module inside a block
    n_experts: int = 0  # routed experts per mixture-of-experts FFW (0: dense FFW)

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


# Override rows by HF model_type (empty: every tested family is derived from its adapter).
ARCHITECTURES: dict[str, ArchitectureSpec] = {}


def register_architecture(model_type: str, blocks: str, attention: str,
                          **components: tuple[str, str] | str) -> ArchitectureSpec:
    """Add (or replace) the override row of ``model_type``: lenskit then finds that family's
    sites from this row instead of from the TransformerLens adapter.

    ``components`` map ``q``, ``k``, ``v``, ``o``, ``in_`` (``in``), ``gate``, ``out`` to a
    module path inside the block, or to ``(path, layout)`` with a layout of
    ``OVERRIDE_LAYOUTS``. Example (GPT-2's row)::

        register_architecture("gpt2", "transformer.h", "attn",
                              q=("attn.c_attn", "fused_concat"), ..., out=("mlp.c_proj", "conv1d"))
    """
    row = _row(model_type, blocks, attention, **components)
    bad = [c for c in row.components if c not in COMPONENTS]
    if bad:
        raise UsageError(f"unknown component {bad[0]!r}; allowed: {COMPONENTS} ('in_' for in)")
    layouts = [spec.layout for spec in row.components.values() if spec.layout not in
               OVERRIDE_LAYOUTS]
    if layouts:
        raise UsageError(f"layout {layouts[0]!r} is not for override rows; allowed: "
                         f"{OVERRIDE_LAYOUTS}")
    ARCHITECTURES[model_type] = row
    return row


def architecture_for(model_type: str) -> ArchitectureSpec | None:
    """The override row for an HF ``config.model_type``, or ``None`` (sites then come from
    the TransformerLens adapter)."""
    return ARCHITECTURES.get(model_type)
