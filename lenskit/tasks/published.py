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
    "read_text_lines",
    "read_triviaqa_rc",
    "read_webquestions",
    "read_wikitext",
    "webquestions_answers",
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

    With ``evidence`` each row's ``context`` is its first evidence file that exists (entity
    pages from ``evidence/wikipedia``, then search results from ``evidence/web``).
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
        raise UsageError(f'{p}: not a TriviaQA rc file (expected {{"Data": [...]}})')
    root = _evidence_root(p, evidence_dir)
    if evidence and not root.is_dir():
        raise UsageError(f"{p}: evidence asked for but no evidence directory {root} "
                         "(pass evidence_dir)")
    rows = []
    for n, rec in enumerate(data["Data"], 1):
        where = f"{p}, Data[{n - 1}]"
        if not isinstance(rec, dict) or "Question" not in rec:
            raise UsageError(f"{where}: expected an object with a 'Question'")
        ans = rec.get("Answer") or {}
        answers = [ans.get("Value"), *(ans.get("Aliases") or [])]
        context = None
        if evidence:
            for key, sub in (("EntityPages", "wikipedia"), ("SearchResults", "web")):
                for doc in rec.get(key) or []:
                    f = root / sub / str(doc.get("Filename", ""))
                    if doc.get("Filename") and f.is_file():
                        context = f.read_text(encoding="utf-8")
                        break
                if context:
                    break
        rows.append({"question": rec["Question"], "answers": answers, "context": context,
                     "id": rec.get("QuestionId") or f"triviaqa-{n}"})
    return rows


# ----------------------------------------------------------------------------- WebQuestions

_DESCRIPTION = re.compile(r'\(description\s+(?:"((?:[^"\\]|\\.)*)"|([^()"]+?))\)')


def webquestions_answers(target: str) -> list[str]:
    """Answers of a ``targetValue`` such as ``(list (description "Justin Bieber"))``."""
    out = []
    for quoted, bare in _DESCRIPTION.findall(target or ""):
        text = quoted.replace('\\"', '"') if quoted else bare
        if text.strip():
            out.append(text.strip())
    return out


def read_webquestions(path: str | os.PathLike) -> list[dict] | None:
    """Rows of the published WebQuestions JSON, or ``None`` when the file is another format."""
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
        answers = webquestions_answers(rec.get("targetValue", ""))
        if not answers:
            raise UsageError(f"{p}, record {n}: no (description ...) in targetValue "
                             f"{rec.get('targetValue')!r}")
        rows.append({"question": rec["utterance"], "answers": answers, "id": f"webq-{n}"})
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
            yield {"question": rec.get("question"),
                   "answers": rec.get("short_answers") or rec.get("answers"),
                   "context": rec.get("context") or rec.get("passage"),
                   "id": str(rec.get("example_id") or rec.get("id") or f"nq-{n}")}
        return
    for n, rec in read_text_lines(p):
        if "question_text" not in rec:  # already flat rows {"question", "answers", "context"}
            yield {**rec, "id": str(rec.get("id") or rec.get("example_id") or f"nq-{n}")}
            continue
        try:
            gold = nq_gold(rec)
        except (KeyError, TypeError, ValueError) as err:
            raise UsageError(f"{p}, line {n}: not an NQ record ({err})") from err
        if gold is None:
            continue
        yield {"question": rec["question_text"], "answers": gold[1], "context": gold[0],
               "id": str(rec.get("example_id") or f"nq-{n}")}


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
