"""Loaders for the study's QA datasets: from the Hugging Face hub, or from local files.

Each loader returns :class:`~lenskit.tasks.items.QAItems` recording its ``source`` (the
hub dataset or the file path), ``split`` and, in ``config``, how many rows were read and
kept. With ``path`` the file is read and nothing touches the network. Without it the hub is
used through the ``datasets`` package; offline (:func:`lenskit.models.offline.offline`:
``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to 1, true, yes
or on), or when the hub cannot be reached, a :class:`DatasetUnavailableError` says which file to
provide and in what format. A local file's split is read from its name
(``wikipedia-train.json`` holds ``train``). Every error about a record names the field
that is missing or bad and lists the fields the record really has.

Local files: each dataset's own published format (see :mod:`lenskit.tasks.published`:
TriviaQA rc JSON with its evidence directory, WebQuestions JSON, PopQA TSV, NaturalQuestions simplified
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
- PopQA: the authors' TSV (``popQA.tsv``) or rows with the hub's fields (``question``,
  ``possible_answers`` as a JSON-encoded list, ``s_pop``, ``prop``, ``subj``...).
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
from lenskit.tasks.items import QAItem, QAItems, contains_answer, find_answer_span
from lenskit.tasks.normalize import matches_any
from lenskit.tasks.published import (
    is_triviaqa_rc,
    read_c4_texts,
    read_nq_rows,
    read_popqa_tsv,
    read_triviaqa_rc,
    read_webquestions,
    read_wikitext,
    split_from_filename,
)

__all__ = [
    "DISENTQA_TYPES",
    "POPQA_BUCKETS",
    "DatasetUnavailableError",
    "evidence_paragraph",
    "load_c4",
    "load_disentqa",
    "load_natural_questions",
    "load_popqa",
    "load_triviaqa",
    "load_webquestions",
    "load_wikitext2",
    "popularity_buckets",
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


def _fields_present(row: dict) -> list[str]:
    """The fields a record really has (a reader's ``source_fields``, else its non-null
    keys), for error messages."""
    src = row.get("source_fields")
    if isinstance(src, list):
        return [str(f) for f in src]
    return sorted(k for k, v in row.items() if v is not None and k != "line")


def _field(row: dict, names: Sequence[str], where: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    alts = " or ".join(repr(n) for n in names)
    raise UsageError(f"{where}: missing field {alts} (the record has fields "
                     f"{_fields_present(row)})")


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


def _entity_page_texts(row: dict) -> list[str]:
    """The texts of a TriviaQA row's own entity pages (hub dict-of-lists, list-of-dicts,
    or a reader's ``evidence`` list)."""
    if isinstance(row.get("evidence"), list):
        return [d for d in row["evidence"] if isinstance(d, str) and d]
    pages = row.get("entity_pages")
    if isinstance(pages, dict):
        return [d for d in pages.get("wiki_context") or [] if d]
    if isinstance(pages, list):
        return [p.get("wiki_context") for p in pages if isinstance(p, dict)
                and p.get("wiki_context")]
    return []


