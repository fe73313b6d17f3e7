"""The loaders on files laid out as each dataset publishes them (fixtures in ./published),
and the WebQuestions targetValue grammar under property-based tests."""

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenskit.tasks import (
    build_suite,
    load_natural_questions,
    load_popqa,
    load_triviaqa,
    load_webquestions,
)
from lenskit.tasks.loaders import evidence_paragraph, popularity_buckets
from lenskit.tasks.published import (
    split_from_filename,
    webquestions_answers,
    webquestions_target,
)

DATA = Path(__file__).parent / "published"

# ----------------------------------------------------------------------------- WebQuestions

# Descriptions as Freebase names look, and worse: quotes, parentheses, backslashes, '#',
# newlines, tabs, unicode, leading/trailing spaces, the empty string.
_TEXT = st.text(alphabet=st.one_of(
    st.sampled_from(list('"()\\# \t\nabcXYZ019-.,\'')),
    st.characters(min_codepoint=0xa0, max_codepoint=0x2fff, blacklist_categories=("Cs",))),
    max_size=24)


def _no_boundary(answers):
    # The one string the grammar cannot carry inside a description: its own separator.
    return not any(") (description " in a for a in answers)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TEXT, max_size=6).filter(_no_boundary))
def test_targetvalue_roundtrips_as_sempre_prints_it(answers):
    target = webquestions_target(answers)
    assert target.startswith("(list") and target.endswith(")")
    assert webquestions_answers(target) == answers


# Circulating copies write nicknames with raw inner quotes: "George Herman "Babe" Ruth".
_RAW = st.text(alphabet=st.sampled_from(list('"() abcXYZé北-.')), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(_RAW.filter(lambda t: " " in t and "\\" not in t), min_size=1, max_size=5)
       .filter(_no_boundary))
def test_targetvalue_with_unescaped_inner_quotes(answers):
    target = "(list" + "".join(f' (description "{a}")' for a in answers) + ")"
    assert webquestions_answers(target) == answers


def test_targetvalue_examples_and_errors():
    assert webquestions_answers("(list)") == []
    assert webquestions_answers("(list )") == []
    assert webquestions_answers('(list (description "Robert "Bob" Smith") (description X))'
                                ) == ['Robert "Bob" Smith', "X"]
    # the printer's long-line layout: one description per indented line
    assert webquestions_answers('(list\n  (description "A b")\n  (description C)\n)') == \
        ["A b", "C"]
    for bad in ("Lima", "(set (description X))", "(list (name X))",
                '(list (description "unclosed))'):
        with pytest.raises(ValueError, match="targetValue"):
            webquestions_answers(bad)


def test_webquestions_published_test_and_train_files():
    test = load_webquestions(DATA / "webquestions.examples.test.json")
    assert test.split == "test"
    # the (list) record is dropped and counted; nothing else is lost
    assert test.config == {"n_read": 6, "n_kept": 5, "n_no_answer": 1}
    answers = {it.question: it.answers for it in test}
    assert answers["what was babe ruth's real name?"] == ('George Herman "Babe" Ruth',)
    assert answers["what team did magic johnson play for?"] == (
        'Earvin "Magic" Johnson', "Lakers", "Los Angeles Lakers (NBA)")
    assert answers["what is beijing called?"] == ("北京 \\ Peking", "C# (language)")
    assert answers["what character did natalie portman play in star wars?"] == \
        ("Padmé Amidala",)
    assert test[0].meta["url"].endswith("justin_bieber")
    train = load_webquestions(DATA / "webquestions.examples.train.json")
    assert train.split == "train" and len(train) == 2
    with pytest.raises(ValueError, match="says split 'train'"):
        load_webquestions(DATA / "webquestions.examples.train.json", split="test")


