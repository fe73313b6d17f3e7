"""Mask sets: boolean keep-masks per site, applied in place and restored bit for bit.

A :class:`MaskSet` maps site names to ``[out, in]`` boolean tensors (``True`` = keep).
:func:`apply_masks` zeroes the pruned entries of each site in place (in the HF parameter and
in any copy TransformerLens holds) after validating everything first, so bad input never
leaves a model half-modified. The first time a site is touched, its original weight is kept
(in CPU memory, whatever the model's device); :func:`restore` writes it back, so restored
weights are bitwise identical to the loaded ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lenskit.errors import CorruptFileError
from lenskit.models.loading import model_info
from lenskit.models.sites import Site
from lenskit.models.sites_build import bridge_binding

__all__ = [
    "MaskSet",
    "apply_masks",
    "check_consistency",
    "check_masks",
    "check_sparsity",
    "offload",
    "parse_site_name",
    "pruned",
    "restore",
    "validate_masks",
]

_FORMAT = "lenskit.masks.v1"


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the stored tensors (name, dtype, shape and bytes, in name order)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def check_sparsity(value: float, name: str = "sparsity") -> float:
    """``value`` as a float in [0, 1], or a ``ValueError`` naming it."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= v <= 1.0 or v != v:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def parse_site_name(name: str) -> tuple[int, str, str]:
    """``"blocks.3.mlp.gate"`` -> ``(3, "mlp", "gate")``."""
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "blocks" or not parts[1].isdigit():
        raise ValueError(f"bad site name {name!r}; expected 'blocks.<layer>.<family>.<component>'")
    return int(parts[1]), parts[2], parts[3]


