"""The reference implementations' loop structure, re-implemented as an oracle and a baseline.

Written for lenskit from the algorithms' descriptions (SparseGPT: Frantar & Alistarh 2023,
Algorithm 1; Wanda: Sun et al. 2024), in the shape of the published SparseGPT and Wanda
code: statistics accumulated one calibration sequence at a time (the Hessian rescaled by
``n / (n + 1)`` before each addition), SparseGPT's per-column Python loop with its
bookkeeping (``Q1``, ``Err1``, ``Losses1``), a ``<=`` threshold per block, magnitude's
``<=`` threshold per matrix and N:M masks chosen in a loop over column groups.

:func:`reference_pipeline` is the references' whole-model sequential pipeline around them
(a Catcher for block 0's inputs, per-sample hooks, each block pruned and re-run).

It is not used by :func:`lenskit.pruning.prune`. Tests check lenskit's vectorised SparseGPT
against :func:`reference_sparsegpt` with ``exact=True`` (the same counts) and lenskit's
sequential masks against :func:`reference_pipeline`; ``benchmarks/pruning_bench.py`` and
``benchmarks/sequential_pipeline_bench.py`` time both and compare their reconstruction errors.
Shapes: ``W`` is ``[rows, cols]`` (out, in); inputs are ``[n_seq, seq_len, cols]``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import torch
from torch import nn

__all__ = [
    "Hessian",
    "ScalerRow",
    "find_linears",
    "reference_hessian",
    "reference_magnitude",
    "reference_pipeline",
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


def _exact_block_counts(sparsity: float, rows: int, starts: list[int],
                        cols: int) -> list[int]:
    """Pruned count per column block, written independently of lenskit's SparseGPT (an
    oracle must not share the code it checks): block ``[a, b)`` prunes
    ``floor(s * rows * b) - floor(s * rows * a)``, with ``s`` the decimal the float prints as
    (so the blocks sum to exactly ``floor(s * rows * cols)``)."""
    s = Fraction(repr(float(sparsity)))
    edges = [*starts, cols]
    return [math.floor(s * rows * b) - math.floor(s * rows * a)
            for a, b in itertools.pairwise(edges)]


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
    counts = _exact_block_counts(sparsity, rows, starts, cols)
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


# The whole-model sequential pipeline

def find_linears(module: nn.Module, prefix: str = "") -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` under ``module`` by dotted name (as the references' find_layers)."""
    if type(module) is nn.Linear:
        return {prefix: module}
    out: dict[str, nn.Linear] = {}
    for name, child in module.named_children():
        out.update(find_linears(child, f"{prefix}.{name}" if prefix else name))
    return out


def _as_rows(inp: torch.Tensor) -> torch.Tensor:
    """A linear's input ``[batch, seq, d]`` (or ``[seq, d]``) as ``[d, tokens]``, and the
    number of samples it holds (the references' add_batch preamble)."""
    if inp.ndim == 2:
        inp = inp.unsqueeze(0)
    return inp.reshape(-1, inp.shape[-1]).t(), inp.shape[0]


class ScalerRow:
    """Wanda's per-linear statistics: running mean over samples of squared feature norms."""

    def __init__(self, layer: nn.Linear) -> None:
        self.scaler_row = torch.zeros(layer.in_features, device=layer.weight.device)
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        x, n = _as_rows(inp)
        self.scaler_row *= self.nsamples / (self.nsamples + n)
        self.nsamples += n
        self.scaler_row += torch.norm(x.float(), p=2, dim=1) ** 2 / self.nsamples


class Hessian:
    """SparseGPT's per-linear statistics: ``H = 2/N sum X X^T``, rescaled before each add."""

    def __init__(self, layer: nn.Linear) -> None:
        d = layer.in_features
        self.H = torch.zeros(d, d, device=layer.weight.device)
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        x, n = _as_rows(inp)
        self.H *= self.nsamples / (self.nsamples + n)
        self.nsamples += n
        x = (2 / self.nsamples) ** 0.5 * x.float()
        self.H += x.matmul(x.t())


