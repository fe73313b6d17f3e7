import importlib

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.stats.proportion import proportion_confint

from lenskit.models import model_info
from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import (
    ROW_COLUMNS,
    EvalResult,
    FunctionSpec,
    TaskSet,
    closed_book_task,
    evaluate,
    evaluate_suite,
    function_task,
    open_book_task,
    organism_suite,
    overriding_task,
    perplexity_task,
)
from lenskit.tasks.encoding import answer_token_ids, encode_texts, stop_token_mask


@pytest.fixture(scope="module")
def small_tasks() -> dict[str, TaskSet]:
    """Prompts of varied lengths in the organism's vocabulary (all tiny models share it)."""
    suite = organism_suite(WorldConfig().build(), size="small", seed=0)
    return {
        "closed_book": suite["closed_book"].subset(5, seed=1),
        "open_book": suite["open_book"].subset(6, seed=2),  # 0-4 distractor sentences
        "overriding": suite["overriding"].subset(4, seed=3),
        "function": function_task(FunctionSpec(n_dims=2, n_exemplars=6), 4, seed=0,
                                  name="fn"),
    }


def _same(a: EvalResult, b: EvalResult) -> None:
    x, y = a.rows, b.rows
    assert list(x["instance_id"]) == list(y["instance_id"])
    assert list(x["prediction"]) == list(y["prediction"])
    assert list(x["correct"]) == list(y["correct"])
    assert list(x["first_token_correct"]) == list(y["first_token_correct"])
    assert list(x["gold_rank"]) == list(y["gold_rank"])
    np.testing.assert_allclose(x["logprob"], y["logprob"], atol=1e-4, rtol=0)


def test_batched_equals_one_by_one(tiny_model, small_tasks):
    for task in small_tasks.values():
        _same(evaluate(tiny_model, task, batch_size=4), evaluate(tiny_model, task, batch_size=1))


def test_progress_bar_shows_without_changing_results(tiny_model, small_tasks, monkeypatch,
                                                     capsys):
    runners = importlib.import_module("lenskit.tasks.runners")
    monkeypatch.setattr(runners, "_PROGRESS_DELAY", 0.0)  # show at once
    text = " ".join(["The capital of Brirul is red . Q : what is the pet of Trosh ?"] * 8)
    windows = perplexity_task(text, model_info(tiny_model).tokenizer, window=16, stride=8,
                              name="ppl")
    tasks = [*small_tasks.values(), windows]
    quiet = evaluate_suite(tiny_model, tasks, batch_size=2, progress=False)
    assert capsys.readouterr().err == ""
    shown = evaluate_suite(tiny_model, tasks, batch_size=2, progress=True)
    err = capsys.readouterr().err
    # one bar per set, counting its instances; the batches (hence results) are unchanged
    assert "closed_book:" in err and "0/5 " in err and "ppl:" in err and f"0/{len(windows)} " in err
    _same(quiet, shown)
    np.testing.assert_allclose(quiet.value("ppl", "perplexity"),
                               shown.value("ppl", "perplexity"), rtol=1e-6)
    # auto (None) under pytest: no bar
    evaluate(tiny_model, small_tasks["function"], progress=None)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress must be True, False or None"):
        evaluate(tiny_model, small_tasks["function"], progress="yes")


def test_hf_and_bridge_backends_agree(tiny_model, small_tasks):
    for task in small_tasks.values():
        _same(evaluate(tiny_model, task, batch_size=3, backend="hf"),
              evaluate(tiny_model, task, batch_size=3, backend="bridge"))


def test_cached_decoding_equals_rerunning_the_prompt(tiny_model, small_tasks):
    task = small_tasks["open_book"]
    _same(evaluate(tiny_model, task, batch_size=4, decode="cache"),
          evaluate(tiny_model, task, batch_size=4, decode="rerun"))


