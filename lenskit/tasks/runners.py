"""The runners behind :func:`lenskit.tasks.evaluate`: one task set's rows, QA (gold
scoring and greedy decoding) or perplexity windows, with a progress bar over instances.

QA prompts are tokenised once per task set and tokenizer (tasks are re-evaluated at every
sparsity); a token prefix every prompt shares (at least :data:`MIN_SHARED_PREFIX` tokens)
can be encoded once and its key-value cache reused. Predictions end at the first newline
or at one of the task's ``stop`` strings.
"""

from __future__ import annotations

import os
import sys
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm  # not tqdm.auto: importing it in Jupyter without ipywidgets warns

from lenskit.errors import UsageError
from lenskit.tasks.core import TaskInstance, TaskSet
from lenskit.tasks.encoding import (
    answer_token_ids,
    encode_texts,
    pad_id,
    stop_token_mask,
    tokenizer_fingerprint,
)
from lenskit.tasks.normalize import matches_any
from lenskit.tasks.scoring import QAScores, score_qa, score_windows

__all__ = ["MIN_SHARED_PREFIX", "progress_bar", "run_perplexity", "run_qa"]

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
            raise UsageError(f"{task.name}: the prompt of {inst.id!r} tokenises to no tokens")
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
            raise UsageError(f"{task.name}: config['stop'] must hold non-empty strings, "
                             f"got {s!r}")
    return stop


def _max_positions(hf) -> int | None:
    cfg = hf.config
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def sliding_window(hf) -> int | None:
    """The local attention window of a model with sliding-window layers (Mistral, Gemma-2/3,
    GPT-Neo's local layers), else ``None``; ``0`` for a model whose attention bias grows
    with the cache column (MPT's ALiBi, built from the sequence length, not the mask).

    A sliding window counts key-value cache columns, not position ids: decoding on a
    right-padded cache (padding and gold tokens sit between a row's prompt and its new
    tokens) would slide the window over them, so such a model is decoded by re-running
    whenever a prompt, its answer and the new tokens do not fit in the window."""
    cfg = hf.config
    if getattr(getattr(cfg, "attn_config", None), "alibi", False):
        return 0
    window = getattr(cfg, "sliding_window", None)
    layer_types = getattr(cfg, "layer_types", None)
    if isinstance(window, int) and window > 0 \
            and getattr(cfg, "use_sliding_window", None) is not False \
            and (layer_types is None or any("sliding" in str(t) for t in layer_types)):
        return window
    local = getattr(cfg, "attention_layers", None) or ()
    if "local" in local and isinstance(getattr(cfg, "window_size", None), int):
        return int(cfg.window_size)
    return None


def progress_bar(progress: bool | None, total: int, desc: str) -> tqdm:
    if progress is not None and not isinstance(progress, bool):
        raise UsageError(f"progress must be True, False or None (auto), got {progress!r}")
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


def run_qa(task, tok, runner, hf_backend, batch_size, max_new_tokens, mode, probe=None,
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
                raise UsageError(
                    f"{task.name}: instance {inst.id!r} needs {need} positions (prompt "
                    f"{len(p)} + answer/decoding), more than the model's {limit}; shorten "
                    "the prompts (fewer shots or distractors) or lower max_new_tokens")
    window = sliding_window(hf_backend.hf)
    fallback = None
    if mode == "cache" and window is not None:
        width = max(len(p) + len(g) for p, g in zip(enc.prompts, enc.golds, strict=True))
        if width + max_new > window:
            mode, fallback = "rerun", (
                f"re-run decoding: the {window}-token sliding window is shorter than "
                f"{width + max_new} cache columns" if window else
                "re-run decoding: the attention bias depends on the cache column")
    stop_strings = _stop_strings(task)
    fold = bool(task.config.get("fold_accents", False))
    stop = stop_token_mask(tok, runner.vocab_size, stop_strings)
    n_shared = enc.shared if share and enc.shared >= MIN_SHARED_PREFIX else 0
    prompts = [p[n_shared:] for p in enc.prompts] if n_shared else enc.prompts
    scores = _score_qa_progress(runner, prompts, enc.golds,
                                bar if bar is not None else progress_bar(False, 0, ""),
                                batch_size=int(batch_size), max_new_tokens=max_new,
                                stop_mask=stop, pad_id=pad_id(tok), decode=mode, probe=probe,
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
    extra = {"max_new_tokens": max_new, "answer_fallbacks": enc.fallbacks,
             "shared_prefix_tokens": n_shared}
    if fallback:
        extra["decode_fallback"] = fallback
    return rows, extra


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


def run_perplexity(task, tok, runner, vocab, batch_size, bar=None):
    fp = task.config.get("tokenizer_fingerprint")
    if fp is not None and fp != tokenizer_fingerprint(tok):
        raise UsageError(
            f"{task.name}: the windows were tokenised with another tokenizer "
            f"({task.config.get('tokenizer')!r}) than this model's; rebuild the task with "
            "the model's tokenizer")
    windows = [w.tokens for w in task.instances]
    top = max(max(w) for w in windows)
    if top >= vocab:
        raise UsageError(f"{task.name}: token id {top} is outside the model's vocabulary "
                         f"of {vocab}")
    sf = [w.score_from for w in task.instances]
    batch_size = int(batch_size)
    if bar is None or bar.disable:
        lp = score_windows(runner, windows, sf, batch_size=batch_size, pad_id=pad_id(tok))
    else:  # one batch per call (the scorer's own batches) so that the bar advances
        lp = np.zeros(len(windows), dtype=np.float64)
        order = _longest_first([len(w) for w in windows])
        for start in range(0, len(windows), batch_size):
            rows = order[start:start + batch_size]
            lp[rows] = score_windows(runner, [windows[i] for i in rows], [sf[i] for i in rows],
                                     batch_size=batch_size, pad_id=pad_id(tok))
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
