"""Allocations: how a requested sparsity is spread over the selected sites.

- ``uniform``: every selected matrix at the requested sparsity.
- ``global``: one ranking of the method's scores across the whole selection; the lowest
  ``floor(s * n_selected)`` are pruned wherever they are (scores are compared as they are:
  Wanda's ``|W| ||X||`` across matrices, magnitudes across matrices). Per-site sparsity
  follows from it. Not defined for SparseGPT (its saliencies change as it updates weights).
- ``owl``: outlier-weighted layerwise sparsity (Yin et al. 2023). For each block ``l`` with
  selected sites, ``D_l`` = share of the Wanda scores of its selected sites above
  ``owl_m`` x their mean; ``r_l = 2 lambda (D_l - min D) / (max D - min D)``; the block's
  sparsity is ``s - (r_l - mean r)``: a spread of width ``2 lambda`` with the most outlier-rich
  block least pruned, mean ``s`` (the mean is weighted by the selected parameters of each
  block, which is the reference's plain mean when blocks have equal size), clipped to
  [0, 1]. Defaults ``owl_m=5``, ``owl_lambda=0.08``. With one block or equal ``D_l`` it is
  uniform.
- ``matched``: the same NUMBER of parameters removed whatever the scope, so attention-only
  and FFW-only pruning can be compared fairly: give ``n_params`` (an int), or ``sparsity``
  as a fraction of ALL block-linear parameters of the model; the scope then gets the
  uniform sparsity ``n_params / scope_params``. Per-row / per-matrix flooring removes up to
  one parameter per row (per matrix) less than ``n_params``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lenskit.errors import UsageError
from lenskit.models.loading import model_info
from lenskit.models.masks import check_sparsity
from lenskit.models.sites import Selection, Site
from lenskit.names import ALLOCATIONS
from lenskit.pruning.structure import n_to_prune

__all__ = ["ALLOCATIONS", "ALLOCATION_PARAMS", "matched_sparsities", "outlier_ratio",
           "owl_layer_sparsities"]

#: The keyword parameters each allocation adds to its method's, with their defaults: OWL's
#: outlier threshold ``owl_m`` (:func:`outlier_ratio`'s ``m``) and spread ``owl_lambda``
#: (:func:`owl_layer_sparsities`' ``lam``).
ALLOCATION_PARAMS: dict[str, dict[str, Any]] = {
    "uniform": {},
    "global": {},
    "owl": {"owl_m": 5.0, "owl_lambda": 0.08},
    "matched": {},
}
assert set(ALLOCATION_PARAMS) == set(ALLOCATIONS)


def scope_key(scope: str | Selection | Iterable[str | Selection] | None) -> str | list[str]:
    """A JSON-able description of a scope (strings kept, selections described)."""
    if scope is None:
        return "all"
    if isinstance(scope, str):
        return scope
    if isinstance(scope, Selection):
        return scope.describe()
    return [scope_key(s) for s in scope]  # type: ignore[misc]


def matched_sparsities(
    model,
    scopes: Sequence[str | Selection] = ("attn", "mlp"),
    n_params: int | None = None,
    *,
    fraction: float | None = None,
) -> dict[str, float]:
    """For each scope, the uniform sparsity that removes ``n_params`` parameters.

    Give ``n_params`` (an int), or ``fraction`` of ALL block-linear parameters of the model.
    Returns ``{scope: n_params / scope_params}`` (keys: the scope strings, or
    ``Selection.describe()``). Raises ``ValueError`` naming ``n_params`` and the scope's size
    when a scope is too small.
    """
    info = model_info(model)
    n = resolve_n_params(info, n_params, fraction)
    out: dict[str, float] = {}
    for scope in scopes:
        size = info.select(scope).n_params
        key = scope_key(scope)
        out[key if isinstance(key, str) else ",".join(key)] = matched_sparsity(n, size, key)
    return out


def resolve_n_params(info, n_params: int | None, fraction: float | None) -> int:
    """The number of parameters to remove, from an int or a fraction of all block linears."""
    if (n_params is None) == (fraction is None):
        raise UsageError("give exactly one of n_params (a number of parameters) or a fraction "
                         "of all block-linear parameters")
    total = info.total_params
    if n_params is not None:
        if isinstance(n_params, bool) or not isinstance(n_params, int) or n_params < 0:
            raise UsageError(f"n_params must be a non-negative int, got {n_params!r}")
        if n_params > total:
            raise UsageError(f"n_params={n_params} exceeds all {total} block-linear parameters")
        return n_params
    return n_to_prune(check_sparsity(fraction, "fraction of all block-linear parameters"), total)


def matched_sparsity(n_params: int, scope_params: int, scope: object) -> float:
    if n_params > scope_params:
        raise UsageError(f"n_params={n_params} is larger than scope {scope!r}, which has "
                         f"{scope_params} parameters")
    return n_params / scope_params if scope_params else 0.0


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """Share of the entries of ``scores`` (concatenated) above ``m`` x their mean."""
    flat = torch.cat([s.reshape(-1).float() for s in scores])
    return float((flat > m * flat.mean()).sum()) / flat.numel()


def owl_layer_sparsities(ratios: dict[int, float], sizes: dict[int, int], sparsity: float,
                         lam: float) -> dict[int, float]:
    """OWL's per-block sparsity from outlier ratios ``D_l`` (see the module docstring)."""
    layers = sorted(ratios)
    d = torch.tensor([ratios[layer] for layer in layers], dtype=torch.float64)
    w = torch.tensor([sizes[layer] for layer in layers], dtype=torch.float64)
    spread = float(d.max() - d.min())
    if spread == 0.0:
        return dict.fromkeys(layers, float(sparsity))
    r = (d - d.min()) / spread * (2.0 * lam)
    mean = float((r * w).sum() / w.sum())
    s = (sparsity - (r - mean)).clamp(0.0, 1.0)
    return {layer: float(v) for layer, v in zip(layers, s, strict=True)}


def layer_sizes(sites: Iterable[Site]) -> dict[int, int]:
    out: dict[int, int] = {}
    for s in sites:
        out[s.layer] = out.get(s.layer, 0) + s.numel
    return out
