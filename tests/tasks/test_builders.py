from dataclasses import replace

import numpy as np
import pytest

from lenskit.tasks import (
    CATEGORIES,
    TASK_KINDS,
    FunctionSpec,
    QAFormat,
    QAItem,
    QAItems,
    TaskInstance,
    TaskSet,
    TextWindow,
    closed_book_task,
    function_task,
    open_book_task,
    overriding_task,
    perplexity_task,
    sample_function_instances,
)


def _items(n=12):
    return QAItems(
        name="toy",
        items=tuple(
            QAItem(f"what is the colour of E{k}?", (f"c{k}", f"alias{k}"),
                   context=f"Filler sentence {k}. The colour of E{k} is c{k}.",
                   memorised_answer=f"m{k}", id=f"toy-{k}")
            for k in range(n)
        ),
        source="unit-test", split="dev",
    )


def test_kinds_and_categories_are_the_studys_grouping():
    assert TASK_KINDS == ("closed_book", "open_book", "overriding", "function", "perplexity")
    assert CATEGORIES == ("fact_recall", "icl", "lm")
    inst = (TaskInstance("a", "Q: x?\nA:", ("y",), memorised_answer="z"),)
    cats = {k: TaskSet("t", k, inst).category for k in TASK_KINDS if k != "perplexity"}
    assert cats == {"closed_book": "fact_recall", "open_book": "icl", "overriding": "icl",
                    "function": "icl"}
    assert TaskSet("p", "perplexity", (TextWindow("w", (1, 2, 3)),)).category == "lm"


def test_closed_book_prompt_and_shots():
    task = closed_book_task(_items(), QAFormat(), shots=2, seed=3)
    assert task.kind == "closed_book" and task.source == "unit-test" and task.split == "dev"
    assert len(task) == 12 and task.config["shots"] == 2
    for inst in task:
        # two solved examples, then the query; no passage in closed-book
        assert inst.prompt.count("Q: ") == 3 and inst.prompt.endswith("?\nA:")
        assert "Filler" not in inst.prompt
        assert inst.id not in inst.meta["shot_ids"] and len(set(inst.meta["shot_ids"])) == 2
        assert inst.answer_span is None and inst.memorised_answer is None
    again = closed_book_task(_items(), QAFormat(), shots=2, seed=3)
    assert [i.prompt for i in again] == [i.prompt for i in task]
    other = closed_book_task(_items(), QAFormat(), shots=2, seed=4)
    assert [i.prompt for i in other] != [i.prompt for i in task]


@pytest.mark.parametrize("shots", [0, 2])
def test_answer_span_points_at_the_passage_answer(shots):
    fmt = QAFormat(instruction="Answer these questions:\n\n", context_template="Text: {context}\n")
    for build in (open_book_task, overriding_task):
        task = build(_items(), fmt, shots=shots, seed=0)
        for inst in task:
            s, e = inst.answer_span
            assert inst.prompt[s:e] == inst.gold
            # the span is inside the query's own passage, after every example
            assert s > inst.prompt.rfind("A: ") if shots else True
    ov = overriding_task(_items(), shots=0)
    assert all(i.memorised_answer == f"m{i.id.split('-')[1]}" for i in ov)


def test_n_draws_a_seeded_subset_and_subset_method():
    task = open_book_task(_items(), n=5, seed=1)
    assert len(task) == 5
    assert [i.id for i in task] == [i.id for i in open_book_task(_items(), n=5, seed=1)]
    sub = task.subset(3, seed=0)
    assert len(sub) == 3 and [i.id for i in sub] == [i.id for i in task.subset(3, seed=0)]
    ids = [i.id for i in task]
    assert [ids.index(i.id) for i in sub] == sorted(ids.index(i.id) for i in sub)
    with pytest.raises(ValueError, match="subset size"):
        task.subset(0)
    with pytest.raises(ValueError, match="subset size"):
        task.subset(6)


def test_to_frame():
    frame = overriding_task(_items(4)).to_frame()
    assert list(frame["id"]) == [f"toy-{k}" for k in range(4)]
    assert {"task", "kind", "category", "prompt", "gold", "answers", "memorised_answer",
            "span_start", "span_end"} <= set(frame.columns)
    assert (frame["kind"] == "overriding").all()


