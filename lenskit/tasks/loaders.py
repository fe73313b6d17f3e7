"""Loaders for the study's QA datasets: from the Hugging Face hub, or from local files.

Each loader returns :class:`~lenskit.tasks.items.QAItems` recording its ``source`` (the
hub dataset or the file path), ``split`` and, in ``config``, how many rows were read and
kept. With ``path`` the file is read and nothing touches the network. Without it the hub is
used through the ``datasets`` package; offline (:func:`lenskit.models.offline.offline`:
``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to 1, true, yes
or on), or when the hub cannot be reached, a :class:`DatasetUnavailableError` says which file to
provide and in what format.

Local files: each dataset's own published format (see :mod:`lenskit.tasks.published`:
TriviaQA rc JSON with its evidence directory, WebQuestions JSON, NaturalQuestions simplified
JSON lines or DPR's gold passages, DisentQA CSV), or these simple formats (``.jsonl``: one
JSON object per line; ``.json``: a list of objects):

- TriviaQA: the hub's rows (``question``, ``question_id``, ``answer: {value, aliases}``,
  ``entity_pages: {wiki_context: [...]}``) or flat rows ``{"question", "answers": [...],
  "context"}`` (``context`` optional; ``answers`` gold first).
- WebQuestions: ``{"question", "answers": [...]}`` (the hub's rows, ``url`` ignored).
- NaturalQuestions with gold passage: ``{"id", "question", "answers": [...], "context"}``
  where ``context`` is the gold passage (the annotated long answer's text); ``"passage"``
  is accepted for ``context``. The hub path reads MRQA's ``NaturalQuestionsShort`` subset
  (gold passages of the NQ dev set).
- DisentQA: the CSV of Neeman et al. with columns ``question, context, parametric_answer,
  contextual_answer, type`` (``type`` in factual, counterfactual, closed_book,
  random_context); answers may be a JSON list (``["a", "b"]``) for aliases.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lenskit.errors import UsageError
from lenskit.models.offline import offline, offline_setting
from lenskit.tasks.items import QAItem, QAItems, contains_answer
from lenskit.tasks.normalize import matches_any
from lenskit.tasks.published import (
    is_triviaqa_rc,
    read_c4_texts,
    read_nq_rows,
    read_triviaqa_rc,
    read_webquestions,
    read_wikitext,
)

__all__ = [
    "DISENTQA_TYPES",
    "DatasetUnavailableError",
    "load_c4",
    "load_disentqa",
    "load_natural_questions",
    "load_triviaqa",
    "load_webquestions",
    "load_wikitext2",
]

DISENTQA_TYPES = ("factual", "counterfactual", "closed_book", "random_context")
DISENTQA_COLUMNS = ("question", "context", "parametric_answer", "contextual_answer", "type")


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither reachable on the hub nor given as a local file."""


def _hub_rows(dataset: str, config: str | None, split: str, how_to: str) -> Iterable[dict]:
    hint = (f"provide a local file instead: {how_to} (see lenskit.tasks.loaders for the "
            "format), or go online once so that `datasets` caches it")
    if offline():
        raise DatasetUnavailableError(
            f"{dataset} ({config or 'default'}, {split}) is not available offline "
            f"({offline_setting()} is set): {hint}")
    try:
        from datasets import load_dataset  # optional (the "hub" extra), heavy: only when used

        return load_dataset(dataset, config, split=split)
    except Exception as err:  # any failure to fetch: say how to work without the hub
        raise DatasetUnavailableError(f"could not load {dataset} from the hub ({err}): "
                                      f"{hint}") from err


def _read_records(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such file: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"{p}: not valid JSON ({err})") from err
        if isinstance(data, dict) and "data" in data:
            data = data["data"]
        if not isinstance(data, list):
            raise UsageError(f"{p}: expected a JSON list of objects")
        rows = data
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UsageError(f"{p}, line {n}: not valid JSON ({err})") from err
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise UsageError(f"{p}, record {n}: expected a JSON object, got "
                             f"{type(row).__name__}")
    if not rows:
        raise UsageError(f"{p}: no records")
    return rows


def _field(row: dict, names: Sequence[str], where: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise UsageError(f"{where}: missing field {names[0]!r} (has {sorted(row)})")


def _answer_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"{where}: answers must be a string or a list of strings")
    out: list[str] = []
    for a in value:
        if isinstance(a, str) and a.strip() and a.strip() not in out:
            out.append(a.strip())
    if not out:
        raise UsageError(f"{where}: no non-empty answer")
    return tuple(out)


def _first_evidence(row: dict) -> str | None:
    """The first evidence document of a TriviaQA row (hub dict-of-lists or list-of-dicts)."""
    pages = row.get("entity_pages")
    docs: list[str] = []
    if isinstance(pages, dict):
        docs = [d for d in pages.get("wiki_context") or [] if d]
    elif isinstance(pages, list):
        docs = [p.get("wiki_context") for p in pages if isinstance(p, dict)
                and p.get("wiki_context")]
    return docs[0] if docs else None


