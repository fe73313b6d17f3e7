"""One-shot pruning of a loaded model: :func:`prune` and the sweep-friendly :class:`Pruner`.

Methods (``METHODS``), as their reference implementations define them (the published code of
SparseGPT, Frantar & Alistarh 2023, and Wanda, Sun et al. 2024):

- ``random``: seeded uniform scores (a control). Per matrix by default; ``per_row=True`` for
  per output row. A site's scores depend only on ``(seed, site name)``, not on the scope.
- ``magnitude``: ``|W|``, per matrix (the reference) or ``per_row=True``.
- ``wanda``: ``|W_ij| * ||X_j||_2`` (norm over all calibration tokens), per output row.
- ``sparsegpt``: second-order pruning with weight update (``blocksize=128``,
  ``percdamp=0.01``); see :mod:`lenskit.pruning.sparsegpt`.

Exactness: score-based methods prune exactly ``floor(s * in_features)`` weights per row
(per-row methods) or ``floor(s * numel)`` per matrix (per-matrix methods), lowest scores
first, ties to the lower index; SparseGPT prunes exactly ``floor(s * numel)`` per matrix,
chosen per block of 128 columns over all rows as the reference does. N:M (``"2:4"``, any
``"N:M"``) prunes exactly N of every M consecutive inputs of each row, for every method.

Calibration (``wanda``, ``sparsegpt`` and ``allocation="owl"``) runs the plain HF model
block by block (:mod:`lenskit.pruning.statistics`), so only one block's statistics exist
at a time. ``mode="sequential"`` (the references' behaviour, and :func:`prune`'s
default): block ``l`` is pruned before its outputs are computed for block ``l + 1``; a
sweep then needs one pass per level (one walk shares what every level sees on the dense
model: block 0's inputs and the first calibrated block's statistics; each level is
calibrated on the model with only its own pruning, bit for bit as :meth:`Pruner.prune` at
that level alone), and masks of different levels need not be nested.
``mode="dense"`` is the fast approximation: every block sees the unpruned model's
activations, so one pass serves any number of sparsity levels (:class:`Pruner`'s default,
for many-level sweeps; its ``repr`` and every result's ``config["mode"]`` /
``config["mode_note"]`` say which mode was used). The two agree at the first block and
drift apart with depth and sparsity. Methods without calibration ignore the mode. OWL's
outlier ratios always come from the dense model, as in the OWL code.

Statistics and scores are always taken on the model's ORIGINAL weights: if sites are
pruned when ``prune`` is called, they are put back for the computation and left as they were
afterwards (with ``apply=True`` the new result then replaces the sites it covers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lenskit.errors import UsageError
from lenskit.models.loading import model_info
from lenskit.models.masks import MaskSet, check_sparsity
from lenskit.models.sites import Selection
from lenskit.names import METHODS
from lenskit.pruning.allocation import (
    ALLOCATIONS,
    layer_sizes,
    matched_sparsity,
    owl_layer_sparsities,
    resolve_n_params,
    scope_key,
)
from lenskit.pruning.calibration import CalibrationData, default_calibration
from lenskit.pruning.maskers import MASKERS, DenseStatistics, MaskJob
from lenskit.pruning.options import (
    METHOD_PARAMS,
    MODES,
    OWL_PARAMS,
    Level,
    check_param,
    original_weights,
)
from lenskit.pruning.result import PruneResult
from lenskit.pruning.structure import parse_structure
from lenskit.version import __version__

__all__ = ["METHODS", "METHOD_PARAMS", "MODES", "Pruner", "check_param", "prune"]


class Pruner:
    """Prunes one model with one method, scope, structure and allocation, at any levels.

    Validates everything at construction (``ValueError`` naming the bad value and what is
    allowed). :meth:`prune` gives one level, :meth:`sweep` many levels at the cost of about
    one: score-based methods sort their scores once and derive nested masks for every
    level; SparseGPT factors each block's Hessian once (dense mode) and prunes every level
    from it. Feature norms of dense passes (and OWL's outlier ratios) are cached between
    calls: a Pruner assumes the model's original weights do not change during its life.

    Args:
        model: a bridge from :func:`lenskit.load_model`.
        method: one of ``METHODS``.
        scope: which sites (a scope string, a ``Selection`` or a list of them); ``"all"``.
        structure: ``"unstructured"`` or ``"N:M"`` (N pruned of every M inputs per row).
        allocation: one of ``ALLOCATIONS`` (see :mod:`lenskit.pruning.allocation`).
        calibration: token sequences; ``None`` -> :func:`default_calibration` (128 x 128,
            seeded) when the method or allocation needs calibration.
        mode: ``"dense"`` (the default here: one calibration pass on the unpruned model
            serves every level of :meth:`sweep`, the fast approximation) or
            ``"sequential"`` (the references: each level calibrated block by block on the
            already pruned blocks, one pass per level); see the module docstring. The
            ``repr`` and each result's ``config["mode"]`` and ``config["mode_note"]`` say
            which was used.
        seed: seeds ``random`` scores and the default calibration.
        batch_size: sequences per forward pass during calibration.
        **method_kwargs: ``per_row`` (random, magnitude), ``blocksize`` and ``percdamp``
            (sparsegpt), ``owl_m`` and ``owl_lambda`` (allocation ``"owl"``).
    """

    def __init__(
        self,
        model,
        method: str,
        *,
        scope: str | Selection | Sequence[str | Selection] = "all",
        structure: str = "unstructured",
        allocation: str = "uniform",
        calibration: CalibrationData | None = None,
        mode: str = "dense",
        seed: int = 0,
        batch_size: int = 16,
        **method_kwargs: Any,
    ) -> None:
        self.model = model
        self.info = info = model_info(model)
        if method not in METHODS:
            raise UsageError(f"unknown method {method!r}; allowed: {METHODS}")
        if allocation not in ALLOCATIONS:
            raise UsageError(f"unknown allocation {allocation!r}; allowed: {ALLOCATIONS}")
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}; allowed: {MODES}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UsageError(f"seed must be an int, got {seed!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UsageError(f"batch_size must be a positive int, got {batch_size!r}")
        self.method, self.allocation, self.mode, self.seed = method, allocation, mode, seed
        self.batch_size = batch_size
        self.structure = parse_structure(structure)
        self.selection = info.select(scope)
        self.scope = scope_key(scope)
        allowed = dict(METHOD_PARAMS[method])
        if allocation == "owl":
            allowed.update(OWL_PARAMS)
        bad = [k for k in method_kwargs if k not in allowed]
        if bad:
            extra = " (owl_m, owl_lambda need allocation='owl')" if bad[0] in OWL_PARAMS else ""
            raise UsageError(f"unknown parameter {bad[0]!r} for method {method!r} with "
                             f"allocation {allocation!r}; allowed: {sorted(allowed)}{extra}")
        self.params = {k: check_param(k, method_kwargs.get(k, v)) for k, v in allowed.items()}
        if not self.structure.unstructured:
            if allocation != "uniform":
                raise UsageError(f"structure {self.structure} needs allocation='uniform' (an "
                                 f"N:M pattern fixes every row's sparsity), got {allocation!r}")
            m = self.structure.m
            bad_sites = [s for s in self.selection if s.shape[1] % m]
            if bad_sites:
                s = bad_sites[0]
                raise UsageError(f"structure {self.structure} needs in_features divisible by "
                                 f"{m}; {s.name} has in_features={s.shape[1]}")
        if allocation == "global":
            if method == "sparsegpt":
                raise UsageError("allocation='global' is not defined for sparsegpt (its "
                                 "saliencies change as it updates weights); allowed for "
                                 "sparsegpt: 'uniform', 'owl', 'matched'")
            if mode == "sequential" and method == "wanda":
                raise UsageError("allocation='global' needs mode='dense' (one ranking across "
                                 "blocks needs every block's statistics at once)")
            if self.params.get("per_row"):
                raise UsageError("per_row=True conflicts with allocation='global' (one "
                                 "ranking across the whole selection)")
        if calibration is not None:
            if not isinstance(calibration, CalibrationData):
                raise UsageError("calibration must be a CalibrationData (see "
                                 "CalibrationData.from_tokens / from_text) or None, got "
                                 f"{type(calibration).__name__}")
            calibration.check(model)
        elif self.needs_calibration:  # built (and checked) now, so errors come before any work
            calibration = default_calibration(model, seed=seed)
            calibration.check(model)
        self._calibration = calibration
        # the dense model's norms and outlier ratios, cached for this Pruner's life
        self._stats = DenseStatistics(info, self.selection, calibration, batch_size)
        self._masker = MASKERS[method](
            MaskJob(model, self.selection, self.structure, allocation, mode, seed,
                    self.params), self._stats)

    def __repr__(self) -> str:
        # the default would be <... object at 0x...>; say what this pruner will do
        weights = sum(site.numel for site in self.selection)
        cal = self._calibration
        cal_text = (f"calibration {cal.n_samples}x{cal.seq_len}" if cal is not None
                    else "no calibration")
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return (f"Pruner({self.method!r} on {self.info.spec!r}, scope {self.scope!r} "
                f"({len(self.selection)} sites, {weights:,} weights), {self.structure}, "
                f"allocation {self.allocation!r}, mode {self.mode!r} ({self.mode_note}), "
                f"seed {self.seed}, "
                f"{cal_text}{params})")

    # Properties
    @property
    def mode_note(self) -> str:
        """What :attr:`mode` means for this pruner, in words (recorded with every result)."""
        if not self.needs_calibration:
            return "no calibration: the mode does not matter"
        if self.mode == "dense":
            return ("dense calibration: every block sees the unpruned model's activations, "
                    "one pass for all levels (fast approximation)")
        return ("sequential calibration: each block sees the already pruned blocks' "
                "outputs, one pass per level (as the reference implementations)")

    @property
    def needs_calibration(self) -> bool:
        return MASKERS[self.method].needs_calibration or self.allocation == "owl"

    @property
    def calibration(self) -> CalibrationData | None:
        """The calibration in use (the seeded default if none was given); ``None`` when the
        method and allocation need none and none was given."""
        return self._calibration

    @property
    def granularity(self) -> str:
        """Where the target sparsity holds: each output ``"row"`` or the whole ``"matrix"``."""
        return self._masker.granularity

    # Public API
    def prune(self, sparsity: float | None = None, *, n_params: int | None = None,
              apply: bool = False) -> PruneResult:
        """Prune at one level. ``sparsity`` is the fraction of the scope's weights to prune
        (for ``allocation="matched"``: of ALL block-linear weights; or give ``n_params``).
        For N:M it may be omitted (it is N/M). With ``apply``, the model is left pruned."""
        level = self._level(sparsity, n_params)
        result = self._run([level])[0]
        if apply:
            result.apply(self.model)
        return result

    def sweep(self, levels: Iterable[float] | None = None, *,
              n_params: Iterable[int] | None = None) -> dict[float, PruneResult]:
        """Results for several levels, keyed by the levels as given: sparsities (same meaning
        as ``prune``'s ``sparsity``) or, for ``allocation="matched"``, ``n_params=[...]``
        (numbers of parameters to remove). In dense mode (this class's default, the fast
        approximation) one calibration pass serves every level; in sequential mode (the
        references') each level gets its own pass. :attr:`mode_note` and each result's
        ``config["mode_note"]`` say which."""
        if (levels is None) == (n_params is None):
            raise UsageError("give the sparsity levels, or n_params=[...] for "
                             "allocation='matched'")
        todo = ([self._level(s, None) for s in dict.fromkeys(levels)] if levels is not None
                else [self._level(None, n) for n in dict.fromkeys(n_params or ())])
        if not todo:
            raise UsageError("sweep needs at least one sparsity level")
        return {lv.key: r for lv, r in zip(todo, self._run(todo), strict=True)}

    # Levels and targets
    def _level(self, sparsity: float | None, n_params: int | None) -> Level:
        if self.allocation == "matched":
            frac = None if sparsity is None else check_sparsity(sparsity)
            n = resolve_n_params(self.info, n_params, frac)
            s = matched_sparsity(n, self.selection.n_params, self.scope)
            return Level(n_params if n_params is not None else sparsity, frac, s, n)
        if n_params is not None:
            raise UsageError(f"n_params is only for allocation='matched' (got allocation "
                             f"{self.allocation!r}); give sparsity instead")
        if not self.structure.unstructured:
            implied = self.structure.sparsity
            if sparsity is not None and abs(check_sparsity(sparsity) - implied) > 1e-9:
                raise UsageError(f"structure {self.structure} prunes {implied:g} of every row; "
                                 f"sparsity={sparsity!r} contradicts it (omit sparsity)")
            return Level(implied if sparsity is None else sparsity, implied, implied)
        if sparsity is None:
            raise UsageError("sparsity is required for unstructured pruning (a number in "
                             "[0, 1])")
        s = check_sparsity(sparsity)
        return Level(sparsity, s, s)

    def _targets(self, level: Level) -> dict[str, float]:
        if self.allocation == "owl":
            ratios = self._stats.outlier_ratios(self.params["owl_m"])
            layer_s = owl_layer_sparsities(ratios, layer_sizes(self.selection),
                                           level.scope_sparsity, self.params["owl_lambda"])
            return {s.name: layer_s[s.layer] for s in self.selection}
        return {s.name: level.scope_sparsity for s in self.selection}

    # Runs
    def _run(self, levels: list[Level]) -> list[PruneResult]:
        with torch.no_grad(), original_weights(self.model):
            if self.allocation == "owl":
                self._stats.outlier_ratios(self.params["owl_m"])
            targets = [self._targets(lv) for lv in levels]
            masks, weights, diag = self._masker.run(levels, targets)
        if self.allocation == "global":
            targets = [{n: float((~m).sum()) / m.numel() for n, m in mk.items()} for mk in masks]
        return [self._result(lv, mk, w, t, d)
                for lv, mk, w, t, d in zip(levels, masks, weights, targets, diag, strict=True)]

    # Results
    def _config(self, level: Level) -> dict:
        cfg = {
            "method": self.method,
            "sparsity": level.sparsity,
            "scope": self.scope,
            "structure": str(self.structure),
            "allocation": self.allocation,
            "mode": self.mode,
            "mode_note": self.mode_note,
            "seed": self.seed,
            "method_kwargs": dict(self.params),
            "calibration": (self._calibration.to_json()
                            if self.needs_calibration and self._calibration else None),
            "batch_size": self.batch_size,
            "model": self.info.spec,
            "fingerprint": self.info.fingerprint,
            "lenskit": __version__,
        }
        if self.allocation == "matched":
            cfg["n_params"] = level.n_params
            cfg["scope_sparsity"] = level.scope_sparsity
        return cfg

    def _result(self, level: Level, masks: dict[str, torch.Tensor],
                weights: dict[str, torch.Tensor] | None, target: dict[str, float],
                diag: dict) -> PruneResult:
        cfg = self._config(level)
        if self.allocation == "owl":
            diag = dict(diag)
            diag["owl"] = {
                "outlier_ratio": {str(k): v for k, v in
                                  self._stats.outlier_ratios(self.params["owl_m"]).items()},
                "layer_sparsity": {str(s.layer): target[s.name] for s in self.selection},
            }
        meta = {k: cfg[k] for k in ("method", "sparsity", "scope", "structure", "allocation",
                                    "mode", "seed")}
        meta["params"] = cfg["method_kwargs"]
        meta["calibration"] = cfg["calibration"]["description"] if cfg["calibration"] else None
        if "n_params" in cfg:
            meta["n_params"] = cfg["n_params"]
        mask_set = MaskSet(masks, fingerprint=self.info.fingerprint, model=self.info.spec,
                           meta=meta)
        return PruneResult(mask_set, weights, dict(target), cfg, diag)


def prune(
    model,
    method: str,
    sparsity: float | None = None,
    *,
    scope: str | Selection | Sequence[str | Selection] = "all",
    structure: str = "unstructured",
    allocation: str = "uniform",
    calibration: CalibrationData | None = None,
    mode: str | None = None,
    seed: int = 0,
    apply: bool = True,
    n_params: int | None = None,
    batch_size: int = 16,
    **method_kwargs: Any,
) -> PruneResult:
    """Prune ``model`` once; see :class:`Pruner` for every argument.

    ``sparsity``: fraction of the scope's weights to prune (``allocation="matched"``: of ALL
    block-linear weights, or give ``n_params``; N:M: may be omitted). With ``apply`` (the
    default) the model is left pruned (``lenskit.restore(model)`` undoes it bitwise).
    Everything is validated before anything is modified.

    ``mode`` defaults to ``"sequential"``: calibration block by block on the already pruned
    blocks, as the SparseGPT and Wanda reference implementations (and ``lenskit sweep``)
    do, so ``prune(model, "sparsegpt", 0.5)`` is the reference SparseGPT. Pass
    ``mode="dense"`` for the fast approximation (every block calibrated on the unpruned
    model). Wanda with ``allocation="global"`` ranks every block's scores at once, which
    needs the dense statistics: there the default is ``"dense"``.

    Example::

        r = prune(model, "wanda", 0.5, scope="attn")
        r.report()                      # per site: target and achieved sparsity
        prune(model, "sparsegpt", structure="2:4", blocksize=128, percdamp=0.01)
        prune(model, "wanda", 0.2, scope="mlp", allocation="matched")  # 20% of all params
    """
    if mode is None:
        mode = "dense" if allocation == "global" and method == "wanda" else "sequential"
    pruner = Pruner(model, method, scope=scope, structure=structure, allocation=allocation,
                    calibration=calibration, mode=mode, seed=seed, batch_size=batch_size,
                    **method_kwargs)
    return pruner.prune(sparsity, n_params=n_params, apply=apply)
