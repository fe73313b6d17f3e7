"""Build the sites of a loaded model from its architecture row (see ``architectures.py``)."""

from __future__ import annotations

import torch

from lenskit.models.architectures import ATTN_COMPONENTS, COMPONENTS, ArchitectureSpec
from lenskit.models.sites import Binding, Site

__all__ = ["bridge_binding", "build_sites"]

_QKV_INDEX = {"q": 0, "k": 1, "v": 2}


def _get(root: torch.nn.Module, path: str) -> torch.nn.Module:
    mod = root
    for part in path.split("."):
        mod = mod[int(part)] if part.isdigit() else getattr(mod, part)
    return mod


def _hf_binding(module: torch.nn.Module, layout: str, component: str, n_heads: int,
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
    if not isinstance(w, torch.nn.Parameter):
        return None
    where = f"bridge blocks.{layer}.{family}.{component}"
    if type(mod).__name__ == "Conv1D":
        return Binding(w, lambda t: t.T, (w.shape[1], w.shape[0]), where)
    return Binding(w, lambda t: t, (w.shape[0], w.shape[1]), where)


def build_sites(arch: ArchitectureSpec, hf: torch.nn.Module, bridge) -> tuple[Site, ...]:
    """Every site of ``hf`` (the plain HF model), with mirror bindings on the bridge's own
    copies where TransformerLens holds one (checked equal to the HF weight here)."""
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
            hb = _hf_binding(_get(blocks[layer], spec.path), spec.layout, comp, heads, d_head,
                             where)
            bindings = [hb]
            bb = bridge_binding(bridge, layer, family, comp)
            if bb is not None:
                if bb.shape != hb.shape or not torch.equal(bb.read(), hb.read()):
                    raise RuntimeError(
                        f"TransformerLens' weight for blocks.{layer}.{family}.{comp} differs "
                        f"from the HF weight at {where}; this architecture row is wrong"
                    )
                if not bb.shares_storage_with(hb):
                    bindings.append(bb)
            hook_comp = "in" if comp == "gate" else comp
            out.append(Site(
                layer=layer, family=family, component=comp, shape=hb.shape,
                n_heads=heads if family == "attn" else None,
                head_dim=d_head if family == "attn" else None,
                input_hook=f"blocks.{layer}.{family}.{hook_comp}.hook_in",
                hf_path=where, layout=spec.layout, bindings=tuple(bindings),
            ))
    return tuple(out)
