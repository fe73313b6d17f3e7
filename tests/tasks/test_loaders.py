import csv
import json
import re

import pytest

from lenskit.tasks import (
    DatasetUnavailableError,
    load_disentqa,
    load_natural_questions,
    load_popqa,
    load_triviaqa,
    load_webquestions,
    open_book_task,
    overriding_task,
)


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _trivia_row(k, answer, aliases, evidence):
    return {"question": f"Question {k}?", "question_id": f"tq{k}",
            "answer": {"value": answer, "aliases": aliases, "normalized_aliases": []},
            "entity_pages": {"doc_source": ["x"], "filename": ["f"], "title": ["t"],
                             "wiki_context": [evidence]}}


def test_triviaqa_local_file_with_aliases_and_evidence_filter(tmp_path):
    long_tail = " filler" * 400  # ~2800 characters
    path = _jsonl(tmp_path / "tq.jsonl", [
        _trivia_row(0, "Paris", ["Paris", "Paree"], "Paris is the capital of France."),
        _trivia_row(1, "Lima", ["Lima"], "Peru is a country." + long_tail + " Lima."),
        _trivia_row(2, "The Beatles", ["Beatles"], "A band: the beatles, from Liverpool."),
        _trivia_row(3, "Oslo", ["Oslo"], "No answer here, only Oslofjord."),
    ])
    closed = load_triviaqa(path)
    assert len(closed) == 4 and closed.source == str(path) and closed.split == "validation"
    assert closed[0].answers == ("Paris", "Paree") and closed[0].context is None
    assert closed[0].id == "tq0" and closed.config["n_read"] == 4
    opened = load_triviaqa(path, evidence=True, evidence_chars=2000)
    # "Oslo" only inside "Oslofjord" (not a word match); Lima lies beyond 2000 characters
    # of its page, and the cut is made around it
    assert [i.id for i in opened] == ["tq0", "tq1", "tq2"]
    assert opened.config["n_kept"] == 3 and opened.name == "triviaqa_open"
    assert opened[1].context.endswith("Lima.") and len(opened[1].context) <= 2000
    assert "Peru" not in opened[1].context
    assert len(load_triviaqa(path, evidence=True, evidence_chars=None)[1].context) > 2000
    task = open_book_task(opened)
    beatles = task.instances[2]
    s, e = beatles.answer_span
    assert beatles.prompt[s:e].lower() == "the beatles"


def test_webquestions_and_natural_questions_local_files(tmp_path):
    wq = load_webquestions(_jsonl(tmp_path / "wq.jsonl", [
        {"url": "u", "question": "what is the capital of peru?", "answers": ["Lima"]},
        {"question": "who wrote hamlet?", "answers": ["Shakespeare", "William Shakespeare"]},
    ]))
    assert wq.split == "test" and len(wq) == 2 and wq[1].answers[1] == "William Shakespeare"
    nq_path = tmp_path / "nq.json"
    nq_path.write_text(json.dumps([
        {"id": "n1", "question": "capital of peru", "answers": ["Lima"],
         "context": "<P> Lima is the capital of Peru . </P>"}]))
    nq = load_natural_questions(nq_path)
    assert nq[0].id == "n1" and nq[0].answer_span() == (4, 8)
    assert open_book_task(nq).kind == "open_book"


def test_disentqa_csv(tmp_path):
    path = tmp_path / "disent.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "context", "parametric_answer", "contextual_answer", "type"])
        w.writerow(["who wrote hamlet?", "Hamlet was written by Marlowe.", "Shakespeare",
                    "Marlowe", "counterfactual"])
        w.writerow(["who wrote hamlet?", "Hamlet was written by Shakespeare.",
                    "Shakespeare", "Shakespeare", "factual"])
        w.writerow(["who wrote hamlet?", "", '["Shakespeare", "W. Shakespeare"]',
                    "", "closed_book"])
    cf = load_disentqa(path)
    assert len(cf) == 1 and cf[0].answers == ("Marlowe",)
    assert cf[0].memorised_answer == "Shakespeare" and cf[0].meta["type"] == "counterfactual"
    task = overriding_task(cf)
    s, e = task.instances[0].answer_span
    assert task.instances[0].prompt[s:e] == "Marlowe"
    factual = load_disentqa(path, types=("factual",))
    assert factual[0].memorised_answer is None
    cb = load_disentqa(path, types=("closed_book",))
    assert cb[0].context is None and cb[0].answers == ("Shakespeare", "W. Shakespeare")


def test_malformed_files_are_clear_errors(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"question": "q?", "answers": ["a"]}\n{"question": \n')
    with pytest.raises(ValueError, match="line 2"):
        load_webquestions(bad_json)
    missing = _jsonl(tmp_path / "missing.jsonl", [{"question": "q?"}])
    with pytest.raises(ValueError, match=r"missing field 'answers' \(the record has fields "
                                         r"\['question'\]\)"):
        load_webquestions(missing)
    no_passage = _jsonl(tmp_path / "nq.jsonl", [{"question": "q?", "answers": ["a"]}])
    with pytest.raises(ValueError, match=r"missing field 'context' or 'passage' or "
                                         r"'gold_passage' \(the record has fields "
                                         r"\['answers', 'question'\]\)"):
        load_natural_questions(no_passage)
    with pytest.raises(ValueError, match="no such file"):
        load_triviaqa(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no records"):
        load_webquestions(empty)
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("question,context,answer\nq,c,a\n")
    with pytest.raises(ValueError, match="missing column"):
        load_disentqa(csv_path)
    csv_path.write_text("question,context,parametric_answer,contextual_answer,type\n"
                        "q,c,a,b,weird\n")
    with pytest.raises(ValueError, match="unknown type 'weird'"):
        load_disentqa(csv_path)
    with pytest.raises(ValueError, match="unknown DisentQA type"):
        load_disentqa(csv_path, types=("counter",))


def test_offline_without_a_file_says_how_to_provide_one(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for loader, hint in ((load_triviaqa, "triviaqa-rc/qa/wikipedia-dev.json"),
                         (load_webquestions, "webquestions.examples.test.json"),
                         (load_natural_questions, "nq.jsonl"), (load_popqa, "popQA.tsv")):
        with pytest.raises(DatasetUnavailableError, match=re.escape(hint)):
            loader()
    # closed-book asks the hub for the questions only (a few MB), open-book for evidence
    with pytest.raises(DatasetUnavailableError, match=r"\(rc\.wikipedia\.nocontext, "):
        load_triviaqa()
    with pytest.raises(DatasetUnavailableError, match=r"\(rc\.wikipedia, "):
        load_triviaqa(evidence=True)
    with pytest.raises(DatasetUnavailableError, match=r"disentqa\.csv"):
        load_disentqa()
