"""Shared-prefix caching: few-shot prompts with the same demonstrations give the same
predictions, log-probabilities and ranks as encoding every prompt in full."""

import numpy as np
import pytest

from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import QAItem, organism_suite, templated_task
from lenskit.tasks.evaluate import evaluate
from lenskit.tasks.runners import MIN_SHARED_PREFIX
from lenskit.tasks.select import format_template_report, template_report


@pytest.fixture(scope="module")
def fewshot_tasks():
    """Organism questions (its vocabulary: every tiny model shares it) with 3 fixed demos."""
    suite = organism_suite(WorldConfig().build(), size="small", seed=0)
    out = {}
    for kind in ("closed_book", "open_book", "overriding"):
        items = []
        for inst in list(suite[kind])[:14]:
            lines = inst.prompt.split("\n")
            context = "\n".join(lines[:-2]) if kind != "closed_book" else None
            items.append(QAItem(lines[-2][len("Q: "):], inst.answers, context=context,
                                memorised_answer=inst.memorised_answer, id=inst.id))
        out[kind] = templated_task(kind, items, shots=3, template="qa")
    return out


def test_prefix_cache_gives_identical_results(tiny_model, fewshot_tasks):
    for task in fewshot_tasks.values():
        cached = evaluate(tiny_model, task, batch_size=5, n_bootstrap=0)
        assert cached.meta["tasks"][task.name]["shared_prefix_tokens"] >= MIN_SHARED_PREFIX
        full = evaluate(tiny_model, task, batch_size=5, n_bootstrap=0, prefix_cache=False)
        assert full.meta["tasks"][task.name]["shared_prefix_tokens"] == 0
        rerun = evaluate(tiny_model, task, batch_size=5, n_bootstrap=0, decode="rerun")
        for other in (full, rerun):
            assert list(cached.rows["prediction"]) == list(other.rows["prediction"])
            assert list(cached.rows["gold_rank"]) == list(other.rows["gold_rank"])
            assert list(cached.rows["generated_tokens"]) == list(other.rows["generated_tokens"])
            np.testing.assert_allclose(cached.rows["logprob"], other.rows["logprob"],
                                       atol=1e-4, rtol=0)


def test_stop_strings_and_accent_folding(copy_model, copy_items):
    """The copying model answers with the passage's city; a stop string cuts it, accent
    folding matches an accented gold."""
    # every other gold gets an accent on its last letter ("Kolan" -> "Kolań")
    items = [QAItem(i.question, (i.answers[0] + "\u0301" * (k % 2 == 0),),
                    context=i.context, id=i.id) for k, i in enumerate(copy_items)]
    plain = templated_task("open_book", items, shots=0)
    res = evaluate(copy_model, plain, n_bootstrap=0)
    folded = templated_task("open_book", items, shots=0, fold_accents=True)
    res_f = evaluate(copy_model, folded, n_bootstrap=0)
    has_accent = [g != g.encode("ascii", "ignore").decode() for g in res.rows["gold"]]
    assert any(has_accent)
    for acc, a, b in zip(has_accent, res.rows["correct"], res_f.rows["correct"], strict=True):
        assert b and (a != acc)  # folding fixes exactly the accented golds
    stop_char = res.rows["prediction"].iloc[0][1]
    stopped = templated_task("open_book", items, shots=0, stop=(stop_char,))
    res_s = evaluate(copy_model, stopped, n_bootstrap=0)
    first = res_s.rows["prediction"].iloc[0]
    assert first == res.rows["prediction"].iloc[0].split(stop_char)[0].strip()


def test_template_report_on_the_select_part(tiny_dirs):
    from lenskit.models import load_model

    model = load_model(tiny_dirs["llama"])
    report = template_report(model, ["countries_capital_closed_book:n=6,shots=2"],
                             ["qa", "cloze"])
    assert list(report["template"]) == ["qa", "cloze"] and (report["n"] == 6).all()
    assert report["em"].between(0, 1).all()
    # the cloze template's prompts are shorter than the Q/A ones
    assert report["prompt_tokens"].iloc[1] < report["prompt_tokens"].iloc[0]
    assert "| countries_capital_closed_book | cloze |" in format_template_report(report)
    with pytest.raises(ValueError, match="QA tasks"):
        template_report(model, "fn_linear", ["qa"])
    with pytest.raises(ValueError, match="unknown template"):
        template_report(model, "countries_capital_closed_book", ["chat"])


def test_cli_templates_prints_the_report(tiny_dirs, capsys):
    from lenskit.cli import main

    code = main(["templates", "--model", str(tiny_dirs["gpt2"]), "--task",
                 "countries_region_closed_book:n=4,shots=1", "--templates", "qa",
                 "question_answer", "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| task | template |")
    assert [line.split(" | ")[1] for line in out[2:]] == ["qa", "question_answer"]
    assert main(["templates", "--model", str(tiny_dirs["gpt2"]), "--task", "fn_tree",
                 "--threads", "1"]) == 2  # not a QA task: a clear error, exit status 2