class MaskSet(Mapping[str, torch.Tensor]):
    """Boolean keep-masks per site (``True`` = keep), with the model they were made for.

    Args:
        masks: site name -> bool tensor ``[out_features, in_features]``.
        fingerprint: the weight fingerprint of the model the masks belong to
            (``model_info(model).fingerprint``); checked when applied or loaded.
        model: a readable model name, for messages.
        meta: free-form JSON-serialisable metadata (method, sparsity, seed...).
    """

    def __init__(
        self,
        masks: Mapping[str, torch.Tensor],
        *,
        fingerprint: str | None = None,
        model: str | None = None,
        meta: dict | None = None,
    ) -> None:
        for name, m in masks.items():
            parse_site_name(name)
            if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.ndim != 2:
                raise ValueError(
                    f"mask for {name} must be a 2-D bool tensor, got "
                    f"{getattr(m, 'dtype', type(m))} of shape {tuple(getattr(m, 'shape', ()))}"
                )
        self._masks = dict(masks)
        self.fingerprint = fingerprint
        self.model = model
        self.meta = dict(meta or {})

    # Mapping protocol
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        return (f"MaskSet({len(self)} sites, sparsity {self.sparsity():.2%}, "
                f"model={self.model!r})")

    @classmethod
    def dense(cls, model, selection=None) -> MaskSet:
        """All-``True`` masks for the selected sites of ``model``."""
        info = model_info(model)
        return cls(
            {s.name: torch.ones(s.shape, dtype=torch.bool) for s in info.select(selection)},
            fingerprint=info.fingerprint, model=info.spec,
        )

    @classmethod
    def from_weights(cls, model, selection=None) -> MaskSet:
        """The current non-zero pattern of the selected sites (``True`` where weight != 0)."""
        info = model_info(model)
        return cls({s.name: s.weight() != 0 for s in info.select(selection)},
                   fingerprint=info.fingerprint, model=info.spec)

    # Accounting
    def report(self) -> pd.DataFrame:
        """One row per site: layer, family, component, numel, pruned, kept, sparsity."""
        rows = []
        for name, m in self._masks.items():
            layer, family, comp = parse_site_name(name)
            kept = int(m.sum())
            rows.append({"site": name, "layer": layer, "family": family, "component": comp,
                         "numel": m.numel(), "pruned": m.numel() - kept, "kept": kept})
        df = pd.DataFrame(rows, columns=["site", "layer", "family", "component", "numel",
                                         "pruned", "kept"])
        df["sparsity"] = df["pruned"] / df["numel"].where(df["numel"] > 0, 1)
        return df

    def sparsity(self, by: str | list[str] | None = None) -> float | pd.DataFrame:
        """Overall pruned fraction, or a table grouped ``by`` ``"layer"``, ``"family"``,
        ``"component"``, ``"site"`` (or a list of them) with numel, pruned and sparsity."""
        df = self.report()
        if by is None:
            total = int(df["numel"].sum())
            return float(df["pruned"].sum() / total) if total else 0.0
        keys = [by] if isinstance(by, str) else list(by)
        allowed = {"layer", "family", "component", "site"}
        bad = [k for k in keys if k not in allowed]
        if bad:
            raise ValueError(f"cannot group by {bad[0]!r}; allowed: {sorted(allowed)}")
        g = df.groupby(keys, sort=True)[["numel", "pruned", "kept"]].sum().reset_index()
        g["sparsity"] = g["pruned"] / g["numel"]
        return g

    @property
    def n_pruned(self) -> int:
        return int(sum(int((~m).sum()) for m in self._masks.values()))

    @property
    def n_params(self) -> int:
        return int(sum(m.numel() for m in self._masks.values()))

    # Set algebra (on the *pruned* sets)
    def is_nested_in(self, other: MaskSet) -> bool:
        """True if every weight pruned here is also pruned in ``other``."""
        return all(
            name in other and bool(((~m) & other[name]).sum() == 0)
            for name, m in self._masks.items()
        )

    def restrict(self, names: Iterable[str]) -> MaskSet:
        keep = set(names)
        return MaskSet({n: m for n, m in self._masks.items() if n in keep},
                       fingerprint=self.fingerprint, model=self.model, meta=self.meta)

    def __or__(self, other: MaskSet) -> MaskSet:
        """Union of the site sets; where both have a site, a weight is kept only if both keep it."""
        if self.fingerprint and other.fingerprint and self.fingerprint != other.fingerprint:
            raise ValueError("cannot combine masks of different models "
                             f"({self.fingerprint} vs {other.fingerprint})")
        merged = dict(self._masks)
        for n, m in other.items():
            merged[n] = merged[n] & m if n in merged else m
        return MaskSet(merged, fingerprint=self.fingerprint or other.fingerprint,
                       model=self.model or other.model, meta=self.meta)

    # Persistence
    def save(self, path: str | Path, packed: bool = True) -> None:
        """Write as safetensors (bit-packed by default) with the model identity."""
        tensors: dict[str, torch.Tensor] = {}
        shapes = {}
        for name, m in self._masks.items():
            shapes[name] = list(m.shape)
            if packed:
                bits = np.packbits(m.cpu().numpy().reshape(-1))
                tensors[name] = torch.from_numpy(bits)
            else:
                tensors[name] = m.contiguous().cpu()
        meta = {"format": _FORMAT, "packed": str(packed).lower(),
                "fingerprint": self.fingerprint or "", "model": self.model or "",
                "shapes": json.dumps(shapes), "meta": json.dumps(self.meta),
                "sha256": _checksum(tensors)}
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, model=None) -> MaskSet:
        """Read masks saved by :meth:`save`; with ``model``, check they belong to it.

        Raises :class:`lenskit.errors.CorruptFileError` naming the file when it is truncated
        or its content differs from the checksum stored at save time."""
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                raw = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        except FileNotFoundError:
            raise
        except Exception as err:
            raise CorruptFileError(f"mask file {path} is damaged or not a safetensors file "
                                   f"({type(err).__name__}: {err})", path) from err
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a lenskit mask file (format "
                             f"{meta.get('format')!r}, expected {_FORMAT!r})")
        if meta.get("sha256") and meta["sha256"] != _checksum(raw):
            raise CorruptFileError(f"mask file {path} is corrupt: its content does not match "
                                   "the checksum stored when it was saved", path)
        shapes = json.loads(meta["shapes"])
        packed = meta.get("packed") == "true"
        masks = {}
        for name, t in raw.items():
            shape = tuple(shapes[name])
            if packed:
                n = int(np.prod(shape))
                bits = np.unpackbits(t.numpy(), count=n).astype(bool)
                masks[name] = torch.from_numpy(bits.reshape(shape))
            else:
                masks[name] = t.bool()
        out = cls(masks, fingerprint=meta.get("fingerprint") or None,
                  model=meta.get("model") or None, meta=json.loads(meta.get("meta", "{}")))
        if model is not None:
            validate_masks(model_info(model), out, None)
        return out


