"""SparseGPT (Frantar & Alistarh 2023): one-shot pruning with an OBS weight update.

The reference algorithm, for a weight ``W`` ``[rows, cols]`` and ``H = 2/N sum X^T X``
``[cols, cols]`` (``N`` calibration sequences, float32):

1. dead inputs (``H_jj == 0``) get ``H_jj = 1``; ``H += percdamp * mean(diag H) * I``;
2. ``U`` = upper Cholesky factor of ``H^-1``;
3. columns are processed in blocks of ``blocksize`` (128); an unstructured mask is chosen once
   per block on ``W^2 / diag(U)^2`` over the whole ``rows x block``; N:M masks are chosen
   per row every M columns on the already-updated weights;
4. column by column: ``err = (w - q) / U_ii`` is subtracted along ``U[i, i:]`` (``q`` is the
   column with its pruned entries zeroed); after a block, the later columns get the block's
   errors in one matrix product (lazy update).

What lenskit changes (the reference's defects):

- counts are exact: a block prunes exactly its share of ``floor(s * rows * cols)``, the shares
  being ``floor(s*rows*c_end) - floor(s*rows*c_start)`` so that the matrix as a whole prunes
  exactly ``floor(s * numel)`` (the reference thresholds with ``<=`` and prunes one extra
  weight per block, and more on ties). The selection granularity is the reference's: the
  whole ``rows x block`` slab, so rows end with different counts;
- sparsity 0 returns ``W`` unchanged (the reference prunes one weight per block and zeroes
  dead columns); sparsity 1 returns zeros (the reference indexes past the end);
- dead inputs are pruned first (their weights cost nothing on the calibration data, the
  reference zeroes them), but a dead weight that is kept keeps its value;
- when ``H + damp`` is not positive definite, damping is retried at 10x, 100x ... the
  requested fraction (at least 0.001; :data:`DAMP_RETRIES` more tries); if all fail, the
  diagonal of ``H`` is used (scores ``w^2 (H_jj + damp)``, i.e. Wanda-like, and no update).
  Both warn and are reported in ``PruneResult.diagnostics["hessian"]``;
- N:M groups are aligned to absolute column indices (the block size is rounded down to a
  multiple of M).

How lenskit computes it (same results up to float rounding; checked against
:func:`lenskit.pruning.reference.reference_sparsegpt` in the tests):

- ``U`` from one Cholesky of the order-reversed ``H`` and one triangular inverse done with
  matrix products (about half the reference's flops: Cholesky, inverse, Cholesky);
- the sequential column loop does two kernel calls per column (the pruned amounts of the
  column and a rank-1 update of the rest of its 32-column sub-block) on a transposed copy,
  so that every column is contiguous; sub-blocks, blocks and the later columns get their
  updates as matrix products; ``Q`` and ``Err`` are never built column by column;
- the unstructured selection per block is a linear-time k-selection, N:M selection counts
  ranks by comparisons among the M candidates.

All arithmetic is float32, like the reference.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import torch

from lenskit.errors import UsageError
from lenskit.pruning.selection import lowest_k
from lenskit.pruning.structure import Structure, n_to_prune

__all__ = ["DAMP_RETRIES", "HessianFactor", "block_counts", "factor_hessian", "sparsegpt_prune"]

SUBBLOCK = 32  # columns per sub-block of the sequential loop
DAMP_RETRIES = 6  # extra tries at 10x, 100x, ... the requested damping before the fallback


@dataclass(frozen=True)
class HessianFactor:
    """What SparseGPT needs from a group's Hessian.

    Attributes:
        u: upper Cholesky factor of ``(H + damp I)^-1``, ``[cols, cols]`` float32 (diagonal
            when ``fallback`` is set).
        dead: ``[cols]`` bool, inputs that were zero on every calibration token.
        percdamp: the damping fraction that succeeded (the requested one unless retried).
        fallback: ``None``, or ``"diagonal"`` when no damping made ``H`` positive definite.
    """

    u: torch.Tensor
    dead: torch.Tensor
    percdamp: float
    fallback: str | None = None


def _lower_inverse_into(low: torch.Tensor, out: torch.Tensor) -> None:
    """Write the inverse of the lower-triangular ``low`` into ``out`` (zeros above the
    diagonal), by recursive 2x2 blocking: the work is in matrix products, which run near the
    machine's matmul rate (a triangular solve against the identity does not)."""
    n = low.shape[0]
    if n <= 256:
        eye = torch.eye(n, dtype=low.dtype, device=low.device)
        out.copy_(torch.linalg.solve_triangular(low, eye, upper=False))
        return
    h = n // 2
    _lower_inverse_into(low[:h, :h], out[:h, :h])
    _lower_inverse_into(low[h:, h:], out[h:, h:])
    # [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]]
    out[h:, :h] = _lower_mm(out[h:, h:], _mm_lower(low[h:, :h], out[:h, :h])).neg_()


