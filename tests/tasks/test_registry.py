"""Tasks by name: specs, did-you-mean, and builds from fixture files in each dataset's
published format (no network)."""

import csv
import gzip
import json

import pytest

from lenskit.cli import main
from lenskit.errors import UsageError
from lenskit.models import load_model
from lenskit.tasks import (
    TASKS,
    build_suite,
    build_task,
    describe_tasks,
    evaluate,
    load_natural_questions,
    load_triviaqa,
    load_webquestions,
    parse_spec,
    parse_specs,
)
from lenskit.tasks.published import webquestions_answers
from lenskit.tasks.registry import resolve_spec, select_part


def test_spec_strings_and_tables_parse_alike():
    name, values = parse_spec("triviaqa:n=500,shots=3,path=/data/tq")
    assert name == "triviaqa" and values == {"n": "500", "shots": "3", "path": "/data/tq"}
    assert parse_spec({"task": "triviaqa", "n": 500})[1] == {"n": 500}
    table = parse_specs({"triviaqa": {"n": 5}, "fn_tree": {"d": 2}})
    assert [n for n, _ in table] == ["triviaqa", "fn_tree"]
    assert [n for n, _ in parse_specs("fn_linear; fn_mlp:n=4")] == ["fn_linear", "fn_mlp"]
    resolved = TASKS["triviaqa"].resolve({"n": "all", "stop": ".|;", "fold_accents": "true"})
    assert resolved["n"] is None and resolved["stop"] == (".", ";")
    assert resolved["fold_accents"] is True and resolved["shots"] == 3


def test_unknown_names_keys_and_values_fail_with_a_suggestion():
    with pytest.raises(ValueError, match="did you mean 'triviaqa'"):
        parse_spec("trivia_qa:n=3")
    with pytest.raises(ValueError, match="did you mean 'shots'"):
        parse_spec("webquestions:shot=3")
    with pytest.raises(ValueError, match="'jinja' is not allowed"):
        build_suite("countries_capital_closed_book:template=jinja")
    with pytest.raises(ValueError, match="cannot read 'many' as int"):
        build_suite("fn_linear:n=many")
    with pytest.raises(ValueError, match="expected key=value"):
        parse_spec("fn_linear:n")
    with pytest.raises(ValueError, match="as="):
        build_suite(["fn_linear:n=2", "fn_linear:n=3"])


def test_countries_by_name_with_fixed_true_demonstrations():
    suite = build_suite(["countries_capital_overriding:n=20,shots=3",
                         "countries_capital_closed_book:n=10,template=qa,as=cb_qa"])
    ov, cb = suite["countries_capital_overriding"], suite["cb_qa"]
    assert len(ov) == 20 and len(cb) == 10 and cb.kind == "closed_book"
    assert all(i.prompt.count("Q: ") == 4 for i in cb)
    demo_lines = ov.instances[0].prompt.split("\n")[:6]
    assert all(i.prompt.startswith("\n".join(demo_lines)) for i in ov)
    # overriding demonstrations are true open-book facts: passage and answer agree
    for ctx, stmt in zip(demo_lines[0::2], demo_lines[1::2], strict=True):
        assert ctx == "Context: " + stmt
    assert ov.config["params"]["part"] == "eval"
    # the eval and select parts are disjoint and cover every item
    items = list(range(50))
    from lenskit.tasks.items import QAItem

    qa = [QAItem(f"q{k}?", ("a",), id=f"i{k}") for k in items]
    ev, se = select_part(qa, "eval"), select_part(qa, "select")
    assert len(ev) + len(se) == 50 and not {i.id for i in ev} & {i.id for i in se} and se


