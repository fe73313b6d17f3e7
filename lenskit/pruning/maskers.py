"""Maskers: how each pruning method turns per-site target sparsities into masks.

One :class:`Masker` per method (:data:`MASKERS`): :class:`RandomMasker`,
:class:`MagnitudeMasker` and :class:`WandaMasker` score every weight and keep the highest
scores (:class:`ScoreMasker`: one sort serves every level, so a sweep's masks are nested);
:class:`WandaMasker` also runs the references' sequential pass; :class:`SparseGPTMasker`
prunes with weight updates, from one Hessian factorisation per block for every level (dense
mode) or block after block on the pruned model (sequential mode).

A masker reads only what it is given: the validated settings of one
:class:`~lenskit.pruning.Pruner` (:class:`MaskJob`) and the dense model's statistics
(:class:`DenseStatistics`: feature norms and OWL's outlier ratios, computed once and cached,
shared with the Pruner's allocation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from lenskit.models.masks import apply_masks, restore
from lenskit.models.sites import Site
from lenskit.pruning.allocation import outlier_ratio
from lenskit.pruning.calibration import CalibrationData
from lenskit.pruning.options import Level
from lenskit.pruning.scores import magnitude_scores, random_scores, wanda_scores
from lenskit.pruning.selection import keep_from_ranks, keep_lowest, nm_keep, ranks, split_flat
from lenskit.pruning.sparsegpt import HessianFactor, factor_hessian, sparsegpt_prune
from lenskit.pruning.statistics import BlockWalker, GroupStats, group_sites
from lenskit.pruning.structure import Structure

__all__ = ["MASKERS", "DenseStatistics", "MagnitudeMasker", "MaskJob", "MaskRun", "Masker",
           "RandomMasker", "ScoreMasker", "SparseGPTMasker", "WandaMasker"]

#: Per level: masks by site name, replacement weights by site name (None: the weights are
#: only masked) and diagnostics.
MaskRun = tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor] | None], list[dict]]


@dataclass(frozen=True)
class MaskJob:
    """What a masker needs to know of one Pruner: the model, the selected sites (in site
    order), the structure, allocation and mode, the seed and the method's parameters."""

    model: Any
    selection: Any  # lenskit.models.sites.SiteSelection
    structure: Structure
    allocation: str
    mode: str
    seed: int
    params: Mapping[str, Any]

    def ordered(self, d: dict) -> dict:
        """``d`` (keyed by site name) in site order."""
        return {s.name: d[s.name] for s in self.selection}


class DenseStatistics:
    """Calibration statistics of the dense model over a selection, computed on first use and
    cached: the input feature norms ``||X_j||`` of every input group (Wanda's scores, OWL)
    and OWL's per-layer outlier ratios. A pass over other statistics (SparseGPT's Hessians,
    sequential passes) walks the model with :meth:`walker`."""

    def __init__(self, info, selection, calibration: CalibrationData | None,
                 batch_size: int) -> None:
        self.info = info
        self.selection = selection
        self.calibration = calibration
        self.batch_size = batch_size
        self._norms: dict[str, torch.Tensor] | None = None
        self._owl_ratios: dict[int, float] | None = None

    def walker(self) -> BlockWalker:
        """A block-by-block runner of the plain HF model on the calibration tokens."""
        assert self.calibration is not None  # the Pruner built one for every method needing it
        return BlockWalker(self.info, self.calibration.tokens, self.batch_size)

    def layers(self, kind: str) -> tuple[dict[int, dict[str, tuple[Site, str]]],
                                         dict[str, list[Site]]]:
        """What :meth:`BlockWalker.walk` collects (``kind``: "norms" or "hessian") per layer
        and input group, and each group's sites."""
        grouped = group_sites(self.selection)
        by_layer: dict[int, dict[str, tuple[Site, str]]] = {}
        for g, members in grouped.items():
            by_layer.setdefault(members[0].layer, {})[g] = (members[0], kind)
        return by_layer, grouped

    def norms(self) -> dict[str, torch.Tensor]:
        """``||X_j||`` of every selected input group on the dense model (cached)."""
        if self._norms is None:
            by_layer, _ = self.layers("norms")
            norms: dict[str, torch.Tensor] = {}

            def on_block(_layer: int, stats: dict[str, GroupStats]) -> None:
                norms.update({g: st.norms() for g, st in stats.items()})

            self.walker().walk(by_layer, on_block)
            self._norms = norms
        return self._norms

    def outlier_ratios(self, owl_m: float) -> dict[int, float]:
        """OWL's outlier ratio of each layer (Wanda scores above ``owl_m`` times their
        mean; cached: a Pruner has one ``owl_m``)."""
        if self._owl_ratios is None:
            norms = self.norms()
            by_layer: dict[int, list[torch.Tensor]] = {}
            for s in self.selection:
                score = wanda_scores(s.weight(), norms[s.input_group])
                by_layer.setdefault(s.layer, []).append(score)
            self._owl_ratios = {layer: outlier_ratio(sc, owl_m)
                                for layer, sc in by_layer.items()}
        return self._owl_ratios


