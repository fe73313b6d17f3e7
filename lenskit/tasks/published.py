"""Readers of the datasets' own published file formats (what their authors distribute).

- TriviaQA ``rc`` (``triviaqa-rc/qa/wikipedia-dev.json``): ``{"Data": [{"Question",
  "QuestionId", "Answer": {"Value", "Aliases", "NormalizedAliases"}, "EntityPages":
  [{"Filename", "Title"}], "SearchResults": [{"Filename"}]}]}``; the evidence texts are
  separate files ``triviaqa-rc/evidence/wikipedia/<Filename>`` (``.../web/`` for search
  results).
- WebQuestions (``webquestions.examples.test.json``): a JSON list of ``{"url",
  "targetValue": "(list (description X) (description \\"Y Z\\"))", "utterance"}``.
- NaturalQuestions simplified (``simplified-nq-*.jsonl[.gz]``): ``{"question_text",
  "document_text", "annotations": [{"long_answer": {"start_token", "end_token"},
  "short_answers": [{"start_token", "end_token"}]}], "example_id"}``; the gold passage is
  the long answer's tokens without HTML tags. The original format (``document_tokens``
  ``[{"token", "html_token"}]``) is read too. The DPR gold-passage file (``{"data":
  [{"question", "short_answers", "context", "example_id"}]}``) gives passages directly.
- C4 (``c4-validation.00000-of-00008.json.gz``): one JSON object per line with ``"text"``.
- WikiText (``wiki.test.raw``): raw text, `` = Title = `` headings between articles.

Each reader returns plain dicts (``question``, ``answers``, ``context``, ``id``) for
:mod:`lenskit.tasks.loaders`, or texts.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lenskit.errors import UsageError

__all__ = [
    "read_c4_texts",
    "read_nq_rows",
    "read_popqa_tsv",
    "read_text_lines",
    "read_triviaqa_rc",
    "read_webquestions",
    "read_wikitext",
    "split_from_filename",
    "webquestions_answers",
    "webquestions_target",
]


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _need_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such file: {p}")
    return p


def read_text_lines(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` per non-empty line of a JSON-lines file (``.gz`` too)."""
    p = _need_file(path)
    with _open_text(p) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"{p}, line {n}: not valid JSON ({err})") from err
            if not isinstance(row, dict):
                raise UsageError(f"{p}, line {n}: expected a JSON object")
            yield n, row


# ----------------------------------------------------------------------------- TriviaQA


def is_triviaqa_rc(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("Data"), list)


def _evidence_root(qa_file: Path, evidence_dir: str | os.PathLike | None) -> Path:
    if evidence_dir is not None:
        return Path(evidence_dir)
    # The published layout: triviaqa-rc/qa/<file>.json next to triviaqa-rc/evidence/.
    return qa_file.parent.parent / "evidence"


