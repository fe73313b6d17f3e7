"""Build the sites of a loaded model from its TransformerLens architecture adapter.

The bridge's adapter maps every block's attention to ``q``, ``k``, ``v``, ``o`` and its FFW
to ``in``, ``gate``, ``out`` (``LinearBridge`` components wrapping HF modules), whatever the
HF names are. For each of them lenskit finds the HF parameter that holds the weight:

- the component wraps an HF module directly (Llama's ``q_proj``, GPT-2's ``Conv1D``
  ``c_proj``) or a view of an HF parameter (GPT-2's q, k, v split from ``c_attn``): the site
  is that parameter, or that view of it;
- the adapter split a fused parameter into copies (GPT-NeoX's, BLOOM's and Falcon's
  ``query_key_value``, Phi-3's ``qkv_proj`` and ``gate_up_proj``, GPT-BigCode's MQA
  ``c_attn``): the adapter's own split function is run once on a probe, a copy of the HF
  module whose parameters hold their element indices, so the copies show which elements of
  the fused parameter each site is (:mod:`lenskit.models.strided`). The site then writes
  both the HF slice and the bridge's copy, checked equal here.

A mixture-of-experts FFW (``MoEBridge``) wraps the HF block as a whole: lenskit reads the
stacked expert parameters (``gate_up_proj`` / ``up_proj`` ``[expert, out, in]``,
``down_proj``; transposed or interleaved as the HF experts module declares) and makes one
site per expert and projection (``blocks.L.mlp.e3.in``); FFW sub-bridges next to the experts
(Qwen-MoE's shared expert) are ``blocks.L.mlp.shared.*``. The router is not a site.

An override row in :data:`lenskit.models.architectures.ARCHITECTURES` replaces the adapter
for its ``model_type``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from lenskit.models.architectures import (
    ATTN_COMPONENTS,
    COMPONENTS,
    MLP_COMPONENTS,
    ArchitectureSpec,
    ComponentSpec,
)
from lenskit.models.sites import Binding, Site
from lenskit.models.strided import StridedLayout, strided_layout

__all__ = ["SiteMappingError", "bridge_binding", "build_sites", "build_sites_from_row"]

_QKV_INDEX = {"q": 0, "k": 1, "v": 2}
_EXPERT_INPUTS = ("gate_up_proj", "up_proj", "gate_proj")
# Names adapters give the router of a mixture-of-experts block (never a site).
_ROUTERS = ("experts", "gate", "router", "shared_expert_gate")


class SiteMappingError(ValueError):
    """The adapter's mapping of a component could not be turned into a site."""


def _get(root: torch.nn.Module, path: str) -> torch.nn.Module:
    mod = root
    for part in path.split("."):
        mod = mod[int(part)] if part.isdigit() else getattr(mod, part)
    return mod


# Bindings ---------------------------------------------------------------------------------

def _plain_binding(w: torch.nn.Parameter, conv: bool, where: str) -> Binding:
    if conv:  # Conv1D stores [in, out]
        return Binding(w, lambda t: t.T, (w.shape[1], w.shape[0]), where)
    return Binding(w, lambda t: t, (w.shape[0], w.shape[1]), where)


def _strided_binding(param: torch.nn.Parameter, layout: StridedLayout,
                     shape: tuple[int, int], where: str) -> Binding:
    return Binding(param, layout.view, shape, f"{where} {layout.describe()}")


# Override rows (the hand-written layouts) -------------------------------------------------

def _row_binding(module: torch.nn.Module, layout: str, component: str, n_heads: int,
                 head_dim: int, where: str) -> Binding:
    w = module.weight
    if layout == "linear":
        return Binding(w, lambda t: t, (w.shape[0], w.shape[1]), where)
    if layout == "conv1d":
        return Binding(w, lambda t: t.T, (w.shape[1], w.shape[0]), where)
    i = _QKV_INDEX[component]
    if layout == "fused_concat":
        # Conv1D [in, 3 * out]: q | k | v along the output columns.
        part = w.shape[1] // 3
        return Binding(w, lambda t: t[:, i * part:(i + 1) * part].T, (part, w.shape[0]),
                       f"{where}[:, {i * part}:{(i + 1) * part}]^T")
    if layout == "fused_interleaved":
        # Linear [(head, qkv, d_head), in]: row h*3*d_head + i*d_head + j is head h of q/k/v.
        d_in = w.shape[1]
        return Binding(w, lambda t: t.view(n_heads, 3, head_dim, d_in)[:, i],
                       (n_heads * head_dim, d_in), f"{where} rows of part {i} per head")
    raise ValueError(f"unknown layout {layout!r}")


