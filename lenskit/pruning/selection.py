"""Keep-masks from importance scores, by exact counts (never by a threshold).

Every selection here prunes exactly ``floor(s * n)`` entries of its comparison group
(a row, a matrix, or the whole selection), the lowest scores first; ties go to the lower
index first (stable sort). Sweeps sort once: :func:`ranks` gives each entry its position in
the ascending order of its group, and the keep-mask of any level is ``rank >= k(level)``,
so masks of higher sparsity prune supersets of those of lower sparsity (nested).

Shapes: scores and masks are ``[out_features, in_features]``; masks are ``bool`` with
``True`` = keep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lenskit.errors import UsageError
from lenskit.pruning.structure import n_to_prune

__all__ = [
    "GRANULARITIES",
    "keep_from_ranks",
    "keep_lowest",
    "lowest_k",
    "nm_keep",
    "ranks",
    "split_flat",
]

GRANULARITIES = ("row", "matrix")
_BRACKET_SAMPLE = 8192  # lowest_k: sample size used to bracket the k-th value
_BRACKET_MIN = 8 * _BRACKET_SAMPLE  # ... for inputs at least this large


def ranks(scores: torch.Tensor, granularity: str) -> torch.Tensor:
    """Position of each entry in the ascending (stable) order of its row or of the matrix.

    Returns an int64 tensor shaped like ``scores``.
    """
    if granularity == "row":
        order = torch.argsort(scores, dim=1, stable=True)
        out = torch.empty_like(order)
        pos = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
        return out.scatter_(1, order, pos)
    if granularity == "matrix":
        flat = scores.reshape(-1)
        order = torch.argsort(flat, stable=True)
        out = torch.empty_like(order)
        out[order] = torch.arange(flat.numel(), device=scores.device)
        return out.view(scores.shape)
    raise UsageError(f"unknown granularity {granularity!r}; allowed: {GRANULARITIES}")


def keep_from_ranks(rank: torch.Tensor, sparsity: float, granularity: str) -> torch.Tensor:
    """Keep-mask pruning exactly ``floor(sparsity * n)`` lowest-ranked entries per group
    (``n`` = ``in_features`` per row, or ``numel`` per matrix)."""
    n = rank.shape[1] if granularity == "row" else rank.numel()
    return rank >= n_to_prune(sparsity, n)


def keep_lowest(scores: torch.Tensor, sparsity: float, granularity: str) -> torch.Tensor:
    """The keep-mask of :func:`keep_from_ranks` for ONE level, without a full sort: a
    ``kthvalue`` per row (or :func:`lowest_k` per matrix), ties to the lower index."""
    if granularity == "matrix":
        return ~lowest_k(scores.reshape(-1), n_to_prune(sparsity, scores.numel())).view(
            scores.shape)
    if granularity != "row":
        raise UsageError(f"unknown granularity {granularity!r}; allowed: {GRANULARITIES}")
    cols = scores.shape[1]
    k = n_to_prune(sparsity, cols)
    if k == 0 or k == cols:
        return torch.full(scores.shape, k == 0, dtype=torch.bool, device=scores.device)
    kth = torch.kthvalue(scores, k, dim=1, keepdim=True).values
    pruned = scores < kth
    ties = scores == kth
    need = k - pruned.sum(1, keepdim=True)
    return ~(pruned | (ties & (ties.cumsum(1) <= need)))


def lowest_k(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` lowest entries of a 1-D tensor, ties to the lower index.

    The same selection as the first ``k`` of a stable ascending sort, without sorting
    everything: a strided sample brackets the k-th value, entries below the bracket are
    taken, and only the few inside it are sorted (``kthvalue`` if the bracket misses).
    """
    n = flat.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=flat.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=flat.device)
    if n >= _BRACKET_MIN:
        sample = flat[:: n // _BRACKET_SAMPLE].sort().values
        size = sample.numel()
        q = k * size // n
        # 5 standard deviations of the sample quantile's position, plus slack.
        margin = int(5 * math.sqrt(size * (k / n) * (1 - k / n))) + 8
        lo = sample[max(0, q - margin)]
        hi = sample[min(size - 1, q + margin)]
        mask = flat < lo
        below = int(mask.sum())
        inside = torch.nonzero((flat >= lo) & (flat <= hi)).squeeze(1)
        if below <= k <= below + inside.numel():
            order = torch.argsort(flat[inside], stable=True)  # inside is in index order
            mask[inside[order[:k - below]]] = True
            return mask
    v = torch.kthvalue(flat, k).values
    mask = flat < v
    need = k - int(mask.sum())
    if need > 0:
        mask[torch.nonzero(flat == v).squeeze(1)[:need]] = True
    return mask


def nm_keep(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask pruning the ``n`` lowest scores of every ``m`` consecutive inputs of each row.

    ``in_features`` must be divisible by ``m`` (checked by the caller with a clear message).
    """
    rows, cols = scores.shape
    groups = scores.reshape(rows, cols // m, m)
    order = torch.argsort(groups, dim=-1, stable=True)[..., :n]
    keep = torch.ones_like(groups, dtype=torch.bool)
    keep.scatter_(-1, order, False)
    return keep.view(rows, cols)


def split_flat(flat: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Cut a flat tensor (the concatenation of flattened matrices) back into the matrices."""
    sizes = [a * b for a, b in shapes]
    return [p.view(s) for p, s in zip(torch.split(flat, sizes), shapes, strict=True)]