def _cut_around(text: str, answers: Sequence[str], max_chars: int | None) -> str:
    """``text`` cut to ``max_chars`` characters (at word boundaries) around the first
    answer occurrence, so that the cut keeps the answer."""
    if max_chars is None or len(text) <= max_chars:
        return text
    span = find_answer_span(text, answers)
    centre = (span[0] + span[1]) // 2 if span else 0
    start = max(0, min(centre - max_chars // 2, len(text) - max_chars))
    cut = text[start:start + max_chars]
    if start > 0 and " " in cut[:max_chars // 4]:
        cut = cut[cut.index(" ") + 1:]
    if start + max_chars < len(text) and " " in cut[-(max_chars // 4):]:
        cut = cut[:cut.rindex(" ")]
    return cut


#: Shorter lines of an entity page are titles and headings, not passages.
MIN_PARAGRAPH_WORDS = 5


def evidence_paragraph(docs: Sequence[str], answers: Sequence[str],
                       max_chars: int | None = 2000) -> str | None:
    """The first paragraph of the question's own entity pages that holds an answer alias.

    Pages are searched in order; a paragraph is a run of text between newlines, and lines
    of fewer than :data:`MIN_PARAGRAPH_WORDS` words (the page title, section headings) are
    not paragraphs; an alias counts on word boundaries after normalisation
    (:func:`contains_answer`). The
    paragraph is cut to ``max_chars`` around the answer (``None``: whole). Returns
    ``None`` when no paragraph of any page holds an alias.
    """
    for doc in docs:
        for para in doc.split("\n"):
            para = para.strip()
            if len(para.split()) >= MIN_PARAGRAPH_WORDS and contains_answer(para, answers):
                cut = _cut_around(para, answers, max_chars)
                if contains_answer(cut, answers):
                    return cut
    return None


def _split_of(path, split: str | None, default: str) -> str:
    """The split of a local file: its name's (:func:`split_from_filename`); an explicit
    ``split`` that contradicts the name is an error; ``default`` when neither says."""
    named = split_from_filename(path)
    if named is not None and split is not None and split != named:
        raise UsageError(f"{path}: the file name says split {named!r} but split={split!r} "
                         "was given; drop split= or pass the right file")
    return named or split or default


def load_triviaqa(
    path: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    evidence: bool = False,
    evidence_chars: int | None = 2000,
    evidence_dir: str | os.PathLike | None = None,
) -> QAItems:
    """TriviaQA (rc, Wikipedia questions) with aliases: closed-book, or open-book with the
    paragraph of the question's own entity page that holds an answer.

    Args:
        path: a local file (the published rc JSON ``qa/wikipedia-dev.json``, the
            ``triviaqa-rc`` directory, or JSONL/JSON rows, see the module docstring);
            the hub when ``None``: ``rc.wikipedia.nocontext`` (questions and answers, a
            few MB) closed-book, ``rc.wikipedia`` (with its ~2.3 GB of evidence) open-book.
        split: the hub split (default ``"validation"``: the study's 7,993 questions). For
            a file, the split is read from its name (``wikipedia-train.json`` is
            ``train``, ``-dev`` is ``validation``, ``-test`` is ``test``); a ``split``
            that contradicts the name is an error; a name without one records ``split``
            or ``"validation"``.
        evidence: attach a passage and keep only questions that have one: the first
            paragraph (newline-delimited) of the question's own entity pages that holds an
            answer alias after normalisation, cut to ``evidence_chars`` around the answer.
            Search-result pages are never used. Flat local rows use their ``context``.
        evidence_chars: the cut, ``None`` for whole paragraphs.
        evidence_dir: the published ``evidence`` directory of a TriviaQA rc file (default:
            ``../evidence`` next to its ``qa/`` folder).
    """
    if path is not None:
        source = str(path)
        split = _split_of(path, split, "validation")
        rows = _triviaqa_file(path, evidence, evidence_dir)
    else:
        config = "rc.wikipedia" if evidence else "rc.wikipedia.nocontext"
        source = f"mandarjoshi/trivia_qa:{config}"
        split = split or "validation"
        rows = _hub_rows("mandarjoshi/trivia_qa", config, split,
                         "load_triviaqa(path='triviaqa-rc/qa/wikipedia-dev.json')")
    items = []
    n_read = n_no_evidence = 0
    for n, row in enumerate(rows, 1):
        n_read += 1
        where = f"{source}, record {n}"
        question = _field(row, ("question",), where)
        if isinstance(row.get("answer"), dict):  # the hub's rows
            ans = row["answer"]
            answers = _answer_list([ans.get("value"), *(ans.get("aliases") or [])], where)
        elif "evidence" in row or "source_fields" in row:  # the published rc file
            if row.get("answers") is None:
                raise UsageError(f"{where}: no 'Answer' (a test file without answers? "
                                 f"the record has fields {_fields_present(row)})")
            answers = _answer_list(row["answers"], where)
        else:  # flat rows
            answers = _answer_list(_field(row, ("answers",), where), where)
        item_id = str(row.get("question_id") or row.get("id") or f"triviaqa-{n}")
        context = None
        if evidence:
            if isinstance(row.get("context"), str):  # flat rows carry their passage
                context = _cut_around(row["context"], answers, evidence_chars)
                context = context if contains_answer(context, answers) else None
            else:
                context = evidence_paragraph(_entity_page_texts(row), answers,
                                             evidence_chars)
            if context is None:
                n_no_evidence += 1
                continue
        items.append(QAItem(question, answers, context=context, id=item_id))
    name = "triviaqa_open" if evidence else "triviaqa"
    return QAItems(name=name, items=tuple(items), source=source, split=split,
                   config={"n_read": n_read, "n_kept": len(items), "evidence": evidence,
                           "evidence_chars": evidence_chars,
                           "n_without_evidence": n_no_evidence,
                           "evidence_rule": "first paragraph of the question's entity "
                                            "pages holding an answer alias"})


def _triviaqa_file(path, evidence: bool, evidence_dir) -> list[dict]:
    p = Path(path)
    if p.is_dir() or (p.suffix == ".json" and p.is_file() and is_triviaqa_rc(
            json.loads(p.read_text(encoding="utf-8") or "null"))):
        return read_triviaqa_rc(p, evidence=evidence, evidence_dir=evidence_dir)
    return _read_records(p)


def load_webquestions(path: str | os.PathLike | None = None, *,
                      split: str | None = None) -> QAItems:
    """WebQuestions (2,032 test questions), closed-book, every listed answer an alias.

    A local file is the published JSON (``webquestions.examples.test.json``, answers parsed
    from ``targetValue``, see :func:`~lenskit.tasks.published.webquestions_answers`) or
    rows ``{"question", "answers"}``; its split comes from its name (``...train...``,
    ``...test...``). Questions whose answer list is empty are dropped and counted
    (``config["n_no_answer"]``).
    """
    if path is not None:
        source = str(path)
        split = _split_of(path, split, "test")
        rows = read_webquestions(path) or _read_records(path)
    else:
        source, split = "Stanford/web_questions", split or "test"
        rows = _hub_rows("Stanford/web_questions", None, split,
                         "load_webquestions(path='webquestions.examples.test.json')")
    items = []
    n_read = n_empty = 0
    for n, row in enumerate(rows, 1):
        n_read += 1
        where = f"{source}, record {n}"
        question = _field(row, ("question",), where)
        raw = _field(row, ("answers",), where)
        if isinstance(raw, (list, tuple)) and not any(
                isinstance(a, str) and a.strip() for a in raw):
            n_empty += 1
            continue
        meta = {"url": row["url"]} if row.get("url") else {}
        items.append(QAItem(question, _answer_list(raw, where),
                            id=str(row.get("id") or f"webq-{n}"), meta=meta))
    if not items:
        raise UsageError(f"{source}: no question with an answer ({n_read} read)")
    return QAItems(name="webquestions", items=tuple(items), source=source, split=split,
                   config={"n_read": n_read, "n_kept": len(items), "n_no_answer": n_empty})


def load_natural_questions(path: str | os.PathLike | None = None, *,
                           split: str | None = None) -> QAItems:
    """NaturalQuestions questions with their gold passage (open-book)."""
    if path is not None:
        source, rows = str(path), read_nq_rows(path)
        split = _split_of(path, split, "validation")
    else:
        source = "mrqa-workshop/mrqa:NaturalQuestionsShort"
        split = split or "validation"
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
            raise UsageError(f"{where}: the gold passage is empty (the record has fields "
                             f"{_fields_present(row)})")
        items.append(QAItem(_field(row, ("question",), where),
                            _answer_list(_field(row, ("answers",), where), where),
                            context=context,
                            id=str(row.get("id") or row.get("qid") or f"nq-{n}")))
    return QAItems(name="natural_questions", items=tuple(items), source=source, split=split,
                   config={"n_read": n_read, "n_kept": len(items)})


POPQA_BUCKETS = ("head", "torso", "tail")


def _popqa_answers(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise UsageError(f"{where}: possible_answers is not a JSON-encoded list "
                             f"({value[:80]!r}: {err})") from err
    return _answer_list(value, where)


def popularity_buckets(pops: Sequence[float],
                       bins: Sequence[float] | None = None) -> tuple[list[str], dict]:
    """Head / torso / tail of each popularity value, and how they were cut.

    ``bins=None``: terciles by rank (the values sorted, ties kept in input order, cut into
    three parts of equal size; ``tail`` the least popular third). ``bins=(low, high)``:
    ``tail`` below ``low``, ``head`` at or above ``high``, ``torso`` between. Returns the
    bucket of each value and ``{"rule", "edges", "counts"}`` (edges: the smallest value of
    torso and head).
    """
    pops = [float(v) for v in pops]
    if bins is None:
        order = sorted(range(len(pops)), key=lambda i: pops[i])
        out = [""] * len(pops)
        n = len(pops)
        for rank, i in enumerate(order):
            out[i] = POPQA_BUCKETS[2 - min(2, rank * 3 // max(n, 1))]
        edges = [min((pops[i] for i in range(n) if out[i] == b), default=float("nan"))
                 for b in ("torso", "head")]
        rule = "terciles of s_pop by rank"
    else:
        if len(bins) != 2 or not float(bins[0]) < float(bins[1]):
            raise UsageError(f"popularity bins must be two increasing edges (low, high), "
                             f"got {list(bins)!r}")
        low, high = float(bins[0]), float(bins[1])
        out = ["tail" if v < low else "head" if v >= high else "torso" for v in pops]
        edges = [low, high]
        rule = "s_pop < low: tail; >= high: head; else torso"
    counts = {b: out.count(b) for b in POPQA_BUCKETS}
    return out, {"rule": rule, "edges": edges, "counts": counts}


def load_popqa(path: str | os.PathLike | None = None, *, split: str = "test",
               bins: Sequence[float] | None = None) -> QAItems:
    """PopQA (Mallen et al. 2023): 14,267 entity questions from Wikidata with the
    subject's popularity (monthly Wikipedia page views, ``s_pop``), closed-book.

    Args:
        path: the authors' TSV (``popQA.tsv``, see
            :func:`~lenskit.tasks.published.read_popqa_tsv`) or JSONL/JSON rows with the
            hub's fields; the hub (``akariasai/PopQA``) when ``None``.
        split: the hub split (PopQA has one: ``test``).
        bins: popularity buckets (:func:`popularity_buckets`): ``None`` for terciles of
            ``s_pop`` over the file, or two edges ``(low, high)``.

    Every item's ``meta`` holds ``s_pop``, ``bucket`` (``head``/``torso``/``tail``),
    ``prop`` (the relation) and ``subj``; answers are ``possible_answers`` (JSON-encoded
    in both the TSV and the hub). ``config["buckets"]`` records the rule, edges and
    counts.
    """
    if path is not None:
        source = str(path)
        p = Path(path)
        rows: Iterable[dict] = (read_popqa_tsv(p) if p.suffix in (".tsv", ".gz")
                                else _read_records(p))
    else:
        source = "akariasai/PopQA"
        rows = _hub_rows("akariasai/PopQA", None, split,
                         "load_popqa(path='popQA.tsv')")
    raw = []
    for n, row in enumerate(rows, 1):
        where = f"{source}, line {row['line']}" if "line" in row else f"{source}, record {n}"
        question = _field(row, ("question",), where)
        answers = _popqa_answers(_field(row, ("possible_answers",), where), where)
        pop = _field(row, ("s_pop",), where)
        try:
            pop = float(pop)
        except (TypeError, ValueError) as err:
            raise UsageError(f"{where}: s_pop must be a number, got {pop!r}") from err
        item_id = str(row.get("id") if row.get("id") not in (None, "") else f"popqa-{n}")
        raw.append((question, answers, pop, item_id,
                    {k: row[k] for k in ("prop", "subj", "obj") if row.get(k) not in
                     (None, "")}))
    if not raw:
        raise UsageError(f"{source}: no records")
    buckets, how = popularity_buckets([r[2] for r in raw], bins)
    items = tuple(QAItem(q, a, id=i, meta={**m, "s_pop": pop, "bucket": b})
                  for (q, a, pop, i, m), b in zip(raw, buckets, strict=True))
    return QAItems(name="popqa", items=items, source=source, split=split,
                   config={"n_read": len(raw), "n_kept": len(items), "buckets": how})


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
