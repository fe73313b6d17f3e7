"""How a :class:`~lenskit.pruning.Pruner` turns scores and calibration statistics into masks.

:class:`MaskPasses` holds the passes over the model: the dense feature norms and OWL outlier
ratios (cached), score-based masks for every level from one sort, SparseGPT in dense mode
(one Hessian factorisation per block serves every level) and in sequential mode, and Wanda
in sequential mode. It is a base of ``Pruner`` and uses the attributes ``Pruner.__init__``
validates: ``model``, ``info``, ``method``, ``params``, ``selection``, ``structure``,
``allocation``, ``seed``, ``batch_size`` and the calibration.
"""

from __future__ import annotations

import torch

from lenskit.models.masks import apply_masks
from lenskit.models.sites import Site
from lenskit.pruning.allocation import outlier_ratio
from lenskit.pruning.calibration import CalibrationData
from lenskit.pruning.options import Level
from lenskit.pruning.scores import magnitude_scores, random_scores, wanda_scores
from lenskit.pruning.selection import keep_from_ranks, keep_lowest, nm_keep, ranks, split_flat
from lenskit.pruning.sparsegpt import factor_hessian, sparsegpt_prune
from lenskit.pruning.statistics import BlockWalker, GroupStats, group_sites
from lenskit.pruning.structure import Structure

__all__ = ["MaskPasses"]


