"""What attention is measured on: prompts turned into token rows, answer spans and batches.

:func:`prompt_rows` tokenises a :class:`~lenskit.tasks.TaskSet` (QA prompts with their
answer spans, or perplexity windows), a list of prompts, or a :class:`RepeatedTokens` (the
input of the induction and previous-token scores) into :class:`PromptRows`; task sets are
tokenised once per tokenizer. :func:`pattern_batches` cuts rows into right-padded batches,
longest first, each with its :class:`~lenskit.analysis.attention_stats.BatchLayout`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lenskit.analysis.attention_stats import BatchLayout
from lenskit.errors import UsageError
from lenskit.tasks.core import TaskInstance, TaskSet, TextWindow
from lenskit.tasks.encoding import (
    encode_texts,
    pad_right,
    special_affixes,
    token_span,
    tokenizer_fingerprint,
)
from lenskit.tasks.encoding import pad_id as _tokenizer_pad_id

__all__ = ["PromptRows", "RepeatedTokens", "pad_id", "pattern_batches", "prompt_rows",
           "repeated_token_ids"]

_REPEAT_KIND = "repeated_tokens"
_REPEAT_CATEGORY = "synthetic"


@dataclass(frozen=True)
class RepeatedTokens:
    """Sequences ``prefix + r + r`` of ``length`` distinct random tokens ``r`` (drawn
    uniformly without replacement from the tokenizer's non-special tokens, seeded), after
    the tokenizer's own prefix (its BOS, if it adds one): the input of the induction and
    previous-token scores (Olsson et al. 2022). Pass it where prompts go."""

    n_sequences: int = 32
    length: int = 24
    seed: int = 0
    name: str = "repeated_tokens"

    def __post_init__(self) -> None:
        for attr, low in (("n_sequences", 1), ("length", 2)):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise UsageError(f"RepeatedTokens.{attr} must be an int >= {low}, got {v!r}")


def repeated_token_ids(tokenizer, spec: RepeatedTokens, vocab_size: int | None = None
                       ) -> tuple[torch.Tensor, int]:
    """``(ids [n_sequences, p0 + 2 * length], p0)`` for ``spec`` (``p0``: prefix length)."""
    prefix, _ = special_affixes(tokenizer)
    n_vocab = len(tokenizer) if vocab_size is None else min(len(tokenizer), int(vocab_size))
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    candidates = np.array([i for i in range(n_vocab) if i not in specials], dtype=np.int64)
    if len(candidates) < spec.length:
        raise UsageError(f"RepeatedTokens.length {spec.length} exceeds the "
                         f"{len(candidates)} non-special tokens of the vocabulary")
    rng = np.random.default_rng(spec.seed)
    rows = []
    for _ in range(spec.n_sequences):
        r = rng.choice(candidates, size=spec.length, replace=False)
        rows.append([*prefix, *r.tolist(), *r.tolist()])
    return torch.tensor(rows, dtype=torch.long), len(prefix)


# ---------------------------------------------------------------------------------------
# Inputs: prompts -> token rows, answer spans, batches
# ---------------------------------------------------------------------------------------

@dataclass
class PromptRows:
    """Token rows of one prompt source, with answer spans (token positions) per row."""

    name: str
    kind: str
    category: str
    rows: list[list[int]]
    spans: list[tuple[int, int] | None]
    answers: bool = True
    repeat_p0: int | None = None
    repeat_n: int | None = None


# Tokenised task sets per tokenizer (a task set is measured again for every configuration).
_ROWS_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], PromptRows]] = (
    weakref.WeakKeyDictionary())


def prompt_rows(info, source, answer_spans, vocab_size: int) -> PromptRows:
    """Token rows of ``source`` (a TaskSet, prompts or RepeatedTokens) for the tokenizer of
    ``info``; a TaskSet without explicit ``answer_spans`` is tokenised once per tokenizer."""
    if isinstance(source, TaskSet) and answer_spans is None:
        key = (tokenizer_fingerprint(info.tokenizer), int(vocab_size))
        per_task = _ROWS_CACHE.setdefault(source, {})
        if key not in per_task:
            per_task[key] = _build_rows(info, source, None, vocab_size)
        return per_task[key]
    return _build_rows(info, source, answer_spans, vocab_size)


def _build_rows(info, source, answer_spans, vocab_size: int) -> PromptRows:
    tok = info.tokenizer
    if isinstance(source, RepeatedTokens):
        if answer_spans is not None:
            raise UsageError("answer_spans does not apply to RepeatedTokens")
        ids, p0 = repeated_token_ids(tok, source, vocab_size)
        return PromptRows(source.name, _REPEAT_KIND, _REPEAT_CATEGORY, ids.tolist(),
                       [None] * len(ids), answers=False, repeat_p0=p0,
                       repeat_n=source.length)
    name, kind, category = "prompts", "custom", "custom"
    if isinstance(source, TaskSet):
        name, kind, category = source.name, source.kind, source.category
        items = list(source.instances)
    elif isinstance(source, (str, bytes)) or not isinstance(source, Sequence) or not source:
        raise UsageError("prompts must be a TaskSet, a RepeatedTokens, or a non-empty list of "
                         f"prompt strings or TaskInstances; got {type(source).__name__}")
    else:
        items = list(source)
    if all(isinstance(i, TextWindow) for i in items):
        if answer_spans is not None:
            raise UsageError("answer_spans does not apply to perplexity windows")
        rows = [list(w.tokens) for w in items]
        top = max(max(r) for r in rows)
        if top >= vocab_size:
            raise UsageError(f"{name}: token id {top} is outside the model's vocabulary of "
                             f"{vocab_size}")
        return PromptRows(name, kind, category, rows, [None] * len(rows), answers=False)
    if all(isinstance(i, TaskInstance) for i in items):
        if answer_spans is not None:
            raise UsageError("answer_spans is taken from the instances' answer_span; pass it "
                             "only with prompt strings")
        texts = [i.prompt for i in items]
        char_spans = [i.answer_span for i in items]
    elif all(isinstance(i, str) for i in items):
        texts = items
        if answer_spans is None:
            char_spans = [None] * len(texts)
        else:
            if isinstance(answer_spans, (str, bytes)) or len(answer_spans) != len(texts):
                raise UsageError(f"answer_spans must list one (start, end) character span or "
                                 f"None per prompt ({len(texts)}), got {answer_spans!r}")
            char_spans = [None if s is None else tuple(s) for s in answer_spans]
        for t in texts:
            if not t.strip():
                raise UsageError("prompts must be non-empty strings")
    else:
        kinds = sorted({type(i).__name__ for i in items})
        raise UsageError(f"prompts must all be strings, TaskInstances or TextWindows; got "
                         f"{kinds}")
    rows = encode_texts(tok, texts)
    spans: list[tuple[int, int] | None] = []
    for text, row, cs in zip(texts, rows, char_spans, strict=True):
        if not row:
            raise UsageError(f"prompt {text[:60]!r} tokenises to no tokens")
        if cs is None:
            spans.append(None)
            continue
        if len(cs) != 2:
            raise UsageError(f"answer span {cs!r} must be a (start, end) character span")
        s, e = token_span(tok, text, (int(cs[0]), int(cs[1])))
        if e > len(row):  # a suffix special of the tokenizer cannot be in a prompt's span
            raise UsageError(f"answer span {cs} of prompt {text[:60]!r} maps beyond its "
                             f"{len(row)} tokens")
        spans.append((s, e))
    return PromptRows(name, kind, category, rows, spans, answers=True)


def pattern_batches(src: PromptRows, batch_size: int, pad_id: int) -> list[tuple[torch.Tensor,
                                                                         BatchLayout]]:
    """Right-padded batches, longest rows first (less padding), with their layouts."""
    order = np.argsort(-np.array([len(r) for r in src.rows]), kind="stable")
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size].tolist()
        ids, lengths = pad_right([src.rows[i] for i in idx], pad_id)
        span = None
        if any(src.spans[i] is not None for i in idx):
            span = torch.zeros(ids.shape, dtype=torch.bool)
            for k, i in enumerate(idx):
                if src.spans[i] is not None:
                    s, e = src.spans[i]
                    span[k, s:e] = True
        repeat = None if src.repeat_p0 is None else (src.repeat_p0, src.repeat_n)
        out.append((ids, BatchLayout(lengths, span, answers=src.answers, repeat=repeat)))
    return out


def pad_id(tokenizer) -> int:
    """The token id right-padding uses for ``tokenizer`` (as the task encoders pad)."""
    return _tokenizer_pad_id(tokenizer)