def _lower_mm(tri: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``tri @ m`` for a lower-triangular ``tri``, skipping its zero upper half (recursively:
    about half the flops of a dense product)."""
    n = tri.shape[0]
    if n <= 256:
        return torch.mm(tri, m)
    h = n // 2
    out = torch.empty(n, m.shape[1], dtype=m.dtype, device=m.device)
    out[:h] = _lower_mm(tri[:h, :h], m[:h])
    out[h:] = _lower_mm(tri[h:, h:], m[h:]).addmm_(tri[h:, :h], m[:h])
    return out


def _mm_lower(m: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """``m @ tri`` for a lower-triangular ``tri`` (see :func:`_lower_mm`)."""
    n = tri.shape[0]
    if n <= 256:
        return torch.mm(m, tri)
    h = n // 2
    out = torch.empty(m.shape[0], n, dtype=m.dtype, device=m.device)
    out[:, :h] = _mm_lower(m[:, :h], tri[:h, :h]).addmm_(m[:, h:], tri[h:, :h])
    out[:, h:] = _mm_lower(m[:, h:], tri[h:, h:])
    return out


def _upper_inverse_factor(h_flipped: torch.Tensor) -> torch.Tensor | None:
    """The upper Cholesky factor ``U`` of ``h^-1`` (``U^T U = h^-1``) from ``J h J``
    (``h`` with its order reversed), or ``None`` if ``h`` is not positive definite.

    ``U = J chol(J h J)^-1 J``: one Cholesky and one triangular inverse, about half the
    flops of the reference's Cholesky, inverse, Cholesky (the factor is unique: same ``U``).
    """
    low, info = torch.linalg.cholesky_ex(h_flipped)
    if int(info) != 0:
        return None
    inv = torch.zeros_like(low)
    _lower_inverse_into(low, inv)
    if not bool(torch.isfinite(inv.sum())):
        return None
    return inv.flip(0, 1)


def factor_hessian(hessian: torch.Tensor, percdamp: float = 0.01, *,
                   name: str = "H") -> HessianFactor:
    """Dampen ``hessian`` ``[cols, cols]`` and factor its inverse (steps 1-2 above).

    Raises ``ValueError`` if the Hessian has non-finite entries (bad activations); warns
    when more damping or the diagonal fallback was needed (``name`` says where).
    """
    if not bool(torch.isfinite(hessian.sum())):
        raise UsageError(f"the calibration Hessian of {name} has non-finite entries: the "
                         "activations overflowed (check the model's dtype and the calibration)")
    dead = torch.diagonal(hessian) == 0
    # Work on the order-reversed copy that the factorisation needs (see above).
    hf = hessian.to(torch.float32).flip(0, 1)
    diag = torch.diagonal(hf)  # reversed diagonal of H (a view: edits change hf)
    diag[dead.flip(0)] = 1.0
    mean = float(diag.mean())
    tries = [percdamp] + [max(percdamp, 1e-3) * 10.0**k for k in range(1, DAMP_RETRIES + 1)]
    added = 0.0
    for frac in tries:
        diag.add_(frac * mean - added)
        added = frac * mean
        u = _upper_inverse_factor(hf)
        if u is not None:
            if frac != percdamp:
                warnings.warn(f"{name}: H + {percdamp} * mean(diag H) is not positive definite; "
                              f"used damping {frac:g}", RuntimeWarning, stacklevel=2)
            return HessianFactor(u, dead, frac)
    d = (diag.flip(0) - added).clamp_min(0) + added
    warnings.warn(f"{name}: H is not positive definite even with damping {tries[-1]:g}; using "
                  "its diagonal (no weight update)", RuntimeWarning, stacklevel=2)
    return HessianFactor(torch.diag(d.rsqrt()), dead, tries[-1], "diagonal")


def block_counts(sparsity: float, rows: int, starts: list[int], cols: int) -> list[int]:
    """Pruned count per column block, summing to exactly ``floor(sparsity * rows * cols)``."""
    edges = [*starts, cols]
    return [n_to_prune(sparsity, rows * b) - n_to_prune(sparsity, rows * a)
            for a, b in itertools.pairwise(edges)]


def _lowest_n_per_column(g: torch.Tensor, n: int) -> torch.Tensor:
    """Bool ``[m, rows]``: the ``n`` lowest of each column of ``g`` (ties to the lower index).

    For small ``m`` the stable rank is counted by comparisons (``m^2`` vectorised ops), much
    faster than sorting along a strided dimension once per group of columns.
    """
    m = g.shape[0]
    if m > 16:
        out = torch.zeros_like(g, dtype=torch.bool)
        return out.scatter_(0, torch.argsort(g, dim=0, stable=True)[:n], True)
    earlier = torch.ones(m, m, dtype=torch.bool, device=g.device).tril(-1)[:, :, None]
    gi, gj = g[:, None, :], g[None, :, :]
    rank = ((gj < gi) | ((gj == gi) & earlier)).sum(1)
    return rank < n


def sparsegpt_prune(
    weight: torch.Tensor,
    factor: HessianFactor,
    sparsity: float,
    structure: Structure,
    blocksize: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prune ``weight`` ``[rows, cols]`` with SparseGPT; returns ``(new_weight, keep)``.

    ``new_weight`` is float32 ``[rows, cols]`` with pruned entries exactly ``+0.0``; ``keep``
    is the bool mask (``True`` = kept). ``sparsity`` is ignored for N:M structures.
    Unstructured: exactly ``floor(sparsity * rows * cols)`` weights are pruned.
    """
    rows, cols = weight.shape
    w = weight.detach().to(torch.float32)
    n = m = 0
    if structure.unstructured:
        total = n_to_prune(sparsity, rows * cols)
        if total == 0:
            return w.clone(), torch.ones(rows, cols, dtype=torch.bool, device=w.device)
        if total == rows * cols:
            return torch.zeros_like(w), torch.zeros(rows, cols, dtype=torch.bool, device=w.device)
    else:
        n, m = structure.n, structure.m
        if n == m:
            return torch.zeros_like(w), torch.zeros(rows, cols, dtype=torch.bool, device=w.device)
        blocksize = max(m, blocksize - blocksize % m)
    # Sub-blocks inside a block: rank-1 updates stay inside the sub-block (cache-resident),
    # the rest of the block gets each sub-block's errors in one matrix product.
    sub = max(m, SUBBLOCK - SUBBLOCK % m) if m else SUBBLOCK
    u = factor.u.to(device=w.device, dtype=torch.float32)
    d = torch.diagonal(u).clone()
    # Row-normalised factor: column i changes column j > i by -(w_i - q_i) * U_ij / U_ii.
    ut = u / d[:, None]
    inv_d2 = d.pow(-2)
    dead = factor.dead.to(w.device)
    any_dead = bool(dead.any())
    wt = w.t().contiguous()  # [cols, rows]: column i of W is the contiguous row wt[i]
    prune_t = torch.zeros(cols, rows, dtype=torch.bool, device=w.device)
    starts = list(range(0, cols, blocksize))
    counts = block_counts(sparsity, rows, starts, cols) if structure.unstructured else None
    for bi, i1 in enumerate(starts):
        i2 = min(i1 + blocksize, cols)
        width = i2 - i1
        blk = wt[i1:i2]  # a view: updated in place
        p = prune_t[i1:i2]
        if counts is not None and counts[bi]:
            # The reference's selection: once per block, over all rows x block columns.
            score = blk.square() * inv_d2[i1:i2, None]
            if any_dead:  # dead inputs first: free on the calibration data
                score[dead[i1:i2]] = 0.0
            p.view(-1).copy_(lowest_k(score.reshape(-1), counts[bi]))
        pf = torch.zeros_like(blk)  # pruned amounts (w - q); row i = column i1 + i
        uk = ut[i1:i2, i1:i2]
        # Row views made once per block: the loop below is two kernel calls per column.
        b_rows, p_rows, f_rows, u_rows = blk.unbind(0), p.unbind(0), pf.unbind(0), uk.unbind(0)
        for j1 in range(0, width, sub):
            j2 = min(j1 + sub, width)
            for i in range(j1, j2):
                if m and i % m == 0:
                    g = blk[i:i + m].square().mul_(inv_d2[i1 + i:i1 + i + m, None])
                    if any_dead:
                        g[dead[i1 + i:i1 + i + m]] = 0.0
                    p[i:i + m] = _lowest_n_per_column(g, n)
                torch.mul(b_rows[i], p_rows[i], out=f_rows[i])
                if i + 1 < j2:
                    blk[i + 1:j2].addr_(u_rows[i][i + 1:j2], f_rows[i], alpha=-1.0)
            if j2 < width:
                blk[j2:].addmm_(uk[j1:j2, j2:].t(), pf[j1:j2], alpha=-1.0)
        blk.sub_(pf)  # q = w - (w - q): pruned entries become exactly +0.0, kept ones stay
        if i2 < cols:
            wt[i2:].addmm_(ut[i1:i2, i2:].t(), pf, alpha=-1.0)
    return wt.t(), ~prune_t.t()  # transposed views of [cols, rows] buffers