def validate_masks(info, masks: Mapping[str, torch.Tensor],
              weights: Mapping[str, torch.Tensor] | None) -> list[Site]:
    """Check masks (and replacement weights) against the model; return their sites."""
    fp = getattr(masks, "fingerprint", None)
    if fp and fp != info.fingerprint:
        raise ValueError(
            f"these masks were made for another model (fingerprint {fp}, model "
            f"{getattr(masks, 'model', None)!r}); this model {info.spec!r} has fingerprint "
            f"{info.fingerprint}"
        )
    site_map = info.site_map
    sites = []
    for name, m in masks.items():
        if name not in site_map:
            raise ValueError(f"unknown site {name!r}; this model's sites are "
                             f"{list(site_map)[:8]}... ({len(site_map)} in all)")
        site = site_map[name]
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise ValueError(f"mask for {name} must be a bool tensor, got "
                             f"{getattr(m, 'dtype', type(m))}")
        if tuple(m.shape) != site.shape:
            raise ValueError(f"mask for {name} has shape {tuple(m.shape)}; the site's weight "
                             f"is {site.shape} (out_features, in_features)")
        sites.append(site)
    for name, w in (weights or {}).items():
        if name not in masks:
            raise ValueError(f"replacement weight for {name} has no mask")
        if tuple(w.shape) != site_map[name].shape:
            raise ValueError(f"replacement weight for {name} has shape {tuple(w.shape)}, "
                             f"expected {site_map[name].shape}")
        if not torch.isfinite(w).all():
            raise ValueError(f"replacement weight for {name} has non-finite values")
    return sites


def check_masks(model, masks: Mapping[str, torch.Tensor],
                weights: Mapping[str, torch.Tensor] | None = None) -> None:
    """Raise ``ValueError`` unless ``masks`` (and replacement ``weights``) fit ``model``:
    same weight fingerprint (when the masks carry one), known sites, matching shapes, bool
    masks and finite weights. Nothing is modified."""
    validate_masks(model_info(model), masks, weights)


def apply_masks(
    model,
    masks: Mapping[str, torch.Tensor],
    weights: Mapping[str, torch.Tensor] | None = None,
    verify: bool = True,
) -> None:
    """Set each masked site to ``original * mask`` (or ``weights[name] * mask``) in place.

    Always relative to the *original* weight, so applying masks twice or a different mask
    set replaces rather than compounds. Sites not in ``masks`` are not touched. Everything is
    validated before the first write. With ``verify``, every binding of every touched site
    (the HF parameter and TransformerLens' copy, if any) is read back and compared.
    """
    info = model_info(model)
    sites = validate_masks(info, masks, weights)
    with torch.no_grad():
        for site in sites:
            if site.name not in info.originals:
                info.originals[site.name] = offload(site)
            dtype = info.originals[site.name].dtype
            device = site.bindings[0].param.device
            base = weights[site.name] if weights and site.name in weights else \
                info.originals[site.name]
            # Computed where the weight lives: one site's temporary at a time there.
            base = base.to(device=device, dtype=dtype)
            keep = masks[site.name].to(device)
            new = torch.where(keep, base, torch.zeros((), dtype=dtype, device=device))
            for b in site.bindings:
                b.write_(new)
            if verify:
                for b in site.bindings:
                    if not torch.equal(b.read(), new):
                        raise RuntimeError(f"{b.where} did not take the new weight of {site.name}")


def offload(site: Site) -> torch.Tensor:
    """A copy of ``site``'s current weight ``[out, in]`` in CPU memory (never aliasing the
    model): the originals kept for :func:`restore` stay off the accelerator, so a pruned
    scope costs its own size once there, and writing the copy back is bitwise exact."""
    view = site.bindings[0].view().reshape(site.shape)
    return view.to("cpu", copy=True)


def restore(model, names: Iterable[str] | None = None) -> list[str]:
    """Write back the original weights of modified sites (all, or ``names``); bitwise exact.

    Returns the names restored.
    """
    info = model_info(model)
    todo = list(info.originals) if names is None else [n for n in names if n in info.originals]
    site_map = info.site_map
    with torch.no_grad():
        for name in todo:
            original = info.originals.pop(name)
            for b in site_map[name].bindings:
                b.write_(original)
    return todo


@contextmanager
def pruned(model, masks: Mapping[str, torch.Tensor],
           weights: Mapping[str, torch.Tensor] | None = None):
    """Apply ``masks`` for the duration of a ``with`` block; on exit (also on an exception)
    put every touched site back exactly as it was before the block."""
    info = model_info(model)
    validate_masks(info, masks, weights)
    before = {n: offload(info.site_map[n]) for n in masks if n in info.originals}
    try:
        apply_masks(model, masks, weights)
        yield model
    finally:
        with torch.no_grad():
            for name in masks:
                if name in before:
                    for b in info.site_map[name].bindings:
                        b.write_(before[name])
                else:
                    restore(model, [name])


def check_consistency(model) -> None:
    """Assert that TransformerLens sees the same weights as the HF model for every site
    (the bridge's ``W_Q``-style views and any copies it holds). Raises ``AssertionError``."""
    info = model_info(model)
    for site in info.sites:
        bb = bridge_binding(model, site.layer, site.family, site.component)
        if bb is not None and not torch.equal(bb.read(), site.bindings[0].read()):
            raise AssertionError(f"the bridge's weight of {site.name} differs from the HF one")
