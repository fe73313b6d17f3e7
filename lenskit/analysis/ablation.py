"""Structured ablation, the cross-check of the sensitivity maps: whole attention heads and
groups of FFW neurons, zeroed or replaced by their mean, one group at a time.

Where: a head is ablated at the input of the attention output projection (TransformerLens'
``hook_z``, ``[batch, pos, head, d_head]``; head ``h`` is the input columns
``h*d_head:(h+1)*d_head`` of the site ``attn.o``); a neuron at the input of the FFW output
projection (``mlp.hook_post``, the input columns of the site ``mlp.out``). Attention heads
are query heads (with grouped-query attention several share a key-value head).

How (``backend``):

- ``"hf"`` (default, fast: the plain HF model with its key-value cache).
  *Zero* ablation zeroes the unit's input columns of the projection's weight through
  masks (:func:`lenskit.models.pruned`): ``W x`` with ``x_j = 0`` and with ``W[:, j] = 0``
  are the same sums, so this is exact (the bias, if any, is kept in both).
  *Mean* ablation replaces the unit's slice of the projection's input by its mean with a
  forward pre-hook on the plain HF module (put back when the evaluation ends). The mean
  cannot be folded into the weights in general: Llama-style projections have no bias.
- ``"bridge"``: TransformerLens hooks on ``hook_z`` / ``mlp.hook_post`` through
  ``evaluate(..., backend="bridge", fwd_hooks=...)``. Slower (no KV cache); it gives the
  same predictions (tested), and is there for checking and for users of TL hooks.

Means (:func:`mean_activations`) are taken with a bridge hook pass over the task prompts'
real tokens (right-padded batches; padding positions are excluded by each prompt's
length, never by token ids), per task (``mean_over="task"``: each task is evaluated with
the means of its own prompts) or over the whole suite (``"suite"``, token-weighted). For QA
and function tasks the tokens are the prompts (without answers); for perplexity, the
windows.

Neuron groups (:func:`neuron_ablation_map`, ``groups``):

- ``"chunks"``: each layer's neurons cut into ``n_chunks`` contiguous index ranges,
  ablated one at a time. Neuron order carries no meaning, so chunks are arbitrary groups
  of equal size (a map of *where*, with a built-in control of *how many*).
- ``"lowest_norm"`` / ``"highest_norm"``: for each of ``fractions``, the
  ``floor(f * d_ffn)`` neurons whose output weights (the columns of ``mlp.out``) have the
  smallest / largest L2 norm, ties to the lower index: how much of the layer's capacity
  can go before tasks break, and whether the big writers matter most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lenskit.analysis.mapping import (
    ABLATION_MODES,
    MapEvaluator,
    check_dense,
    check_layers,
    finish_frame,
    prepare_suite,
)
from lenskit.models import model_info, pruned
from lenskit.tasks import TaskSet
from lenskit.tasks.encoding import encode_texts, pad_id, pad_right

__all__ = [
    "ABLATION_BACKENDS",
    "ABLATION_MODES",
    "MEAN_OVER",
    "NEURON_GROUPINGS",
    "ActivationMeans",
    "head_ablation_map",
    "mean_activations",
    "neuron_ablation_map",
]

ABLATION_BACKENDS = ("hf", "bridge")
MEAN_OVER = ("task", "suite")
NEURON_GROUPINGS = ("chunks", "lowest_norm", "highest_norm")
_WHICH = ("z", "post")


@dataclass
class ActivationMeans:
    """Mean activations over real tokens.

    Attributes:
        z: layer -> ``[n_heads, d_head]`` mean of ``hook_z`` (the o projection's input).
        post: layer -> ``[d_ffn]`` mean of ``mlp.hook_post`` (the out projection's input).
        n_tokens: how many token positions were averaged.
    """

    z: dict[int, torch.Tensor]
    post: dict[int, torch.Tensor]
    n_tokens: int


def _token_rows(tokenizer, task) -> list[list[int]]:
    if task.kind == "perplexity":
        return [list(w.tokens) for w in task.instances]
    return encode_texts(tokenizer, [i.prompt for i in task.instances])


def mean_activations(
    model,
    tasks,
    *,
    layers: Iterable[int] | int | None = None,
    which: Sequence[str] = _WHICH,
    batch_size: int = 32,
) -> ActivationMeans:
    """Mean of ``hook_z`` (per head) and ``mlp.hook_post`` (per neuron) over the real
    tokens of ``tasks`` (a TaskSet, a list or a dict of them), with one bridge pass per
    batch (hooks on the wanted layers only; the pass stops after the last of them).

    Padding is excluded by each row's length; sums are accumulated in float64 and the
    means returned in float32.
    """
    info = model_info(model)
    chosen = check_layers(layers, info.n_layers)
    which = (which,) if isinstance(which, str) else tuple(which)
    bad = [w for w in which if w not in _WHICH]
    if bad or not which:
        raise ValueError(f"unknown activation(s) {bad or which}; allowed: {_WHICH}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    items = [tasks] if isinstance(tasks, TaskSet) else (
        list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks))
    rows = [r for t in items for r in _token_rows(info.tokenizer, t)]
    if not rows:
        raise ValueError("no token sequences to average over")
    names = {}
    for layer in chosen:
        if "z" in which:
            names[f"blocks.{layer}.attn.hook_z"] = ("z", layer)
        if "post" in which:
            names[f"blocks.{layer}.mlp.hook_post"] = ("post", layer)
    sums: dict[str, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}

    def accumulator(name: str) -> Callable:
        # keyed by our own name: TransformerLens reports the aliased hook's canonical name
        # (hook_z arrives as attn.o.hook_in)
        def accumulate(t: torch.Tensor, hook) -> None:
            mask = state["mask"].to(t.device, torch.float64)
            mask = mask.reshape(*mask.shape, *([1] * (t.ndim - 2)))
            total = (t.to(torch.float64) * mask).sum((0, 1))
            sums[name] = sums[name] + total if name in sums else total

        return accumulate

    stop = max(chosen) + 1
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))  # less padding per batch
    pad = pad_id(info.tokenizer)
    device = next(model.parameters()).device
    n_tokens = 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start:start + batch_size]]
            ids, lengths = pad_right(batch, pad)
            state["mask"] = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            n_tokens += int(lengths.sum())
            model.run_with_hooks(ids.to(device), return_type=None,
                                 fwd_hooks=[(n, accumulator(n)) for n in names],
                                 stop_at_layer=stop if stop < info.n_layers else None)
    z: dict[int, torch.Tensor] = {}
    post: dict[int, torch.Tensor] = {}
    for name, (kind, layer) in names.items():
        mean = (sums[name] / n_tokens).to(torch.float32)
        (z if kind == "z" else post)[layer] = mean
    return ActivationMeans(z=z, post=post, n_tokens=n_tokens)


# ----------------------------------------------------------------------------- units


@dataclass(frozen=True)
class _Unit:
    """One ablation: input columns ``cols`` of ``site`` (whose hook slice is ``index``)."""

    site: str
    layer: int
    family: str
    component: str
    index: tuple[int, ...]  # heads (attn) or neurons (mlp)
    cols: tuple[int, ...]  # the site's input columns
    label: str
    group: str
    sparsity: float
    head: int | None = None


def _head_units(info, layers, heads) -> list[_Unit]:
    out = []
    for layer in layers:
        o = info.site_map[f"blocks.{layer}.attn.o"]
        n, dh = int(o.n_heads), int(o.head_dim)
        chosen = range(n) if heads is None else heads
        for h in chosen:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 0 <= h < n:
                raise ValueError(f"heads must be ints in 0..{n - 1} (the model has {n} "
                                 f"heads), got {h!r}")
            h = int(h)
            out.append(_Unit(o.name, layer, "attn", "o", (h,),
                             tuple(range(h * dh, (h + 1) * dh)), f"head {h}",
                             f"attn.o@{layer}[head={h}]", dh / o.shape[1], head=h))
    return out


def _neuron_units(info, layers, groups, n_chunks, fractions) -> list[_Unit]:
    out = []
    for layer in layers:
        site = info.site_map[f"blocks.{layer}.mlp.out"]
        d = site.shape[1]
        if groups == "chunks":
            for i in range(n_chunks):
                a, b = i * d // n_chunks, (i + 1) * d // n_chunks
                idx = tuple(range(a, b))
                out.append(_Unit(site.name, layer, "mlp", "out", idx, idx,
                                 f"chunk {i}/{n_chunks}", f"mlp.out@{layer}[chunk={i}/{n_chunks}]",
                                 len(idx) / d))
            continue
        norms = site.weight().double().norm(dim=0)
        # stable ascending order: ties go to the lower index (descending keeps that too)
        order = torch.argsort(norms if groups == "lowest_norm" else -norms, stable=True)
        for f in fractions:
            k = int(np.floor(f * d + 1e-9))
            idx = tuple(sorted(int(i) for i in order[:k]))
            word = groups.split("_")[0]
            out.append(_Unit(site.name, layer, "mlp", "out", idx, idx,
                             f"{word}-norm {f:.0%}", f"mlp.out@{layer}[{groups}={f:g}]", f))
    return out


# ----------------------------------------------------------------------------- applying


def _hook_name(unit: _Unit) -> str:
    return (f"blocks.{unit.layer}.attn.hook_z" if unit.family == "attn"
            else f"blocks.{unit.layer}.mlp.hook_post")


def _values(unit: _Unit, means: ActivationMeans | None) -> torch.Tensor | None:
    """The replacement of the unit's slice: ``None`` for zero, else the mean ``[units, ...]``."""
    if means is None:
        return None
    idx = list(unit.index)
    return (means.z[unit.layer][idx] if unit.family == "attn" else means.post[unit.layer][idx])


def _bridge_hooks(unit: _Unit, values: torch.Tensor | None) -> list:
    idx = list(unit.index)

    def hook(t: torch.Tensor, hook) -> torch.Tensor:
        v = 0.0 if values is None else values.to(t.device, t.dtype)
        if unit.family == "attn":
            t[..., idx, :] = v  # [batch, pos, head, d_head]
        else:
            t[..., idx] = v  # [batch, pos, d_ffn]
        return t

    return [(_hook_name(unit), hook)]


@contextmanager
def _hf_mean_hook(info, unit: _Unit, values: torch.Tensor):
    """Replace the unit's input columns of the plain HF projection by ``values``."""
    site = info.site_map[unit.site]
    module = info.hf.get_submodule(site.hf_path)
    cols = torch.tensor(unit.cols)
    flat = values.reshape(-1)

    def pre(_module, args, kwargs):
        if not args:
            raise RuntimeError(f"{site.hf_path} was called without a positional input; "
                               "mean ablation on the hf backend cannot see it (use "
                               "backend='bridge')")
        x = args[0].clone()
        x[..., cols.to(x.device)] = flat.to(x.device, x.dtype)
        return (x, *args[1:]), kwargs

    handle = module.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _zero_masks(info, unit: _Unit) -> dict[str, torch.Tensor]:
    site = info.site_map[unit.site]
    keep = torch.ones(site.shape, dtype=torch.bool)
    keep[:, list(unit.cols)] = False
    return {site.name: keep}


def _check(mode, mean_over, backend) -> None:
    for value, allowed, name in ((mode, ABLATION_MODES, "mode"),
                                 (mean_over, MEAN_OVER, "mean_over"),
                                 (backend, ABLATION_BACKENDS, "backend")):
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; allowed: {allowed}")


def _run(model, suite, units: list[_Unit], *, analysis: str, mode: str, mean_over: str,
         backend: str, batch_size: int, seed: int, tasks, n_per_task, metrics,
         n_bootstrap: int, progress: bool, unit_kind: str) -> pd.DataFrame:
    from tqdm.auto import tqdm

    info = model_info(model)
    prepared = prepare_suite(suite, tasks, n_per_task, seed)
    ev = MapEvaluator(model, prepared, batch_size=batch_size, metrics=metrics,
                      n_bootstrap=n_bootstrap, seed=seed)
    layers = sorted({u.layer for u in units})
    which = tuple(sorted({"z" if u.family == "attn" else "post" for u in units}))
    means: dict[str, ActivationMeans] = {}
    if mode == "mean":
        if mean_over == "suite":
            shared = mean_activations(model, prepared, layers=layers, which=which,
                                      batch_size=batch_size)
            means = dict.fromkeys(prepared, shared)
        else:
            means = {name: mean_activations(model, t, layers=layers, which=which,
                                            batch_size=batch_size)
                     for name, t in prepared.items()}
    parts = []
    bar = tqdm(total=len(units), disable=not progress, unit="group", desc=analysis,
               dynamic_ncols=True)
    for unit in units:
        bar.set_postfix_str(unit.group)
        site = info.site_map[unit.site]
        removed = site.shape[0] * len(unit.cols)
        labels = {
            "model": info.spec, "analysis": analysis, "method": mode, "seed": seed,
            "scope": unit.group, "layer": unit.layer, "first_layer": unit.layer,
            "last_layer": unit.layer, "direction": "", "family": unit.family,
            "component": unit.component, "unit": unit_kind,
            "head": pd.NA if unit.head is None else unit.head, "unit_label": unit.label,
            "target_sparsity": unit.sparsity, "achieved_sparsity": removed / site.numel,
            "params_removed": removed, "group_params": site.numel,
            "model_params": ev.model_params,
        }
        if backend == "bridge":
            hooks: Callable[[Any], list] = (
                (lambda task, u=unit: _bridge_hooks(u, None)) if mode == "zero" else
                (lambda task, u=unit: _bridge_hooks(u, _values(u, means[task.name]))))
            parts.append(ev.measure(labels, backend="bridge", fwd_hooks=hooks))
        elif mode == "zero":
            with pruned(model, _zero_masks(info, unit)):
                parts.append(ev.measure(labels))
        else:
            parts.append(ev.measure(labels, context=lambda task, u=unit: _hf_mean_hook(
                info, u, _values(u, means[task.name]))))
        bar.update()
    bar.close()
    df = finish_frame(parts)
    df.attrs["evaluations"] = ev.n_evaluations
    return df


def head_ablation_map(
    model,
    suite,
    *,
    mode: str = "zero",
    layers: Iterable[int] | int | None = None,
    heads: Iterable[int] | None = None,
    mean_over: str = "task",
    backend: str = "hf",
    batch_size: int = 64,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    n_per_task: int | None = None,
    metrics: Sequence[str] | None = None,
    n_bootstrap: int = 500,
    progress: bool = True,
) -> pd.DataFrame:
    """Ablate each attention head (each layer x head) alone; measure every task's drop.

    Args:
        mode: ``"zero"`` or ``"mean"`` (see the module docstring).
        layers, heads: which layers and (query) heads (default: all).
        mean_over: ``"task"`` or ``"suite"`` (mean ablation only).
        backend: ``"hf"`` (fast) or ``"bridge"`` (TransformerLens hooks).
        Others as in :func:`lenskit.analysis.sensitivity_map`.

    Returns:
        Map rows (:data:`~lenskit.analysis.mapping.MAP_COLUMNS`) with
        ``analysis == "head_ablation"``, ``method == mode``, ``family == "attn"``,
        ``component == "o"``, ``unit == "head"`` and the ``head`` index; ``sparsity`` is the
        head's share of the o projection's input (``1 / n_heads``).
    """
    _check(mode, mean_over, backend)
    info = model_info(model)
    check_dense(model)
    chosen = check_layers(layers, info.n_layers)
    if heads is not None:
        heads = [heads] if isinstance(heads, (int, np.integer)) else list(heads)
        if not heads:
            raise ValueError("heads is empty; give head indices or None for all")
    units = _head_units(info, chosen, heads)
    return _run(model, suite, units, analysis="head_ablation", mode=mode,
                mean_over=mean_over, backend=backend, batch_size=batch_size, seed=seed,
                tasks=tasks, n_per_task=n_per_task, metrics=metrics, n_bootstrap=n_bootstrap,
                progress=progress, unit_kind="head")


def neuron_ablation_map(
    model,
    suite,
    *,
    mode: str = "zero",
    groups: str = "chunks",
    n_chunks: int = 4,
    fractions: Iterable[float] = (0.1, 0.25, 0.5),
    layers: Iterable[int] | int | None = None,
    mean_over: str = "task",
    backend: str = "hf",
    batch_size: int = 64,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    n_per_task: int | None = None,
    metrics: Sequence[str] | None = None,
    n_bootstrap: int = 500,
    progress: bool = True,
) -> pd.DataFrame:
    """Ablate groups of FFW neurons (at the out projection's input), one group at a time.

    Args:
        groups: ``"chunks"`` (``n_chunks`` contiguous index ranges per layer),
            ``"lowest_norm"`` or ``"highest_norm"`` (the ``fractions`` of neurons with the
            smallest / largest output-weight norm); see the module docstring.
        mode, layers, mean_over, backend and the rest: as in :func:`head_ablation_map`.

    Returns:
        Map rows with ``analysis == "neuron_ablation"``, ``family == "mlp"``,
        ``component == "out"``, ``unit == "neurons"``, the group in ``unit_label``
        (``"chunk 1/4"``, ``"lowest-norm 25%"``) and its share of the layer's neurons in
        ``sparsity`` (requested) / ``achieved_sparsity`` (exact).
    """
    _check(mode, mean_over, backend)
    if groups not in NEURON_GROUPINGS:
        raise ValueError(f"unknown groups {groups!r}; allowed: {NEURON_GROUPINGS}")
    info = model_info(model)
    check_dense(model)
    chosen = check_layers(layers, info.n_layers)
    d_ffn = min(info.site_map[f"blocks.{layer}.mlp.out"].shape[1] for layer in chosen)
    fracs: tuple[float, ...] = ()
    if groups == "chunks":
        if isinstance(n_chunks, bool) or not isinstance(n_chunks, (int, np.integer)) \
                or not 1 <= n_chunks <= d_ffn:
            raise ValueError(f"n_chunks must be an int in 1..{d_ffn} (the FFW width), got "
                             f"{n_chunks!r}")
    else:
        fracs = tuple(dict.fromkeys(_fraction(f) for f in (
            [fractions] if isinstance(fractions, (int, float)) else fractions)))
        if not fracs:
            raise ValueError("fractions is empty; give fractions in (0, 1]")
    units = _neuron_units(info, chosen, groups, int(n_chunks), fracs)
    return _run(model, suite, units, analysis="neuron_ablation", mode=mode,
                mean_over=mean_over, backend=backend, batch_size=batch_size, seed=seed,
                tasks=tasks, n_per_task=n_per_task, metrics=metrics, n_bootstrap=n_bootstrap,
                progress=progress, unit_kind="neurons")


def _fraction(f: Any) -> float:
    if isinstance(f, bool) or not isinstance(f, (int, float, np.floating, np.integer)) \
            or not 0 < float(f) <= 1:
        raise ValueError(f"fractions must be numbers in (0, 1], got {f!r}")
    return float(f)
