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
import os
import sys
import time
import warnings
import weakref
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm  # not tqdm.auto: importing it in Jupyter without ipywidgets warns

from lenskit.models import model_info
from lenskit.stats import proportion_interval
from lenskit.tasks.core import TaskInstance, TaskSet, check_task_sets
from lenskit.tasks.encoding import (
    _pad_id,
    answer_token_ids,
    encode_texts,
    stop_token_mask,
    tokenizer_fingerprint,
)
from lenskit.tasks.normalize import matches_any
from lenskit.tasks.probe import observe_prompt_patterns
from lenskit.tasks.scoring import BridgeBackend, HFBackend, QAScores, score_qa, score_windows

__all__ = ["BACKENDS", "PROPORTION_METRICS", "ROW_COLUMNS", "EvalResult", "evaluate",
           "evaluate_suite"]

BACKENDS = ("hf", "bridge")
DECODES = ("auto", "cache", "rerun")
ROW_COLUMNS = (
    "task", "kind", "category", "instance_id", "prompt_tokens", "prediction", "gold",
    "correct", "logprob", "scored_tokens", "gold_rank", "first_token_correct", "memorised",
    "generated_tokens", "stopped",
)
# Extra tokens allowed beyond the longest answer: a trailing punctuation mark and the
# newline, so that "Paris.\n" ends by itself when " Paris" is one token.
_MAX_NEW_MARGIN = 2
# a progress bar appears only once an evaluation has run this long (seconds)
_PROGRESS_DELAY = 3.0

# A shared prompt prefix shorter than this is not worth a cache copy per batch.
MIN_SHARED_PREFIX = 16

# Tokenisation of a task set, per tokenizer (tasks are re-evaluated at every sparsity).
_ENCODED: weakref.WeakKeyDictionary[TaskSet, dict[str, Any]] = weakref.WeakKeyDictionary()


@dataclass
class _EncodedQA:
    prompts: list[list[int]]
    golds: list[list[int]]
    longest_answer: int
    fallbacks: int
    shared: int = 0  # tokens every prompt starts with (at most the shortest prompt - 1)


def _encode_qa(task: TaskSet, tokenizer) -> _EncodedQA:
    key = tokenizer_fingerprint(tokenizer)
    per_task = _ENCODED.setdefault(task, {})
    if key in per_task:
        return per_task[key]
    insts: Sequence[TaskInstance] = task.instances  # type: ignore[assignment]
    texts = [i.prompt for i in insts]
    prompts = encode_texts(tokenizer, texts)
    for inst, ids in zip(insts, prompts, strict=True):
        if not ids:
            raise ValueError(f"{task.name}: the prompt of {inst.id!r} tokenises to no tokens")
    golds, fallbacks = answer_token_ids(tokenizer, texts, [i.gold for i in insts], prompts)
    aliases = sorted({a for i in insts for a in i.answers[1:]})
    longest = max(len(g) for g in golds)
    if aliases:
        alias_ids = tokenizer([" " + a for a in aliases], add_special_tokens=False)["input_ids"]
        longest = max(longest, max(len(a) for a in alias_ids))
    enc = _EncodedQA(prompts, golds, longest, fallbacks, _shared_prefix(prompts))
    per_task[key] = enc
    return enc


