"""Does pruning point where causal tracing points? Rank agreement between a causal trace and
the pruning / ablation maps of the same prompts.

Both sides are kept *per prompt* so that one bootstrap resamples the prompts for both:

- :func:`layer_sensitivity_items`: the pruning sensitivity map of one family (``"mlp"`` or
  ``"attn"``), one layer at a time, as :func:`~lenskit.analysis.sensitivity_map` with
  ``groups="family"`` computes it (one Pruner for the union, each layer's masks applied
  alone; tested equal to the map's means), with each prompt's score (``logprob`` of the
  gold answer by default) under the dense and the pruned model;
- :func:`head_ablation_items`: each attention head zero-ablated alone (the head's input
  columns of ``attn.o`` masked, as :func:`~lenskit.analysis.head_ablation_map` does), per
  prompt;
- the trace: :func:`~lenskit.analysis.trace_items` (``p_restored - p_corrupted`` per prompt).

:func:`rank_agreement` takes two per-prompt tables of units (layers, heads) and returns the
Spearman correlation, across units, of their means over prompts, with a percentile bootstrap
interval from resampling prompts (the same draw for both sides; :func:`lenskit.stats.
bootstrap_means`). A per-unit quantity without prompts (a head's attention drift, from
:func:`~lenskit.analysis.attention_drift`) enters as a fixed series: only the trace side is
resampled then.

Signs: both sides are oriented so that larger means "matters more": the causal side is the
indirect effect, the pruning side the drop from dense (``dense - pruned`` of a
higher-is-better score), the drift side the JS divergence. A positive correlation is
agreement.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from lenskit.analysis.mapping import check_dense, check_layers
from lenskit.errors import UsageError
from lenskit.models import model_info, pruned
from lenskit.pruning import Pruner
from lenskit.results.schema import higher_is_better, instances_from_eval
from lenskit.stats import bootstrap_means, percentile_interval
from lenskit.tasks import TaskSet, evaluate

__all__ = [
    "AGREEMENT_COLUMNS",
    "head_ablation_items",
    "layer_agreement",
    "layer_profiles",
    "layer_sensitivity_items",
    "rank_agreement",
    "trace_effects",
]

#: Columns of :func:`rank_agreement`'s row.
AGREEMENT_COLUMNS: tuple[str, ...] = ("rho", "ci_low", "ci_high", "n_units", "n_items",
                                      "n_bootstrap")
_ITEM_COLUMNS = ["instance_id", "unit", "value"]


def _scores(model, task: TaskSet, metric: str, batch_size: int) -> pd.Series:
    result = evaluate(model, task, batch_size=batch_size, n_bootstrap=0, progress=False)
    inst = instances_from_eval(result.rows, "agreement", [metric])
    return inst.set_index("instance_id")["value"]


def _drops(dense: pd.Series, value: pd.Series, metric: str) -> pd.Series:
    sign = 1.0 if higher_is_better(metric) else -1.0
    return sign * (dense - value.reindex(dense.index))


def layer_sensitivity_items(model, task: TaskSet, *, family: str = "mlp",
                            method: str = "magnitude", sparsity: float = 0.5,
                            layers: Iterable[int] | int | None = None, metric: str = "logprob",
                            calibration=None, batch_size: int = 32, seed: int = 0,
                            **method_kwargs) -> pd.DataFrame:
    """Per prompt and layer: the drop of ``metric`` when the layer's ``family`` sites are
    pruned alone at ``sparsity`` with ``method``.

    Returns columns ``instance_id``, ``unit`` (``"mlp@3"``), ``family``, ``layer``, ``dense``,
    ``pruned`` and ``value`` (the drop, positive = worse).
    """
    if family not in ("mlp", "attn"):
        raise UsageError(f"unknown family {family!r}; allowed: ('mlp', 'attn')")
    info = model_info(model)
    check_dense(model)
    chosen = check_layers(layers, info.n_layers)
    sites = {layer: [s.name for s in info.sites if s.layer == layer and s.family == family]
             for layer in chosen}
    scope = [f"{family}.{n.split('.')[-1]}@{layer}" for layer, ns in sites.items() for n in ns]
    pruner = Pruner(model, method, scope=scope, calibration=calibration, seed=seed,
                    **method_kwargs)
    result = pruner.prune(sparsity)
    dense = _scores(model, task, metric, batch_size)
    parts = []
    for layer, names in sites.items():
        masks = {n: result.masks[n] for n in names}
        weights = {n: result.weights[n] for n in names} if result.weights else None
        with pruned(model, masks, weights):
            value = _scores(model, task, metric, batch_size)
        drop = _drops(dense, value, metric)
        parts.append(pd.DataFrame({"instance_id": dense.index, "unit": f"{family}@{layer}",
                                   "family": family,
                                   "layer": layer, "dense": dense.to_numpy(),
                                   "pruned": value.reindex(dense.index).to_numpy(),
                                   "value": drop.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def head_ablation_items(model, task: TaskSet, *, layers: Iterable[int] | int | None = None,
                        metric: str = "logprob", batch_size: int = 32) -> pd.DataFrame:
    """Per prompt and head: the drop of ``metric`` when the head is zero-ablated alone (its
    input columns of ``attn.o`` masked). Columns ``instance_id``, ``unit`` (``"L1H2"``),
    ``layer``, ``head``, ``dense``, ``pruned``, ``value``."""
    info = model_info(model)
    check_dense(model)
    chosen = check_layers(layers, info.n_layers)
    dense = _scores(model, task, metric, batch_size)
    parts = []
    for layer in chosen:
        o = info.site_map[f"blocks.{layer}.attn.o"]
        dh = int(o.head_dim)
        for h in range(int(o.n_heads)):
            keep = np.ones(o.shape, dtype=bool)
            keep[:, h * dh:(h + 1) * dh] = False
            with pruned(model, {o.name: torch.from_numpy(keep)}):
                value = _scores(model, task, metric, batch_size)
            parts.append(pd.DataFrame({
                "instance_id": dense.index, "unit": f"L{layer}H{h}", "layer": layer,
                "head": h, "dense": dense.to_numpy(),
                "pruned": value.reindex(dense.index).to_numpy(),
                "value": _drops(dense, value, metric).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def trace_effects(items: pd.DataFrame, *, kind: str, position: str,
                  task: str | None = None, normalise: bool = False) -> pd.DataFrame:
    """Per prompt and unit, the indirect effect ``p_restored - p_corrupted`` of one kind of
    site at one position (from :func:`~lenskit.analysis.trace_items`), with units named as
    the other side names them: ``"mlp@3"``/``"attn@3"`` for layers, ``"L3H1"`` for heads.
    ``normalise`` divides by each prompt's total effect (prompts without one are dropped).
    """
    sub = items[(items["kind_of_site"] == kind) & (items["position"] == position)]
    if task is not None:
        sub = sub[sub["task"] == task]
    if sub.empty:
        raise UsageError(f"no traced sites of kind {kind!r} at position {position!r}"
                         + (f" for task {task!r}" if task else ""))
    value = sub["p_restored"] - sub["p_corrupted"]
    if normalise:
        total = sub["p_clean"] - sub["p_corrupted"]
        ok = total.abs() > 1e-9
        sub, value = sub[ok], value[ok] / total[ok]
    unit = ([f"L{a}H{b}" for a, b in zip(sub["layer"], sub["head"], strict=True)]
            if kind == "head" else [f"{kind}@{a}" for a in sub["layer"]])
    return pd.DataFrame({"instance_id": sub["instance_id"].to_numpy(), "unit": unit,
                         "layer": sub["layer"].to_numpy(), "value": value.to_numpy()})


def _matrix(items: pd.DataFrame, units: list[str], ids: list[str]) -> np.ndarray:
    wide = items.pivot_table(index="unit", columns="instance_id", values="value",
                             aggfunc="mean")
    return wide.reindex(index=units, columns=ids).to_numpy(np.float64)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair of ``a``, ``b`` ``[draws, units]`` (ties get
    average ranks; a constant row gives NaN)."""
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(1) / np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))