def _triviaqa_rc(root):
    (root / "qa").mkdir(parents=True)
    wiki = root / "evidence" / "wikipedia"
    wiki.mkdir(parents=True)
    (wiki / "Paris.txt").write_text("Paris is the capital and largest city of France.")
    (wiki / "Oslo.txt").write_text("A fjord city with no capital named here.")
    data = {"Data": [
        {"Question": f"Question {k}?", "QuestionId": f"tc_{k}",
         "Answer": {"Value": v, "Aliases": [v, v.upper()], "NormalizedAliases": [v.lower()]},
         "EntityPages": [{"Filename": f, "Title": f[:-4], "DocSource": "TagMe"}],
         "SearchResults": []}
        for k, (v, f) in enumerate([("Paris", "Paris.txt"), ("Lima", "Oslo.txt")] * 6)]}
    qa = root / "qa" / "wikipedia-dev.json"
    qa.write_text(json.dumps(data))
    return qa


def test_triviaqa_rc_format_with_evidence_files(tmp_path):
    qa = _triviaqa_rc(tmp_path / "triviaqa-rc")
    closed = load_triviaqa(qa)
    assert len(closed) == 12 and closed[0].answers == ("Paris", "PARIS")
    assert closed[0].id == "tc_0" and closed[0].context is None
    opened = load_triviaqa(tmp_path / "triviaqa-rc", evidence=True)
    assert len(opened) == 6 and all("capital" in i.context for i in opened)
    suite = build_suite([f"triviaqa:path={qa},part=all,shots=2,n=4",
                         {"task": "triviaqa_open", "path": str(qa), "part": "all",
                          "shots": 1}])
    assert len(suite["triviaqa"]) == 4 and suite["triviaqa"].source == str(qa)
    assert suite["triviaqa_open"].kind == "open_book" and len(suite["triviaqa_open"]) == 5
    with pytest.raises(ValueError, match="no entity-page directory"):
        load_triviaqa(qa, evidence=True, evidence_dir=tmp_path / "nowhere")


def test_webquestions_published_json(tmp_path):
    assert webquestions_answers('(list (description "Justin Bieber") (description Jazmyn))') \
        == ["Justin Bieber", "Jazmyn"]
    rows = [{"url": "http://www.freebase.com/view/en/x", "utterance": f"what is {k}?",
             "targetValue": f'(list (description "Answer {k}") (description A{k}))'}
            for k in range(8)]
    path = tmp_path / "webquestions.examples.test.json"
    path.write_text(json.dumps(rows))
    items = load_webquestions(path)
    assert len(items) == 8 and items[3].answers == ("Answer 3", "A3")
    task = build_task(f"webquestions:path={path},part=all,shots=2,template=question_answer")
    assert len(task) == 6 and task.instances[0].prompt.startswith("Question: ")


def _nq_record(k, with_short=True):
    tokens = ["<P>", "The", "river", f"R{k}", "flows", "north", ".", "</P>", "Other", "text"]
    shorts = [{"start_token": 3, "end_token": 4}] if with_short else []
    return {"example_id": 100 + k, "question_text": f"which river {k}",
            "document_text": " ".join(tokens), "long_answer_candidates": [],
            "annotations": [{"long_answer": {"start_token": 0, "end_token": 8,
                                             "candidate_index": 0},
                             "short_answers": shorts, "yes_no_answer": "NONE"}]}


def test_natural_questions_simplified_jsonl_gz(tmp_path):
    path = tmp_path / "simplified-nq-dev.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for k in range(6):
            f.write(json.dumps(_nq_record(k, with_short=k != 5)) + "\n")
    items = load_natural_questions(path)
    assert len(items) == 5  # no short answer: skipped
    assert items[0].context == "The river R0 flows north ." and items[0].answers == ("R0",)
    assert items[0].id == "100"
    task = build_task(f"natural_questions:path={path},part=all,shots=1")
    s, e = task.instances[0].answer_span
    assert task.instances[0].prompt[s:e] == task.instances[0].gold