def _shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest common token prefix, leaving every row one token of its own
    (the answer position must be computed per row)."""
    first = rows[0]
    n = min(len(r) for r in rows) - 1
    for r in rows[1:]:
        k = 0
        while k < n and r[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return max(n, 0)


def _stop_strings(task: TaskSet) -> tuple[str, ...]:
    stop = task.config.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    for s in stop:
        if not isinstance(s, str) or not s:
            raise ValueError(f"{task.name}: config['stop'] must hold non-empty strings, "
                             f"got {s!r}")
    return stop


def _max_positions(hf) -> int | None:
    cfg = hf.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _check_args(task, batch_size, backend, fwd_hooks, max_new_tokens, n_bootstrap, decode):
    if not isinstance(task, TaskSet):
        raise ValueError(f"task must be a TaskSet, got {type(task).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {BACKENDS}")
    if fwd_hooks and backend != "bridge":
        raise ValueError("fwd_hooks run on the TransformerBridge: pass backend='bridge'")
    if fwd_hooks is not None:
        for h in fwd_hooks:
            if not (isinstance(h, (tuple, list)) and len(h) == 2 and callable(h[1])
                    and (isinstance(h[0], str) or callable(h[0]))):
                raise ValueError(f"each fwd_hook must be a (hook_name_or_filter, fn) pair, "
                                 f"got {h!r}")
    if max_new_tokens is not None and (not isinstance(max_new_tokens, (int, np.integer))
                                       or max_new_tokens < 1):
        raise ValueError(f"max_new_tokens must be None or an int >= 1, got {max_new_tokens!r}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    if decode not in DECODES:
        raise ValueError(f"unknown decode {decode!r}; allowed: {DECODES}")
    if decode == "cache" and backend == "bridge":
        raise ValueError("decode='cache' is not available on the bridge (its key-value cache "
                         "gives wrong logits); use backend='hf' or decode='rerun'")


def _check_hook_names(model, fwd_hooks) -> None:
    """Unknown hook names fail here, before any hook is attached."""
    known = set(getattr(model, "hook_dict", {}) or {})
    aliases = getattr(model, "hook_aliases", {}) or {}
    known |= set(aliases) if isinstance(aliases, Mapping) else set()
    for name, _ in fwd_hooks:
        if isinstance(name, str) and name not in known:
            near = sorted(k for k in known if k.split(".")[-1] == name.split(".")[-1])[:3]
            raise ValueError(f"unknown hook name {name!r}"
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
        raise ValueError(f"probe needs backend='hf' and a QA or function task; got backend "
                         f"{backend!r}, task kind {task.kind!r}")
    observing = (observe_prompt_patterns(info, probe) if probe is not None
                 else contextlib.nullcontext())
    t0 = time.perf_counter()
    bar = _progress_bar(progress, len(task), task.name)
    with torch.inference_mode(), hooks, observing as switch, bar:
        if task.kind == "perplexity":
            rows, extra = _run_perplexity(task, tok, runner, vocab, batch_size, bar)
        else:
            share = bool(prefix_cache) and backend == "hf" and probe is None
            rows, extra = _run_qa(task, tok, runner, hf_backend, batch_size, max_new_tokens,
                                  mode, switch, share, bar)
    meta = {"backend": backend, "decode": mode, "batch_size": int(batch_size),
            "model": info.spec, "tasks": {task.name: {
                **extra, "seconds": time.perf_counter() - t0, "n": len(task),
                "source": task.source, "split": task.split, "seed": task.seed}}}
    return EvalResult(rows=rows, n_bootstrap=int(n_bootstrap), seed=seed, meta=meta)


def _progress_bar(progress: bool | None, total: int, desc: str) -> tqdm:
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be True, False or None (auto), got {progress!r}")
    if progress is None:  # auto: a person watching a terminal, never a test log
        progress = sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ
    return tqdm(total=total, desc=desc, unit="item", delay=_PROGRESS_DELAY,
                disable=not progress, leave=False, dynamic_ncols=True)


def _longest_first(sizes: Sequence[int]) -> np.ndarray:
    # the scorers' own order (scoring.score_qa / score_windows): calling them on slices of
    # it, one batch each, gives exactly the batches of a single call
    return np.argsort(-np.asarray(sizes), kind="stable")


def _score_qa_progress(runner, prompts, golds, bar: tqdm, *, batch_size: int, probe,
                       **kw) -> QAScores:
    """:func:`score_qa`, one batch per call so that ``bar`` advances; the same batches and
    results as one call. With a probe (which receives row indices) or no visible bar, one
    call."""
    if probe is not None or bar.disable:
        out = score_qa(runner, prompts, golds, batch_size=batch_size, probe=probe, **kw)
        bar.update(len(prompts))
        return out
    n = len(prompts)
    order = _longest_first([len(p) + len(g) - 1 for p, g in zip(prompts, golds, strict=True)])
    generated: list[list[int]] = [[] for _ in range(n)]
    stopped, first = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    logprob, rank = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        part = score_qa(runner, [prompts[i] for i in rows], [golds[i] for i in rows],
                        batch_size=batch_size, **kw)
        for k, i in enumerate(rows):
            generated[i] = part.generated[k]
        stopped[rows], logprob[rows] = part.stopped, part.logprob
        rank[rows], first[rows] = part.gold_rank, part.first_token
        bar.update(len(rows))
    return QAScores(generated, stopped, logprob, rank, first)


def _run_qa(task, tok, runner, hf_backend, batch_size, max_new_tokens, mode, probe=None,
            share=False, bar=None):
    enc = _encode_qa(task, tok)
    if enc.fallbacks:
        warnings.warn(f"{task.name}: {enc.fallbacks} answer(s) could not be tokenised in "
                      "context (the tokenizer merges across the prompt boundary); they were "
                      "tokenised alone", stacklevel=3)
    max_new = int(max_new_tokens or enc.longest_answer + _MAX_NEW_MARGIN)
    limit = _max_positions(hf_backend.hf)
    if limit is not None:
        for inst, p, g in zip(task.instances, enc.prompts, enc.golds, strict=True):
            need = len(p) + max(len(g), max_new) - 1
            if need > limit:
                raise ValueError(
                    f"{task.name}: instance {inst.id!r} needs {need} positions (prompt "
                    f"{len(p)} + answer/decoding), more than the model's {limit}; shorten "
                    "the prompts (fewer shots or distractors) or lower max_new_tokens")
    stop_strings = _stop_strings(task)
    fold = bool(task.config.get("fold_accents", False))
    stop = stop_token_mask(tok, runner.vocab_size, stop_strings)
    n_shared = enc.shared if share and enc.shared >= MIN_SHARED_PREFIX else 0
    prompts = [p[n_shared:] for p in enc.prompts] if n_shared else enc.prompts
    scores = _score_qa_progress(runner, prompts, enc.golds,
                                bar if bar is not None else _progress_bar(False, 0, ""),
                                batch_size=int(batch_size), max_new_tokens=max_new,
                                stop_mask=stop, pad_id=_pad_id(tok), decode=mode, probe=probe,
                                prefix=enc.prompts[0][:n_shared] if n_shared else None)
    predictions = _decode_predictions(tok, scores.generated, stop_strings)
    insts = task.instances
    correct = [matches_any(p, i.answers, fold) for p, i in zip(predictions, insts, strict=True)]
    if task.kind == "overriding":
        memorised = [
            matches_any(p, [i.memorised_answer, *i.meta.get("memorised_aliases", ())], fold)
            for p, i in zip(predictions, insts, strict=True)
        ]
    else:
        memorised = [pd.NA] * len(insts)
    n = len(insts)
    rows = pd.DataFrame({
        "task": [task.name] * n,
        "kind": [task.kind] * n,
        "category": [task.category] * n,
        "instance_id": [i.id for i in insts],
        "prompt_tokens": [len(p) for p in enc.prompts],
        "prediction": predictions,
        "gold": [i.gold for i in insts],
        "correct": pd.array(correct, dtype="boolean"),
        "logprob": scores.logprob,
        "scored_tokens": [len(g) for g in enc.golds],
        "gold_rank": scores.gold_rank,
        "first_token_correct": pd.array(
            [int(f) == g[0] for f, g in zip(scores.first_token, enc.golds, strict=True)],
            dtype="boolean"),
        "memorised": pd.array(memorised, dtype="boolean"),
        "generated_tokens": [len(g) for g in scores.generated],
        "stopped": pd.array(scores.stopped, dtype="boolean"),
    })
    return rows, {"max_new_tokens": max_new, "answer_fallbacks": enc.fallbacks,
                  "shared_prefix_tokens": n_shared}


def _decode_predictions(tok, generated: Sequence[Sequence[int]],
                        stop_strings: Sequence[str] = ()) -> list[str]:
    """Text of each greedy continuation up to its first newline or stop string (EOS
    dropped)."""
    n_vocab = len(tok)
    eos = tok.eos_token_id
    cleaned = []
    for seq in generated:
        ids = [t for t in seq if t < n_vocab]
        if ids and ids[-1] == eos:
            ids = ids[:-1]
        cleaned.append(ids)
    texts = tok.batch_decode(cleaned, skip_special_tokens=False,
                             clean_up_tokenization_spaces=False)
    out = []
    for t in texts:
        t = t.split("\n", 1)[0]
        for s in stop_strings:
            t = t.split(s, 1)[0]
        out.append(t.strip())
    return out


def _run_perplexity(task, tok, runner, vocab, batch_size, bar=None):
    fp = task.config.get("tokenizer_fingerprint")
    if fp is not None and fp != tokenizer_fingerprint(tok):
        raise ValueError(
            f"{task.name}: the windows were tokenised with another tokenizer "
            f"({task.config.get('tokenizer')!r}) than this model's; rebuild the task with "
            "the model's tokenizer")
    windows = [w.tokens for w in task.instances]
    top = max(max(w) for w in windows)
    if top >= vocab:
        raise ValueError(f"{task.name}: token id {top} is outside the model's vocabulary "
                         f"of {vocab}")
    sf = [w.score_from for w in task.instances]
    batch_size = int(batch_size)
    if bar is None or bar.disable:
        lp = score_windows(runner, windows, sf, batch_size=batch_size, pad_id=_pad_id(tok))
    else:  # one batch per call (the scorer's own batches) so that the bar advances
        lp = np.zeros(len(windows), dtype=np.float64)
        order = _longest_first([len(w) for w in windows])
        for start in range(0, len(windows), batch_size):
            rows = order[start:start + batch_size]
            lp[rows] = score_windows(runner, [windows[i] for i in rows], [sf[i] for i in rows],
                                     batch_size=batch_size, pad_id=_pad_id(tok))
            bar.update(len(rows))
    n = len(windows)
    na_bool = pd.array([pd.NA] * n, dtype="boolean")
    rows = pd.DataFrame({
        "task": [task.name] * n,
        "kind": [task.kind] * n,
        "category": [task.category] * n,
        "instance_id": [w.id for w in task.instances],
        "prompt_tokens": [len(w) for w in windows],
        "prediction": [""] * n,
        "gold": [""] * n,
        "correct": na_bool,
        "logprob": lp,
        "scored_tokens": [w.n_scored for w in task.instances],
        "gold_rank": pd.array([pd.NA] * n, dtype="Int64"),
        "first_token_correct": na_bool.copy(),
        "memorised": na_bool.copy(),
        "generated_tokens": pd.array([pd.NA] * n, dtype="Int64"),
        "stopped": na_bool.copy(),
    })
    return rows, {}


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
    its own progress bar, named for the set).
    """
    task_list = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
    if not task_list:
        raise ValueError("evaluate_suite needs at least one task set")
    check_task_sets(task_list)
    return EvalResult.concat([
        evaluate(model, t, batch_size, backend, fwd_hooks, max_new_tokens, n_bootstrap, seed,
                 decode=decode, probe=probe, prefix_cache=prefix_cache, progress=progress)
        for t in task_list])


