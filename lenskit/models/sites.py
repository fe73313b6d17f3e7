"""Sites: every linear weight inside every transformer block, under one uniform name.

A :class:`Site` is ``blocks.{layer}.{family}.{component}`` (e.g. ``blocks.3.mlp.gate``); an
expert of a mixture-of-experts FFW adds the expert: ``blocks.{layer}.mlp.e{i}.{component}``
(``blocks.3.mlp.e5.in``), and a shared expert is ``blocks.{layer}.mlp.shared.{component}``. It
exposes its weight as a ``[out_features, in_features]`` matrix whatever the storage (a slice
of GPT-2's fused ``c_attn``, interleaved rows of GPT-NeoX's ``query_key_value``...), the
TransformerLens hook of its input, its parameter count and, for attention, how its rows
(q, k, v) or columns (o) split into heads.

Writes go through :class:`Binding` objects: in-place views of the parameters that hold the
weight. A site has one binding in the native HF module and, when TransformerLens keeps its
own copy of the weight (it splits GPT-NeoX's fused q/k/v into separate tensors), a second
binding on that copy, so both stay identical.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from lenskit.errors import UsageError
from lenskit.models.architectures import (
    ATTN_COMPONENTS,
    COMPONENTS,
    FAMILIES,
    MLP_COMPONENTS,
)

__all__ = [
    "Binding",
    "Selection",
    "Site",
    "SiteSelection",
    "is_attention_scope",
    "is_expert",
    "is_ffw_scope",
    "parse_scopes",
    "select_sites",
]

# Sites that read the same input tensor share calibration statistics.
INPUT_GROUPS = {"q": "attn_in", "k": "attn_in", "v": "attn_in", "o": "attn_o",
                "in": "mlp_in", "gate": "mlp_in", "out": "mlp_out"}
SHARED_EXPERT = "shared"


def is_expert(name: str) -> bool:
    """True for a routed expert's name (``e0``, ``e17``), False otherwise."""
    return len(name) > 1 and name[0] == "e" and name[1:].isdigit()


def _expert_pattern_ok(name: str) -> bool:
    return name in ("e*", SHARED_EXPERT) or is_expert(name)


@dataclass(frozen=True, eq=False)
class Binding:
    """An in-place view of (part of) a parameter that holds a site's weight.

    ``view_fn(param.data)`` returns a view whose elements, reshaped to ``shape`` (out, in),
    are the site's matrix in row-major order.
    """

    param: torch.nn.Parameter
    view_fn: Callable[[torch.Tensor], torch.Tensor]
    shape: tuple[int, int]
    where: str  # human-readable location, for messages

    def view(self) -> torch.Tensor:
        v = self.view_fn(self.param.data)
        assert v.numel() == self.shape[0] * self.shape[1], (v.shape, self.shape)
        return v

    def read(self) -> torch.Tensor:
        """The weight as a new ``[out, in]`` tensor (a copy, never aliasing the model)."""
        return self.view().reshape(self.shape).clone()

    def write_(self, matrix: torch.Tensor) -> None:
        v = self.view()
        v.copy_(matrix.reshape(v.shape).to(dtype=v.dtype, device=v.device))

    def zero_(self, keep: torch.Tensor) -> None:
        v = self.view()
        v.masked_fill_(~keep.reshape(v.shape).to(v.device), 0)

    def shares_storage_with(self, other: Binding) -> bool:
        return (
            self.param.untyped_storage().data_ptr() == other.param.untyped_storage().data_ptr()
        )