def test_webquestions_record_errors_list_the_fields_present(tmp_path):
    path = tmp_path / "webquestions.examples.test.json"
    path.write_text(json.dumps([{"url": "u", "utterance": "q?", "target": "(list)"}]))
    with pytest.raises(ValueError, match=r"record 1: missing field\(s\) \['targetValue'\] "
                                         r"\(has \['target', 'url', 'utterance'\]\)"):
        load_webquestions(path)
    path.write_text(json.dumps([{"utterance": "q?", "targetValue": "Lima"}]))
    with pytest.raises(ValueError, match="record 1: targetValue 'Lima'"):
        load_webquestions(path)


# ----------------------------------------------------------------------------- TriviaQA


def test_triviaqa_rc_dev_closed_and_open_book():
    dev = DATA / "triviaqa-rc" / "qa" / "wikipedia-dev.json"
    closed = load_triviaqa(dev)
    assert closed.split == "validation" and len(closed) == 5
    assert closed[1].answers == ("Muhammad Ali", "Cassius Clay", '"The Greatest"')
    assert closed[3].answers[0] == "Switzerland" and closed[3].context is None
    opened = load_triviaqa(dev, evidence=True)
    by_id = {it.id: it for it in opened}
    # tc_2's answer is only in a search result (an unrelated blog): never used;
    # tc_3's entity page is not in the evidence directory
    assert sorted(by_id) == ["tc_0", "tc_1", "tc_4"]
    assert opened.config["n_without_evidence"] == 2
    # the paragraph holding the answer, not the page's first paragraph
    assert by_id["tc_0"].context == ("Its capital and largest city is Lima, on the Pacific "
                                     "coast.")
    # found on the question's second entity page (the first one has no alias)
    assert by_id["tc_1"].context.startswith("Born Cassius Clay")
    assert "Franz Kafka" in by_id["tc_4"].context and "«" in by_id["tc_4"].context
    s, e = by_id["tc_0"].answer_span()
    assert by_id["tc_0"].context[s:e] == "Lima"