def read_triviaqa_rc(path: str | os.PathLike, *, evidence: bool = False,
                     evidence_dir: str | os.PathLike | None = None) -> list[dict]:
    """Rows of a TriviaQA rc file (or the ``triviaqa-rc`` directory: its ``qa/`` dev file).

    With ``evidence`` each row's ``evidence`` is the list of texts of the question's own
    entity pages (``EntityPages`` read from ``evidence/wikipedia``; pages whose file is
    absent are skipped). Search results (``evidence/web``) are not used: they are pages
    about anything the query matched, where an answer string often occurs by accident.
    Rows carry ``source_fields``, the record's own field names, for error messages.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "qa" / "wikipedia-dev.json"
    p = _need_file(p)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UsageError(f"{p}: not valid JSON ({err})") from err
    if not is_triviaqa_rc(data):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UsageError(f'{p}: not a TriviaQA rc file (expected {{"Data": [...]}}, found '
                         f"{found})")
    root = _evidence_root(p, evidence_dir)
    if evidence and not (root / "wikipedia").is_dir():
        raise UsageError(f"{p}: evidence asked for but no entity-page directory "
                         f"{root / 'wikipedia'} (pass evidence_dir, the rc 'evidence' folder)")
    rows = []
    for n, rec in enumerate(data["Data"], 1):
        where = f"{p}, Data[{n - 1}]"
        if not isinstance(rec, dict) or "Question" not in rec:
            found = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            raise UsageError(f"{where}: expected an object with a 'Question' (has {found})")
        ans = rec.get("Answer")
        answers = None
        if isinstance(ans, dict):
            answers = [ans.get("Value"), *(ans.get("Aliases") or [])]
        docs: list[str] = []
        if evidence:
            for page in rec.get("EntityPages") or []:
                name = page.get("Filename") if isinstance(page, dict) else None
                f = root / "wikipedia" / str(name or "")
                if name and f.is_file():
                    docs.append(f.read_text(encoding="utf-8"))
        rows.append({"question": rec["Question"], "answers": answers, "evidence": docs,
                     "id": rec.get("QuestionId") or f"triviaqa-{n}",
                     "source_fields": sorted(rec)})
    return rows


# ----------------------------------------------------------------------------- WebQuestions

# SEMPRE writes a targetValue with fig's LispTree printer: ``(list (description D) ...)``
# where D is bare unless it is empty or holds whitespace, ``(``, ``)`` or ``#``, in which
# case it is wrapped in double quotes; inside D, ``"`` and ``\\`` are backslash-escaped and
# newline / tab become ``\\n`` / ``\\t``. Files in circulation also carry unescaped
# quotes inside a quoted D (nicknames: ``(description "Robert "Bob" Smith")``), which no
# quote-matching tokenizer reads back. So the list is split on the ``) (description ``
# boundaries instead, each piece loses its outer quotes, and only the escapes the printer
# writes are undone (a backslash before anything else is kept as written).
_WQ_BOUNDARY = re.compile(r"\)\s+\(description\s+")
_WQ_ESCAPE = re.compile(r'\\(["\\nt])')
_WQ_UNESCAPE = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def _wq_description(piece: str, target: str) -> str:
    # A bare description never starts with an unescaped quote (the printer escapes it),
    # so a leading quote opens a quoted one, and its last character closes it.
    if piece.startswith('"'):
        if len(piece) < 2 or not piece.endswith('"'):
            raise UsageError(f"targetValue {target!r}: the quoted description {piece!r} "
                             "has no closing quote")
        piece = piece[1:-1]
    return _WQ_ESCAPE.sub(lambda m: _WQ_UNESCAPE[m.group(1)], piece)


def webquestions_answers(target: str) -> list[str]:
    """The answers of a WebQuestions ``targetValue`` S-expression, in order.

    ``(list (description "Justin Bieber") (description Canada))`` gives ``["Justin
    Bieber", "Canada"]``; ``(list)`` gives ``[]``. Quoted descriptions may hold double
    quotes (escaped as SEMPRE prints them, or not), parentheses, backslashes and any
    unicode. Raises ``ValueError`` naming the value when it is not such a list.
    """
    text = (target or "").strip()
    if not (text.startswith("(list") and text.endswith(")")):
        raise UsageError(f"targetValue {target!r} is not a (list (description ...) ...) "
                         "expression")
    body = text[len("(list"):-1]
    if body.strip() == "":
        return []
    if not body[:1].isspace():
        raise UsageError(f"targetValue {target!r} is not a (list (description ...) ...) "
                         "expression")
    body = body.strip()
    head = re.match(r"\(description\s+", body)
    if head is None or not body.endswith(")"):
        raise UsageError(f"targetValue {target!r}: expected (description ...) entries "
                         "inside the list")
    pieces = _WQ_BOUNDARY.split(body[head.end():-1])
    return [_wq_description(p, target) for p in pieces]


def webquestions_target(answers: list[str]) -> str:
    """The ``targetValue`` SEMPRE prints for ``answers`` (the inverse of
    :func:`webquestions_answers`; used to write fixtures in the published layout)."""
    def atom(a: str) -> str:
        quote = a == "" or any(c.isspace() or c in "()#" for c in a)
        body = (a.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                .replace("\t", "\\t"))
        return f'"{body}"' if quote else body
    return "(list" + "".join(f" (description {atom(a)})" for a in answers) + ")"


def read_webquestions(path: str | os.PathLike) -> list[dict] | None:
    """Rows of the published WebQuestions JSON, or ``None`` when the file is another format.

    Each row has ``question`` (the ``utterance``), ``answers`` (the ``targetValue``'s
    descriptions, possibly none), ``url`` and ``id`` (``webq-<record number>``).
    """
    p = _need_file(path)
    if p.suffix != ".json":
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UsageError(f"{p}: not valid JSON ({err})") from err
    if not (isinstance(data, list) and data and isinstance(data[0], dict)
            and "utterance" in data[0]):
        return None
    rows = []
    for n, rec in enumerate(data, 1):
        where = f"{p}, record {n}"
        if not isinstance(rec, dict):
            raise UsageError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        missing = [k for k in ("utterance", "targetValue") if not isinstance(rec.get(k), str)]
        if missing:
            raise UsageError(f"{where}: missing field(s) {missing} (has {sorted(rec)})")
        try:
            answers = webquestions_answers(rec["targetValue"])
        except ValueError as err:
            raise UsageError(f"{where}: {err}") from err
        rows.append({"question": rec["utterance"], "answers": answers,
                     "url": rec.get("url"), "id": f"webq-{n}"})
    return rows


# ----------------------------------------------------------------------------- NaturalQuestions

_HTML_TOKEN = re.compile(r"^</?[A-Za-z][^>]*>$")


def _nq_tokens(rec: dict) -> list[tuple[str, bool]]:
    """(token, is_html) of a simplified (``document_text``) or original record."""
    if isinstance(rec.get("document_tokens"), list):
        return [(t["token"], bool(t.get("html_token"))) for t in rec["document_tokens"]]
    text = rec.get("document_text")
    if not isinstance(text, str):
        raise UsageError("neither document_text nor document_tokens")
    return [(t, bool(_HTML_TOKEN.match(t))) for t in text.split(" ")]


def nq_gold(rec: dict) -> tuple[str, list[str]] | None:
    """(gold passage, short answers) of one NQ record, or None without both."""
    tokens = _nq_tokens(rec)

    def span(s: int, e: int) -> str:
        return " ".join(t for t, html in tokens[s:e] if not html)

    for ann in rec.get("annotations") or []:
        long = ann.get("long_answer") or {}
        s, e = long.get("start_token", -1), long.get("end_token", -1)
        shorts = [span(a["start_token"], a["end_token"]) for a in ann.get("short_answers") or []]
        shorts = [a for a in shorts if a.strip()]
        if s >= 0 and e > s and shorts:
            return span(s, e), shorts
    return None


def read_nq_rows(path: str | os.PathLike) -> Iterator[dict]:
    """Rows of an NQ simplified/original JSON-lines file (examples with a long and a short
    answer only), or of the DPR gold-passage JSON (``{"data": [...]}``)."""
    p = _need_file(path)
    if p.suffix == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        recs = data.get("data") if isinstance(data, dict) else data
        if not isinstance(recs, list):
            raise UsageError(f"{p}: expected a JSON list or {{'data': [...]}}")
        for n, rec in enumerate(recs, 1):
            if not isinstance(rec, dict):
                raise UsageError(f"{p}, record {n}: expected a JSON object, got "
                                 f"{type(rec).__name__}")
            # Only the fields the record has: a missing passage must read as missing,
            # and the error must list what the record really holds.
            row = {k: v for k, v in (("question", rec.get("question")),
                                     ("answers", rec.get("short_answers", rec.get("answers"))),
                                     ("context", rec.get("context", rec.get("passage"))))
                   if v is not None}
            row["id"] = str(rec.get("example_id") or rec.get("id") or f"nq-{n}")
            row["source_fields"] = sorted(rec)
            yield row
        return
    for n, rec in read_text_lines(p):
        if "question_text" not in rec:  # already flat rows {"question", "answers", "context"}
            yield {**rec, "id": str(rec.get("id") or rec.get("example_id") or f"nq-{n}"),
                   "source_fields": sorted(rec)}
            continue
        try:
            gold = nq_gold(rec)
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"{p}, line {n}: not an NQ record ({err})") from err
        if gold is None:
            continue
        yield {"question": rec["question_text"], "answers": gold[1], "context": gold[0],
               "id": str(rec.get("example_id") or f"nq-{n}")}


# ----------------------------------------------------------------------------- PopQA

POPQA_COLUMNS = ("question", "possible_answers", "s_pop")


def read_popqa_tsv(path: str | os.PathLike) -> Iterator[dict]:
    """Rows of the PopQA TSV the authors release (``popQA.tsv``: a header line, then
    tab-separated ``id, subj, prop, obj, subj_id, prop_id, obj_id, s_aliases, o_aliases,
    s_uri, o_uri, s_wiki_title, o_wiki_title, s_pop, o_pop, question, possible_answers``;
    ``possible_answers`` is a JSON-encoded list). Yields the columns as strings, with
    ``source_fields`` (the header) and ``line`` (its line number) for error messages."""
    p = _need_file(path)
    csv.field_size_limit(1 << 24)
    with _open_text(p) as f:
        reader = csv.DictReader(f, delimiter="\t")
        header = list(reader.fieldnames or [])
        missing = [c for c in POPQA_COLUMNS if c not in header]
        if missing:
            raise UsageError(f"{p}: missing column(s) {missing}; a PopQA TSV has at least "
                             f"{list(POPQA_COLUMNS)} (found {header})")
        for n, row in enumerate(reader, 2):  # line 1 is the header
            yield {**row, "source_fields": header, "line": n}


# ----------------------------------------------------------------------------- splits

_SPLIT_WORDS = (("train", "train"), ("dev", "validation"), ("validation", "validation"),
                ("valid", "validation"), ("val", "validation"), ("test", "test"))


def split_from_filename(path: str | os.PathLike) -> str | None:
    """The split a published file's name says it holds: ``wikipedia-train.json`` ->
    ``"train"``, ``wikipedia-dev.json`` / ``...validation...`` -> ``"validation"``,
    ``...test...`` (``verified-wikipedia-test-without-answers.json``) -> ``"test"``;
    ``None`` when the name names no split (or more than one)."""
    words = re.split(r"[^a-z]+", Path(path).name.lower())
    found = {split for word, split in _SPLIT_WORDS if word in words}
    return found.pop() if len(found) == 1 else None


# ----------------------------------------------------------------------------- text corpora


def read_c4_texts(path: str | os.PathLike, max_docs: int | None = None) -> list[str]:
    """The ``text`` of each line of a C4 ``.json.gz`` (or ``.jsonl``) shard."""
    texts = []
    for n, row in read_text_lines(path):
        if "text" not in row:
            raise UsageError(f"{path}, line {n}: a C4 line needs a 'text' field")
        texts.append(str(row["text"]))
        if max_docs is not None and len(texts) >= max_docs:
            break
    if not texts:
        raise UsageError(f"{path}: no documents")
    return texts


def read_wikitext(path: str | os.PathLike) -> str:
    """The raw WikiText file as one text (``wiki.test.raw``; the usual whole-file scoring)."""
    text = _need_file(path).read_text(encoding="utf-8")
    if not text.strip():
        raise UsageError(f"{path}: empty text")
    return text
