"""The reference implementations' loop structure, re-implemented as an oracle and a baseline.

Written for lenskit from the algorithms' descriptions (SparseGPT: Frantar & Alistarh 2023,
Algorithm 1; Wanda: Sun et al. 2024), in the shape of the published SparseGPT and Wanda
code: statistics accumulated one calibration sequence at a time (the Hessian rescaled by
``n / (n + 1)`` before each addition), SparseGPT's per-column Python loop with its
bookkeeping (``Q1``, ``Err1``, ``Losses1``), a ``<=`` threshold per block, magnitude's
``<=`` threshold per matrix and N:M masks chosen in a loop over column groups.

It is not used by :func:`lenskit.pruning.prune`. Tests check lenskit's vectorised SparseGPT
against :func:`reference_sparsegpt` with ``exact=True`` (the same counts), and
``benchmarks/pruning_bench.py`` times both and compares their reconstruction errors.
Shapes: ``W`` is ``[rows, cols]`` (out, in); inputs are ``[n_seq, seq_len, cols]``.
"""

from __future__ import annotations

import math

import torch

from lenskit.pruning.sparsegpt import block_counts

__all__ = [
    "reference_hessian",
    "reference_magnitude",
    "reference_scaler_row",
    "reference_sparsegpt",
    "reference_wanda",
]


def reference_hessian(inputs: torch.Tensor) -> torch.Tensor:
    """``H = 2/N sum_seq X_seq^T X_seq``, accumulated one sequence at a time."""
    cols = inputs.shape[-1]
    h = torch.zeros(cols, cols, device=inputs.device)
    for n, seq in enumerate(inputs, start=1):
        inp = seq.reshape(-1, cols).t()  # [cols, tokens]
        h *= (n - 1) / n
        inp = math.sqrt(2 / n) * inp.float()
        h += inp.matmul(inp.t())
    return h


def reference_scaler_row(inputs: torch.Tensor) -> torch.Tensor:
    """Wanda's ``scaler_row``: per input feature, sum of squares over tokens / N sequences."""
    cols = inputs.shape[-1]
    scaler = torch.zeros(cols, device=inputs.device)
    for n, seq in enumerate(inputs, start=1):
        inp = seq.reshape(-1, cols).t().float()
        scaler *= (n - 1) / n
        scaler += torch.norm(inp, p=2, dim=1) ** 2 / n
    return scaler


def _nm_mask_loop(metric: torch.Tensor, prunen: int, prunem: int) -> torch.Tensor:
    """The references' N:M selection: a loop over column groups, ``True`` = pruned."""
    mask = torch.zeros_like(metric, dtype=torch.bool)
    for ii in range(metric.shape[1]):
        if ii % prunem == 0:
            tmp = metric[:, ii:ii + prunem].float()
            mask.scatter_(1, ii + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
    return mask


def reference_wanda(weight: torch.Tensor, scaler_row: torch.Tensor, sparsity: float,
                    prunen: int = 0, prunem: int = 0) -> torch.Tensor:
    """Wanda's pruned weight: per output row (stable sort) or N:M on ``|W| sqrt(scaler_row)``."""
    w = weight.clone()
    metric = w.abs() * torch.sqrt(scaler_row.reshape(1, -1))
    if prunen:
        mask = _nm_mask_loop(metric, prunen, prunem)
    else:
        mask = torch.zeros_like(metric, dtype=torch.bool)
        order = torch.sort(metric, dim=-1, stable=True)[1]
        mask.scatter_(1, order[:, :int(metric.shape[1] * sparsity)], True)
    w[mask] = 0
    return w


def reference_magnitude(weight: torch.Tensor, sparsity: float, prunen: int = 0,
                        prunem: int = 0) -> torch.Tensor:
    """Magnitude pruning: ``|W| <= k-th smallest`` per matrix, or N:M per row."""
    w = weight.clone()
    metric = w.abs()
    if prunen:
        mask = _nm_mask_loop(metric, prunen, prunem)
    else:
        thresh = torch.sort(metric.flatten())[0][int(w.numel() * sparsity)]
        mask = metric <= thresh
    w[mask] = 0
    return w


def reference_sparsegpt(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    prunen: int = 0,
    prunem: int = 0,
    blocksize: int = 128,
    percdamp: float = 0.01,
    exact: bool = False,
) -> torch.Tensor:
    """SparseGPT with the reference's loop structure; returns the pruned, updated weight.

    ``exact=False`` reproduces the reference's selection (``<=`` on the block threshold: one
    weight too many per block, dead columns zeroed); ``exact=True`` prunes lenskit's exact
    per-block counts (stable order), to check lenskit's vectorised version against this loop.
    """
    w = weight.clone().float()
    rows, cols = w.shape
    h = hessian.clone().float()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    losses = torch.zeros(rows, device=w.device)
    damp = percdamp * torch.mean(torch.diag(h))
    idx = torch.arange(cols, device=w.device)
    h[idx, idx] += damp
    h = torch.linalg.cholesky(h)
    h = torch.cholesky_inverse(h)
    hinv = torch.linalg.cholesky(h, upper=True)
    starts = list(range(0, cols, blocksize))
    counts = block_counts(sparsity, rows, starts, cols)
    for bi, i1 in enumerate(starts):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        losses1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = w1 ** 2 / (torch.diag(hinv1).reshape((1, -1))) ** 2
            if exact:
                mask1 = torch.zeros(w1.shape, dtype=torch.bool, device=w.device)
                order = torch.argsort(tmp.flatten(), stable=True)[:counts[bi]]
                mask1.view(-1)[order] = True
            else:
                thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
                mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(w1) == 1
        for i in range(count):
            col = w1[:, i]
            d = hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = w1[:, i:i + prunem] ** 2 / (torch.diag(hinv1)[i:i + prunem].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = col.clone()
            q[mask1[:, i]] = 0
            q1[:, i] = q
            losses1[:, i] = (col - q) ** 2 / d ** 2
            e = (col - q) / d
            w1[:, i:] -= e.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = e
        w[:, i1:i2] = q1
        losses += torch.sum(losses1, 1) / 2
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    return w
