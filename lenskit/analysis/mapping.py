"""The machinery shared by every map: a prepared suite, its dense evaluation (once), and
one tidy row per (intervention, task, metric) with the drop from dense and its uncertainty.

A *map* intervenes on one part of the model at a time (prunes a site group, ablates a head
or a group of FFW neurons), evaluates the task suite, and records how much every task got
worse. All maps return frames with the columns of :data:`MAP_COLUMNS`: the sweep's
results schema (:data:`lenskit.results.schema.RESULT_COLUMNS`, same names for the same
concepts) followed by the map-only columns, so that maps of different kinds, and maps and
sweep results, concatenate and plot alike (:func:`validate_maps` checks a map frame):

- ``analysis``: ``"sensitivity"``, ``"cumulative"``, ``"head_ablation"``,
  ``"neuron_ablation"``; ``method``: the pruning method, or the ablation mode
  (``"zero"``, ``"mean"``).
- ``scope``: what was intervened on, as a scope string (``"attn.q@3"``, ``"mlp@0-2"``) or,
  for ablations, the site whose input is ablated with the units in brackets
  (``"attn.o@1[head=2]"``, ``"mlp.out@0[chunk=1/4]"``).
- ``layer``: the group's layer (for cumulative maps: ``k``, the layer the prefix/suffix
  ends/starts at); ``first_layer``/``last_layer``: the layers it spans; ``direction``:
  ``"bottom_up"``/``"top_down"`` for cumulative maps, ``""`` otherwise.
- ``family`` (``attn``, ``mlp``, ``all``), ``component`` (a site component, or ``all``).
- ``unit``: ``"weights"`` (pruning), ``"head"`` or ``"neurons"``; ``head``: the head index
  (``<NA>`` unless ``unit == "head"``); ``unit_label``: a display name of the unit group.
- ``target_sparsity``: the requested fraction of the group's weights (pruning) or of the site's
  input units (ablation); ``achieved_sparsity`` = ``params_removed / group_params``, where
  ``params_removed`` counts the weights set to zero (for ablations: the weights of the
  ablated input columns, which is what zero-ablation amounts to) and ``group_params`` the
  weights of the group's sites. ``model_params``: all block-linear weights of the model;
  ``remaining_params = model_params - params_removed``.
- ``structure`` (``"unstructured"``) and ``allocation`` (``"uniform"``): as in a sweep;
  ``cell_id``: ``analysis|method|scope|target_sparsity|seed``; ``ci_low``/``ci_high``:
  the value's interval (NaN: maps evaluate without one).
- ``task``, ``kind``, ``category``, ``metric``, ``value``, ``n``: as in
  :meth:`lenskit.tasks.EvalResult.summary`.
- ``baseline``: the dense model's value of the same task and metric (evaluated once per
  map); ``drop``: the absolute change, signed so that positive is worse
  (``baseline - value``; ``value - baseline`` for perplexity-like metrics);
  ``relative_drop``: ``drop / |baseline|`` (:func:`lenskit.results.schema.relative_drop`).
- ``relative_drop_low``/``relative_drop_high``: a percentile bootstrap interval of
  ``relative_drop``, *paired* over instances (each resample draws the same instances for
  the dense and the intervened model, so instance difficulty cancels); NaN when
  ``n_bootstrap == 0``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pandas as pd

from lenskit.models import model_info
from lenskit.names import METHODS
from lenskit.results.schema import (
    DENSE,
    EXP_METRICS,
    MEASUREMENT_KEYS,
    RESULT_COLUMNS,
    higher_is_better,
    instances_from_eval,
    relative_drop,
    validate_results,
)
from lenskit.stats import paired_bootstrap_drop, percentile_interval
from lenskit.tasks import EvalResult, TaskSet, evaluate, evaluate_suite

__all__ = [
    "ABLATION_MODES",
    "MAP_COLUMNS",
    "MAP_EXTRA_COLUMNS",
    "MAP_KEYS",
    "METRICS",
    "MapEvaluator",
    "check_dense",
    "check_layers",
    "check_sparsities",
    "finish_frame",
    "prepare_suite",
    "validate_maps",
]

#: How an ablation replaces a unit's input: zeros, or its mean over the task's prompts.
ABLATION_MODES: tuple[str, ...] = ("zero", "mean")

#: Column -> dtype of the columns maps add to the results schema (see the module docstring).
MAP_EXTRA_COLUMNS: dict[str, str] = {
    "analysis": "str",
    "layer": "int64",
    "first_layer": "int64",
    "last_layer": "int64",
    "direction": "str",
    "family": "str",
    "component": "str",
    "unit": "str",
    "head": "Int64",
    "unit_label": "str",
    "group_params": "int64",
    "drop": "float64",
    "relative_drop_low": "float64",
    "relative_drop_high": "float64",
}
#: Column -> dtype of every map frame: the results schema, then the map-only columns.
MAP_COLUMNS: dict[str, str] = {**RESULT_COLUMNS, **MAP_EXTRA_COLUMNS}
#: Columns that identify one map measurement (a cumulative map measures the same scope
#: from both directions).
MAP_KEYS: tuple[str, ...] = (*MEASUREMENT_KEYS, "analysis", "direction")

#: Metrics the task suite reports (``EvalResult.summary``).
METRICS: tuple[str, ...] = ("em", "logprob", "first_token_acc", "mrr", "memorised_rate",
                            "perplexity", "nll_per_token")
_MEASURE = ["task", "kind", "category", "metric", "value", "n"]


def check_sparsities(sparsities: Iterable[float], name: str = "sparsities") -> tuple[float, ...]:
    """Distinct fractions in [0, 1], in the order given; ValueError otherwise."""
    if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, Iterable):
        sparsities = (sparsities,)  # type: ignore[assignment]
    out: list[float] = []
    for s in sparsities:  # type: ignore[union-attr]
        if isinstance(s, bool):
            raise ValueError(f"{name} must hold numbers in [0, 1], got {s!r}")
        try:
            v = float(s)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold numbers in [0, 1], got {s!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must hold numbers in [0, 1], got {s!r}")
        if v not in out:
            out.append(v)
    if not out:
        raise ValueError(f"{name} is empty; give at least one value in [0, 1]")
    return tuple(out)


def check_layers(layers: Iterable[int] | int | None, n_layers: int) -> tuple[int, ...]:
    """Sorted distinct layer indices in ``0..n_layers-1`` (all when ``None``)."""
    if layers is None:
        return tuple(range(n_layers))
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        layers = (int(layers),)
    out = []
    for v in layers:  # type: ignore[union-attr]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) \
                or not 0 <= v < n_layers:
            raise ValueError(f"layers must be ints in 0..{n_layers - 1} (the model has "
                             f"{n_layers} layers), got {v!r}")
        out.append(int(v))
    if not out:
        raise ValueError("layers is empty; give at least one layer (or None for all)")
    return tuple(sorted(set(out)))


def check_dense(model) -> None:
    """Maps intervene relative to the dense model: refuse a model that is pruned now."""

    modified = sorted(model_info(model).originals)
    if modified:
        raise ValueError(
            f"the model has {len(modified)} modified site(s) (e.g. {modified[0]}); maps "
            "measure drops from the dense model: call lenskit.restore(model) first")


def prepare_suite(suite, tasks: Iterable[str] | None = None, n_per_task: int | None = None,
                  seed: int = 0) -> dict:
    """The task sets to evaluate, by name: ``suite`` (a dict or a list of
    :class:`~lenskit.tasks.TaskSet`), restricted to ``tasks`` (names) and to
    ``n_per_task`` instances per task (a seeded subset; smaller sets are kept whole)."""

    items = list(suite.values()) if isinstance(suite, Mapping) else list(suite)
    if not items:
        raise ValueError("the suite is empty; give a dict or list of TaskSets")
    for t in items:
        if not isinstance(t, TaskSet):
            raise ValueError(f"the suite must hold TaskSets, got a {type(t).__name__}")
    by_name = {t.name: t for t in items}
    if len(by_name) != len(items):
        raise ValueError("task names in the suite must be unique")
    if tasks is not None:
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        unknown = [n for n in names if n not in by_name]
        if unknown or not names:
            raise ValueError(f"unknown task(s) {unknown or names}; the suite has "
                             f"{sorted(by_name)}")
        by_name = {n: by_name[n] for n in names}
    if n_per_task is not None:
        if isinstance(n_per_task, bool) or not isinstance(n_per_task, (int, np.integer)) \
                or n_per_task < 1:
            raise ValueError(f"n_per_task must be an int >= 1 or None, got {n_per_task!r}")
        by_name = {n: t.subset(min(int(n_per_task), len(t)), seed=seed)
                   for n, t in by_name.items()}
    return by_name


class MapEvaluator:
    """Evaluates a fixed suite on one model: the dense model once at construction, then
    any number of interventions, each turned into tidy rows against the dense baseline.

    Args:
        model: a bridge from :func:`lenskit.load_model`, dense (see :func:`check_dense`).
        suite: the prepared task sets (:func:`prepare_suite`).
        batch_size: prompts per forward pass.
        metrics: keep only these metrics (``None``: all the suite reports).
        n_bootstrap: resamples of the paired bootstrap interval of ``relative_drop``.
        seed: seeds the bootstrap (per task and metric, so order does not matter).
    """

    def __init__(self, model, suite: Mapping, *, batch_size: int = 64,
                 metrics: Sequence[str] | None = None, n_bootstrap: int = 500,
                 seed: int = 0) -> None:

        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
                or n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
        if metrics is not None:
            metrics = [metrics] if isinstance(metrics, str) else list(metrics)
            bad = [m for m in metrics if m not in METRICS]
            if bad or not metrics:
                raise ValueError(f"unknown metric(s) {bad or metrics}; allowed: {METRICS}")
        self.model = model
        self.info = model_info(model)
        self.suite = dict(suite)
        self.batch_size = int(batch_size)
        self.metrics = None if metrics is None else tuple(metrics)
        self.n_bootstrap = int(n_bootstrap)
        self.seed = int(seed)
        self.model_params = self.info.total_params
        dense = self.evaluate()
        self.dense_result = dense
        self.dense = self._summary(dense)
        self._dense_instances = self._instances(dense)
        self.n_evaluations = 0  # interventions evaluated so far (the dense one excluded)

    # Evaluation
    def evaluate(self, *, backend: str = "hf",
                 fwd_hooks: Callable[[Any], list] | None = None,
                 context: Callable[[Any], AbstractContextManager] | None = None):
        """Evaluate the suite as the model is now; returns an ``EvalResult``.

        ``fwd_hooks(task)`` gives TransformerLens hooks (bridge backend) and
        ``context(task)`` a context manager entered around the task's evaluation, so that
        an intervention may depend on the task (mean ablation with per-task means).
        """

        if fwd_hooks is None and context is None:
            return evaluate_suite(self.model, self.suite, batch_size=self.batch_size,
                                  backend=backend, n_bootstrap=0)
        parts = []
        for task in self.suite.values():
            hooks = fwd_hooks(task) if fwd_hooks is not None else None
            with context(task) if context is not None else nullcontext():
                parts.append(evaluate(self.model, task, batch_size=self.batch_size,
                                      backend=backend, fwd_hooks=hooks, n_bootstrap=0))
        return EvalResult.concat(parts)

    def measure(self, labels: Mapping[str, Any], **evaluate_kwargs) -> pd.DataFrame:
        """Evaluate (see :meth:`evaluate`) and return the rows of this intervention."""
        result = self.evaluate(**evaluate_kwargs)
        self.n_evaluations += 1
        return self.rows(result, labels)

    def dense_rows(self, labels: Mapping[str, Any]) -> pd.DataFrame:
        """The dense model's own rows (``value == baseline``, no drop)."""
        return self.rows(self.dense_result, labels)

    # Rows
    def _summary(self, result) -> pd.DataFrame:
        s = result.summary(n_bootstrap=0)[_MEASURE]
        if self.metrics is not None:
            s = s[s["metric"].isin(self.metrics)]
        return s.reset_index(drop=True)

    def _instances(self, result) -> dict[tuple[str, str], pd.DataFrame]:
        inst = instances_from_eval(result.rows, "map", self.metrics)
        return {(str(t), str(m)): g[["instance_id", "value", "weight"]]
                for (t, m), g in inst.groupby(["task", "metric"], sort=False)}

    def rows(self, result, labels: Mapping[str, Any]) -> pd.DataFrame:
        """Tidy rows of one evaluated intervention: ``labels`` (constant columns) first,
        then the measurement, the dense baseline, ``drop``, ``relative_drop`` and its
        paired bootstrap interval."""
        s = self._summary(result)
        base = self.dense.set_index(["task", "metric"])["value"]
        s["baseline"] = [float(base.get((t, m), np.nan))
                         for t, m in zip(s["task"], s["metric"], strict=True)]
        sign = np.array([1.0 if higher_is_better(m) else -1.0 for m in s["metric"]])
        s["drop"] = sign * (s["baseline"].to_numpy() - s["value"].to_numpy())
        s["relative_drop"] = (relative_drop(s["value"].to_numpy(), s["baseline"].to_numpy(),
                                            s["metric"].tolist()) if len(s) else [])
        lo = np.full(len(s), np.nan)
        hi = np.full(len(s), np.nan)
        if self.n_bootstrap:
            inst = self._instances(result)
            for i, (t, m) in enumerate(zip(s["task"], s["metric"], strict=True)):
                lo[i], hi[i] = self._paired_interval(t, m, inst.get((t, m)))
        s["relative_drop_low"] = lo
        s["relative_drop_high"] = hi
        out = pd.concat([pd.DataFrame({k: [v] * len(s) for k, v in labels.items()}), s],
                        axis=1)
        return out

    def _paired_interval(self, task: str, metric: str, pruned: pd.DataFrame | None,
                         ci: float = 0.95) -> tuple[float, float]:
        dense = self._dense_instances.get((task, metric))
        if dense is None or pruned is None:
            return np.nan, np.nan
        if len(dense) == len(pruned) and np.array_equal(dense["instance_id"].to_numpy(),
                                                        pruned["instance_id"].to_numpy()):
            vd, wd = dense["value"].to_numpy(), dense["weight"].to_numpy()
            vp = pruned["value"].to_numpy()
        else:  # an instance lacks a value on one side (e.g. no gold rank): pair the rest
            both = dense.merge(pruned, on="instance_id", suffixes=("_d", "_p"))
            vd, wd = both["value_d"].to_numpy(), both["weight_d"].to_numpy()
            vp = both["value_p"].to_numpy()
        if len(vd) == 0:
            return np.nan, np.nan
        d = paired_bootstrap_drop(
            vd, vp, wd, lambda value, base: relative_drop(value, base, metric),
            self.n_bootstrap, [self.seed, zlib.crc32(f"{task}|{metric}".encode())],
            exp=metric in EXP_METRICS)[:, 0]
        d = d[np.isfinite(d)]  # a resample whose dense value is 0 has no relative drop
        if not len(d):
            return np.nan, np.nan
        return percentile_interval(d, ci)