class Masker(ABC):
    """Masks (and, for methods that update weights, new weights) of one method for the
    sites of a :class:`MaskJob`, at per-site target sparsities."""

    #: Whether the method needs calibration data.
    needs_calibration: ClassVar[bool] = False

    def __init__(self, job: MaskJob, stats: DenseStatistics) -> None:
        self.job = job
        self.stats = stats

    @property
    def granularity(self) -> str:
        """Where the target sparsity holds: each output ``"row"`` or the whole ``"matrix"``."""
        return "row" if self.job.params.get("per_row") else "matrix"

    @abstractmethod
    def run(self, levels: list[Level], targets: list[dict[str, float]]) -> MaskRun:
        """Masks for every level; ``targets[i]`` holds each site's sparsity at ``levels[i]``.
        Runs with the model's original weights in place and gradients off."""


class ScoreMasker(Masker):
    """Keep the highest scores: per row or matrix (at the target sparsity), over the whole
    selection (``allocation="global"``), or N of every M inputs (an N:M structure)."""

    @abstractmethod
    def scores(self, site: Site, norms: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Importance of each weight of ``site`` (``[out, in]``; low = pruned first)."""

    def norms(self) -> dict[str, torch.Tensor] | None:
        """The feature norms the scores need (None: they need none)."""
        return None

    def run(self, levels: list[Level], targets: list[dict[str, float]]) -> MaskRun:
        job = self.job
        norms = self.norms()
        out: list[dict[str, torch.Tensor]] = [{} for _ in levels]
        if not job.structure.unstructured:
            for s in job.selection:
                keep = nm_keep(self.scores(s, norms), job.structure.n, job.structure.m).cpu()
                for o in out:
                    o[s.name] = keep
        elif job.allocation == "global":
            # One ranking over the concatenation of every selected matrix's scores.
            flat = torch.cat([self.scores(s, norms).reshape(-1).cpu() for s in job.selection])
            rank = ranks(flat[None, :], "matrix")[0] if len(levels) > 1 else None
            for o, lv in zip(out, levels, strict=True):
                keep = (keep_from_ranks(rank, lv.scope_sparsity, "matrix") if rank is not None
                        else keep_lowest(flat, lv.scope_sparsity, "matrix"))
                parts = split_flat(keep, [s.shape for s in job.selection])
                o.update({s.name: p for s, p in zip(job.selection, parts, strict=True)})
        else:
            gran = self.granularity
            for s in job.selection:
                score = self.scores(s, norms)
                if len(levels) == 1:  # one level: a selection, no full sort (same mask)
                    out[0][s.name] = keep_lowest(score, targets[0][s.name], gran).cpu()
                    continue
                rank = ranks(score, gran)  # one sort serves every level (nested masks)
                for o, t in zip(out, targets, strict=True):
                    o[s.name] = keep_from_ranks(rank, t[s.name], gran).cpu()
        return out, [None] * len(levels), [{} for _ in levels]


class RandomMasker(ScoreMasker):
    """Seeded uniform scores (a control): a site's scores depend on (seed, site name) only."""

    def scores(self, site: Site, norms: dict[str, torch.Tensor] | None) -> torch.Tensor:
        w = site.weight()
        return random_scores(site.shape, self.job.seed, site.name).to(w.device)


class MagnitudeMasker(ScoreMasker):
    """``|W|``."""

    def scores(self, site: Site, norms: dict[str, torch.Tensor] | None) -> torch.Tensor:
        return magnitude_scores(site.weight())


class WandaMasker(ScoreMasker):
    """``|W_ij| * ||X_j||``, per output row; in sequential mode each block is pruned before
    the next block's norms are taken (the reference's pass)."""

    needs_calibration = True

    @property
    def granularity(self) -> str:
        return "row"

    def norms(self) -> dict[str, torch.Tensor]:
        return self.stats.norms()

    def scores(self, site: Site, norms: dict[str, torch.Tensor] | None) -> torch.Tensor:
        assert norms is not None
        return wanda_scores(site.weight(), norms[site.input_group])

    def run(self, levels: list[Level], targets: list[dict[str, float]]) -> MaskRun:
        if self.job.mode != "sequential":
            return super().run(levels, targets)
        return self._sequential(targets), [None] * len(levels), [{} for _ in levels]

    def _sequential(self, targets: list[dict[str, float]]) -> list[dict[str, torch.Tensor]]:
        job = self.job
        by_layer, grouped = self.stats.layers("norms")
        masks: list[dict] = [{} for _ in targets]

        def on_block(level: int, _layer: int, stats: dict[str, GroupStats]) -> None:
            block = {}
            for g, st in stats.items():
                norms = {g: st.norms()}
                for s in grouped[g]:
                    score = self.scores(s, norms)
                    if job.structure.unstructured:
                        keep = keep_lowest(score, targets[level][s.name], "row")
                    else:
                        keep = nm_keep(score, job.structure.n, job.structure.m)
                    block[s.name] = keep.cpu()
            masks[level].update(block)
            apply_masks(job.model, block)

        self.stats.walker().walk_levels(by_layer, len(targets), on_block,
                                        lambda _level: restore(job.model))
        return [job.ordered(m) for m in masks]


class SparseGPTMasker(Masker):
    """Second-order pruning with weight updates (:mod:`lenskit.pruning.sparsegpt`):
    ``blocksize`` and ``percdamp`` from the job's parameters."""

    needs_calibration = True

    def run(self, levels: list[Level], targets: list[dict[str, float]]) -> MaskRun:
        if self.job.mode == "dense":
            return self._dense(targets)
        return self._sequential(targets)

    def _group(self, stats: GroupStats, group: str, members: list[Site],
               targets: list[dict[str, float]], masks: list[dict], weights: list[dict],
               diag: list[dict], factors: dict[GroupStats, HessianFactor] | None = None
               ) -> None:
        params = self.job.params
        factor = factors.get(stats) if factors is not None else None
        if factor is None:
            factor = factor_hessian(stats.hessian(), params["percdamp"], name=group)
            if factors is not None:
                factors[stats] = factor
        if factor.percdamp != params["percdamp"] or factor.fallback:
            for d in diag:
                d.setdefault("hessian", {})[group] = {"percdamp": factor.percdamp,
                                                      "fallback": factor.fallback}
        for s in members:
            w = s.weight()
            for t, mk, wt in zip(targets, masks, weights, strict=True):
                new, keep = sparsegpt_prune(w, factor, t[s.name], self.job.structure,
                                            params["blocksize"])
                mk[s.name] = keep.cpu()
                # Held in CPU memory like the masks: levels and results kept for later cost
                # nothing on the accelerator (apply_masks copies one site at a time there).
                wt[s.name] = new.to(device="cpu", dtype=w.dtype)

    def _dense(self, targets: list[dict[str, float]]) -> MaskRun:
        by_layer, grouped = self.stats.layers("hessian")
        n = len(targets)
        masks: list[dict] = [{} for _ in range(n)]
        weights: list[dict] = [{} for _ in range(n)]
        diag: list[dict] = [{} for _ in range(n)]

        def on_block(_layer: int, stats: dict[str, GroupStats]) -> None:
            for g, st in stats.items():
                self._group(st, g, grouped[g], targets, masks, weights, diag)

        self.stats.walker().walk(by_layer, on_block)
        return masks, weights, diag

    def _sequential(self, targets: list[dict[str, float]]) -> MaskRun:
        job = self.job
        by_layer, grouped = self.stats.layers("hessian")
        n = len(targets)
        masks: list[dict] = [{} for _ in range(n)]
        weights: list[dict] = [{} for _ in range(n)]
        diag: list[dict] = [{} for _ in range(n)]
        # The first calibrated block's statistics serve every level: factored once.
        first = min(by_layer) if by_layer else -1
        factors: dict[GroupStats, HessianFactor] = {}

        def on_block(level: int, layer: int, stats: dict[str, GroupStats]) -> None:
            names = []
            for g, st in stats.items():
                self._group(st, g, grouped[g], [targets[level]], [masks[level]],
                            [weights[level]], [diag[level]],
                            factors if layer == first and n > 1 else None)
                names += [s.name for s in grouped[g]]
            apply_masks(job.model, {k: masks[level][k] for k in names},
                        {k: weights[level][k] for k in names})

        self.stats.walker().walk_levels(by_layer, n, on_block,
                                        lambda _level: restore(job.model))
        return ([job.ordered(m) for m in masks], [job.ordered(w) for w in weights], diag)


#: The masker of each method (the keys are :data:`lenskit.names.METHODS`).
MASKERS: dict[str, type[Masker]] = {"random": RandomMasker, "magnitude": MagnitudeMasker,
                                    "wanda": WandaMasker, "sparsegpt": SparseGPTMasker}