def test_triviaqa_split_comes_from_the_file_name(tmp_path):
    train = load_triviaqa(DATA / "triviaqa-rc" / "qa" / "wikipedia-train.json")
    assert train.split == "train" and len(train) == 1
    with pytest.raises(ValueError, match="says split 'train' but split='validation'"):
        load_triviaqa(DATA / "triviaqa-rc" / "qa" / "wikipedia-train.json",
                      split="validation")
    assert split_from_filename("verified-wikipedia-test-without-answers.json") == "test"
    assert split_from_filename("unfiltered-web-dev.json") == "validation"
    assert split_from_filename("triviaqa.jsonl") is None
    # a test file without answers says so, with the fields it has
    data = json.loads((DATA / "triviaqa-rc" / "qa" / "wikipedia-dev.json").read_text())
    for rec in data["Data"]:
        del rec["Answer"]
    qa = tmp_path / "triviaqa-rc" / "qa"
    qa.mkdir(parents=True)
    (qa / "wikipedia-test-without-answers.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"no 'Answer' \(a test file without answers\? "
                                         r"the record has fields \['EntityPages'"):
        load_triviaqa(qa / "wikipedia-test-without-answers.json")


def test_triviaqa_evidence_directory_must_exist(tmp_path):
    qa = tmp_path / "qa"
    qa.mkdir()
    shutil.copy(DATA / "triviaqa-rc" / "qa" / "wikipedia-dev.json", qa)
    assert len(load_triviaqa(qa / "wikipedia-dev.json")) == 5  # closed-book needs none
    with pytest.raises(ValueError, match="no entity-page directory"):
        load_triviaqa(qa / "wikipedia-dev.json", evidence=True)


def test_evidence_paragraph_cuts_around_the_answer():
    doc = "Intro.\n" + "word " * 800 + "the answer is Lima here " + "word " * 800
    para = evidence_paragraph([doc], ["Lima"], max_chars=200)
    assert "Lima" in para and len(para) <= 200
    assert evidence_paragraph(["Lima" + "x"], ["Lima"]) is None  # not on a word boundary
    assert evidence_paragraph([], ["Lima"]) is None


# ----------------------------------------------------------------------------- NaturalQuestions


def test_natural_questions_missing_passage_lists_the_fields_there():
    path = DATA / "nq-dev-gold-passages.json"
    with pytest.raises(ValueError, match=r"record 2: missing field 'context' or 'passage' or "
                                         r"'gold_passage' \(the record has fields "
                                         r"\['example_id', 'question', 'short_answers', "
                                         r"'title'\]\)") as err:
        load_natural_questions(path)
    assert "'context'" not in str(err.value).split("has fields")[1]


# ----------------------------------------------------------------------------- PopQA


def test_popqa_tsv_with_terciles():
    items = load_popqa(DATA / "popQA.tsv")
    assert len(items) == 6 and items.split == "test"
    by_subj = {it.meta["subj"]: it for it in items}
    assert by_subj["Paris"].answers == ("France", "French Republic", "République française")
    assert by_subj["Dwayne Johnson"].answers[1] == '"The Rock" (wrestler)'
    assert by_subj["Lake Ohrid"].answers[2] == "Северна Македонија"
    assert by_subj["George Rankin"].meta["prop"] == "occupation"
    # 6 s_pop values: 12, 142 tail; 3100, 8200 torso; 350000, 1098321 head
    assert {s: it.meta["bucket"] for s, it in by_subj.items()} == {
        "Zyx Qua": "tail", "George Rankin": "tail", "Lake Ohrid": "torso",
        "Tove Jansson": "torso", "Dwayne Johnson": "head", "Paris": "head"}
    assert items.config["buckets"]["counts"] == {"head": 2, "torso": 2, "tail": 2}
    assert items.config["buckets"]["edges"] == [3100.0, 350000.0]
    fixed = load_popqa(DATA / "popQA.tsv", bins=(100, 10000))
    assert [it.meta["bucket"] for it in fixed] == ["torso", "head", "head", "tail", "torso",
                                                   "torso"]


def test_popqa_hub_rows_and_bucket_tasks(tmp_path):
    # the hub's rows (akariasai/PopQA): possible_answers is a JSON-encoded string
    rows = [{"id": k, "subj": f"S{k}", "prop": "capital", "obj": f"C{k}", "s_pop": pop,
             "question": f"What is the capital of S{k}?",
             "possible_answers": json.dumps([f"C{k}", f"City {k}"])}
            for k, pop in enumerate([5, 50, 500, 5000, 50000, 500000])]
    path = tmp_path / "popqa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    items = load_popqa(path)
    assert items[0].answers == ("C0", "City 0") and items[5].meta["bucket"] == "head"
    suite = build_suite([{"task": f"popqa_{b}", "path": str(path), "part": "all", "shots": 0}
                         for b in ("head", "torso", "tail")])
    assert {n: len(t) for n, t in suite.items()} == {"popqa_head": 2, "popqa_torso": 2,
                                                     "popqa_tail": 2}
    assert suite["popqa_tail"].kind == "closed_book"
    assert suite["popqa_head"].instances[0].answers == ("C4", "City 4")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**rows[0], "possible_answers": "C0, City 0"}))
    with pytest.raises(ValueError, match="possible_answers is not a JSON-encoded list"):
        load_popqa(bad)
    bad.write_text(json.dumps({"question": "q?", "possible_answers": "[\"a\"]"}))
    with pytest.raises(ValueError, match=r"missing field 's_pop' \(the record has fields "
                                         r"\['possible_answers', 'question'\]\)"):
        load_popqa(bad)


def test_popqa_tsv_missing_column_lists_the_header(tmp_path):
    path = tmp_path / "popQA.tsv"
    path.write_text("id\tquestion\tanswers\n1\tq?\t[\"a\"]\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['possible_answers', "
                                         r"'s_pop'\].*found \['id', 'question', 'answers'\]"):
        load_popqa(path)


def test_popularity_buckets_rules():
    buckets, how = popularity_buckets([1, 2, 3, 4, 5, 6, 7])
    assert buckets == ["tail", "tail", "tail", "torso", "torso", "head", "head"]
    assert how["counts"] == {"head": 2, "torso": 2, "tail": 3}
    with pytest.raises(ValueError, match="two increasing edges"):
        popularity_buckets([1, 2], bins=(10, 5))