def test_bad_task_inputs_are_clear_errors():
    inst = TaskInstance("a", "Q: x?\nA:", ("y",))
    with pytest.raises(ValueError, match="unknown task kind 'recall'"):
        TaskSet("t", "recall", (inst,))
    with pytest.raises(ValueError, match="is empty"):
        TaskSet("t", "closed_book", ())
    with pytest.raises(ValueError, match="duplicate instance id 'a'"):
        TaskSet("t", "closed_book", (inst, inst))
    with pytest.raises(ValueError, match="memorised_answer"):
        TaskSet("t", "overriding", (inst,))
    with pytest.raises(ValueError, match="TextWindow"):
        TaskSet("t", "perplexity", (inst,))
    with pytest.raises(ValueError, match="unknown category"):
        TaskSet("t", "closed_book", (inst,), category="memory")
    with pytest.raises(ValueError, match="at least one gold answer"):
        TaskInstance("a", "Q: x?\nA:", ())
    with pytest.raises(ValueError, match="answer_span"):
        TaskInstance("a", "Q: x?\nA:", ("y",), answer_span=(3, 99))
    with pytest.raises(ValueError, match="non-empty answer"):
        QAItem("q?", ("", " "))
    with pytest.raises(ValueError, match=r"\{question\}"):
        QAFormat(question_template="Question: ?\nAnswer:")
    with pytest.raises(ValueError, match="passage for every item"):
        open_book_task([QAItem("q?", ("a",))])
    with pytest.raises(ValueError, match="memorised_answer"):
        overriding_task([QAItem("q?", ("a",), context="a")])
    with pytest.raises(ValueError, match="no items"):
        closed_book_task([])
    with pytest.raises(ValueError, match="shots=12"):
        closed_book_task(_items(), shots=12)
    with pytest.raises(ValueError, match="n must be"):
        closed_book_task(_items(), n=13)
    with pytest.raises(ValueError, match="score_from"):
        TextWindow("w", (1, 2), score_from=2)


@pytest.mark.parametrize("kind", ["linear", "mlp", "tree"])
@pytest.mark.parametrize("k", [2, 4])
def test_function_instances_are_balanced_and_deterministic(kind, k):
    spec = FunctionSpec(kind=kind, n_dims=4, n_exemplars=32, n_classes=k)
    insts = sample_function_instances(spec, 8 * k, seed=5)
    labels = np.array([i.label for i in insts])
    assert np.bincount(labels, minlength=k).tolist() == [8] * k  # exactly balanced
    for inst in insts:
        assert inst.answer == spec.labels[inst.label]
        lines = inst.prompt.split("\n")
        assert len(lines) == spec.n_exemplars + 1 and lines[-1].endswith("->")
        assert len(lines[-1].split()) == spec.n_dims + 1
        assert set(inst.exemplars_y.tolist()) == set(range(k))  # every class is shown
    again = sample_function_instances(spec, 8 * k, seed=5)
    assert [i.prompt for i in again] == [i.prompt for i in insts]
    other = sample_function_instances(spec, 8 * k, seed=6)
    assert [i.prompt for i in other] != [i.prompt for i in insts]


def test_function_task_wraps_instances():
    spec = FunctionSpec(kind="tree", n_dims=2, n_exemplars=8, n_classes=2)
    task = function_task(spec, 10, seed=1)
    assert task.name == "fn_tree_d2_n8_k2" and task.kind == "function" and len(task) == 10
    assert sorted(i.meta["label"] for i in task) == [0] * 5 + [1] * 5
    assert task.config["n_exemplars"] == 8 and task.config["labels"] == ["foo", "bar"]
    with pytest.raises(ValueError, match="n must be"):
        function_task(spec, 0)