def rank_agreement(causal: pd.DataFrame, other: pd.DataFrame | Mapping[str, float] | pd.Series,
                   *, n_bootstrap: int = 2000, ci: float = 0.95, seed: int = 0
                   ) -> dict[str, float]:
    """Spearman correlation across units of the mean per-prompt values of ``causal`` and
    ``other``, with a percentile bootstrap interval over prompts.

    Args:
        causal: per-prompt values, columns ``instance_id``, ``unit``, ``value`` (e.g.
            :func:`trace_effects`).
        other: the same for the other method (e.g. :func:`layer_sensitivity_items`; the
            prompts they share are used, and each resample draws the same prompts for both),
            or a fixed unit -> value mapping (then only ``causal`` is resampled).
        n_bootstrap: resamples; ci: the interval's level; seed: seeds the resampling.

    Returns:
        ``{"rho", "ci_low", "ci_high", "n_units", "n_items", "n_bootstrap"}`` (NaN rho when
        either side is constant across units).
    """
    for frame, name in ((causal, "causal"), (other, "other")):
        if isinstance(frame, pd.DataFrame):
            missing = sorted(set(_ITEM_COLUMNS) - set(frame.columns))
            if missing:
                raise UsageError(f"{name} lacks column(s) {missing}; give per-prompt values "
                                 f"with columns {_ITEM_COLUMNS}")
    fixed = not isinstance(other, pd.DataFrame)
    if fixed:
        other = pd.Series(other, dtype=np.float64)
        units = [u for u in dict.fromkeys(causal["unit"]) if u in other.index]
        ids = list(dict.fromkeys(causal["instance_id"]))
    else:
        units = [u for u in dict.fromkeys(causal["unit"]) if u in set(other["unit"])]
        ids = [i for i in dict.fromkeys(causal["instance_id"])
               if i in set(other["instance_id"])]
    if len(units) < 3:
        raise UsageError(f"a rank correlation needs at least 3 units both sides have; they "
                         f"share {units}")
    if not ids:
        raise UsageError("the two sides share no prompt (instance_id)")
    a = _matrix(causal, units, ids)
    b = (np.asarray(other.reindex(units), np.float64)[:, None] if fixed
         else _matrix(other, units, ids))
    if np.isnan(a).any() or np.isnan(b).any():
        raise UsageError("some unit lacks a value for some prompt; give complete tables")
    k = len(units)
    point = _spearman_rows(a.mean(1)[None, :], b.mean(1)[None, :])[0]
    lo = hi = np.nan
    if n_bootstrap:
        rng = np.random.default_rng([seed, zlib.crc32("|".join(units).encode())])
        if fixed:
            draws = bootstrap_means(a, None, n_bootstrap, rng)
            rho = _spearman_rows(draws, np.broadcast_to(b[:, 0], draws.shape))
        else:
            draws = bootstrap_means(np.vstack([a, b]), None, n_bootstrap, rng)
            rho = _spearman_rows(draws[:, :k], draws[:, k:])
        lo, hi = percentile_interval(rho, ci)
    return {"rho": float(point), "ci_low": float(lo), "ci_high": float(hi), "n_units": k,
            "n_items": len(ids), "n_bootstrap": int(n_bootstrap)}


