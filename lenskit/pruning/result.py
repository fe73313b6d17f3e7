"""The outcome of pruning: masks, SparseGPT's updated weights, targets and the config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd
import torch

from lenskit.models.masks import MaskSet, apply_masks, pruned

__all__ = ["PruneResult"]


@dataclass(eq=False)
class PruneResult:
    """Masks for the sites in scope and everything needed to apply or reproduce them.

    Attributes:
        masks: a :class:`~lenskit.models.MaskSet` (``True`` = keep) with the model's
            fingerprint; ``masks.meta`` holds method, parameters, seed and calibration.
        weights: for SparseGPT, site -> updated weight ``[out, in]`` (pruned entries 0, in
            the model's dtype); ``None`` for methods without a weight update.
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

    def __repr__(self) -> str:
        c = self.config
        return (f"PruneResult({c.get('method')} {c.get('structure')} {c.get('allocation')}, "
                f"scope {c.get('scope')!r}: {len(self.masks)} sites, achieved "
                f"{self.achieved_sparsity:.2%}, {self.params_removed:,} params removed)")