def _truncate(text: str, max_chars: int | None) -> str:
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return cut[:space] if space > max_chars // 2 else cut


def load_triviaqa(
    path: str | os.PathLike | None = None,
    *,
    split: str = "validation",
    evidence: bool = False,
    evidence_chars: int | None = 2000,
    evidence_dir: str | os.PathLike | None = None,
) -> QAItems:
    """TriviaQA, ``rc.wikipedia`` configuration (7,993 validation questions), with aliases.

    Args:
        path: a local JSONL/JSON file (see the module docstring); the hub when ``None``.
        split: the split to read from the hub (the study uses ``"validation"``).
        evidence: attach a passage and keep only questions whose passage contains an answer
            alias (after normalisation): the study's open-book subset (881 questions). The
            passage is the first Wikipedia evidence document cut to ``evidence_chars``
            characters (at a word boundary); the subset's size depends on that cut, which
            the paper does not publish. Flat local rows use their ``context``.
        evidence_chars: the cut, ``None`` for whole documents.
        evidence_dir: the published ``evidence`` directory of a TriviaQA rc file (default:
            ``../evidence`` next to its ``qa/`` folder).
    """
    source = str(path) if path is not None else "mandarjoshi/trivia_qa:rc.wikipedia"
    rows = _triviaqa_file(path, evidence, evidence_dir) if path is not None else _hub_rows(
        "mandarjoshi/trivia_qa", "rc.wikipedia", split,
        "load_triviaqa(path='triviaqa.jsonl')")
    items = []
    n_read = 0
    for n, row in enumerate(rows, 1):
        n_read += 1
        where = f"{source}, record {n}"
        question = _field(row, ("question",), where)
        if isinstance(row.get("answer"), dict):
            ans = row["answer"]
            answers = _answer_list([ans.get("value"), *(ans.get("aliases") or [])], where)
            context = _first_evidence(row)
        else:
            answers = _answer_list(_field(row, ("answers",), where), where)
            context = row.get("context")
        item_id = str(row.get("question_id") or row.get("id") or f"triviaqa-{n}")
        if evidence:
            if not context:
                continue
            context = _truncate(context, evidence_chars)
            if not contains_answer(context, answers):
                continue
        else:
            context = None
        items.append(QAItem(question, answers, context=context, id=item_id))
    name = "triviaqa_open" if evidence else "triviaqa"
    return QAItems(name=name, items=tuple(items), source=source, split=split,
                   config={"n_read": n_read, "n_kept": len(items), "evidence": evidence,
                           "evidence_chars": evidence_chars})


def _triviaqa_file(path, evidence: bool, evidence_dir) -> list[dict]:
    p = Path(path)
    if p.is_dir() or (p.suffix == ".json" and p.is_file() and is_triviaqa_rc(
            json.loads(p.read_text(encoding="utf-8") or "null"))):
        return read_triviaqa_rc(p, evidence=evidence, evidence_dir=evidence_dir)
    return _read_records(p)


def load_webquestions(path: str | os.PathLike | None = None, *,
                      split: str = "test") -> QAItems:
    """WebQuestions (2,032 test questions), closed-book, all listed answers as aliases."""
    source = str(path) if path is not None else "Stanford/web_questions"
    rows = ((read_webquestions(path) or _read_records(path)) if path is not None
            else _hub_rows("Stanford/web_questions", None, split,
                           "load_webquestions(path='webquestions.examples.test.json')"))
    items = []
    n_read = 0
    for n, row in enumerate(rows, 1):
        n_read += 1
        where = f"{source}, record {n}"
        items.append(QAItem(_field(row, ("question",), where),
                            _answer_list(_field(row, ("answers",), where), where),
                            id=str(row.get("id") or f"webq-{n}")))
    return QAItems(name="webquestions", items=tuple(items), source=source, split=split,
                   config={"n_read": n_read, "n_kept": len(items)})


def load_natural_questions(path: str | os.PathLike | None = None, *,
                           split: str = "validation") -> QAItems:
    """NaturalQuestions questions with their gold passage (open-book)."""
    if path is not None:
        source, rows = str(path), read_nq_rows(path)
    else:
        source = "mrqa-workshop/mrqa:NaturalQuestionsShort"
        hub = _hub_rows("mrqa-workshop/mrqa", None, split,
                        "load_natural_questions(path='nq.jsonl') with rows "
                        '{"question", "answers", "context"}')
        rows = (r for r in hub if r.get("subset") == "NaturalQuestionsShort")
    items = []
    n_read = 0
    for n, row in enumerate(rows, 1):
        n_read += 1
        where = f"{source}, record {n}"
        context = _field(row, ("context", "passage", "gold_passage"), where)
        if not isinstance(context, str) or not context.strip():
            raise UsageError(f"{where}: the gold passage is empty")
        items.append(QAItem(_field(row, ("question",), where),
                            _answer_list(_field(row, ("answers",), where), where),
                            context=context,
                            id=str(row.get("id") or row.get("qid") or f"nq-{n}")))
    return QAItems(name="natural_questions", items=tuple(items), source=source, split=split,
                   config={"n_read": n_read, "n_kept": len(items)})