@dataclass(frozen=True, eq=False)
class Site:
    """One prunable weight matrix: ``blocks.{layer}.{family}.{component}``.

    Attributes:
        shape: ``(out_features, in_features)``.
        n_heads, head_dim: for attention sites, the heads along ``head_axis`` (0: rows of
            q, k, v; 1: columns of o); ``None`` for FFW sites.
        input_hook: the TransformerLens hook whose activation is this weight's input
            (``None`` for a routed expert: no hook holds only the tokens routed to it).
        input_group: sites with the same group (within a layer) read the same input.
        hf_path: the native HF module holding the weight (relative to the model); its
            forward's first argument is the site's input (for an expert: the module holding
            the stacked experts, see ``route``).
        bindings: the parameter views to write (the HF one first).
        expert: ``None`` for a dense site, ``"e{i}"`` for routed expert ``i``, ``"shared"``
            for a shared expert.
        route: for a routed expert, ``(parameter name, expert index)``: its input is what
            the real forward multiplies with ``hf_path.<parameter>[index]`` (the tokens the
            router sent to it), captured during calibration.
    """

    layer: int
    family: str
    component: str
    shape: tuple[int, int]
    n_heads: int | None
    head_dim: int | None
    input_hook: str | None
    hf_path: str
    layout: str
    bindings: tuple[Binding, ...] = field(repr=False)
    expert: str | None = None
    route: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        if self.expert is not None:
            return f"blocks.{self.layer}.{self.family}.{self.expert}.{self.component}"
        return f"blocks.{self.layer}.{self.family}.{self.component}"

    @property
    def numel(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def input_group(self) -> str:
        group = f"blocks.{self.layer}.{INPUT_GROUPS[self.component]}"
        return group if self.expert is None else f"{group}.{self.expert}"

    @property
    def head_axis(self) -> int | None:
        if self.family != "attn":
            return None
        return 1 if self.component == "o" else 0

    def weight(self) -> torch.Tensor:
        """A copy of the current weight, ``[out_features, in_features]``."""
        return self.bindings[0].read()

    def __str__(self) -> str:
        return self.name


def _parse_layers(text: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            if int(b) < int(a):  # "3-1" would select nothing
                raise ValueError(part)  # Selection.parse turns it into a UsageError
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return tuple(out)


@dataclass(frozen=True)
class Selection:
    """Which sites to act on: families x layers x components x experts (``None`` = all).

    ``experts`` names experts of a mixture-of-experts FFW: ``"e3"``, ``"e*"`` (every routed
    expert) or ``"shared"``; with ``experts`` set, only expert sites match (``None``: dense
    and expert sites alike, so ``"mlp.in"`` is every FFW input projection).
    Build one directly or from a scope string with :meth:`parse`.
    """

    families: tuple[str, ...] | None = None
    layers: tuple[int, ...] | None = None
    components: tuple[str, ...] | None = None
    experts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name, allowed in (("families", FAMILIES), ("components", COMPONENTS)):
            values = getattr(self, name)
            if values is None:
                continue
            if isinstance(values, str):
                values = (values,)
            values = tuple(values)
            object.__setattr__(self, name, values)
            bad = [v for v in values if v not in allowed]
            if bad:
                raise UsageError(f"unknown {name[:-1] if name != 'families' else 'family'} "
                                 f"{bad[0]!r}; allowed: {allowed}")
        if self.layers is not None:
            raw = self.layers
            if isinstance(raw, (str, bytes)) or not isinstance(raw, (int, Iterable)):
                raise UsageError(f"layers must be an integer or a sequence of integers, "
                                 f"got {raw!r}")
            layers = (raw,) if isinstance(raw, int) else tuple(raw)
            if any(not isinstance(i, int) or isinstance(i, bool) for i in layers):
                raise UsageError(f"layers must be integers, got {layers}")
            if not layers:
                raise UsageError("layers is empty, so the selection would match no site: "
                                 "give at least one layer index, or layers=None for all "
                                 "layers (in a scope string: 'mlp@0-3' or 'mlp@1,4')")
            object.__setattr__(self, "layers", layers)
        if self.experts is not None:
            experts = (self.experts,) if isinstance(self.experts, str) else tuple(self.experts)
            object.__setattr__(self, "experts", experts)
            bad_e = [e for e in experts if not isinstance(e, str) or not _expert_pattern_ok(e)]
            if bad_e:
                raise UsageError(f"unknown expert {bad_e[0]!r}; allowed: 'e<i>' (e.g. 'e3'), "
                                 f"'e*' (every routed expert) or '{SHARED_EXPERT}'")
            if self.families is not None and "mlp" not in self.families:
                raise UsageError(f"experts {experts} belong to family 'mlp', not to "
                                 f"{self.families}")
        if self.families and self.components:
            fam_of = {c: "attn" for c in ATTN_COMPONENTS} | {c: "mlp" for c in MLP_COMPONENTS}
            bad = [c for c in self.components if fam_of[c] not in self.families]
            if bad:
                raise UsageError(
                    f"component {bad[0]!r} is not in families {self.families}; "
                    f"attn has {ATTN_COMPONENTS}, mlp has {MLP_COMPONENTS}"
                )

    @classmethod
    def parse(cls, scope: str) -> Selection:
        """A selection from a scope string.

        ``"all"``, ``"attn"``, ``"mlp"``, with optional components after a dot and layers
        after ``@``: ``"attn.q,k"``, ``"mlp@0-3"``, ``"attn.o@2,5"``, ``"q,k,v"``. Experts of a
        mixture-of-experts FFW come after ``mlp.``: ``"mlp.e3.in"``, ``"mlp.e*"``,
        ``"mlp.e0,e1.out@2"``, ``"mlp.shared"``.
        Union of several scopes is done with :func:`select_sites` on a list.
        """
        text = scope.strip()
        if not text:
            raise UsageError("empty scope; use 'all', 'attn', 'mlp', 'attn.q,k', 'mlp@0-3', ...")
        layers = None
        if "@" in text:
            text, layer_text = text.split("@", 1)
            try:
                layers = _parse_layers(layer_text)
            except ValueError:
                raise UsageError(
                    f"bad layers {layer_text!r} in scope {scope!r}; write layer indices "
                    "after '@': a range from-to (inclusive, from <= to) or a list, e.g. "
                    "'@0-3' or '@1,4'"
                ) from None
        families = components = experts = None
        head, _, comps = text.partition(".")
        if head == "mlp" and comps:
            first, _, rest = comps.partition(".")
            names = [c.strip() for c in first.split(",")]
            if all(_expert_pattern_ok(n) for n in names):
                experts, comps = tuple(names), rest
            elif any(n.startswith("e") and n not in COMPONENTS for n in names):
                raise UsageError(f"bad expert in scope {scope!r}: use 'e<i>' (e.g. 'mlp.e3.in'), "
                                 f"'e*' or '{SHARED_EXPERT}'")
        if head in ("all", ""):
            pass
        elif head in FAMILIES:
            families = (head,)
        elif all(c in COMPONENTS for c in head.split(",")) and not comps:
            components = tuple(head.split(","))
        else:
            raise UsageError(
                f"bad scope {scope!r}: expected 'all', a family {FAMILIES} or components "
                f"{COMPONENTS}, optionally '.comp,comp' and '@layers'"
            )
        if comps:
            components = tuple(c.strip() for c in comps.split(","))
        return cls(families, layers, components, experts)

    def _expert_matches(self, site: Site) -> bool:
        if self.experts is None:
            return True
        if site.expert is None:
            return False
        return site.expert in self.experts or ("e*" in self.experts and is_expert(site.expert))

    def matches(self, site: Site) -> bool:
        return (
            (self.families is None or site.family in self.families)
            and (self.layers is None or site.layer in self.layers)
            and (self.components is None or site.component in self.components)
            and self._expert_matches(site)
        )

    def describe(self) -> str:
        fam = ",".join(self.families) if self.families else "all"
        if self.experts:
            fam = "mlp." + ",".join(self.experts)
        comp = "." + ",".join(self.components) if self.components else ""
        lay = "@" + ",".join(map(str, self.layers)) if self.layers is not None else ""
        return fam + comp + lay


def parse_scopes(raw: str | Iterable[str]) -> list[str]:
    """The scope-list notation as scope strings, each checked with :meth:`Selection.parse`.

    Scopes contain commas (``"attn.q,k@0-3"``), so a list is written with semicolons,
    ``"all;attn.q,k@0-3;mlp"``, or as a TOML/JSON list; a sequence of strings is taken as it
    is. Raises ``ValueError`` naming the first bad scope.
    """
    if isinstance(raw, str):
        text = raw.strip()
        items = (json.loads(text) if text.startswith("[")
                 else [t.strip() for t in text.split(";") if t.strip()])
    else:
        items = list(raw)
    out: list[str] = []
    for scope in items:
        if not isinstance(scope, str):
            raise UsageError(f"scope {scope!r} must be a string")
        Selection.parse(scope)
        out.append(scope.strip())
    return out


def is_attention_scope(scope: str | Selection) -> bool:
    """True when the scope selects attention sites only (e.g. "attn", "attn.q,k@0-3", "q,v")."""
    sel = scope if isinstance(scope, Selection) else Selection.parse(scope)
    if sel.experts is not None:
        return False
    if sel.families is not None:
        return set(sel.families) == {"attn"}
    return sel.components is not None and set(sel.components) <= set(ATTN_COMPONENTS)


def is_ffw_scope(scope: str | Selection) -> bool:
    """True when the scope selects feed-forward (MLP) sites only (e.g. "mlp", "mlp.in@0-1")."""
    sel = scope if isinstance(scope, Selection) else Selection.parse(scope)
    if sel.experts is not None:
        return True
    if sel.families is not None:
        return set(sel.families) == {"mlp"}
    return sel.components is not None and set(sel.components) <= set(MLP_COMPONENTS)


@dataclass(frozen=True)
class SiteSelection(Sequence[Site]):
    """The sites a selection resolved to on a model, with their parameter counts."""

    sites: tuple[Site, ...]
    total_params: int  # all block-linear parameters of the model

    def __len__(self) -> int:
        return len(self.sites)

    def __getitem__(self, i):  # type: ignore[override]
        return self.sites[i]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sites]

    @property
    def n_params(self) -> int:
        return sum(s.numel for s in self.sites)

    @property
    def fraction(self) -> float:
        """Share of all block-linear parameters that the selection covers."""
        return self.n_params / self.total_params if self.total_params else 0.0

    def __repr__(self) -> str:
        return (f"SiteSelection({len(self.sites)} sites, {self.n_params:,} params = "
                f"{self.fraction:.1%} of block linears)")


def select_sites(
    sites: Sequence[Site],
    selection: Selection | str | Iterable[Selection | str] | None = None,
    n_layers: int | None = None,
) -> SiteSelection:
    """Resolve a selection (or scope string, or a union of them) against ``sites``.

    Raises ``ValueError`` naming the bad value when a layer is out of range or a component
    does not exist in this architecture (e.g. ``gate`` on GPT-2), or nothing is selected.
    """
    n_layers = n_layers if n_layers is not None else 1 + max(s.layer for s in sites)
    if selection is None:
        selections: list[Selection] = [Selection()]
    elif isinstance(selection, (Selection, str)):
        selections = [selection if isinstance(selection, Selection) else Selection.parse(selection)]
    else:
        selections = [s if isinstance(s, Selection) else Selection.parse(s) for s in selection]
    present = {s.component for s in sites}
    experts = sorted({s.expert for s in sites if s.expert is not None},
                     key=lambda e: (not is_expert(e), int(e[1:]) if is_expert(e) else 0))
    for sel in selections:
        for e in sel.experts or ():
            if (e == "e*" and not any(is_expert(x) for x in experts)) or \
                    (e != "e*" and e not in experts):
                have = (f"experts {experts[0]}..{experts[-1]}" if experts
                        else "no mixture-of-experts FFW")
                raise UsageError(f"expert {e!r} does not exist in this model; it has {have}")
        if sel.layers is not None:
            bad = [i for i in sel.layers if not 0 <= i < n_layers]
            if bad:
                raise UsageError(f"layer {bad[0]} out of range; this model has layers "
                                 f"0..{n_layers - 1}")
        if sel.components is not None:
            bad_c = [c for c in sel.components if c not in present]
            if bad_c:
                raise UsageError(f"component {bad_c[0]!r} does not exist in this model; it has "
                                 f"{tuple(c for c in COMPONENTS if c in present)}")
    chosen = tuple(s for s in sites if any(sel.matches(s) for sel in selections))
    if not chosen:
        raise UsageError(
            f"selection {[s.describe() for s in selections]} matches no site of this model "
            f"(layers 0..{n_layers - 1}, components "
            f"{tuple(c for c in COMPONENTS if c in present)}); a scope is 'all', 'attn' or "
            "'mlp', optionally '.comp,comp' and '@layers' (e.g. 'attn.q,k@0-3', 'mlp@1,4')")
    return SiteSelection(chosen, sum(s.numel for s in sites))