def bridge_binding(bridge, layer: int, family: str, component: str) -> Binding | None:
    """The TransformerLens bridge's own copy of one weight (``blocks.<layer>.<family>.
    <component>``) as a binding in the site's [out, in] orientation, or None when the
    bridge holds no separate parameter for it."""
    block = bridge.blocks[layer]
    holder = getattr(getattr(block, family, None), component, None)
    mod = getattr(holder, "original_component", None)
    w = getattr(mod, "weight", None)
    if not isinstance(w, torch.nn.Parameter) or w.ndim != 2:
        return None
    where = f"bridge blocks.{layer}.{family}.{component}"
    return _plain_binding(w, type(mod).__name__ == "Conv1D", where)


def _with_mirror(hb: Binding, bb: Binding | None, name: str) -> tuple[Binding, ...]:
    if bb is None:
        return (hb,)
    if bb.shape != hb.shape or not torch.equal(bb.read(), hb.read()):
        raise SiteMappingError(f"TransformerLens' weight for {name} differs from the HF "
                               f"weight at {hb.where}")
    return (hb,) if bb.shares_storage_with(hb) else (hb, bb)


def build_sites_from_row(arch: ArchitectureSpec, hf: torch.nn.Module, bridge
                         ) -> tuple[Site, ...]:
    """Every site of ``hf`` (the plain HF model) from a hand-written override row, with
    mirror bindings on the bridge's own copies where TransformerLens holds one."""
    cfg = bridge.cfg
    n_heads = int(cfg.n_heads)
    n_kv = int(getattr(cfg, "n_key_value_heads", None) or n_heads)
    d_head = int(cfg.d_head)
    blocks = _get(hf, arch.blocks)
    out: list[Site] = []
    for layer in range(len(blocks)):
        for comp in COMPONENTS:
            spec = arch.components.get(comp)
            if spec is None:
                continue
            family = "attn" if comp in ATTN_COMPONENTS else "mlp"
            where = f"{arch.blocks}.{layer}.{spec.path}"
            heads = n_kv if comp in ("k", "v") else n_heads
            hb = _row_binding(_get(blocks[layer], spec.path), spec.layout, comp, heads, d_head,
                              where)
            name = f"blocks.{layer}.{family}.{comp}"
            bindings = _with_mirror(hb, bridge_binding(bridge, layer, family, comp), name)
            hook_comp = "in" if comp == "gate" else comp
            out.append(Site(
                layer=layer, family=family, component=comp, shape=hb.shape,
                n_heads=heads if family == "attn" else None,
                head_dim=d_head if family == "attn" else None,
                input_hook=f"blocks.{layer}.{family}.{hook_comp}.hook_in",
                hf_path=where, layout=spec.layout, bindings=bindings,
            ))
    return tuple(out)


# Probing an adapter's split function ------------------------------------------------------

