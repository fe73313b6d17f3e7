"""Task sets: what is evaluated (prompts and gold answers, or text windows) and how it groups.

A :class:`TaskSet` holds either question-answer style :class:`TaskInstance` s (closed-book,
open-book, overriding, function learning: a prompt whose continuation is scored) or
:class:`TextWindow` s (perplexity: token windows scored token by token). Task sets are
immutable, seeded by whoever built them, and validated on construction so that a bad set
fails before any model runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from lenskit.errors import UsageError
from lenskit.names import CATEGORIES, KIND_CATEGORY, TASK_KINDS
from lenskit.tasks.normalize import normalize_answer

__all__ = [
    "CATEGORIES",
    "KIND_CATEGORY",
    "TASK_KINDS",
    "TaskInstance",
    "TaskSet",
    "TextWindow",
    "constant_answer_accuracy",
]



# Kinds scored by exact match of a free-form answer: chance is what one constant answer
# scores, unless a builder says more.
_OPEN_ENDED = ("closed_book", "open_book", "overriding")


def constant_answer_accuracy(instances: Sequence[TaskInstance]) -> float:
    """The exact-match accuracy of the best constant answer: the largest share of
    ``instances`` whose gold answers (any alias, normalised as exact match normalises)
    include one same string. A model that ignores the question reaches it; for questions
    with distinct answers it is ``1/n``-small, for a closed set of answers (continents,
    yes/no) it is the most frequent answer's share."""
    counts: dict[str, int] = {}
    for inst in instances:
        for a in {normalize_answer(a) for a in inst.answers}:
            if a:
                counts[a] = counts.get(a, 0) + 1
    return max(counts.values(), default=0) / len(instances) if len(instances) else 0.0