# ----------------------------------------------------------------------------- results


def _task_metrics(kind: str) -> tuple[str, ...]:
    if kind == "perplexity":
        return ("perplexity", "nll_per_token")
    base = ("em", "logprob", "first_token_acc", "mrr")
    return (*base, "memorised_rate") if kind == "overriding" else base


#: Metrics that are proportions (the mean of 0/1 instance scores): their intervals are
#: Wilson score intervals, which never collapse to a point (all correct still gives an
#: upper bound of 1 and a lower bound below it).
PROPORTION_METRICS: tuple[str, ...] = ("em", "first_token_acc", "memorised_rate")
_PROPORTION_SOURCE = {"em": "correct", "first_token_acc": "first_token_correct",
                      "memorised_rate": "memorised"}


def _proportion_ci(frame: pd.DataFrame, metric: str, ci: float) -> tuple[float, float] | None:
    """The Wilson interval of a proportion metric, or None when its instance scores are not
    all 0/1 (then the bootstrap interval is used)."""
    v = frame[_PROPORTION_SOURCE[metric]].to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[~np.isnan(v)]
    if not len(v) or not np.isin(v, (0.0, 1.0)).all():
        return None
    return proportion_interval(float(v.sum()), len(v), ci, method="wilson")


def _metric_values(frame: pd.DataFrame, metric: str, idx: np.ndarray | None) -> np.ndarray:
    """The metric over resamples ``idx`` ``[B, n]`` (or the sample itself when None)."""
    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)

    if metric in ("perplexity", "nll_per_token"):
        lp, nt = col("logprob"), col("scored_tokens")
        nll = -lp.sum() / nt.sum() if idx is None else -lp[idx].sum(1) / nt[idx].sum(1)
        return np.exp(nll) if metric == "perplexity" else np.asarray(nll)
    source = {"em": "correct", "logprob": "logprob", "first_token_acc": "first_token_correct",
              "memorised_rate": "memorised", "mrr": "gold_rank"}[metric]
    values = col(source)
    if metric == "mrr":
        values = 1.0 / values
    return values.mean() if idx is None else values[idx].mean(1)


