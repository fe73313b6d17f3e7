import json
import math

import pytest
import torch
from safetensors.torch import load_file

from lenskit.organism.train import ModelConfig, TrainConfig, train
from lenskit.synthetic.corpus import CorpusConfig
from lenskit.synthetic.world import WorldConfig


def tiny_config(steps: int) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=8, lr=1e-2, warmup=5, checkpoint_every=5, eval_every=10**6,
        world=WorldConfig(n_memorised=12, n_held_out=20, n_unseen=4, n_cities=6),
        model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ffn=64),
        corpus=CorpusConfig(row_tokens=64),
    )


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "train_log.jsonl").open()]


def test_trainer_loss_falls_and_saves_a_loadable_model(tmp_path):
    final = train(tmp_path, tiny_config(40), progress=False)
    loss = losses(tmp_path)
    assert len(loss) == 40
    assert sum(loss[-5:]) / 5 < 0.8 * sum(loss[:5]) / 5
    for f in ("model.safetensors", "config.json", "tokenizer.json", "world.json",
              "training.json"):
        assert (final / f).exists(), f
    from lenskit.models import load_model, model_info

    model = load_model(final)
    assert len(model_info(model).sites) == 7


def test_interrupted_training_resumes_exactly(tmp_path):
    full = train(tmp_path / "a", tiny_config(12), progress=False)
    assert train(tmp_path / "b", tiny_config(12), progress=False, stop_after=7) is None
    resumed = train(tmp_path / "b", tiny_config(12), progress=False)
    wa, wb = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    # the times are cumulative over the two calls: they never go back after the resume
    log = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").open()]
    for key in ("elapsed_s", "cpu_s"):
        times = [r[key] for r in log]
        assert times == sorted(times) and times[-1] > 0, key


def test_task_evaluator_logs_the_task_suite_scores(tmp_path):
    from dataclasses import replace

    from lenskit.models import load_model
    from lenskit.organism.monitor import task_evaluator
    from lenskit.tasks import evaluate_suite, organism_suite

    cfg = replace(tiny_config(6), eval_every=6)
    final = train(tmp_path, cfg, evaluator=task_evaluator(size="small"), progress=False)
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").open()]
    assert [r["step"] for r in log if "eval" in r] == [log[-1]["step"]]  # once, at the end
    scores = log[-1]["eval"]
    # The logged values are the final model's: evaluate the saved model independently.
    model = load_model(final)
    summary = evaluate_suite(model, organism_suite(model, "small", 0),
                             batch_size=64).summary(n_bootstrap=0)
    want = {f"{r.task}/{r.metric}": float(r.value) for r in summary.itertuples()
            if r.metric in ("em", "memorised_rate", "perplexity")}
    assert {"closed_book/em", "open_book/em", "overriding/em",
            "overriding/memorised_rate"} <= set(want)
    assert set(scores) == set(want)
    for key, value in want.items():
        assert scores[key] == pytest.approx(value, abs=5e-5), key  # logged to 4 decimals
    # the perplexity is exp of the mean negative log-likelihood per token
    nll = {r.task: float(r.value) for r in summary.itertuples()
           if r.metric == "nll_per_token"}
    for task, v in nll.items():
        assert want[f"{task}/perplexity"] == pytest.approx(math.exp(v), rel=1e-6)
