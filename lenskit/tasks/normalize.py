"""Answer normalisation and exact match, as in the TriviaQA / SQuAD evaluation scripts.

``normalize_answer`` lowercases, turns punctuation into spaces, drops the articles *a*,
*an*, *the* and collapses whitespace. Punctuation becomes a space (TriviaQA's choice) rather
than being deleted (SQuAD's) so that a word-level detokenisation such as ``"Porto - Novo"``
matches ``"Porto-Novo"``; both sides are normalised the same way, so ``"N'Djamena"`` still
matches ``"N'Djamena"``. Accents are kept by default (no Unicode folding): add folded
spellings as aliases, or pass ``fold=True`` to compare accent-free forms
(``"Bogota"`` then matches ``"Bogotá"``).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable

from lenskit.errors import UsageError

__all__ = ["exact_match", "fold_accents", "matches_any", "normalize_answer"]

# ASCII punctuation plus the typographic quotes and dashes that answer aliases contain.
_PUNCTUATION = frozenset(string.punctuation + "‘’´`“”–—…«»¿¡")
_PUNCT_TABLE = {ord(c): " " for c in _PUNCTUATION}
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def fold_accents(text: str) -> str:
    """``text`` without combining marks (NFKD, marks dropped): ``"Bogotá"`` -> ``"Bogota"``."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_answer(text: str, fold: bool = False) -> str:
    """Lowercase, punctuation to spaces, drop articles (a, an, the), collapse whitespace;
    with ``fold`` also drop accents (:func:`fold_accents`)."""
    if not isinstance(text, str):
        raise UsageError(f"an answer must be a string, got {type(text).__name__}: {text!r}")
    if fold:
        text = fold_accents(text)
    text = text.lower().translate(_PUNCT_TABLE)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def matches_any(prediction: str, answers: Iterable[str], fold: bool = False) -> bool:
    """Whether the normalised ``prediction`` equals any normalised answer (no answers: False);
    ``fold`` compares accent-free forms."""
    pred = normalize_answer(prediction, fold)
    return any(pred == normalize_answer(a, fold) for a in answers)


def exact_match(prediction: str, answers: str | Iterable[str]) -> bool:
    """Exact match after :func:`normalize_answer` against one answer or any of its aliases.

    Raises:
        ValueError: ``answers`` is empty (nothing to match is a caller bug, not a miss).
    """
    alias_list = [answers] if isinstance(answers, str) else list(answers)
    if not alias_list:
        raise UsageError("exact_match needs at least one gold answer, got none")
    return matches_any(prediction, alias_list)