def test_disentqa_csv_counts_memorised_answers(tmp_path, copy_model):
    path = tmp_path / "disentqa.csv"
    cities = ["Paris", "Rome", "Oslo", "Lima", "Kyiv", "Riga"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "context", "parametric_answer", "contextual_answer", "type"])
        for k, (a, b) in enumerate(zip(cities, cities[1:] + cities[:1], strict=True)):
            w.writerow([f"where is {k}?", f"It is in {b}.", a, b, "counterfactual"])
            w.writerow([f"where was {k}?", f"It was in {a}.", a, a, "factual"])
        w.writerow(["same?", "It is in Rome.", "Rome", "Rome", "counterfactual"])
    task = build_task(f"disentqa:path={path},part=all,shots=2")
    assert len(task) == 6  # the row whose answers agree is dropped
    assert task.config["items"]["n_same_answer_dropped"] == 1
    demo_block = task.instances[0].prompt.split("\n\n")[:2]
    assert all("was in" in d for d in demo_block)  # true (factual) demonstrations
    with pytest.raises(ValueError, match="factual"):
        only_cf = tmp_path / "cf.csv"
        only_cf.write_text("\n".join(row for row in path.read_text().splitlines()
                                     if "factual" not in row.replace("counterfactual", "")))
        build_task(f"disentqa:path={only_cf},part=all")


def test_perplexity_from_c4_wikitext_and_text_files(tmp_path, tiny_dirs):
    model = load_model(tiny_dirs["gpt2"])
    c4 = tmp_path / "c4-validation.00000-of-00008.json.gz"
    with gzip.open(c4, "wt") as f:
        for k in range(4):
            f.write(json.dumps({"text": f"what is the capital {k}", "url": "u",
                                "timestamp": "t"}) + "\n")
    wiki = tmp_path / "wiki.test.raw"
    wiki.write_text(" = Title = \n\n what is the capital of the city \n")
    suite = build_suite([f"perplexity_c4:path={c4},max_docs=3,window=8",
                         f"perplexity_wikitext2:path={wiki}",
                         f"perplexity_text:path={wiki},as=ppl_local"], model)
    assert suite["perplexity_c4"].config["n_documents"] == 3
    assert suite["perplexity_wikitext2"].source == str(wiki)
    res = evaluate(model, suite["ppl_local"], n_bootstrap=0)
    assert res.value("ppl_local", "perplexity") > 1
    with pytest.raises(ValueError, match="needs the model"):
        build_task(f"perplexity_text:path={wiki}")


def test_function_tasks_by_name():
    suite = build_suite("fn_tree:n=6,d=2,exemplars=8,k=3,decimals=1")
    task = suite["fn_tree_d2_n8_k3"]
    assert len(task) == 6 and task.config["decimals"] == 1
    assert task.instances[0].prompt.count("->") == 9


def test_function_parameters_are_checked_together_before_any_task_is_built(tmp_path, capsys):
    # k=99 is a valid integer alone but more classes than the 8 labels: refused when the
    # spec is resolved (no data loaded), and by a sweep before its run directory exists.
    with pytest.raises(UsageError, match=r"task fn_linear \(d=4, exemplars=32, k=99.*"
                                         r"n_classes must be in 2\.\.8"):
        resolve_spec("fn_linear", {"k": "99"})
    resolve_spec("fn_linear", {"k": "8"})  # the most labels there are
    out = tmp_path / "run"
    assert main(["sweep", "--out", str(out), "--methods", "magnitude", "--sparsities", "0.5",
                 "--scopes", "mlp", "--suite", "fn_mlp:k=9"]) == 2
    err = capsys.readouterr().err
    assert "task fn_mlp" in err and "got 9" in err and "--debug" not in err
    assert not out.exists()