def test_scores_match_a_plain_hf_reference(tiny_model, small_tasks):
    """Gold log-probs, ranks and greedy answers against unbatched HF forward/generate."""
    info = model_info(tiny_model)
    tok, hf = info.tokenizer, info.hf
    task = small_tasks["open_book"]
    result = evaluate(tiny_model, task, batch_size=4, max_new_tokens=4)
    stop = stop_token_mask(tok, hf.config.vocab_size)
    for inst, row in zip(task, result.rows.itertuples(), strict=True):
        prompt = encode_texts(tok, [inst.prompt])[0]
        (gold,), _ = answer_token_ids(tok, [inst.prompt], [inst.gold])
        with torch.no_grad():
            logits = hf(torch.tensor([prompt + gold])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        ref = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(gold))
        assert row.logprob == pytest.approx(ref, abs=1e-4)
        first = logits[len(prompt) - 1]
        assert row.gold_rank == 1 + int((first > first[gold[0]]).sum())
        with torch.no_grad():
            out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt),
                              dtype=torch.long), max_new_tokens=4, do_sample=False,
                              pad_token_id=tok.pad_token_id)
        gen = out[0, len(prompt):].tolist()
        cut = next((k + 1 for k, t in enumerate(gen) if stop[t]), len(gen))
        gen = [t for t in gen[:cut] if t != tok.eos_token_id]
        text = tok.decode(gen, clean_up_tokenization_spaces=False).split("\n")[0].strip()
        assert row.prediction == text
        assert row.generated_tokens == cut


def test_copying_model_solves_open_book_and_overriding(copy_model, copy_items):
    """A real (hand-wired) model that copies the passage's answer scores 100%."""
    results = {}
    for build in (open_book_task, overriding_task, closed_book_task):
        task = build(copy_items)
        for backend in ("hf", "bridge"):
            res = evaluate(copy_model, task, batch_size=16, backend=backend)
            results[(task.kind, backend)] = res
            assert res.rows["stopped"].all() or task.kind == "closed_book"
    for backend in ("hf", "bridge"):
        for kind in ("open_book", "overriding"):
            res = results[(kind, backend)]
            assert res.value(kind, "em") == 1.0
            assert res.value(kind, "first_token_acc") == 1.0
            assert (res.rows["prediction"] == res.rows["gold"]).all()
        assert results[("overriding", backend)].value("overriding", "memorised_rate") == 0.0
        # without a passage there is nothing to copy
        assert results[("closed_book", backend)].value("closed_book", "em") == 0.0


def test_bridge_hooks_apply_to_evaluation(copy_model, copy_items):
    task = open_book_task(copy_items)

    def no_attention(z, hook):
        return torch.zeros_like(z)

    hooked = evaluate(copy_model, task, backend="bridge",
                      fwd_hooks=[("blocks.0.attn.hook_z", no_attention)])
    assert hooked.value("open_book", "em") == 0.0
    with pytest.raises(ValueError, match=r"unknown hook name 'blocks\.0\.attn\.hook_zz'"):
        evaluate(copy_model, task, backend="bridge",
                 fwd_hooks=[("blocks.0.attn.hook_zz", no_attention)])
    assert evaluate(copy_model, task, backend="bridge").value("open_book", "em") == 1.0


def test_perplexity_matches_a_plain_hf_reference(tiny_model):
    tok, hf = model_info(tiny_model).tokenizer, model_info(tiny_model).hf
    text = " ".join(["The capital of Brirul is red . Q : what is the pet of Trosh ?"] * 12)
    task = perplexity_task(text, tok, window=24, stride=16)
    total, count = 0.0, 0
    for w in task:
        with torch.no_grad():
            logp = torch.log_softmax(hf(torch.tensor([w.tokens])).logits[0].float(), -1)
        total += sum(float(logp[j - 1, w.tokens[j]]) for j in range(w.score_from, len(w.tokens)))
        count += w.n_scored
    for backend in ("hf", "bridge"):
        res = evaluate(tiny_model, task, batch_size=3, backend=backend)
        assert res.value("perplexity", "perplexity") == pytest.approx(np.exp(-total / count),
                                                                     rel=1e-5)
        assert res.rows["scored_tokens"].sum() == count


def test_summary_has_bootstrap_intervals(organism_model, small_tasks):
    res = evaluate_suite(organism_model, small_tasks, n_bootstrap=200, seed=3)
    assert list(res.rows.columns) == list(ROW_COLUMNS)
    summary = res.summary()
    assert list(summary.columns) == ["task", "kind", "category", "metric", "value", "n",
                                     "ci_low", "ci_high", "chance"]
    # chance is the task's own (data, not its name), on the accuracy metrics only
    for task in small_tasks.values():
        rows = summary[summary.task == task.name].set_index("metric")["chance"]
        if task.chance is None:
            assert rows.isna().all()
        else:
            assert rows["em"] == rows["first_token_acc"] == task.chance
            assert task.kind != "function" or task.chance == 0.5
            assert rows.drop(["em", "first_token_acc"]).isna().all()
    metrics = summary.groupby("task")["metric"].apply(set)
    assert {"em", "logprob", "first_token_acc"} <= metrics["closed_book"]
    assert "memorised_rate" in metrics["overriding"]
    assert "memorised_rate" not in metrics["open_book"]
    assert ((summary["ci_low"] <= summary["value"] + 1e-12)
            & (summary["value"] <= summary["ci_high"] + 1e-12)).all()
    lp = summary[(summary.task == "closed_book") & (summary.metric == "logprob")].iloc[0]
    assert lp.ci_low < lp.value < lp.ci_high  # a continuous metric has a real interval
    pd.testing.assert_frame_equal(summary, res.summary())  # deterministic per seed
    other = res.summary(seed=4)
    assert not np.allclose(other["ci_low"], summary["ci_low"], equal_nan=True)
    # a task's intervals do not depend on which other tasks the result holds
    alone = evaluate(organism_model, small_tasks["closed_book"], n_bootstrap=200, seed=3)
    pd.testing.assert_frame_equal(alone.summary().reset_index(drop=True),
                                  summary[summary.task == "closed_book"].reset_index(drop=True))
    assert res.summary(n_bootstrap=0)["ci_low"].isna().all()


