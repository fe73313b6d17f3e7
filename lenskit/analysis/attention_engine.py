"""The engine of the attention analyses: dense and pruned forwards with pattern hooks.

:class:`PatternEngine` runs, per batch, one dense forward (each measured layer's pattern
kept as that batch's reference) and one forward per pruning configuration
(:class:`PruneConfig`, applied with :func:`lenskit.models.pruned` and restored bitwise),
reducing each pattern inside its hook into :class:`~lenskit.analysis.attention_stats.PatternStats`;
the forward stops after the last measured layer
(:class:`~lenskit.models.early_exit.StopForward`). What one run accumulated is an
:class:`AttentionRun`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lenskit.analysis.attention_inputs import PromptRows
from lenskit.analysis.attention_stats import BatchLayout, PatternStats
from lenskit.errors import UsageError
from lenskit.models import model_info, pruned
from lenskit.models.early_exit import StopForward, early_exit
from lenskit.models.masks import MaskSet, validate_masks
from lenskit.pruning import PruneResult

__all__ = ["AttentionRun", "PatternEngine", "PruneConfig", "check_batch_size",
           "prune_config", "stat_rows"]


# ---------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------

@dataclass
class PruneConfig:
    """One pruning configuration to compare with the dense model, with its metadata."""

    label: str
    masks: Mapping[str, torch.Tensor]
    weights: Mapping[str, torch.Tensor] | None
    meta: dict[str, Any] = field(default_factory=dict)


def prune_config(info, label: str, masks, weights=None) -> PruneConfig:
    """``masks`` (a PruneResult, a MaskSet or a dict site -> bool mask ``[out, in]``) as a
    :class:`PruneConfig` labelled ``label``, checked against the model before any forward."""
    if isinstance(masks, PruneResult):
        if weights is not None:
            raise UsageError(f"{label}: weights come with the PruneResult; pass weights only "
                             "with a MaskSet")
        cfg = masks.config
        meta = {"method": cfg.get("method"), "structure": cfg.get("structure"),
                "allocation": cfg.get("allocation"), "scope": cfg.get("scope"),
                "sparsity": cfg.get("sparsity"),
                "achieved_sparsity": masks.achieved_sparsity}
        masks, weights = masks.masks, masks.weights
    elif isinstance(masks, Mapping):
        src = getattr(masks, "meta", {}) or {}
        meta = {k: src.get(k) for k in ("method", "structure", "allocation", "scope",
                                        "sparsity")}
        meta["achieved_sparsity"] = (masks.sparsity() if isinstance(masks, MaskSet) else
                                     _mask_sparsity(masks))
    else:
        raise UsageError(f"{label}: expected a PruneResult, a MaskSet or a dict of site -> "
                         f"bool mask; got {type(masks).__name__}")
    if not len(masks):
        raise UsageError(f"{label}: the mask set is empty (no site to prune)")
    validate_masks(info, masks, weights)  # the checks `pruned` does, before anything runs
    meta["scope"] = _scope_text(meta.get("scope"))
    return PruneConfig(label, masks, weights, meta)


def _mask_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    total = sum(int(m.numel()) for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return 1.0 - kept / total if total else 0.0


def _scope_text(scope) -> str | None:
    if scope is None or isinstance(scope, str):
        return scope
    if isinstance(scope, (list, tuple)):
        return ",".join(str(s) for s in scope)
    return str(scope)


# ---------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------

@dataclass
class AttentionRun:
    """What one run of the engine accumulated (kept for inspection and tests).

    Attributes:
        dense: the dense model's statistics (None when ``reference=None`` and masks given).
        pruned: configuration label -> statistics.
        peak_reference_bytes: the most bytes of reference patterns held at once.
        batch_pattern_bytes: the size of the largest batch's float32 patterns and per-row
            entropies over all measured layers (``layers x batch x heads x T x (T + 1) x 4``),
            the bound ``peak_reference_bytes`` never exceeds.
        layers: the layers measured.
    """

    dense: PatternStats | None
    pruned: dict[str, PatternStats]
    peak_reference_bytes: int = 0
    batch_pattern_bytes: int = 0
    layers: tuple[int, ...] = ()


def _check_pattern(pattern: torch.Tensor, layout: BatchLayout, layer: int) -> None:
    """The visible keys of query ``q`` are ``0..q``: no mass above the diagonal, and each
    real query row sums to 1 (checked on a run's first batch, from the pattern itself)."""
    p = pattern.float()
    above = float(p.triu(1).abs().amax()) if p.shape[-1] > 1 else 0.0
    if above > 0:
        raise UsageError(f"layer {layer}: the attention pattern puts mass {above:.3g} on keys "
                         "after the query; lenskit's attention metrics need causal attention "
                         "over right-padded rows")
    sums = p.sum(-1)  # [B, H, T]
    t = torch.arange(p.shape[-1])
    real = (t[None, :] < layout.lengths[:, None]).to(sums.device)
    err = float(((sums - 1).abs() * real[:, None, :]).amax())
    if err > 1e-3:
        raise UsageError(f"layer {layer}: attention rows of real queries sum to 1 +- {err:.3g};"
                         " hook_pattern is not a softmax over keys")


class PatternEngine:
    """Runs the dense and pruned forwards of a model over batches, reducing every measured
    layer's pattern inside its hook (see :mod:`lenskit.analysis.attention`)."""

    def __init__(self, model, layers: Sequence[int] | None) -> None:
        self.model = model
        self.info = model_info(model)
        n_layers = self.info.n_layers
        if layers is None:
            layers = range(n_layers)
        elif isinstance(layers, (int, np.integer)):
            layers = [int(layers)]
        layers = sorted({int(x) for x in layers})
        bad = [x for x in layers if not 0 <= x < n_layers]
        if bad or not layers:
            raise UsageError(f"layers must be a non-empty list of layer indices in 0.."
                             f"{n_layers - 1}; got {bad or 'none'}")
        self.layers = tuple(layers)
        self.n_heads = int(model.cfg.n_heads)
        self.n_layers = n_layers
        known = set(model.hook_dict)
        for layer in self.layers:
            if f"blocks.{layer}.attn.hook_pattern" not in known:
                raise UsageError(f"the model has no hook blocks.{layer}.attn.hook_pattern")
        self.n_ctx = getattr(model.cfg, "n_ctx", None)
        self.checked = False  # the causal structure is checked on the first batch only
        self.vocab_size = int(model.cfg.d_vocab)

    def check_rows(self, src: PromptRows) -> None:
        longest = max(len(r) for r in src.rows)
        if self.n_ctx and longest > self.n_ctx:
            raise UsageError(f"{src.name}: a prompt of {longest} tokens is longer than the "
                             f"model's context of {self.n_ctx}")

    def _forward(self, ids: torch.Tensor, hooks: list) -> None:
        # the last needed layer's hook raises StopForward: the rest of the forward is not needed
        with early_exit(), torch.inference_mode(), self.model.hooks(fwd_hooks=hooks):
            self.model(ids, return_type=None)

    def run(self, batches, configs: Sequence[PruneConfig], reference: bool,
            run: AttentionRun | None = None) -> AttentionRun:
        if configs and self.info.originals:
            raise UsageError(
                f"the model already has {len(self.info.originals)} pruned site(s) (e.g. "
                f"{next(iter(self.info.originals))}); call lenskit.models.restore(model) first "
                "so that the comparison is against the dense model")
        want_dense = reference or not configs
        if run is None:
            run = AttentionRun(
                dense=PatternStats(self.n_layers, self.n_heads) if want_dense else None,
                pruned={c.label: PatternStats(self.n_layers, self.n_heads) for c in configs},
                layers=self.layers)
        last = self.layers[-1]
        device = next(self.model.parameters()).device
        for ids, layout in batches:
            ids = ids.to(device)
            refs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            held = [0]
            run.batch_pattern_bytes = max(
                run.batch_pattern_bytes,
                len(self.layers) * ids.shape[0] * self.n_heads * ids.shape[1]
                * (ids.shape[1] + 1) * 4)

            def make_hook(layer: int, stats: PatternStats, store: bool, compare: bool,
                          check: bool, layout=layout, refs=refs, held=held):
                def hook(pattern, hook):
                    if check:
                        _check_pattern(pattern, layout, layer)
                    ref = refs.get(layer, (None, None)) if compare else (None, None)
                    negent = stats.add(layer, pattern, layout, *ref)
                    if store:
                        refs[layer] = (pattern, negent)
                        held[0] += pattern.numel() * pattern.element_size() \
                            + negent.numel() * negent.element_size()
                        run.peak_reference_bytes = max(run.peak_reference_bytes, held[0])
                    if layer == last:
                        raise StopForward
                    return None
                return hook

            if want_dense:
                store = bool(configs) and reference
                self._forward(ids, [(f"blocks.{lay}.attn.hook_pattern",
                                     make_hook(lay, run.dense, store, False, not self.checked))
                                    for lay in self.layers])
                self.checked = True
            for cfg in configs:
                with pruned(self.model, cfg.masks, cfg.weights):
                    self._forward(ids, [(f"blocks.{lay}.attn.hook_pattern",
                                         make_hook(lay, run.pruned[cfg.label], False,
                                                   reference, not self.checked))
                                        for lay in self.layers])
                self.checked = True
            refs.clear()  # this batch's references go; the next batch starts from nothing
        return run


def stat_rows(stats: PatternStats, layers, **extra) -> list[dict]:
    """Tidy records of ``stats`` for ``layers``, each with the ``extra`` columns added."""
    return [{**r, **extra} for r in stats.records(layers)]


def check_batch_size(batch_size) -> int:
    """``batch_size`` as an int; ``ValueError`` unless it is an int >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise UsageError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)
