"""The outcome of pruning: masks, SparseGPT's updated weights, targets and the config.

:meth:`PruneResult.save` writes one safetensors file (bit-packed masks, SparseGPT's updated
weights in their dtype, everything else as JSON metadata); :meth:`PruneResult.load` reads it
back and, given the model, checks that the result was made for it (weight fingerprint,
site names and shapes) before anything can be applied. The file stores a sha256 over its
tensors and metadata, as mask files do: a truncated or altered file is refused with a
:class:`lenskit.errors.CorruptFileError` naming it, never loaded silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lenskit.errors import CorruptFileError, UsageError
from lenskit.models.masks import MaskSet, apply_masks, check_masks, pruned, tensor_checksum

_FORMAT = "lenskit.prune_result.v1"

__all__ = ["PruneResult"]


def _checksum(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> str:
    """sha256 over the tensors and every metadata entry but the checksum itself."""
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    h = hashlib.sha256(tensor_checksum(tensors).encode())
    h.update(json.dumps(rest, sort_keys=True).encode())
    return h.hexdigest()


def _damaged(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"pruning result {path} is damaged ({why}); it cannot be used: prune again and save "
        "a new one with PruneResult.save (lenskit.prune(model, method, sparsity, ...))", path)


@dataclass(eq=False)
class PruneResult:
    """Masks for the sites in scope and everything needed to apply or reproduce them.

    Attributes:
        masks: a :class:`~lenskit.models.MaskSet` (``True`` = keep) with the model's
            fingerprint; ``masks.meta`` holds method, parameters, seed and calibration.
        weights: for SparseGPT, site -> updated weight ``[out, in]`` (pruned entries 0, in
            the model's dtype, in CPU memory); ``None`` for methods without a weight update.
        target: site -> requested sparsity after allocation (for ``global``, the sparsity
            the single ranking gave the site).
        config: everything needed to reproduce the result (method, sparsity, scope,
            structure, allocation, mode, seed, method parameters, calibration, model).
        diagnostics: what happened on the way (OWL outlier ratios and block sparsities,
            Hessian damping retries); not needed to reproduce.
    """

    masks: MaskSet
    weights: dict[str, torch.Tensor] | None
    target: dict[str, float]
    config: dict
    diagnostics: dict = field(default_factory=dict)

    def report(self) -> pd.DataFrame:
        """One row per site: site, layer, family, component, numel, target_sparsity,
        achieved_sparsity, pruned."""
        df = self.masks.report()
        df["target_sparsity"] = df["site"].map(self.target).astype(float)
        df["achieved_sparsity"] = df["sparsity"]
        return df[["site", "layer", "family", "component", "numel", "target_sparsity",
                   "achieved_sparsity", "pruned"]]

    @property
    def achieved_sparsity(self) -> float:
        """Pruned fraction over all sites in scope."""
        return float(self.masks.sparsity())

    @property
    def params_removed(self) -> int:
        return self.masks.n_pruned

    @property
    def sparsity(self) -> float | None:
        """The sparsity that was asked for (see ``config['sparsity']``)."""
        return self.config.get("sparsity")

    def apply(self, model) -> None:
        """Prune ``model`` in place (relative to its original weights; ``restore`` undoes)."""
        apply_masks(model, self.masks, self.weights)

    @contextmanager
    def applied(self, model) -> Iterator:
        """Apply for the duration of a ``with`` block, then put every site back exactly."""
        with pruned(model, self.masks, self.weights) as m:
            yield m

    # Persistence
    def save(self, path: str | Path) -> Path:
        """Write the result to ``path`` (a ``.safetensors`` file): masks bit-packed as
        ``mask/<site>``, SparseGPT's weights as ``weight/<site>`` (CPU, their dtype), and
        target, config, diagnostics and the masks' model identity as JSON metadata."""
        tensors: dict[str, torch.Tensor] = {}
        shapes = {}
        for name, m in self.masks.items():
            shapes[name] = list(m.shape)
            tensors[f"mask/{name}"] = torch.from_numpy(
                np.packbits(m.cpu().numpy().reshape(-1)))
        for name, w in (self.weights or {}).items():
            tensors[f"weight/{name}"] = w.detach().contiguous().cpu()
        meta = {
            "format": _FORMAT, "shapes": json.dumps(shapes),
            "fingerprint": self.masks.fingerprint or "", "model": self.masks.model or "",
            "mask_meta": json.dumps(self.masks.meta), "target": json.dumps(self.target),
            "config": json.dumps(self.config), "diagnostics": json.dumps(self.diagnostics),
            "has_weights": str(self.weights is not None).lower(),
        }
        meta["sha256"] = _checksum(tensors, meta)
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, model=None) -> PruneResult:
        """Read a result written by :meth:`save`. With ``model`` (a bridge from
        :func:`lenskit.load_model`), raise ``ValueError`` unless the result was made for
        it: same weight fingerprint, known sites, matching shapes, finite weights.

        Raises ``FileNotFoundError`` when there is no file, :class:`UsageError` for a
        directory or a safetensors file that is not a pruning result, and
        :class:`CorruptFileError` naming the file when it is truncated or its content no
        longer matches the checksum stored when it was saved (files saved before lenskit
        stored one are read without the check)."""
        path = Path(path)
        if path.is_dir():
            raise UsageError(f"{path} is a directory, not a pruning result: pass the "
                             ".safetensors file written by PruneResult.save")
        if not path.is_file():
            raise FileNotFoundError(f"no pruning result at {path}: pass the .safetensors "
                                    "file written by PruneResult.save")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                raw = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error types for bad bytes
            raise _damaged(path, f"not a readable safetensors file, truncated or another "
                                 f"kind of file: {type(err).__name__}: {err}") from err
        if meta.get("format") != _FORMAT:
            raise UsageError(f"{path} is not a lenskit pruning result (format "
                             f"{meta.get('format')!r}, expected {_FORMAT!r}): pass a file "
                             "written by PruneResult.save")
        if meta.get("sha256") and meta["sha256"] != _checksum(raw, meta):
            raise _damaged(path, "its content does not match the checksum stored when it "
                                 "was saved")
        try:
            out = cls._from_stored(raw, meta)
        except (KeyError, ValueError, TypeError) as err:
            raise _damaged(path, f"{type(err).__name__}: {err}") from err
        if model is not None:
            check_masks(model, out.masks, out.weights)
        return out

    @classmethod
    def _from_stored(cls, raw: Mapping[str, torch.Tensor], meta: Mapping[str, str]
                     ) -> PruneResult:
        shapes = json.loads(meta["shapes"])
        masks: dict[str, torch.Tensor] = {}
        weights: dict[str, torch.Tensor] = {}
        for key, t in raw.items():
            kind, name = key.split("/", 1)
            if kind == "mask":
                shape = tuple(shapes[name])
                bits = np.unpackbits(t.numpy(), count=int(np.prod(shape))).astype(bool)
                masks[name] = torch.from_numpy(bits.reshape(shape))
            else:
                weights[name] = t
        order = list(shapes)  # the saved (scope) order
        mask_set = MaskSet({n: masks[n] for n in order},
                           fingerprint=meta.get("fingerprint") or None,
                           model=meta.get("model") or None,
                           meta=json.loads(meta.get("mask_meta", "{}")))
        return cls(mask_set,
                   {n: weights[n] for n in order if n in weights}
                   if meta.get("has_weights") == "true" else None,
                   json.loads(meta["target"]), json.loads(meta["config"]),
                   json.loads(meta.get("diagnostics", "{}")))

    def __repr__(self) -> str:
        c = self.config
        return (f"PruneResult({c.get('method')} {c.get('structure')} {c.get('allocation')}, "
                f"scope {c.get('scope')!r}: {len(self.masks)} sites, achieved "
                f"{self.achieved_sparsity:.2%}, {self.params_removed:,} params removed)")