def finish_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate map rows and give them the columns and dtypes of :data:`MAP_COLUMNS`.

    Columns a map does not set get their defaults: ``structure`` "unstructured",
    ``allocation`` "uniform", ``remaining_params`` from ``model_params - params_removed``,
    ``cell_id`` from the intervention's labels, NaN intervals.
    """
    if parts:
        df = pd.concat(parts, ignore_index=True)
    else:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in MAP_COLUMNS})
    defaults = {"structure": "unstructured", "allocation": "uniform"}
    for col, value in defaults.items():
        if col not in df.columns:
            df[col] = value
    if "remaining_params" not in df.columns and len(df):
        df["remaining_params"] = df["model_params"] - df["params_removed"]
    if "cell_id" not in df.columns and len(df):
        df["cell_id"] = [f"{a}|{m}|{g}|{s:g}|{seed}" for a, m, g, s, seed in zip(
            df["analysis"], df["method"], df["scope"], df["target_sparsity"], df["seed"],
            strict=True)]
    for col, dtype in MAP_COLUMNS.items():
        if col not in df.columns:
            df[col] = pd.NA if dtype == "Int64" else ("" if dtype == "str" else np.nan)
        if dtype == "str":
            df[col] = df[col].fillna("").astype(str)
        elif dtype == "Int64":
            df[col] = pd.array(df[col], dtype="Int64")
        else:
            df[col] = df[col].astype(dtype)
    extras = [c for c in df.columns if c not in MAP_COLUMNS]
    return df[[*MAP_COLUMNS, *extras]].reset_index(drop=True)


def validate_maps(df: pd.DataFrame) -> pd.DataFrame:
    """Check a map frame: the results schema
    (:func:`~lenskit.results.schema.validate_results`) with the map-only columns of
    :data:`MAP_EXTRA_COLUMNS`, the ablation modes as methods too, and :data:`MAP_KEYS`
    identifying a measurement. Returns it with canonical dtypes and column order; raises
    :class:`~lenskit.results.schema.SchemaError` naming what is wrong."""
    return validate_results(df, extra_columns=MAP_EXTRA_COLUMNS,
                            methods=(DENSE, *METHODS, *ABLATION_MODES), keys=MAP_KEYS,
                            what="map table")