def test_bad_evaluation_inputs_are_clear_errors(organism_model, small_tasks, tiny_dirs):
    task = small_tasks["closed_book"]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        evaluate(organism_model, task, batch_size=0)
    with pytest.raises(ValueError, match="unknown backend 'vllm'"):
        evaluate(organism_model, task, backend="vllm")
    with pytest.raises(ValueError, match="backend='bridge'"):
        evaluate(organism_model, task, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: x)])
    with pytest.raises(ValueError, match="not available on the bridge"):
        evaluate(organism_model, task, backend="bridge", decode="cache")
    with pytest.raises(ValueError, match="must be a TaskSet"):
        evaluate(organism_model, [task])
    with pytest.raises(ValueError, match="max_new_tokens"):
        evaluate(organism_model, task, max_new_tokens=0)
    with pytest.raises(ValueError, match="unique"):
        evaluate_suite(organism_model, [task, task])
    with pytest.raises(ValueError, match="at least one"):
        evaluate_suite(organism_model, {})
    long = function_task(FunctionSpec(n_dims=4, n_exemplars=120), 1, name="long")
    with pytest.raises(ValueError, match="positions"):
        evaluate(organism_model, long)
    from transformers import AutoTokenizer

    gpt2_tok = AutoTokenizer.from_pretrained(tiny_dirs["gpt2"])
    gpt2_tok.add_tokens(["zzzextra"])  # a different vocabulary
    foreign = perplexity_task("The capital of Brirul is red .", gpt2_tok, window=8)
    with pytest.raises(ValueError, match="another tokenizer"):
        evaluate(organism_model, foreign)


def _qa_rows(task: str, correct: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Per-instance rows of a closed-book task with the given exact-match scores."""
    rng = np.random.default_rng(seed)
    n = len(correct)
    return pd.DataFrame({
        "task": task, "kind": "closed_book", "category": "fact_recall",
        "instance_id": np.arange(n), "prompt_tokens": 8, "prediction": "x", "gold": "x",
        "correct": correct.astype(bool), "logprob": rng.normal(-2.0, 1.0, n),
        "scored_tokens": 2, "gold_rank": rng.integers(1, 5, n),
        "first_token_correct": correct.astype(bool), "memorised": np.nan,
        "generated_tokens": 2, "stopped": True})[list(ROW_COLUMNS)]


def test_summary_proportions_have_wilson_intervals_never_degenerate():
    rows = pd.concat([_qa_rows("perfect", np.ones(300)),
                      _qa_rows("half", np.arange(300) % 2 == 0, seed=1)], ignore_index=True)
    s = EvalResult(rows=rows, n_bootstrap=200).summary().set_index(["task", "metric"])
    perfect = s.loc[("perfect", "em")]
    assert perfect["value"] == 1.0
    # 300 of 300 correct: not the degenerate [1, 1] a bootstrap gives
    assert perfect["ci_high"] == 1.0 and perfect["ci_low"] == pytest.approx(0.98735, abs=1e-4)
    for metric in ("em", "first_token_acc"):
        half = s.loc[("half", metric)]
        assert (half["ci_low"], half["ci_high"]) == pytest.approx(
            proportion_confint(150, 300, alpha=0.05, method="wilson"), abs=1e-12)
    # continuous metrics keep the bootstrap interval
    lp = s.loc[("perfect", "logprob")]
    assert lp["ci_low"] < lp["value"] < lp["ci_high"]
    assert EvalResult(rows=rows).summary(n_bootstrap=0)["ci_low"].isna().all()