class _Probe:
    """A copy of an HF module whose parameters hold their own element indices (float64,
    distinct ranges per parameter), for running an adapter's split function on it."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.ranges: list[tuple[int, int, str]] = []  # (start, end, qualified name)
        self.next = 0
        self.module = self._clone(module, "")

    def _clone(self, module: torch.nn.Module, prefix: str) -> torch.nn.Module:
        clone = copy.copy(module)  # shallow: the HF module itself is never touched
        clone._parameters = {}
        clone._modules = {}
        for name, p in module._parameters.items():
            if p is None:
                clone._parameters[name] = None
                continue
            n = p.numel()
            probe = torch.arange(self.next, self.next + n, dtype=torch.float64).reshape(p.shape)
            clone._parameters[name] = torch.nn.Parameter(probe, requires_grad=False)
            self.ranges.append((self.next, self.next + n, prefix + name))
            self.next += n
        if self.next >= 2 ** 53:
            raise SiteMappingError("the module is too large to probe exactly")
        for name, sub in module._modules.items():
            clone._modules[name] = None if sub is None else self._clone(sub, f"{prefix}{name}.")
        return clone

    def locate(self, values: torch.Tensor) -> tuple[str, torch.Tensor]:
        """Which parameter the probe values come from, and their flat indices in it."""
        if not torch.equal(values, values.round()):
            raise SiteMappingError("the split function computes with the weights (not a "
                                   "pure rearrangement)")
        lo, hi = int(values.min()), int(values.max())
        for start, end, name in self.ranges:
            if start <= lo and hi < end:
                return name, values.to(torch.int64) - start
        raise SiteMappingError("a split weight mixes elements of several parameters")


_PROBE_CACHE: dict[tuple, list[tuple[str, StridedLayout]]] = {}


def _split_layouts(split_fn: Callable, module: torch.nn.Module
                   ) -> list[tuple[str, StridedLayout, tuple[int, int]]]:
    """Run ``split_fn`` (an adapter's fused-projection splitter) on a probe of ``module``:
    for each module it returns, the HF parameter (name relative to ``module``) and the
    strided layout of its ``[out, in]`` weight in that parameter. Cached per module type,
    split function and parameter shapes (every layer of a model shares one answer)."""
    func = getattr(split_fn, "__func__", split_fn)
    key = (type(module), getattr(func, "__qualname__", repr(func)),
           tuple((n, tuple(p.shape), tuple(p.stride())) for n, p in module.named_parameters()))
    if key not in _PROBE_CACHE:
        probe = _Probe(module)
        with torch.no_grad():
            parts = split_fn(probe.module)
        found = []
        for part in parts:
            w = part.weight.detach()
            if type(part).__name__ == "Conv1D":
                w = w.T
            name, idx = probe.locate(w)
            found.append((name, strided_layout(idx), (int(w.shape[0]), int(w.shape[1]))))
        _PROBE_CACHE[key] = found
        del probe
    return _PROBE_CACHE[key]


# Deriving sites from the adapter ----------------------------------------------------------

class _Owners:
    """The plain model's parameters by storage, to find which HF parameter a bridge weight
    is (or is a view of)."""

    def __init__(self, hf: torch.nn.Module) -> None:
        self.by_ptr: dict[int, tuple[str, torch.nn.Parameter]] = {}
        self.by_id: dict[int, str] = {}
        for name, p in hf.named_parameters(remove_duplicate=False):
            self.by_ptr.setdefault(p.untyped_storage().data_ptr(), (name, p))
            self.by_id.setdefault(id(p), name)

    def find(self, t: torch.Tensor) -> tuple[str, torch.nn.Parameter] | None:
        return self.by_ptr.get(t.untyped_storage().data_ptr())


def _module_of(param_name: str) -> str:
    return param_name.rpartition(".")[0]


def _linear_sub(component, name: str):
    subs = getattr(component, "submodules", None) or {}
    sub = subs.get(name)
    if sub is None:
        return None
    mod = getattr(sub, "original_component", None)
    w = getattr(mod, "weight", None)
    if not isinstance(w, torch.Tensor) or w.ndim != 2:
        return None
    return mod


class _Builder:
    def __init__(self, bridge, hf: torch.nn.Module) -> None:
        self.bridge = bridge
        self.hf = hf
        self.adapter = bridge.adapter
        self.owners = _Owners(hf)
        mapping = self.adapter.component_mapping
        blocks = mapping.get("blocks")
        if blocks is None or not getattr(blocks, "name", None):
            raise SiteMappingError(f"{type(self.adapter).__name__} maps no transformer blocks")
        self.blocks_path = blocks.name
        self.d_head = int(getattr(bridge.cfg, "d_head", 0) or 0)

    # one dense component (an attention projection or a dense FFW projection)
    def dense(self, layer: int, family: str, comp: str, owner, owner_path: str,
              split: Callable | None, fused_names: tuple[str, ...],
              expert: str | None = None) -> Site | None:
        mod = _linear_sub(owner, comp)
        if mod is None:
            return None
        label = f"blocks.{layer}.{family}.{comp}" if expert is None else \
            f"blocks.{layer}.{family}.{expert}.{comp}"
        w = mod.weight
        conv = type(mod).__name__ == "Conv1D"
        matrix = w.T if conv else w
        shape = (int(matrix.shape[0]), int(matrix.shape[1]))
        found = self.owners.find(w)
        bridge_b: Binding | None = None
        if found is not None:
            pname, param = found
            if w is param:
                hb = _plain_binding(param, conv, pname)
                layout = "conv1d" if conv else "linear"
            else:
                sl = StridedLayout(tuple(matrix.shape), tuple(matrix.stride()),
                                   matrix.storage_offset() - param.storage_offset())
                hb = _strided_binding(param, sl, shape, pname)
                layout = "slice"
        else:
            if split is None:
                raise SiteMappingError(f"{label}: the bridge's weight is neither an HF "
                                       "parameter nor a split of one")
            # probed on the plain model's module (the bridge replaced submodules of its own)
            hf_owner = self.hf.get_submodule(owner_path)
            parts = _split_layouts(split, hf_owner)
            i = fused_names.index(comp)
            rel, sl, pshape = parts[i]
            if pshape != shape:
                raise SiteMappingError(f"{label}: the split gives {pshape}, the bridge {shape}")
            param = hf_owner.get_parameter(rel)
            pname = self.owners.by_id.get(id(param))
            if pname is None:
                raise SiteMappingError(f"{label}: the split parameter {rel} is not in the model")
            hb = _strided_binding(param, sl, shape, pname)
            bridge_b = _plain_binding(w, conv, f"bridge {label}")
            layout = "slice"
        bindings = _with_mirror(hb, bridge_b, label)
        heads = head_dim = None
        if family == "attn" and self.d_head:
            split_dim = shape[1] if comp == "o" else shape[0]
            if split_dim % self.d_head == 0:
                heads, head_dim = split_dim // self.d_head, self.d_head
        if expert is None:
            hook_comp = "in" if comp == "gate" else comp
            hook: str | None = f"blocks.{layer}.{family}.{hook_comp}.hook_in"
        else:  # a shared expert: the hook TransformerLens registered on its projection
            hook = getattr(getattr(owner.submodules.get(comp), "hook_in", None), "name", None)
        return Site(layer=layer, family=family, component=comp, shape=shape, n_heads=heads,
                    head_dim=head_dim, input_hook=hook, hf_path=_module_of(pname),
                    layout=layout, bindings=bindings, expert=expert)

    def attention(self, layer: int, attn) -> list[Site]:
        split = getattr(attn, "split_qkv_matrix", None)
        path = f"{self.blocks_path}.{layer}.{attn.name}"
        out = []
        for comp in ATTN_COMPONENTS:
            site = self.dense(layer, "attn", comp, attn, path, split, ("q", "k", "v"))
            if site is not None:
                out.append(site)
        return out

    def dense_mlp(self, layer: int, mlp, path: str, expert: str | None = None) -> list[Site]:
        split = getattr(mlp, "split_gate_up_matrix", None)
        out = []
        for comp in ("in", "gate", "out"):
            site = self.dense(layer, "mlp", comp, mlp, path, split, ("gate", "in"), expert)
            if site is not None:
                out.append(site)
        return [s for c in MLP_COMPONENTS for s in out if s.component == c]

    def experts(self, layer: int, moe) -> list[Site]:
        hf_moe = getattr(moe, "original_component", None)
        if hf_moe is None:
            raise SiteMappingError(f"blocks.{layer}.mlp: the mixture-of-experts bridge wraps "
                                   "no HF module")
        stacks = [(path, m) for path, m in hf_moe.named_modules()
                  if any(isinstance(m._parameters.get(n), torch.Tensor)
                         and m._parameters[n].ndim == 3 for n in (*_EXPERT_INPUTS, "down_proj"))]
        out: list[Site] = []
        for _path, m in stacks:
            out.extend(self._expert_stack(layer, m))
        subs = getattr(moe, "submodules", None) or {}
        # a dense FFW under the same bridge on layers without experts (Llama-4 maps its
        # projections as optional dense_gate / dense_in / dense_out)
        dense = {k.removeprefix("dense_"): v for k, v in subs.items()
                 if k.startswith("dense_") and k.removeprefix("dense_") in MLP_COMPONENTS}
        if dense and not stacks:
            shim = type("DenseFFW", (), {"submodules": dense})()
            out.extend(self.dense_mlp(layer, shim, f"{self.blocks_path}.{layer}.{moe.name}"))
        # FFW sub-bridges next to the routed experts (a shared expert)
        for name, sub in subs.items():
            if name in _ROUTERS or name.startswith("dense_") or "MoE" in type(sub).__name__:
                continue
            if _linear_sub(sub, "out") is not None and _linear_sub(sub, "in") is not None:
                out.extend(self.dense_mlp(layer, sub,
                                          f"{self.blocks_path}.{layer}.{moe.name}.{sub.name}",
                                          expert="shared"))
        if not out:
            raise SiteMappingError(
                f"blocks.{layer}.mlp: {type(hf_moe).__name__} holds no stacked expert "
                "parameters (gate_up_proj/up_proj/down_proj [expert, out, in]) that lenskit "
                "can read")
        return out

    def _expert_stack(self, layer: int, m: torch.nn.Module) -> list[Site]:
        params = {n: p for n, p in m._parameters.items()
                  if isinstance(p, torch.Tensor) and p.ndim == 3}
        transposed = self._transposed(layer, m, params)
        concatenated = bool(getattr(m, "is_concatenated", True))
        # (component, parameter, which rows of the [out, in] matrix: (start, step, count))
        plan: list[tuple[str, str, int, int, int | None]] = []
        if "gate_up_proj" in params:
            out2 = params["gate_up_proj"].shape[2 if transposed else 1]
            f = out2 // 2
            if concatenated:
                plan += [("gate", "gate_up_proj", 0, 1, f), ("in", "gate_up_proj", f, 1, f)]
            else:
                plan += [("gate", "gate_up_proj", 0, 2, f), ("in", "gate_up_proj", 1, 2, f)]
        else:
            if "gate_proj" in params:
                plan.append(("gate", "gate_proj", 0, 1, None))
            if "up_proj" in params:
                plan.append(("in", "up_proj", 0, 1, None))
        if "down_proj" in params:
            plan.append(("out", "down_proj", 0, 1, None))
        if not plan:
            return []
        n_experts = next(iter(params.values())).shape[0]
        d_model = int(getattr(self.bridge.cfg, "d_model", 0) or 0)
        out = []
        for e in range(n_experts):
            for comp, pname, start, step, count in sorted(
                    plan, key=lambda x: MLP_COMPONENTS.index(x[0])):
                p = params[pname]
                s0, s1, s2 = p.stride()
                if transposed:  # [expert, in, out]: matrix (r, c) at c * s1 + r * s2
                    rows, cols, rs, cs = p.shape[2], p.shape[1], s2, s1
                else:  # [expert, out, in]
                    rows, cols, rs, cs = p.shape[1], p.shape[2], s1, s2
                count = rows if count is None else count
                sl = StridedLayout((count, cols), (rs * step, cs), e * s0 + start * rs)
                full = self.owners.by_id.get(id(p))
                if full is None:
                    raise SiteMappingError(f"blocks.{layer}.mlp: expert parameter {pname} is "
                                           "not in the model")
                label = f"blocks.{layer}.mlp.e{e}.{comp}"
                reads = cols if comp != "out" else count
                if d_model and reads != d_model:
                    raise SiteMappingError(f"{label}: {pname} {tuple(p.shape)} gives "
                                           f"{(count, cols)}, which does not read/write d_model "
                                           f"{d_model}")
                hb = _strided_binding(p, sl, (count, cols), f"{full}[{e}]")
                out.append(Site(layer=layer, family="mlp", component=comp,
                                shape=(count, cols), n_heads=None, head_dim=None,
                                input_hook=None,  # no hook sees only its tokens
                                hf_path=_module_of(full), layout="experts", bindings=(hb,),
                                expert=f"e{e}", route=(pname, e)))
                assert label == out[-1].name
        return out

    def _transposed(self, layer: int, m: torch.nn.Module, params: dict) -> bool:
        """Whether the stacks are ``[expert, in, out]``: as the experts module declares
        (``is_transposed``, set by transformers' experts integration), else from which axis
        of the input projection has ``d_model`` (Llama-4's experts predate the flag)."""
        flag = getattr(m, "is_transposed", None)
        if flag is not None:
            return bool(flag)
        d_model = int(getattr(self.bridge.cfg, "d_model", 0) or 0)
        p = next((params[n] for n in _EXPERT_INPUTS if n in params), None)
        if p is not None and d_model:
            if p.shape[1] == d_model and p.shape[2] != d_model:
                return True
            if p.shape[2] == d_model and p.shape[1] != d_model:
                return False
        raise SiteMappingError(f"blocks.{layer}.mlp: {type(m).__name__} declares no "
                               "is_transposed and its shapes do not say which axis is d_model")

    def build(self) -> tuple[ArchitectureSpec, tuple[Site, ...]]:
        sites: list[Site] = []
        n_experts = 0
        for layer, block in enumerate(self.bridge.blocks):
            subs = getattr(block, "submodules", None) or {}
            attn, mlp = subs.get("attn"), subs.get("mlp")
            if attn is not None:
                sites.extend(self.attention(layer, attn))
            if mlp is not None:
                if "MoE" in type(mlp).__name__:
                    found = self.experts(layer, mlp)
                    n_experts = max(n_experts, len({s.expert for s in found
                                                    if s.route is not None}))
                    sites.extend(found)
                else:
                    sites.extend(self.dense_mlp(layer, mlp,
                                                f"{self.blocks_path}.{layer}.{mlp.name}"))
        if not sites:
            raise SiteMappingError(f"{type(self.adapter).__name__} maps no attention or FFW "
                                   "linear weights")
        self._check_complete(sites)
        return self._spec(sites, n_experts), tuple(sites)

    def _check_complete(self, sites: list[Site]) -> None:
        """Every linear weight of every block must be a site (or a router): an adapter that
        maps only some of them (multi-head latent attention's ``kv_a_proj``, a hybrid
        model's linear-attention or convolution layers) would make attention and FFW
        scopes silently incomplete."""
        covered = {id(b.param) for s in sites for b in s.bindings[:1]}
        for layer, block in enumerate(self.bridge.blocks):
            prefix = f"{self.blocks_path}.{layer}"
            skip = self._routers(layer, block)
            missing = []
            for name, mod in self.hf.get_submodule(prefix).named_modules():
                w = getattr(mod, "weight", None)
                linear = isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D"
                if not linear or not isinstance(w, torch.Tensor) or id(w) in covered:
                    continue
                if any(f"{prefix}.{name}" == r or f"{prefix}.{name}".startswith(r + ".")
                       for r in skip):
                    continue
                missing.append(name)
            if missing:
                raise SiteMappingError(
                    f"blocks.{layer}: linear weights {missing} are not mapped to an attention "
                    "or FFW component by the adapter, so they would be no site")

    def _routers(self, layer: int, block) -> list[str]:
        """HF paths of the router modules of a mixture-of-experts block (never sites)."""
        mlp = (getattr(block, "submodules", None) or {}).get("mlp")
        if mlp is None or "MoE" not in type(mlp).__name__:
            return []
        out = []
        for key, sub in (getattr(mlp, "submodules", None) or {}).items():
            if "Router" in type(sub).__name__ or (key in _ROUTERS and key != "experts"):
                out.append(f"{self.blocks_path}.{layer}.{mlp.name}.{sub.name}")
        return out

    def _spec(self, sites: list[Site], n_experts: int) -> ArchitectureSpec:
        block0 = self.bridge.blocks[0]
        subs = getattr(block0, "submodules", None) or {}
        attn, mlp = subs.get("attn"), subs.get("mlp")
        prefix = f"{self.blocks_path}.0."
        comps = {}
        for s in sites:
            if s.layer == 0 and s.expert is None and s.component not in comps:
                comps[s.component] = ComponentSpec(s.hf_path.removeprefix(prefix), s.layout)
            elif s.layer == 0 and s.expert is not None and s.component not in comps:
                comps[s.component] = ComponentSpec(s.hf_path.removeprefix(prefix), "experts")
        return ArchitectureSpec(
            name=str(getattr(self.hf.config, "model_type", type(self.hf).__name__)),
            blocks=self.blocks_path,
            attention=getattr(attn, "name", None) or "",
            components=comps, source="adapter", adapter=type(self.adapter).__name__,
            mlp=getattr(mlp, "name", None), n_experts=n_experts)


def build_sites(bridge, hf: torch.nn.Module, override: ArchitectureSpec | None = None
                ) -> tuple[ArchitectureSpec, tuple[Site, ...]]:
    """The architecture row and every site of ``hf`` (the plain HF model sharing its
    parameters with ``bridge``), derived from the bridge's architecture adapter, or from
    ``override`` (a hand-written row) when given.

    Raises:
        SiteMappingError: a component of the adapter cannot be mapped to HF parameters.
    """
    if override is not None:
        return override, build_sites_from_row(override, hf, bridge)
    return _Builder(bridge, hf).build()