def test_perplexity_windows_score_every_token_once(tiny_dirs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dirs["llama"])  # prepends <bos>
    text = " ".join(["The capital of Brirul is red ."] * 40)
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    for stride in (16, 32):
        task = perplexity_task(text, tok, window=32, stride=stride)
        assert task.kind == "perplexity" and task.config["add_bos"] is True
        assert all(w.tokens[0] == tok.bos_token_id for w in task)
        assert sum(w.n_scored for w in task) == n  # with a BOS every token is scored once
        assert all(len(w.tokens) <= 33 for w in task)
    raw = perplexity_task([[5, 6, 7, 8, 9], [10, 11]], window=3)
    assert raw.config["add_bos"] is False
    # without a BOS a document's first token and each disjoint window's first are context
    assert [w.tokens for w in raw] == [(5, 6, 7), (8, 9), (10, 11)]
    assert [w.n_scored for w in raw] == [2, 1, 1]
    with pytest.raises(ValueError, match="tokenizer"):
        perplexity_task("some text")
    with pytest.raises(ValueError, match="stride"):
        perplexity_task([1, 2, 3], window=4, stride=5)
    with pytest.raises(ValueError, match="too short"):
        perplexity_task([[1]], window=4)


@pytest.mark.parametrize("k", [2, 4])
def test_single_instances_ask_for_every_class(k):
    """The organism's corpus draws one instance at a time: its query class must vary (a
    generator that always asked for class 0 taught a model to always answer 'foo')."""
    spec = FunctionSpec(kind="linear", n_dims=1, n_exemplars=8, n_classes=k, value_range=5)
    labels = [sample_function_instances(spec, 1, seed=s)[0].label for s in range(40 * k)]
    counts = np.bincount(labels, minlength=k)
    assert counts.min() >= 20  # roughly uniform (expected 40 each)
    # A remainder (n not a multiple of K) gets distinct classes.
    rest = sample_function_instances(spec, k + k - 1, seed=3)
    assert sorted(np.bincount([i.label for i in rest], minlength=k).tolist()) == \
        [1] + [2] * (k - 1)


def test_organism_corpus_function_documents_ask_for_both_labels():
    from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler
    from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
    from lenskit.synthetic.world import WorldConfig

    world = WorldConfig(n_memorised=10, n_held_out=10, n_unseen=2, n_cities=5).build()
    sampler = CorpusSampler(world, build_tokenizer(organism_vocabulary(world)),
                            CorpusConfig(mixture={"function": 1.0}))
    answers = [sampler.document(np.random.default_rng(i), "function")[0].split()[-1]
               for i in range(60)]
    assert {"foo", "bar"} <= set(answers)
    assert 15 <= answers.count("foo") <= 45


def test_chance_is_data_on_the_task():
    k4 = function_task(FunctionSpec(kind="tree", n_dims=2, n_exemplars=4, n_classes=4), 8, seed=0,
                       name="renamed_without_any_k")
    assert k4.chance == 0.25  # class-balanced labels: the most frequent is 2 of 8
    odd = function_task(FunctionSpec(n_dims=2, n_exemplars=4, n_classes=2), 5, seed=0, name="odd")
    assert odd.chance == 0.6  # 3 of 5 share a label: a constant guess gets 0.6
    # QA: the best constant answer's accuracy ("Africa" answers 2 of 4 continent questions;
    # aliases count once per question, after exact match's normalisation)
    qa = TaskSet("qa", "closed_book", tuple(
        TaskInstance(f"q{k}", f"Q: where is {c}? A:", answers)
        for k, (c, answers) in enumerate([("Chad", ("Africa",)), ("Peru", ("South America",)),
                                          ("Mali", ("africa", "Africa.")),
                                          ("Laos", ("Asia",))])))
    assert qa.chance == 0.5 and replace(qa, name="other").chance == 0.5
    distinct = _items(12)
    assert closed_book_task(distinct, shots=0).chance == pytest.approx(1 / 12)
    assert replace(qa, chance=0.25).chance == 0.25  # a builder may set its own
    with pytest.raises(ValueError, match=r"chance must be a number in \[0, 1\] or None, got 2"):
        replace(qa, chance=2)
    win = TaskSet("ppl", "perplexity", (TextWindow("w", (1, 2, 3)),))
    assert win.chance is None
    with pytest.raises(ValueError, match="perplexity task has no chance"):
        replace(win, chance=0.1)
