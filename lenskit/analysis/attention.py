"""Attention patterns under pruning: per layer and head, dense versus pruned, on task prompts.

    from lenskit.analysis import attention_metrics, attention_drift
    df = attention_metrics(model, suite["open_book"], masks=result)   # one pruning result
    drift = attention_drift(model, suite, {"wanda 50% attn": r1, "wanda 50% mlp": r2})

Patterns are read from the bridge's ``blocks.{l}.attn.hook_pattern`` (``[batch, head,
query, key]``, after the softmax; with grouped-query attention one pattern per *query*
head) and reduced inside the hook by :class:`~lenskit.analysis.attention_stats.PatternStats`
(entropy, first-token mass, Jensen-Shannon divergence to the dense model, answer-span mass,
induction and previous-token scores; definitions and which query positions count are in
:mod:`lenskit.analysis.attention_stats`). No pattern outlives its batch.

How the comparison runs, per batch of prompts (right-padded, longest first):

1. a dense forward; each layer's hook accumulates the dense metrics and keeps that layer's
   pattern (and its per-row entropy) as the reference for this batch;
2. per pruning configuration: the masks are applied with :func:`lenskit.models.pruned`
   (relative to the original weights, restored bitwise afterwards), a forward runs, and each
   layer's hook accumulates the pruned metrics and the divergence to the stored reference;
3. the references are dropped.

So memory holds at most one batch's dense patterns (``n_layers x batch x heads x T x T``
floats; :attr:`AttentionRun.peak_reference_bytes` reports it), and the dense forward is
shared by every configuration. The forward stops right after the last layer whose pattern
is needed (the rest of the model, including the unembedding, never runs).

This module holds the two analyses; their parts live beside it: prompts to token rows and
batches in :mod:`~lenskit.analysis.attention_inputs`, the forwards and hooks in
:mod:`~lenskit.analysis.attention_engine`, the in-evaluation probe in
:mod:`~lenskit.analysis.attention_probe`, the metric definitions in
:mod:`~lenskit.analysis.attention_stats`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lenskit.analysis.attention_engine import (
    AttentionRun,
    PatternEngine,
    check_batch_size,
    prune_config,
    stat_rows,
)
from lenskit.analysis.attention_inputs import (
    PromptRows,
    RepeatedTokens,
    pad_id,
    pattern_batches,
    prompt_rows,
    repeated_token_ids,
)
from lenskit.analysis.attention_probe import AttentionProbe
from lenskit.analysis.attention_stats import METRIC_QUERIES
from lenskit.errors import UsageError
from lenskit.models import model_info
from lenskit.tasks.core import TaskSet, check_task_sets

__all__ = [
    "ATTENTION_COLUMNS",
    "DRIFT_COLUMNS",
    "AttentionProbe",
    "AttentionRun",
    "RepeatedTokens",
    "attention_drift",
    "attention_metrics",
    "repeated_token_ids",
]

#: Columns of :func:`attention_metrics`.
ATTENTION_COLUMNS: tuple[str, ...] = ("layer", "head", "metric", "queries", "model", "value",
                                      "n")
#: Columns of :func:`attention_drift`.
DRIFT_COLUMNS: tuple[str, ...] = (
    "config", "method", "structure", "allocation", "scope", "sparsity", "achieved_sparsity",
    "task", "kind", "category", "layer", "head", "metric", "queries", "dense", "value",
    "drift", "n",
)

# RepeatedTokens is frozen, so one shared default is safe.
_DEFAULT_REPEATS = RepeatedTokens()


def attention_metrics(
    model,
    prompts,
    *,
    masks=None,
    weights: Mapping[str, torch.Tensor] | None = None,
    reference: str | None = "dense",
    batch_size: int = 16,
    answer_spans: Sequence[tuple[int, int] | None] | None = None,
    layers: Sequence[int] | None = None,
    return_run: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, AttentionRun]:
    """Attention metrics per layer and head of ``model`` on ``prompts``, dense and pruned.

    Args:
        model: a bridge from :func:`lenskit.load_model` (not pruned when ``masks`` is given:
            the masks are applied inside and the weights restored bitwise after).
        prompts: a :class:`~lenskit.tasks.TaskSet` (QA prompts with their answer spans, or
            perplexity windows), a list of :class:`~lenskit.tasks.TaskInstance` s or of
            prompt strings, or a :class:`RepeatedTokens` (induction and previous-token
            scores).
        masks: what to compare with the dense model: a :class:`~lenskit.pruning.PruneResult`
            (its SparseGPT weights included), a :class:`~lenskit.models.MaskSet` or a dict
            site -> bool mask ``[out, in]``; None: only the model as it is.
        weights: replacement weights for ``masks`` (SparseGPT-style), with a MaskSet only.
        reference: ``"dense"``: also run the dense model and report its metrics and the
            Jensen-Shannon divergence of the pruned patterns to it; None: the pruned model
            only (half the forwards, no ``js``).
        batch_size: prompts per forward pass (memory: one batch's patterns of every layer).
        answer_spans: with prompt strings, one ``(start, end)`` character span of the answer
            stated in the prompt (or None) per prompt.
        layers: layer indices to measure (default all; the forward stops after the last).
        return_run: also return the :class:`AttentionRun` (raw sums, memory bookkeeping).

    Returns:
        A tidy frame with columns :data:`ATTENTION_COLUMNS`: ``layer``, ``head`` (query
        head), ``metric`` (``entropy``, ``sink``, ``js``, ``span_mass``, ``induction``,
        ``prev_token``), ``queries`` (``"all"``, ``"answer"``, ``"repeat"``), ``model``
        (``"dense"`` or ``"pruned"``; without masks, ``"dense"`` unless the model already
        has masks applied), ``value`` (the mean over ``n`` query rows). Definitions in
        :mod:`lenskit.analysis.attention_stats`.
    """
    info = model_info(model)
    batch_size = check_batch_size(batch_size)
    if reference not in ("dense", None):
        raise UsageError(f"reference must be 'dense' or None, got {reference!r}")
    if weights is not None and masks is None:
        raise UsageError("weights need masks")
    engine = PatternEngine(model, layers)
    configs = [] if masks is None else [prune_config(info, "pruned", masks, weights)]
    src = prompt_rows(info, prompts, answer_spans, engine.vocab_size)
    engine.check_rows(src)
    batches = pattern_batches(src, batch_size, pad_id(info.tokenizer))
    run = engine.run(batches, configs, reference == "dense")
    rows: list[dict] = []
    if run.dense is not None:
        label = "dense" if (configs or not info.originals) else "pruned"
        rows += stat_rows(run.dense, engine.layers, model=label)
    for stats in run.pruned.values():
        rows += stat_rows(stats, engine.layers, model="pruned")
    df = pd.DataFrame(rows, columns=list(ATTENTION_COLUMNS))
    df = _sorted(df, ["model"])
    return (df, run) if return_run else df


def _sorted(df: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
    order = {k: i for i, k in enumerate(METRIC_QUERIES)}
    key = pd.Series([order[(m, q)] for m, q in zip(df["metric"], df["queries"], strict=True)],
                    index=df.index, dtype="int64")
    out = df.assign(_k=key).sort_values([*first, "_k", "layer", "head"], kind="stable")
    return out.drop(columns="_k").reset_index(drop=True)


def attention_drift(
    model,
    suite,
    prune_results: Mapping[str, Any],
    *,
    batch_size: int = 16,
    repeats: RepeatedTokens | None = _DEFAULT_REPEATS,
    layers: Sequence[int] | None = None,
    max_prompts: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Attention drift of several pruning configurations on every task of a suite.

    For each task (and the ``repeats`` sequences, unless None) the dense forward of each
    batch is run once and shared by all configurations (see the module docstring), so the
    cost is one forward per configuration plus one dense forward per batch.

    Args:
        model: an unpruned bridge from :func:`lenskit.load_model`.
        suite: dict name -> :class:`~lenskit.tasks.TaskSet` (e.g.
            :func:`lenskit.tasks.organism_suite`), or a list of task sets.
        prune_results: label -> :class:`~lenskit.pruning.PruneResult` or
            :class:`~lenskit.models.MaskSet` (e.g. one per sparsity x scope).
        batch_size, layers: as in :func:`attention_metrics`.
        repeats: the repeated-token sequences for ``induction`` and ``prev_token``
            (reported under task ``repeats.name``); None skips them.
        max_prompts: measure at most this many prompts per task (a seeded subset).
        seed: seeds that subset.

    Returns:
        A tidy frame with columns :data:`DRIFT_COLUMNS`: the configuration (``config``
        label, ``method``, ``structure``, ``allocation``, ``scope``, ``sparsity`` as asked,
        ``achieved_sparsity``), the task (``task``, ``kind``, ``category``), ``layer``,
        ``head``, ``metric``, ``queries``, ``dense`` (the dense model's value; 0 for
        ``js``), ``value`` (the pruned model's), ``drift = value - dense`` and ``n``.
    """
    info = model_info(model)
    batch_size = check_batch_size(batch_size)
    tasks = list(suite.values()) if isinstance(suite, Mapping) else list(suite)
    if not tasks and repeats is None:
        raise UsageError("attention_drift needs at least one task set (or repeats)")
    check_task_sets(tasks)
    if not isinstance(prune_results, Mapping) or not prune_results:
        raise UsageError("prune_results must be a non-empty dict label -> PruneResult")
    for label in prune_results:
        if not isinstance(label, str) or not label:
            raise UsageError(f"configuration labels must be non-empty strings, got {label!r}")
    if max_prompts is not None and (isinstance(max_prompts, bool) or
                                    not isinstance(max_prompts, (int, np.integer))
                                    or max_prompts < 1):
        raise UsageError(f"max_prompts must be None or an int >= 1, got {max_prompts!r}")
    if repeats is not None and not isinstance(repeats, RepeatedTokens):
        raise UsageError(f"repeats must be a RepeatedTokens or None, got {repeats!r}")
    if repeats is not None and repeats.name in {t.name for t in tasks}:
        raise UsageError(f"repeats.name {repeats.name!r} is also a task name; rename it")
    engine = PatternEngine(model, layers)
    configs = [prune_config(info, label, r) for label, r in prune_results.items()]
    sources: list[PromptRows] = []
    for t in tasks:
        if not isinstance(t, TaskSet):
            raise UsageError(f"suite must hold TaskSets, got {type(t).__name__}")
        if max_prompts is not None and len(t) > max_prompts:
            t = t.subset(int(max_prompts), seed=seed)
        sources.append(prompt_rows(info, t, None, engine.vocab_size))
    if repeats is not None:
        sources.append(prompt_rows(info, repeats, None, engine.vocab_size))
    for src in sources:
        engine.check_rows(src)
    pad = pad_id(info.tokenizer)
    parts = []
    for src in sources:
        run = engine.run(pattern_batches(src, batch_size, pad), configs, reference=True)
        parts.append(_drift_rows(run, engine.layers, src, configs))
    df = pd.concat(parts, ignore_index=True)
    return df[list(DRIFT_COLUMNS)]


def _drift_rows(run: AttentionRun, layers, src: PromptRows, configs) -> pd.DataFrame:
    keys = ["layer", "head", "metric", "queries"]
    dense = pd.DataFrame(list(run.dense.records(layers)))
    dense = dense.rename(columns={"value": "dense"}).drop(columns="n")
    out = []
    for cfg in configs:
        p = pd.DataFrame(list(run.pruned[cfg.label].records(layers)))
        p = p.merge(dense, on=keys, how="left")
        p.loc[p["metric"] == "js", "dense"] = 0.0  # the dense pattern's divergence to itself
        p["drift"] = p["value"] - p["dense"]
        m = cfg.meta
        p = p.assign(config=cfg.label, method=m.get("method"), structure=m.get("structure"),
                     allocation=m.get("allocation"), scope=m.get("scope"),
                     sparsity=float("nan") if m.get("sparsity") is None
                     else float(m["sparsity"]),
                     achieved_sparsity=float(m["achieved_sparsity"]),
                     task=src.name, kind=src.kind, category=src.category)
        out.append(_sorted(p, []))
    return pd.concat(out, ignore_index=True)