#: ROME's sites per family: the FFW at the last subject token, attention at the last token.
ROME_POSITIONS: dict[str, str] = {"mlp": "subject_last", "attn": "last"}


def layer_profiles(items: pd.DataFrame, sensitivity: pd.DataFrame, *, model: str,
                   positions: Mapping[str, str] | None = None, task: str | None = None,
                   n_bootstrap: int = 2000, ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per family and layer, the mean causal effect (:func:`trace_effects` at
    ``positions[family]``, ROME's sites by default) and the mean pruning drop
    (:func:`layer_sensitivity_items` rows, with a ``family`` column), each with a percentile
    bootstrap interval over prompts: the input of
    :func:`lenskit.plots.fig_trace_vs_pruning`.

    Returns columns ``model``, ``measure`` (``"causal effect"``, ``"pruning drop"``),
    ``family``, ``layer``, ``value``, ``ci_low``, ``ci_high``, ``n``.
    """
    positions = dict(ROME_POSITIONS if positions is None else positions)
    if "family" not in sensitivity.columns:
        raise UsageError("sensitivity needs a 'family' column (mlp / attn)")
    rng = np.random.default_rng(seed)
    rows = []
    for fam, pos in positions.items():
        sides = {"causal effect": trace_effects(items, kind=fam, position=pos, task=task),
                 "pruning drop": sensitivity[sensitivity["family"] == fam]}
        for measure, frame in sides.items():
            units = list(dict.fromkeys(frame["unit"]))
            ids = list(dict.fromkeys(frame["instance_id"]))
            mat = _matrix(frame, units, ids)
            lo = hi = np.full(len(units), np.nan)
            if n_bootstrap and len(ids) > 1:
                lo, hi = percentile_interval(bootstrap_means(mat, None, n_bootstrap, rng), ci)
            layer = frame.groupby("unit", sort=False)["layer"].first()
            for k, u in enumerate(units):
                rows.append({"model": model, "measure": measure, "family": fam,
                             "layer": int(layer[u]), "value": float(mat[k].mean()),
                             "ci_low": float(np.atleast_1d(lo)[k]),
                             "ci_high": float(np.atleast_1d(hi)[k]), "n": len(ids)})
    return pd.DataFrame(rows)


def layer_agreement(items: pd.DataFrame, sensitivity: pd.DataFrame, *,
                    positions: Iterable[str] = ("subject_last", "last", "all", "rome"),
                    task: str | None = None, n_bootstrap: int = 2000, ci: float = 0.95,
                    seed: int = 0) -> pd.DataFrame:
    """Spearman correlations across layers between the causal effects of a family's sites
    at each of ``positions`` (``"rome"``: the FFW at the last subject token, attention at
    the last token) and the same family's pruning drops (:func:`layer_sensitivity_items`
    rows of both families, with their ``family`` column); and of both families together
    (``family == "mlp+attn"``, units ``mlp@L`` and ``attn@L``). Positions the trace lacks
    are skipped.

    Returns one row per (family, position): ``family``, ``position`` and
    :data:`AGREEMENT_COLUMNS`.
    """
    rows = []
    have = set(zip(items["kind_of_site"], items["position"], strict=True))
    for pos in positions:
        parts = {}
        for fam in ("mlp", "attn"):
            where = ROME_POSITIONS[fam] if pos == "rome" else pos
            if (fam, where) not in have:
                continue
            causal = trace_effects(items, kind=fam, position=where, task=task)
            other = sensitivity[sensitivity["family"] == fam]
            parts[fam] = (causal, other)
            rows.append({"family": fam, "position": pos,
                         **rank_agreement(causal, other, n_bootstrap=n_bootstrap, ci=ci,
                                          seed=seed)})
        if len(parts) == 2:
            both = [pd.concat([parts["mlp"][k], parts["attn"][k]], ignore_index=True)
                    for k in (0, 1)]
            rows.append({"family": "mlp+attn", "position": pos,
                         **rank_agreement(*both, n_bootstrap=n_bootstrap, ci=ci, seed=seed)})
    return pd.DataFrame(rows, columns=["family", "position", *AGREEMENT_COLUMNS])