class MaskPasses:
    """The mask-making passes of a Pruner (see the module docstring)."""

    model: object
    info: object
    method: str
    params: dict
    selection: object
    structure: Structure
    allocation: str
    seed: int
    batch_size: int
    granularity: str
    _calibration: CalibrationData | None
    _norms: dict[str, torch.Tensor] | None
    _owl_ratios: dict[int, float] | None

    # Statistics
    def _groups(self, kind: str) -> tuple[dict[int, dict[str, tuple[Site, str]]],
                                          dict[str, list[Site]]]:
        grouped = group_sites(self.selection)
        by_layer: dict[int, dict[str, tuple[Site, str]]] = {}
        for g, members in grouped.items():
            by_layer.setdefault(members[0].layer, {})[g] = (members[0], kind)
        return by_layer, grouped

    def _walker(self) -> BlockWalker:
        assert self._calibration is not None
        return BlockWalker(self.info, self._calibration.tokens, self.batch_size)

    def _dense_norms(self) -> dict[str, torch.Tensor]:
        """``||X_j||`` of every selected input group on the dense model (cached)."""
        if self._norms is None:
            by_layer, _ = self._groups("norms")
            norms: dict[str, torch.Tensor] = {}

            def on_block(_layer: int, stats: dict[str, GroupStats]) -> None:
                norms.update({g: st.norms() for g, st in stats.items()})

            self._walker().walk(by_layer, on_block)
            self._norms = norms
        return self._norms

    def _outlier_ratios(self) -> dict[int, float]:
        if self._owl_ratios is None:
            norms = self._dense_norms()
            by_layer: dict[int, list[torch.Tensor]] = {}
            for s in self.selection:
                score = wanda_scores(s.weight(), norms[s.input_group])
                by_layer.setdefault(s.layer, []).append(score)
            self._owl_ratios = {layer: outlier_ratio(sc, self.params["owl_m"])
                                for layer, sc in by_layer.items()}
        return self._owl_ratios

    def _scores(self, site: Site, norms: dict[str, torch.Tensor] | None) -> torch.Tensor:
        w = site.weight()
        if self.method == "magnitude":
            return magnitude_scores(w)
        if self.method == "wanda":
            assert norms is not None
            return wanda_scores(w, norms[site.input_group])
        return random_scores(site.shape, self.seed, site.name).to(w.device)


    def _score_masks(self, levels: list[Level], targets: list[dict[str, float]]
                     ) -> list[dict[str, torch.Tensor]]:
        norms = self._dense_norms() if self.method == "wanda" else None
        out: list[dict[str, torch.Tensor]] = [{} for _ in levels]
        if not self.structure.unstructured:
            for s in self.selection:
                keep = nm_keep(self._scores(s, norms), self.structure.n, self.structure.m).cpu()
                for o in out:
                    o[s.name] = keep
            return out
        if self.allocation == "global":
            # One ranking over the concatenation of every selected matrix's scores.
            flat = torch.cat([self._scores(s, norms).reshape(-1).cpu() for s in self.selection])
            rank = ranks(flat[None, :], "matrix")[0] if len(levels) > 1 else None
            for o, lv in zip(out, levels, strict=True):
                keep = (keep_from_ranks(rank, lv.scope_sparsity, "matrix") if rank is not None
                        else keep_lowest(flat, lv.scope_sparsity, "matrix"))
                parts = split_flat(keep, [s.shape for s in self.selection])
                o.update({s.name: p for s, p in zip(self.selection, parts, strict=True)})
            return out
        gran = self.granularity
        for s in self.selection:
            score = self._scores(s, norms)
            if len(levels) == 1:  # one level: a selection, no full sort (same mask)
                out[0][s.name] = keep_lowest(score, targets[0][s.name], gran).cpu()
                continue
            rank = ranks(score, gran)  # one sort serves every level (nested masks)
            for o, t in zip(out, targets, strict=True):
                o[s.name] = keep_from_ranks(rank, t[s.name], gran).cpu()
        return out

    def _sparsegpt_group(self, stats: GroupStats, group: str, members: list[Site],
                         targets: list[dict[str, float]], masks: list[dict], weights: list[dict],
                         diag: list[dict]) -> None:
        factor = factor_hessian(stats.hessian(), self.params["percdamp"], name=group)
        if factor.percdamp != self.params["percdamp"] or factor.fallback:
            for d in diag:
                d.setdefault("hessian", {})[group] = {"percdamp": factor.percdamp,
                                                      "fallback": factor.fallback}
        for s in members:
            w = s.weight()
            for t, mk, wt in zip(targets, masks, weights, strict=True):
                new, keep = sparsegpt_prune(w, factor, t[s.name], self.structure,
                                            self.params["blocksize"])
                mk[s.name] = keep.cpu()
                # Held in CPU memory like the masks: levels and results kept for later cost
                # nothing on the accelerator (apply_masks copies one site at a time there).
                wt[s.name] = new.to(device="cpu", dtype=w.dtype)

    def _sparsegpt_dense(self, targets: list[dict[str, float]]):
        by_layer, grouped = self._groups("hessian")
        n = len(targets)
        masks: list[dict] = [{} for _ in range(n)]
        weights: list[dict] = [{} for _ in range(n)]
        diag: list[dict] = [{} for _ in range(n)]

        def on_block(_layer: int, stats: dict[str, GroupStats]) -> None:
            for g, st in stats.items():
                self._sparsegpt_group(st, g, grouped[g], targets, masks, weights, diag)

        self._walker().walk(by_layer, on_block)
        return masks, weights, diag

    def _sparsegpt_sequential(self, target: dict[str, float]):
        by_layer, grouped = self._groups("hessian")
        masks: dict = {}
        weights: dict = {}
        diag: dict = {}

        def on_block(_layer: int, stats: dict[str, GroupStats]) -> None:
            names = []
            for g, st in stats.items():
                self._sparsegpt_group(st, g, grouped[g], [target], [masks], [weights], [diag])
                names += [s.name for s in grouped[g]]
            apply_masks(self.model, {n: masks[n] for n in names}, {n: weights[n] for n in names})

        self._walker().walk(by_layer, on_block, sequential=True)
        return self._ordered(masks), self._ordered(weights), diag

    def _wanda_sequential(self, target: dict[str, float]) -> dict[str, torch.Tensor]:
        by_layer, grouped = self._groups("norms")
        masks: dict = {}

        def on_block(_layer: int, stats: dict[str, GroupStats]) -> None:
            block = {}
            for g, st in stats.items():
                norms = {g: st.norms()}
                for s in grouped[g]:
                    score = self._scores(s, norms)
                    if self.structure.unstructured:
                        keep = keep_lowest(score, target[s.name], "row")
                    else:
                        keep = nm_keep(score, self.structure.n, self.structure.m)
                    block[s.name] = keep.cpu()
            masks.update(block)
            apply_masks(self.model, block)

        self._walker().walk(by_layer, on_block, sequential=True)
        return self._ordered(masks)

    def _ordered(self, d: dict) -> dict:
        return {s.name: d[s.name] for s in self.selection}