@dataclass
class EvalResult:
    """Per-instance rows of one or more evaluated task sets.

    Attributes:
        rows: one row per instance with columns :data:`ROW_COLUMNS`: ``correct`` (exact
            match against any alias), ``logprob`` (sum of log-probabilities of the gold
            answer's tokens under teacher forcing, or of a window's scored tokens),
            ``scored_tokens`` (how many tokens that sum covers), ``gold_rank`` (rank of the
            gold's first token at the answer position, 1 = top), ``first_token_correct``,
            ``memorised`` (overriding: the prediction matches the memorised answer),
            ``generated_tokens``, ``stopped`` (decoding ended on a newline/EOS).
        n_bootstrap, seed: defaults of :meth:`summary`.
        meta: backend, decoding mode, batch size, and per task: seconds, source, split...
    """

    rows: pd.DataFrame
    n_bootstrap: int = 1000
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        tasks = list(dict.fromkeys(self.rows["task"])) if len(self.rows) else []
        return f"EvalResult(tasks={tasks}, n_rows={len(self.rows)})"

    @staticmethod
    def concat(results: Sequence[EvalResult]) -> EvalResult:
        """One result holding the rows of all ``results`` (task names must not repeat)."""
        if not results:
            raise ValueError("nothing to concatenate")
        names: list[str] = []
        tasks_meta: dict[str, Any] = {}
        for r in results:
            for name in dict.fromkeys(r.rows["task"]):
                if name in names:
                    raise ValueError(f"task {name!r} appears in more than one result")
                names.append(name)
            tasks_meta.update(r.meta.get("tasks", {}))
        first = results[0]
        meta = {k: v for k, v in first.meta.items() if k != "tasks"}
        meta["tasks"] = tasks_meta
        rows = pd.concat([r.rows for r in results], ignore_index=True)
        return EvalResult(rows=rows, n_bootstrap=first.n_bootstrap, seed=first.seed, meta=meta)

    def summary(self, n_bootstrap: int | None = None, seed: int | None = None,
                ci: float = 0.95) -> pd.DataFrame:
        """One row per (task, metric): task, kind, category, metric, value, n, ci_low, ci_high.

        Metrics: ``em``, ``logprob`` (mean over instances of the gold's summed
        log-probability), ``first_token_acc``, ``mrr`` (mean reciprocal rank of the gold's
        first token) and, for overriding, ``memorised_rate``; for perplexity tasks
        ``perplexity`` (token-weighted) and ``nll_per_token``. Intervals (when
        ``n_bootstrap > 0``; NaN otherwise) are Wilson score intervals for the proportions
        (:data:`PROPORTION_METRICS`: 300 of 300 correct gives [0.987, 1], never a point)
        and bootstrap percentile intervals over instances (windows) for the other metrics,
        seeded per task: the same seed gives the same intervals whatever other tasks the
        result holds.
        """
        n_boot = self.n_bootstrap if n_bootstrap is None else n_bootstrap
        seed = self.seed if seed is None else seed
        if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
            raise ValueError(f"n_bootstrap must be an int >= 0, got {n_boot!r}")
        if not 0 < ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {ci}")
        out = []
        for name, frame in self.rows.groupby("task", sort=False):
            kind, category = frame["kind"].iloc[0], frame["category"].iloc[0]
            metrics = _task_metrics(kind)
            n = len(frame)
            point = {m: float(_metric_values(frame, m, None)) for m in metrics}
            boots: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
            if n_boot:
                rng = np.random.default_rng([int(seed), zlib.crc32(str(name).encode())])
                # Resample in chunks to bound memory on large sets; all metrics of a task
                # share the resamples.
                chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
                done = 0
                while done < n_boot:
                    b = min(chunk, n_boot - done)
                    idx = rng.integers(0, n, size=(b, n))
                    for m in metrics:
                        boots[m].append(np.asarray(_metric_values(frame, m, idx)))
                    done += b
            for m in metrics:
                lo = hi = np.nan
                wilson = (_proportion_ci(frame, m, ci)
                          if n_boot and m in PROPORTION_METRICS else None)
                if wilson is not None:
                    lo, hi = wilson
                elif n_boot:
                    samples = np.concatenate(boots[m])
                    lo, hi = np.quantile(samples, [(1 - ci) / 2, 1 - (1 - ci) / 2])
                out.append({"task": name, "kind": kind, "category": category, "metric": m,
                            "value": point[m], "n": n, "ci_low": float(lo),
                            "ci_high": float(hi)})
        return pd.DataFrame(out, columns=["task", "kind", "category", "metric", "value", "n",
                                          "ci_low", "ci_high"])

    def value(self, task: str, metric: str) -> float:
        """The point estimate of one metric of one task (no bootstrap)."""
        frame = self.rows[self.rows["task"] == task]
        if frame.empty:
            raise ValueError(f"no task {task!r} in this result; have "
                             f"{sorted(set(self.rows['task']))}")
        allowed = _task_metrics(frame["kind"].iloc[0])
        if metric not in allowed:
            raise ValueError(f"unknown metric {metric!r} for task {task!r}; allowed: {allowed}")
        return float(_metric_values(frame, metric, None))