def test_cli_lists_tasks(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert out == describe_tasks() + "\n"
    for name in ("triviaqa", "natural_questions", "disentqa", "fn_mlp", "perplexity_c4",
                 "countries_region_overriding"):
        assert f"\n{name}  [" in "\n" + out
    assert "shots=3" in out and "part=eval" in out


def test_passage_length_and_distractors_keep_the_answer_span():
    from lenskit.tasks import with_passages
    from lenskit.tasks.items import QAItem

    filler = " ".join(f"word{k}" for k in range(200))
    items = [QAItem(f"q{k}?", (f"Ans{k}",), context=f"{filler} The answer is Ans{k}. {filler}",
                    id=f"i{k}") for k in range(5)]
    cut = with_passages(items, passage_chars=80)
    for it in cut:
        assert len(it.context) <= 80
        s, e = it.answer_span()
        assert it.context[s:e] == it.answers[0]
        assert not it.context.startswith(" ") and "word" in it.context
    mixed = with_passages(cut, distractors=2, seed=1)
    for it, orig in zip(mixed, cut, strict=True):
        s, e = it.context_answer_span
        assert it.context[s:e] == it.answers[0]
        assert len(it.context) > 2 * len(orig.context)
    assert with_passages(items) == items  # default: the gold passage as it is
    with pytest.raises(ValueError, match="distractors"):
        with_passages(items, distractors=-1)


def test_build_suite_seed_is_the_default_of_every_spec():
    a = build_suite(["fn_linear:n=4", "fn_mlp:n=4,seed=5"], seed=3)
    b = build_suite(["fn_linear:n=4,seed=3", "fn_mlp:n=4,seed=5"])
    for name in a:
        assert a[name].seed == b[name].seed
        assert [i.prompt for i in a[name]] == [i.prompt for i in b[name]]
    assert a["fn_linear_d4_n32_k2"].seed == 3 and a["fn_mlp_d4_n32_k2"].seed == 5


def test_a_sweep_runs_the_study_tasks_from_local_files(tmp_path, tiny_dirs):
    """The issue's done-when, end to end on a tiny local model: a config naming the study's
    tasks from files in their published formats, calibrated on real text, sequentially;
    the manifest and rows say which data, prompts and calibration were used."""
    from lenskit.sweep import load_config, run_sweep

    qa = _triviaqa_rc(tmp_path / "triviaqa-rc")
    web = tmp_path / "webquestions.examples.test.json"
    web.write_text(json.dumps([
        {"url": "u", "utterance": f"what is {k}?",
         "targetValue": f'(list (description "Answer {k}"))'} for k in range(8)]))
    text = tmp_path / "calib.txt"
    text.write_text("The river flows north to the sea, past the old town and its bridges. " * 200)
    cfg = load_config(None, {
        "models": str(tiny_dirs["llama"]), "methods": "wanda", "sparsities": "0.5",
        "scopes": "all", "matched": "false", "out_dir": str(tmp_path / "run"),
        "suite": f"triviaqa:path={qa},part=all,shots=1,n=4;"
                 f"triviaqa_open:path={qa},part=all,shots=1;"
                 f"webquestions:path={web},part=all,shots=1,n=4",
        "calibration.source": f"text:{text}", "calibration.n_samples": "2",
        "calibration.seq_len": "16"})
    assert cfg.calibration.sequential  # the study's default, as the references
    out = run_sweep(cfg, progress=False, echo=lambda _: None)
    assert set(out.results["task"]) == {"triviaqa", "triviaqa_open", "webquestions"}
    from lenskit.pruning.calibration_sources import source_fingerprint

    pruned = out.results[out.results["method"] == "wanda"]
    # rows name the mode, the size and the source by the hash of its content
    assert pruned["calibration"].str.contains("mode=sequential;n_samples=2;seq_len=16").all()
    assert pruned["calibration"].str.contains(source_fingerprint(f"text:{text}")).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["suite"][0].startswith("triviaqa:path=")
    cell = next(c for c in manifest["cells"].values() if c.get("calibration"))
    assert "calib.txt" in json.dumps(cell["calibration"])