@dataclass(frozen=True)
class TaskInstance:
    """One prompt whose greedy continuation is scored against gold answers.

    Attributes:
        id: unique within its task set.
        prompt: the full text fed to the model; the answer follows after one space.
        answers: the gold answer first, then aliases (exact match against any counts).
        memorised_answer: overriding only: what the model memorised, which the passage
            contradicts (a prediction matching it counts towards ``memorised_rate``).
        answer_span: ``(start, end)`` character span in ``prompt`` of the answer stated in
            the query's passage (open-book, overriding), for attention-mass analyses.
        meta: free-form facts about the instance (entity, relation, label, source row...);
            ``meta["memorised_aliases"]`` may list aliases of ``memorised_answer``.
    """

    id: str
    prompt: str
    answers: tuple[str, ...]
    memorised_answer: str | None = None
    answer_span: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise UsageError(f"instance id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise UsageError(f"instance {self.id!r}: prompt must be a non-empty string")
        answers = (self.answers,) if isinstance(self.answers, str) else tuple(self.answers)
        if not answers:
            raise UsageError(f"instance {self.id!r}: needs at least one gold answer")
        for a in answers:
            if not isinstance(a, str) or not a.strip():
                raise UsageError(
                    f"instance {self.id!r}: answers must be non-empty strings, got {a!r}"
                )
        object.__setattr__(self, "answers", answers)
        if self.memorised_answer is not None and (
            not isinstance(self.memorised_answer, str) or not self.memorised_answer.strip()
        ):
            raise UsageError(
                f"instance {self.id!r}: memorised_answer must be a non-empty string or None"
            )
        if self.answer_span is not None:
            start, end = (int(v) for v in self.answer_span)
            if not 0 <= start < end <= len(self.prompt):
                raise UsageError(
                    f"instance {self.id!r}: answer_span {self.answer_span} is not a span of "
                    f"the {len(self.prompt)}-character prompt"
                )
            object.__setattr__(self, "answer_span", (start, end))

    @property
    def gold(self) -> str:
        """The first gold answer (the one scored for log-probability and rank)."""
        return self.answers[0]


@dataclass(frozen=True)
class TextWindow:
    """A window of token ids for perplexity: tokens ``score_from..`` are scored.

    Token ``j >= score_from`` is scored by the model's prediction at position ``j - 1``;
    earlier tokens are context only (a BOS, or the overlap with the previous window).

    Attributes:
        id: unique within its task set.
        tokens: token ids of the window (its tokenizer is recorded in the task's config).
        score_from: index of the first scored token, ``1 <= score_from < len(tokens)``.
        meta: e.g. the document index and the window's token offset in it.
    """

    id: str
    tokens: tuple[int, ...]
    score_from: int = 1
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise UsageError(f"window id must be a non-empty string, got {self.id!r}")
        tokens = tuple(int(t) for t in self.tokens)
        if any(t < 0 for t in tokens):
            raise UsageError(f"window {self.id!r}: token ids must be >= 0")
        if not 1 <= self.score_from < len(tokens):
            raise UsageError(
                f"window {self.id!r}: score_from must be in 1..{len(tokens) - 1} for a window "
                f"of {len(tokens)} tokens, got {self.score_from}"
            )
        object.__setattr__(self, "tokens", tokens)

    @property
    def n_scored(self) -> int:
        return len(self.tokens) - self.score_from


@dataclass(frozen=True, eq=False)
class TaskSet:
    """A named, seeded set of instances of one task kind.

    Attributes:
        name: unique within a suite (e.g. ``"closed_book"``, ``"fn_linear_d4_n32_k2"``).
        kind: one of :data:`TASK_KINDS`.
        instances: :class:`TaskInstance` s, or :class:`TextWindow` s for ``"perplexity"``.
        source: where the data came from (``"organism"``, ``"countryinfo"``, a path, a hub
            dataset name...).
        split: the source split (``"validation"``...), ``""`` when it has none.
        seed: the seed the set was drawn with (``None``: not random).
        config: how it was built (format, shots, sizes, tokenizer for perplexity...).
        category: derived from ``kind`` (:data:`KIND_CATEGORY`) unless given.
        chance: the accuracy (exact match, first-token accuracy) a model reaches by
            guessing: ``1/K`` for in-context function learning with K class-balanced
            labels (set by :func:`~lenskit.tasks.function_task`); for the QA kinds, unless
            given, the accuracy of the best constant answer
            (:func:`constant_answer_accuracy`: about 0 for open-ended questions, the
            largest continent's share for "on which continent is X?"); ``None`` where
            undefined (perplexity). Recorded with every result
            (:meth:`~lenskit.tasks.EvalResult.summary`'s ``chance`` column), it decides
            whether the dense model is above chance; nothing reads it from the name.
    """

    name: str
    kind: str
    instances: tuple[TaskInstance, ...] | tuple[TextWindow, ...]
    source: str = "custom"
    split: str = ""
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    category: str = ""
    chance: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise UsageError(f"task name must be a non-empty string, got {self.name!r}")
        if self.kind not in TASK_KINDS:
            raise UsageError(f"unknown task kind {self.kind!r}; allowed: {TASK_KINDS}")
        category = self.category or KIND_CATEGORY[self.kind]
        if category not in CATEGORIES:
            raise UsageError(f"unknown category {category!r}; allowed: {CATEGORIES}")
        object.__setattr__(self, "category", category)
        instances = tuple(self.instances)
        if not instances:
            raise UsageError(f"task set {self.name!r} ({self.kind}) is empty: it needs at "
                             "least one instance")
        want = TextWindow if self.kind == "perplexity" else TaskInstance
        for inst in instances:
            if not isinstance(inst, want):
                raise UsageError(
                    f"task set {self.name!r} of kind {self.kind!r} holds {want.__name__}s, "
                    f"got a {type(inst).__name__}"
                )
        ids = [inst.id for inst in instances]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise UsageError(f"task set {self.name!r}: duplicate instance id {dup!r}")
        if self.kind == "overriding":
            missing = [i.id for i in instances if i.memorised_answer is None]
            if missing:
                raise UsageError(
                    f"task set {self.name!r}: overriding instances need a memorised_answer; "
                    f"missing for {missing[:3]}"
                )
        object.__setattr__(self, "instances", instances)
        object.__setattr__(self, "config", dict(self.config))
        chance = self.chance
        if chance is None and self.kind in _OPEN_ENDED and self.instances:
            chance = constant_answer_accuracy(self.instances)
        if chance is not None:
            if isinstance(chance, bool) or not isinstance(chance, (int, float)) or not (
                    0.0 <= float(chance) <= 1.0):
                raise UsageError(f"task set {self.name!r}: chance must be a number in [0, 1] "
                                 f"or None, got {self.chance!r}")
            if self.kind == "perplexity":
                raise UsageError(f"task set {self.name!r}: a perplexity task has no chance "
                                 "accuracy (chance must be None)")
            chance = float(chance)
        object.__setattr__(self, "chance", chance)

    def __len__(self) -> int:
        return len(self.instances)

    def __iter__(self):
        return iter(self.instances)

    def __getitem__(self, index: int):
        return self.instances[index]

    def __repr__(self) -> str:
        return (f"TaskSet(name={self.name!r}, kind={self.kind!r}, category={self.category!r}, "
                f"n={len(self)}, source={self.source!r}, split={self.split!r}, "
                f"seed={self.seed})")

    def subset(self, n: int, seed: int = 0) -> TaskSet:
        """``n`` instances drawn without replacement (seeded), kept in their original order."""
        if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(self):
            raise UsageError(f"subset size must be an int in 1..{len(self)}, got {n!r}")
        if n == len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), size=int(n), replace=False))
        config = {**self.config, "subset": {"n": int(n), "seed": seed, "of": len(self)}}
        return replace(self, instances=tuple(self.instances[i] for i in keep), config=config)

    def to_frame(self) -> pd.DataFrame:
        """One row per instance: id, prompt, gold, answers, ... and ``meta_*`` columns."""
        rows = []
        for inst in self.instances:
            if isinstance(inst, TextWindow):
                row = {"id": inst.id, "n_tokens": len(inst.tokens),
                       "score_from": inst.score_from, "n_scored": inst.n_scored}
            else:
                span = inst.answer_span or (None, None)
                row = {"id": inst.id, "prompt": inst.prompt, "gold": inst.gold,
                       "answers": list(inst.answers),
                       "memorised_answer": inst.memorised_answer,
                       "span_start": span[0], "span_end": span[1]}
            row.update({f"meta_{k}": v for k, v in inst.meta.items()})
            rows.append(row)
        frame = pd.DataFrame(rows)
        frame.insert(0, "task", self.name)
        frame.insert(1, "kind", self.kind)
        frame.insert(2, "category", self.category)
        return frame


def check_task_sets(tasks: Sequence[TaskSet]) -> None:
    """Task names must be unique within one evaluation."""
    names = [t.name for t in tasks]
    for t in tasks:
        if not isinstance(t, TaskSet):
            raise UsageError(f"expected TaskSet objects, got a {type(t).__name__}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"task names must be unique; {dup!r} appears twice")