def _csv_answers(value: str, where: str) -> tuple[str, ...]:
    text = (value or "").strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError) as err:
                raise UsageError(f"{where}: cannot parse the answer list {text!r}") from err
        return _answer_list(parsed, where)
    return _answer_list(text, where)


def load_disentqa(path: str | os.PathLike | None = None, *,
                  types: Sequence[str] = ("counterfactual",)) -> QAItems:
    """DisentQA rows of the given ``types`` (default: counterfactual, for overriding).

    The gold answer is the contextual one (the parametric one for ``closed_book`` rows,
    which get no passage); ``memorised_answer`` is the parametric answer whenever it differs
    from the contextual one. DisentQA is distributed as CSV files, not on the hub: pass
    ``path``.
    """
    unknown = [t for t in types if t not in DISENTQA_TYPES]
    if unknown or not types:
        raise UsageError(f"unknown DisentQA type(s) {unknown or types}; allowed: "
                         f"{DISENTQA_TYPES}")
    if path is None:
        raise DatasetUnavailableError(
            "DisentQA is not on the Hugging Face hub: download its CSV (Neeman et al. 2022, "
            "github.com/ellaneeman/disent_qa) and pass load_disentqa(path='disentqa.csv'); "
            f"columns: {', '.join(DISENTQA_COLUMNS)}")
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such file: {p}")
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in DISENTQA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{p}: missing column(s) {missing}; a DisentQA CSV has "
                             f"{list(DISENTQA_COLUMNS)} (found {reader.fieldnames})")
        items = []
        n_read = 0
        for n, row in enumerate(reader, 2):  # line 1 is the header
            n_read += 1
            where = f"{p}, line {n}"
            kind = (row["type"] or "").strip()
            if kind not in DISENTQA_TYPES:
                raise UsageError(f"{where}: unknown type {kind!r}; allowed: {DISENTQA_TYPES}")
            if kind not in types:
                continue
            parametric = _csv_answers(row["parametric_answer"], where)
            if kind == "closed_book":
                answers, context, memorised = parametric, None, None
            else:
                answers = _csv_answers(row["contextual_answer"], where)
                context = (row["context"] or "").strip()
                if not context:
                    raise UsageError(f"{where}: a {kind} row needs a context")
                memorised = None if matches_any(parametric[0], answers) else parametric[0]
            items.append(QAItem(row["question"], answers, context=context,
                                memorised_answer=memorised,
                                memorised_aliases=parametric[1:] if memorised else (),
                                id=str(row.get("id") or f"disentqa-{n}"),
                                meta={"type": kind}))
    if not items:
        raise UsageError(f"{p}: no rows of type(s) {list(types)}")
    return QAItems(name="disentqa", items=tuple(items), source=str(p), split="",
                   config={"n_read": n_read, "n_kept": len(items), "types": list(types)})


def load_c4(path: str | os.PathLike | None = None, *, max_docs: int = 256) -> list[str]:
    """The first ``max_docs`` documents of C4's English validation set: a local shard
    (``c4-validation.00000-of-00008.json.gz``: lines with ``"text"``) or the hub
    (``allenai/c4``, streamed)."""
    if path is not None:
        return read_c4_texts(path, max_docs)
    hint = ("provide a local shard instead: path='c4-validation.00000-of-00008.json.gz' "
            "(JSON lines with a 'text' field)")
    if offline():
        raise DatasetUnavailableError(f"C4 is not available offline: {hint}")
    try:
        from datasets import load_dataset

        stream = load_dataset("allenai/c4", "en", split="validation", streaming=True)
        return [row["text"] for _, row in zip(range(max_docs), stream, strict=False)]
    except Exception as err:  # any failure to fetch: say how to work without the hub
        raise DatasetUnavailableError(f"could not stream C4 ({err}): {hint}") from err


def load_wikitext2(path: str | os.PathLike | None = None, *, split: str = "test") -> str:
    """WikiText-2 (raw) as one text: a local ``wiki.test.raw`` or the hub
    (``Salesforce/wikitext``, ``wikitext-2-raw-v1``)."""
    if path is not None:
        return read_wikitext(path)
    rows = _hub_rows("Salesforce/wikitext", "wikitext-2-raw-v1", split,
                     "load_wikitext2(path='wikitext-2-raw/wiki.test.raw')")
    return "".join(r["text"] for r in rows)
