"""Question-answer items: the raw material the task builders turn into prompts.

A loader (TriviaQA, WebQuestions, NaturalQuestions, DisentQA, the country facts, the
organism's world) produces :class:`QAItem` s wrapped in :class:`QAItems`, which records
where they came from (source, split) so the task set built from them does too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from lenskit.errors import UsageError
from lenskit.tasks.normalize import normalize_answer

__all__ = ["QAItem", "QAItems", "find_answer_span"]


@dataclass(frozen=True)
class QAItem:
    """One question with its gold answers and, optionally, a passage.

    Attributes:
        question: the question text (without the ``Q:`` scaffolding).
        answers: gold answer first, then aliases.
        context: the passage (open-book, overriding); ``None`` for closed-book.
        memorised_answer: what the passage contradicts (overriding only).
        memorised_aliases: aliases of ``memorised_answer``.
        context_answer_span: ``(start, end)`` of the answer inside ``context``; found by
            search (:func:`find_answer_span`) when not given.
        id: unique id within the collection (builders number items that have none).
        meta: anything else worth keeping per row.
    """

    question: str
    answers: tuple[str, ...]
    context: str | None = None
    memorised_answer: str | None = None
    memorised_aliases: tuple[str, ...] = ()
    context_answer_span: tuple[int, int] | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise UsageError(f"item {self.id!r}: question must be a non-empty string")
        answers = (self.answers,) if isinstance(self.answers, str) else tuple(self.answers)
        answers = tuple(a for a in answers if isinstance(a, str) and a.strip())
        if not answers:
            raise UsageError(f"item {self.id or self.question!r}: needs a non-empty answer")
        object.__setattr__(self, "answers", answers)
        object.__setattr__(self, "memorised_aliases", tuple(self.memorised_aliases))
        if self.context is not None and not isinstance(self.context, str):
            raise UsageError(f"item {self.id!r}: context must be a string or None")
        if self.context_answer_span is not None:
            if self.context is None:
                raise UsageError(f"item {self.id!r}: context_answer_span without a context")
            s, e = self.context_answer_span
            if not 0 <= s < e <= len(self.context):
                raise UsageError(f"item {self.id!r}: context_answer_span {(s, e)} is outside "
                                 f"the {len(self.context)}-character context")

    def answer_span(self) -> tuple[int, int] | None:
        """Span of the answer in the context (given, or the first alias occurrence)."""
        if self.context is None:
            return None
        if self.context_answer_span is not None:
            return self.context_answer_span
        return find_answer_span(self.context, self.answers)


@dataclass(frozen=True)
class QAItems(Sequence[QAItem]):
    """A collection of items with provenance: ``source``, ``split``, ``config``."""

    name: str
    items: tuple[QAItem, ...]
    source: str
    split: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):  # type: ignore[override]
        return self.items[index]

    def __iter__(self) -> Iterator[QAItem]:
        return iter(self.items)

    def __repr__(self) -> str:
        return (f"QAItems(name={self.name!r}, n={len(self)}, source={self.source!r}, "
                f"split={self.split!r})")


def find_answer_span(context: str, answers: Sequence[str]) -> tuple[int, int] | None:
    """The earliest occurrence of any answer in ``context`` on word boundaries.

    Tries an exact (case-sensitive) match first, then a case-insensitive one; returns
    ``None`` when no alias occurs. Occurrences inside longer words do not count.
    """
    best: tuple[int, int] | None = None
    for flags in (0, re.IGNORECASE):
        for a in answers:
            a = a.strip()
            if not a:
                continue
            m = re.search(r"(?<!\w)" + re.escape(a) + r"(?!\w)", context, flags)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), m.end())
        if best is not None:
            return best
    return None


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """Whether any answer occurs in ``text`` after normalisation, on word boundaries."""
    norm = " " + normalize_answer(text) + " "
    return any((" " + normalize_answer(a) + " ") in norm for a in answers if normalize_answer(a))
