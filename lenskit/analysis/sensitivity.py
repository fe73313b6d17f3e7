"""Sensitivity maps: prune one site group at a time and see which tasks break.

:func:`sensitivity_map` prunes each layer x component (``"attn.q@3"``), each layer x family
(``"mlp@2"``) or each whole layer (``"all@1"``) alone, at each sparsity, and evaluates the
suite; :func:`cumulative_map` prunes growing prefixes (layers ``0..k``, ``"bottom_up"``) or
suffixes (``k..L-1``, ``"top_down"``) of the stack, to see whether early or late layers
hold the facts. :func:`sensitivity_table` pivots either into layer x component tables of
fact recall beside in-context learning. Rows follow :data:`~lenskit.analysis.mapping.MAP_COLUMNS`.

Cost: pruning is done ONCE per map. One :class:`~lenskit.pruning.Pruner` covers the union
of all groups and sweeps every sparsity (scores sorted once, calibration statistics and
SparseGPT's Hessians computed once); each group then takes its own sites' masks from that
result. This is exact, not an approximation: with the uniform allocation and dense-mode
calibration (statistics of the dense model, the Pruner's default) a site's mask depends
only on the site, so it is the mask a Pruner restricted to the group would give (tested).
The dense model is evaluated once; then each group costs one evaluation of the suite
(masks are applied in place and put back bitwise). Use ``tasks=`` and ``n_per_task=`` to
trade resolution for time. Masks of every site at every level are held at once (one byte
per weight and level; SparseGPT adds its updated weights): restrict ``layers`` on large
models.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lenskit.analysis.mapping import (
    MapEvaluator,
    check_dense,
    check_layers,
    check_sparsities,
    finish_frame,
    prepare_suite,
)
from lenskit.errors import UsageError
from lenskit.models import model_info, pruned
from lenskit.pruning import Pruner

__all__ = [
    "DIRECTIONS",
    "GROUPINGS",
    "cumulative_map",
    "sensitivity_map",
    "sensitivity_table",
]

GROUPINGS = ("component", "family", "layer")
DIRECTIONS = ("bottom_up", "top_down", "both")
_FAMILIES = (None, "attn", "mlp", "all")


@dataclass(frozen=True)
class _Group:
    """A set of sites pruned together, with the labels of its rows."""

    label: str
    sites: tuple[str, ...]
    layer: int
    first_layer: int
    last_layer: int
    family: str
    component: str
    direction: str = ""


def _layer_text(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _groups(info, grouping: str, layers: Sequence[int]) -> list[_Group]:
    out = []
    for layer in layers:
        here = [s for s in info.sites if s.layer == layer]
        if grouping == "component":
            for s in here:
                out.append(_Group(f"{s.family}.{s.component}@{layer}", (s.name,), layer, layer,
                                  layer, s.family, s.component))
        elif grouping == "family":
            for fam in ("attn", "mlp"):
                names = tuple(s.name for s in here if s.family == fam)
                if names:
                    out.append(_Group(f"{fam}@{layer}", names, layer, layer, layer, fam, "all"))
        else:
            out.append(_Group(f"all@{layer}", tuple(s.name for s in here), layer, layer, layer,
                              "all", "all"))
    return out


def _cumulative_groups(info, family: str, directions: Sequence[str]) -> list[_Group]:
    n = info.n_layers
    out = []
    for direction in directions:
        for k in range(n):
            first, last = (0, k) if direction == "bottom_up" else (k, n - 1)
            names = tuple(s.name for s in info.sites if first <= s.layer <= last
                          and (family == "all" or s.family == family))
            out.append(_Group(f"{family}@{_layer_text(first, last)}", names, k, first, last,
                              family, "all", direction))
    return out


def _check_choice(value: Any, allowed: Sequence, name: str) -> None:
    if value not in allowed:
        raise UsageError(f"unknown {name} {value!r}; allowed: {tuple(allowed)}")


def _run(model, suite, groups: list[_Group], *, analysis: str, method: str,
         sparsities: Sequence[float], structure: str, calibration, batch_size: int, seed: int,
         tasks, n_per_task, metrics, n_bootstrap: int, progress: bool,
         method_kwargs: dict) -> pd.DataFrame:
    """Prune once for the union of ``groups``, then evaluate each group x sparsity."""
    from tqdm.auto import tqdm

    info = model_info(model)
    union = sorted({n for g in groups for n in g.sites},
                   key=[s.name for s in info.sites].index)
    # Everything is validated (tasks, method, parameters, calibration, sparsities) before
    # the dense evaluation or any pruning.
    prepared = prepare_suite(suite, tasks, n_per_task, seed)
    pruner = Pruner(model, method, scope=[_site_scope(n) for n in union], structure=structure,
                    calibration=calibration, seed=seed, **method_kwargs)
    if not pruner.structure.unstructured:
        implied = pruner.structure.sparsity
        if any(abs(s - implied) > 1e-9 for s in sparsities):
            raise UsageError(f"structure {pruner.structure} prunes {implied:g} of every row; "
                             f"sparsities {list(sparsities)} contradict it (give ({implied:g},))")
    ev = MapEvaluator(model, prepared, batch_size=batch_size, metrics=metrics,
                      n_bootstrap=n_bootstrap, seed=seed)
    results = (pruner.sweep(sparsities) if pruner.structure.unstructured
               else {sparsities[0]: pruner.prune()})
    numel = {s.name: s.numel for s in info.sites}
    parts: list[pd.DataFrame] = []
    done: dict[tuple[tuple[str, ...], float], pd.DataFrame] = {}
    bar = tqdm(total=len(groups) * len(sparsities), disable=not progress, unit="group",
               desc=analysis, dynamic_ncols=True)
    for s in sparsities:
        r = results[s]
        for g in groups:
            bar.set_postfix_str(f"{g.label} {s:g}")
            masks = {n: r.masks[n] for n in g.sites}
            weights = {n: r.weights[n] for n in g.sites} if r.weights else None
            removed = int(sum(int((~m).sum()) for m in masks.values()))
            size = int(sum(numel[n] for n in g.sites))
            labels = {
                "model": info.spec, "analysis": analysis, "method": method, "seed": seed,
                "scope": g.label, "layer": g.layer, "first_layer": g.first_layer,
                "last_layer": g.last_layer, "direction": g.direction, "family": g.family,
                "component": g.component, "unit": "weights", "head": pd.NA,
                "unit_label": g.label, "target_sparsity": s,
                "achieved_sparsity": removed / size if size else 0.0,
                "params_removed": removed, "group_params": size,
                "model_params": ev.model_params,
            }
            key = (g.sites, s)
            if key in done:  # the same sites in another direction: measured already
                prev = done[key]
                rows = prev.assign(**{k: labels[k] for k in ("scope", "unit_label", "layer",
                                                             "first_layer", "last_layer",
                                                             "direction")})
            else:
                with pruned(model, masks, weights):
                    rows = ev.measure(labels)
                done[key] = rows
            parts.append(rows)
            bar.update()
    bar.close()
    df = finish_frame(parts)
    df.attrs["evaluations"] = ev.n_evaluations
    return df


def _site_scope(name: str) -> str:
    _, layer, family, component = name.split(".")
    return f"{family}.{component}@{layer}"


def sensitivity_map(
    model,
    suite,
    *,
    method: str = "magnitude",
    sparsities: Iterable[float] = (0.5,),
    groups: str = "component",
    layers: Iterable[int] | int | None = None,
    calibration=None,
    structure: str = "unstructured",
    batch_size: int = 64,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    n_per_task: int | None = None,
    metrics: Sequence[str] | None = None,
    n_bootstrap: int = 500,
    progress: bool = True,
    **method_kwargs: Any,
) -> pd.DataFrame:
    """Prune one site group at a time at each sparsity; measure every task's drop.

    Args:
        model: a dense bridge from :func:`lenskit.load_model`.
        suite: task sets (a dict name -> :class:`~lenskit.tasks.TaskSet`, or a list), e.g.
            :func:`lenskit.tasks.default_suite`.
        method: a pruning method (``lenskit.pruning.METHODS``).
        sparsities: fractions of each group's weights to prune.
        groups: ``"component"`` (each layer x site, e.g. ``attn.q@3``), ``"family"`` (each
            layer x attn/mlp, ``mlp@2``) or ``"layer"`` (each whole layer, ``all@1``).
        layers: the layers to map (default: all).
        calibration: a :class:`~lenskit.pruning.CalibrationData` for methods that need one
            (default: the Pruner's seeded default).
        structure: ``"unstructured"`` or ``"N:M"`` (then ``sparsities`` must be ``(N/M,)``).
        batch_size: prompts per forward pass.
        seed: seeds the method (random scores, default calibration), subsets and bootstrap.
        tasks: evaluate only these task names; n_per_task: at most this many instances per
            task (a seeded subset) -- both trade resolution for time.
        metrics: keep only these metrics (default: all).
        n_bootstrap: resamples for the paired interval of ``relative_drop`` (0: none).
        progress: show a progress bar.
        **method_kwargs: method parameters (``per_row``, ``blocksize``, ``percdamp``).

    Returns:
        One row per group x sparsity x task x metric, columns
        :data:`~lenskit.analysis.mapping.MAP_COLUMNS` (``analysis == "sensitivity"``).
        ``df.attrs["evaluations"]`` counts the evaluations made (the dense one excluded).

    Raises:
        ValueError: unknown method / grouping / parameter, sparsity outside [0, 1], a layer
            the model lacks, a pruned model -- all before anything is evaluated or pruned.
    """
    _check_choice(groups, GROUPINGS, "groups")
    sparsities = check_sparsities(sparsities)
    info = model_info(model)
    check_dense(model)
    chosen = check_layers(layers, info.n_layers)
    return _run(model, suite, _groups(info, groups, chosen), analysis="sensitivity",
                method=method, sparsities=sparsities, structure=structure,
                calibration=calibration, batch_size=batch_size, seed=seed, tasks=tasks,
                n_per_task=n_per_task, metrics=metrics, n_bootstrap=n_bootstrap,
                progress=progress, method_kwargs=method_kwargs)


def cumulative_map(
    model,
    suite,
    *,
    direction: str = "bottom_up",
    family: str | None = None,
    method: str = "magnitude",
    sparsities: Iterable[float] = (0.5,),
    calibration=None,
    structure: str = "unstructured",
    batch_size: int = 64,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    n_per_task: int | None = None,
    metrics: Sequence[str] | None = None,
    n_bootstrap: int = 500,
    progress: bool = True,
    **method_kwargs: Any,
) -> pd.DataFrame:
    """Prune growing blocks of layers: ``0..k`` (``"bottom_up"``) or ``k..L-1``
    (``"top_down"``) for every ``k``, or both (``"both"``; the whole stack is evaluated
    once and reported in both directions).

    ``family``: prune only ``"attn"`` or ``"mlp"`` sites of those layers (``None`` or
    ``"all"``: both). Rows have ``layer == k``, the span in ``first_layer``/``last_layer``
    and ``direction``; at ``k = L-1`` bottom-up (``k = 0`` top-down) the whole family is
    pruned, exactly as ``Pruner(model, method, scope=family)`` would prune it. Other
    arguments as in :func:`sensitivity_map`.
    """
    _check_choice(direction, DIRECTIONS, "direction")
    _check_choice(family, _FAMILIES, "family")
    sparsities = check_sparsities(sparsities)
    info = model_info(model)
    check_dense(model)
    fam = family or "all"
    dirs = ("bottom_up", "top_down") if direction == "both" else (direction,)
    return _run(model, suite, _cumulative_groups(info, fam, dirs), analysis="cumulative",
                method=method, sparsities=sparsities, structure=structure,
                calibration=calibration, batch_size=batch_size, seed=seed, tasks=tasks,
                n_per_task=n_per_task, metrics=metrics, n_bootstrap=n_bootstrap,
                progress=progress, method_kwargs=method_kwargs)


_COMPONENT_ORDER = ("q", "k", "v", "o", "in", "gate", "out", "all")
_CATEGORY_ORDER = ("fact_recall", "icl", "lm")


def _column_key(df: pd.DataFrame) -> str:
    analysis = set(df["analysis"])
    if analysis == {"head_ablation"}:
        return "head"
    if analysis == {"neuron_ablation"}:
        return "unit_label"
    if analysis == {"cumulative"}:
        return "direction"
    if (df["component"] != "all").any():
        return "component"
    return "family"


def sensitivity_table(
    df: pd.DataFrame,
    metric: str = "em",
    category: str | None = None,
    *,
    sparsity: float | None = None,
    value: str = "relative_drop",
    columns: str | None = None,
) -> pd.DataFrame:
    """A layer x component table of a map: the mean over the category's tasks of ``value``
    (``relative_drop``, ``drop`` or ``value``) for ``metric``.

    ``category``: ``"fact_recall"``, ``"icl"`` or ``"lm"`` gives a plain table; ``None``
    puts every category present side by side (column MultiIndex category x component).
    Columns are the components for component maps, the families for family maps, the heads
    (head ablation), the neuron groups (neuron ablation) or the directions (cumulative
    maps, whose rows are then the number of layers pruned, ``layers_pruned``); ``columns``
    overrides the choice. ``sparsity`` picks a level when the map has several.
    """
    need = {"analysis", "layer", "metric", "category", "target_sparsity", value}
    missing = sorted(need - set(df.columns))
    if missing:
        raise UsageError(f"not a map frame: missing column(s) {missing}")
    if value not in ("relative_drop", "drop", "value"):
        raise UsageError(f"unknown value {value!r}; allowed: ('relative_drop', 'drop', "
                         "'value')")
    if len(set(df["analysis"])) > 1:
        raise UsageError(f"the frame mixes analyses {sorted(set(df['analysis']))}; "
                         "tabulate one at a time")
    sub = df[df["metric"] == metric]
    if sub.empty:
        raise UsageError(f"no rows for metric {metric!r}; the map has "
                         f"{sorted(set(df['metric']))}")
    key = columns or _column_key(sub)
    levels = sorted(set(sub["target_sparsity"]))
    if sparsity is None:
        # ablation groups have their own sizes: the columns then tell the levels apart
        if len(levels) > 1 and key not in ("head", "unit_label"):
            raise UsageError(f"the map has several sparsities {levels}; choose one with "
                             "sparsity=")
    else:
        sub = sub[(sub["target_sparsity"] - sparsity).abs() < 1e-12]
        if sub.empty:
            raise UsageError(f"no rows at sparsity {sparsity!r}; the map has {levels}")
    if category is not None:
        if category not in set(sub["category"]):
            raise UsageError(f"no tasks of category {category!r}; the map has "
                             f"{sorted(set(sub['category']))}")
        sub = sub[sub["category"] == category]
    if key not in sub.columns:
        raise UsageError(f"unknown column {key!r} to tabulate by")
    index = "layer"
    if set(sub["analysis"]) == {"cumulative"}:
        # both ends compared by how many layers they lose (k means different spans)
        index = "layers_pruned"
        sub = sub.assign(layers_pruned=sub["last_layer"] - sub["first_layer"] + 1)
    g = sub.groupby(["category", index, key], sort=False)[value].mean().reset_index()
    table = g.pivot_table(index=index, columns=["category", key], values=value,
                          sort=False)
    cats = [c for c in _CATEGORY_ORDER if c in set(g["category"])]
    cats += sorted(set(g["category"]) - set(cats))
    inner = list(dict.fromkeys(g[key]))
    if key == "component" or key == "family":
        order = {c: i for i, c in enumerate((*_COMPONENT_ORDER, "attn", "mlp"))}
        inner.sort(key=lambda c: order.get(c, len(order)))
    elif key == "head":
        inner.sort()
    cols = [(c, k) for c in cats for k in inner if (c, k) in table.columns]
    table = table.reindex(columns=pd.MultiIndex.from_tuples(cols, names=["category", key]))
    table = table.sort_index()
    if category is not None:
        table = table[category]
        table.columns.name = key
    return table
