"""Evaluate a model on task sets: tidy per-instance rows and bootstrapped aggregates.

``evaluate(model, task)`` scores every instance (see :mod:`lenskit.tasks.scoring` for how
the computation is shared between gold scoring and greedy decoding) and returns an
:class:`EvalResult`. Two backends give the same predictions on an unhooked model:

- ``"hf"`` (default): the plain HF model that shares the bridge's weights; decoding
  reuses a key-value cache. Pruned weights (applied in place) are seen by both.
- ``"bridge"``: the TransformerBridge forward, so ``fwd_hooks`` (TransformerLens
  ``(hook_name_or_filter, fn)`` pairs, as in ``run_with_hooks``) apply to every pass;
  greedy decoding re-runs the prompt per generated token (the bridge's KV cache is wrong).
  Hooks see the gold answer's tokens appended after the prompt in the first pass.

Few-shot prompts whose demonstrations are shared by every item (see
:mod:`lenskit.tasks.templates`) share a token prefix; on the ``hf`` backend that prefix is
encoded once per task and its key-value cache reused for every batch (``prefix_cache``).

A task's ``config`` may set ``stop`` (strings that end an answer besides the newline, e.g.
``["."]``) and ``fold_accents`` (exact match on accent-free forms).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lenskit.errors import UsageError
from lenskit.models import model_info
from lenskit.tasks.core import TaskSet, check_task_sets
from lenskit.tasks.probe import observe_prompt_patterns
from lenskit.tasks.results import EvalResult
from lenskit.tasks.runners import progress_bar, run_perplexity, run_qa
from lenskit.tasks.scoring import BridgeBackend, HFBackend

__all__ = ["BACKENDS", "POOLED_BUCKETS", "ROW_COLUMNS", "bucket_pools", "evaluate",
           "evaluate_suite", "pool_buckets"]

BACKENDS = ("hf", "bridge")
DECODES = ("auto", "cache", "rerun")
ROW_COLUMNS = (
    "task", "kind", "category", "instance_id", "prompt_tokens", "prediction", "gold",
    "correct", "logprob", "scored_tokens", "gold_rank", "first_token_correct", "memorised",
    "generated_tokens", "stopped",
)


def _check_args(task, batch_size, backend, fwd_hooks, max_new_tokens, n_bootstrap, decode):
    if not isinstance(task, TaskSet):
        raise UsageError(f"task must be a TaskSet, got {type(task).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise UsageError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; allowed: {BACKENDS}")
    if fwd_hooks and backend != "bridge":
        raise UsageError("fwd_hooks run on the TransformerBridge: pass backend='bridge'")
    if fwd_hooks is not None:
        for h in fwd_hooks:
            if not (isinstance(h, (tuple, list)) and len(h) == 2 and callable(h[1])
                    and (isinstance(h[0], str) or callable(h[0]))):
                raise UsageError(f"each fwd_hook must be a (hook_name_or_filter, fn) pair, "
                                 f"got {h!r}")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, (int, np.integer))
                                       or max_new_tokens < 1):
        raise UsageError(f"max_new_tokens must be None or an int >= 1, got {max_new_tokens!r}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise UsageError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    if decode not in DECODES:
        raise UsageError(f"unknown decode {decode!r}; allowed: {DECODES}")
    if decode == "cache" and backend == "bridge":
        raise UsageError("decode='cache' is not available on the bridge (its key-value cache "
                         "gives wrong logits); use backend='hf' or decode='rerun'")


def _check_hook_names(model, fwd_hooks) -> None:
    """Unknown hook names fail here, before any hook is attached."""
    known = set(getattr(model, "hook_dict", {}) or {})
    aliases = getattr(model, "hook_aliases", {}) or {}
    known |= set(aliases) if isinstance(aliases, Mapping) else set()
    for name, _ in fwd_hooks:
        if isinstance(name, str) and name not in known:
            near = sorted(k for k in known if k.split(".")[-1] == name.split(".")[-1])[:3]
            raise UsageError(f"unknown hook name {name!r}"
                             + (f"; hooks with that ending: {near}" if near else "")
                             + " (see model.hook_dict for all hook names)")


def evaluate(
    model,
    task: TaskSet,
    batch_size: int = 32,
    backend: str = "hf",
    fwd_hooks: Sequence[tuple[Any, Any]] | None = None,
    max_new_tokens: int | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    decode: str = "auto",
    probe=None,
    prefix_cache: bool = True,
    progress: bool | None = None,
) -> EvalResult:
    """Evaluate ``model`` (a bridge from :func:`lenskit.load_model`) on one task set.

    Args:
        model: the TransformerBridge; its tokenizer and plain HF twin come from
            :func:`lenskit.model_info`.
        task: a :class:`TaskSet`.
        batch_size: prompts (or windows) per forward pass.
        backend: ``"hf"`` (fast, KV cache) or ``"bridge"`` (hooks apply).
        fwd_hooks: TransformerLens forward hooks, bridge backend only.
        max_new_tokens: greedy decoding limit in tokens (the stopping newline counts);
            default: the longest answer or alias of the set in tokens, plus 2 (room for a
            trailing punctuation mark and the newline).
        n_bootstrap: resamples for the confidence intervals of :meth:`EvalResult.summary`
            (0: no intervals).
        seed: seeds the bootstrap.
        decode: ``"auto"`` (KV cache on ``hf``, re-run on ``bridge``), ``"cache"`` or
            ``"rerun"`` (re-run the prompt per token; for checks and benchmarks).
        probe: a :class:`~lenskit.tasks.probe.PromptProbe` (e.g.
            :class:`lenskit.analysis.AttentionProbe`) that receives the attention patterns
            of the prompt passes (``hf`` backend, QA and function tasks): pattern metrics
            at the cost of eager attention, with no extra forward pass.
        prefix_cache: encode a token prefix shared by all prompts (at least
            :data:`MIN_SHARED_PREFIX` tokens, e.g. fixed few-shot demonstrations) once and
            reuse its key-value cache (``hf`` backend without a probe; same predictions).
        progress: a tqdm bar over the instances (shown only once the evaluation has run
            3 s); ``None``: on when stderr is a terminal and not under pytest.

    Returns:
        An :class:`EvalResult` (one row per instance; ``.summary()`` aggregates).
    """
    _check_args(task, batch_size, backend, fwd_hooks, max_new_tokens, n_bootstrap, decode)
    info = model_info(model)
    tok = info.tokenizer
    hf_backend = HFBackend(info.hf)
    vocab = hf_backend.vocab_size
    runner = hf_backend if backend == "hf" else BridgeBackend(model, vocab)
    mode = decode if decode != "auto" else ("cache" if backend == "hf" else "rerun")
    if fwd_hooks:
        _check_hook_names(model, fwd_hooks)
    hooks = model.hooks(fwd_hooks=list(fwd_hooks)) if fwd_hooks else contextlib.nullcontext()
    if probe is not None and (backend != "hf" or task.kind == "perplexity"):
        raise UsageError(f"probe needs backend='hf' and a QA or function task; got backend "
                         f"{backend!r}, task kind {task.kind!r}")
    observing = (observe_prompt_patterns(info, probe) if probe is not None
                 else contextlib.nullcontext())
    t0 = time.perf_counter()
    bar = progress_bar(progress, len(task), task.name)
    with torch.inference_mode(), hooks, observing as switch, bar:
        if task.kind == "perplexity":
            rows, extra = run_perplexity(task, tok, runner, vocab, batch_size, bar)
        else:
            share = bool(prefix_cache) and backend == "hf" and probe is None
            rows, extra = run_qa(task, tok, runner, hf_backend, batch_size, max_new_tokens,
                                  mode, switch, share, bar)
    meta = {"backend": backend, "decode": mode, "batch_size": int(batch_size),
            "model": info.spec, "tasks": {task.name: {
                **extra, "seconds": time.perf_counter() - t0, "n": len(task),
                "source": task.source, "split": task.split, "seed": task.seed,
                "chance": task.chance}}}
    return EvalResult(rows=rows, n_bootstrap=int(n_bootstrap), seed=seed, meta=meta)


def evaluate_suite(
    model,
    tasks: Mapping[str, TaskSet] | Iterable[TaskSet],
    batch_size: int = 32,
    backend: str = "hf",
    fwd_hooks: Sequence[tuple[Any, Any]] | None = None,
    max_new_tokens: int | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    decode: str = "auto",
    probe=None,
    prefix_cache: bool = True,
    progress: bool | None = None,
) -> EvalResult:
    """Evaluate every task set (a dict name -> set, or a list) and concatenate the results.

    The other arguments are those of :func:`evaluate`, applied to every set (each set gets
    its own progress bar, named for the set). Tasks split by popularity bucket
    (``<base>_head``, ``<base>_torso``, ``<base>_tail``: the organism's closed-book tasks,
    PopQA) are also reported pooled as ``<base>`` (:func:`pool_buckets`: no extra forward
    passes), so that closed-book recall over all facts sits beside the buckets.
    """
    task_list = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
    if not task_list:
        raise UsageError("evaluate_suite needs at least one task set")
    check_task_sets(task_list)
    return pool_buckets(EvalResult.concat([
        evaluate(model, t, batch_size, backend, fwd_hooks, max_new_tokens, n_bootstrap, seed,
                 decode=decode, probe=probe, prefix_cache=prefix_cache, progress=progress)
        for t in task_list]))


#: The popularity buckets whose tasks :func:`pool_buckets` pools (the organism's and PopQA's).
POOLED_BUCKETS = ("head", "torso", "tail")


def bucket_pools(tasks: Iterable[str]) -> dict[str, list[str]]:
    """``{pool: its bucket tasks}`` for every ``<base>`` among ``tasks`` whose
    ``<base>_head/_torso/_tail`` are there too: the pools :func:`pool_buckets` adds. Readers
    use it to count each instance once (a pool repeats its buckets' rows)."""
    names = set(tasks)
    return {base: [f"{base}_{b}" for b in POOLED_BUCKETS] for base in sorted(names)
            if all(f"{base}_{b}" in names for b in POOLED_BUCKETS)}


def pool_buckets(result: EvalResult) -> EvalResult:
    """``result`` with, for every ``<base>`` whose ``<base>_head``, ``<base>_torso`` and
    ``<base>_tail`` tasks it holds (and no ``<base>`` task), the pooled task ``<base>``:
    their instances together (:meth:`EvalResult.pooled`). Buckets of equal size (the
    organism's terciles, sampled alike) make it recall over all facts."""
    names = list(dict.fromkeys(result.rows["task"]))
    suffix = "_" + POOLED_BUCKETS[0]
    for name in names:
        if not name.endswith(suffix):
            continue
        base = name[: -len(suffix)]
        parts = [f"{base}_{b}" for b in POOLED_BUCKETS]
        if base not in names and all(p in names for p in parts):
            result = result.pooled(base, parts)
    return result