def _wanda_prune(layer: nn.Linear, st: ScalerRow, sparsity: float, prunen: int,
                 prunem: int) -> torch.Tensor:
    w = layer.weight.data
    metric = torch.abs(w) * torch.sqrt(st.scaler_row.reshape(1, -1))
    mask = torch.zeros_like(metric, dtype=torch.bool)
    if prunen:
        for ii in range(0, metric.shape[1], prunem):
            tmp = metric[:, ii:ii + prunem].float()
            mask.scatter_(1, ii + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
    else:
        order = torch.sort(metric, dim=-1, stable=True)[1]
        mask.scatter_(1, order[:, :int(metric.shape[1] * sparsity)], True)
    w[mask] = 0
    return mask


def _sparsegpt_prune(layer: nn.Linear, st: Hessian, sparsity: float, prunen: int,
                     prunem: int) -> torch.Tensor:
    new = reference_sparsegpt(layer.weight.data, st.H, sparsity, prunen, prunem,
                              blocksize=128, percdamp=0.01)
    del st.H
    layer.weight.data.copy_(new.to(layer.weight.dtype))  # in place: bridge views stay valid
    return new == 0


_METHODS = {"wanda": (ScalerRow, _wanda_prune), "sparsegpt": (Hessian, _sparsegpt_prune)}


def _first(out: Any) -> torch.Tensor:
    # Decoder layers return a tuple (older transformers) or the hidden states (newer ones).
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def reference_pipeline(hf: nn.Module, blocks_path: str, tokens: torch.Tensor, method: str,
                       sparsity: float, prunen: int = 0, prunem: int = 0
                       ) -> dict[str, torch.Tensor]:
    """Prune every linear of every block of ``hf`` (a plain HF causal LM whose blocks are
    ``hf.get_submodule(blocks_path)``) in place, as the references' whole-model sequential
    pipelines do, on ``tokens`` ``[n_samples, seq_len]``; returns the pruned positions
    (``True`` = pruned) by HF module path.

    The shape of Wanda's ``prune_wanda`` / ``prune_sparsegpt`` and SparseGPT's
    ``llama_sequential`` (without true-sequential groups): a Catcher module in place of block
    0 stores each sample's block input (one sample per forward call, the call stopped by an
    exception); then, block by block, forward hooks on every linear accumulate the
    statistics one sample at a time while the dense block runs on each sample in turn
    (:class:`ScalerRow` for Wanda, :class:`Hessian` for SparseGPT); each linear is pruned
    (Wanda: ``|W| sqrt(scaler_row)``, stable sort per output row, the lowest
    ``int(s * in_features)`` zeroed, or N:M; SparseGPT: :func:`reference_sparsegpt`, with
    ``blocksize=128``, ``percdamp=0.01``); the pruned block is run again on each sample and
    its outputs are the next block's inputs. Two adaptations to current transformers: the
    Catcher keeps every argument the model gives its blocks (rotary embeddings are computed
    once per model call now), and weights are written in place (``copy_``), not by replacing
    ``weight.data``, so that a TransformerLens bridge's views stay in sync.
    """
    make_stats, prune_linear = _METHODS[method]
    use_cache = hf.config.use_cache
    hf.config.use_cache = False
    layers = hf.get_submodule(blocks_path)
    n, seqlen = tokens.shape
    dtype = next(iter(hf.parameters())).dtype
    inps = torch.zeros((n, seqlen, hf.config.hidden_size), dtype=dtype)
    cache: dict[str, Any] = {"i": 0, "kwargs": None}

    class Catcher(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, inp, *args, **kwargs):
            inps[cache["i"]] = inp
            cache["i"] += 1
            cache["args"], cache["kwargs"] = args, kwargs
            raise ValueError

    layers[0] = Catcher(layers[0])
    for j in range(n):  # the references' dataloader: one sample per batch
        with contextlib.suppress(ValueError):
            hf(tokens[j:j + 1])
    layers[0] = layers[0].module
    outs = torch.zeros_like(inps)
    args, kwargs = cache["args"], cache["kwargs"]

    pruned: dict[str, torch.Tensor] = {}
    for i in range(len(layers)):
        layer = layers[i]
        subset = find_linears(layer)
        stats = {name: make_stats(mod) for name, mod in subset.items()}

        def add_batch(st: ScalerRow | Hessian) -> Callable:
            def hook(_module, inp, _out):
                st.add_batch(inp[0].data)
            return hook

        handles = [subset[name].register_forward_hook(add_batch(st))
                   for name, st in stats.items()]
        for j in range(n):
            outs[j] = _first(layer(inps[j].unsqueeze(0), *args, **kwargs))[0]
        for h in handles:
            h.remove()
        for name, mod in subset.items():
            pruned[f"{blocks_path}.{i}.{name}"] = prune_linear(mod, stats[name], sparsity,
                                                                prunen, prunem)
        for j in range(n):
            outs[j] = _first(layer(inps[j].unsqueeze(0), *args, **kwargs))[0]
        inps, outs = outs, inps
    hf.config.use_cache = use_cache
    return pruned
