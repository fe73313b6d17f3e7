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


def test_a_second_stage_starts_from_the_first_and_counts_both_exposures(tmp_path):
    """init_from: the second stage's first step starts from the first stage's weights (its
    loss equals the first stage's model's loss on that batch), it resumes like any run, and
    its world counts the documents of both stages."""
    from dataclasses import replace

    from transformers import LlamaForCausalLM

    from lenskit.organism.train import train_step
    from lenskit.synthetic.corpus import CorpusSampler, exposure_counts
    from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
    from lenskit.synthetic.world import World

    first = train(tmp_path / "a", tiny_config(10), progress=False)
    stage2 = replace(tiny_config(6), init_from=str(first), seed=1)
    assert train(tmp_path / "b", stage2, progress=False, stop_after=3) is None
    done = train(tmp_path / "b", stage2, progress=False)
    # resumed exactly: the same weights as one uninterrupted second stage
    whole = train(tmp_path / "c", stage2, progress=False)
    wb, wc = load_file(done / "model.safetensors"), load_file(whole / "model.safetensors")
    assert all(torch.equal(wb[k], wc[k]) for k in wb)
    # the first logged loss is the first stage's model on the second stage's first batch
    model = LlamaForCausalLM.from_pretrained(first)
    world = stage2.world.build()
    sampler = CorpusSampler(world, build_tokenizer(organism_vocabulary(world)), stage2.corpus,
                            seed=1)
    loss, _ = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0),
                         sampler.batch(0, stage2.batch_size), stage2, 0)
    assert loss.item() == pytest.approx(losses(tmp_path / "c")[0], rel=1e-5)
    # exposure: first stage + second stage, each counted for its own steps and seed
    a, c = World.load(first / "world.json"), World.load(whole / "world.json")
    own = exposure_counts(world, stage2.corpus, 6, stage2.batch_size, seed=1)
    for e in world.memorised:
        for r in world.facts[e]:
            assert c.exposure[e][r] == a.exposure[e][r] + own[e][r]
    assert c.exposure_config["steps"] == 16 and len(c.exposure_config["stages"]) == 2
    assert json.loads((tmp_path / "c" / "train_config.json").read_text())["init_from"] == str(
        first)
    assert "init_from" not in tiny_config(3).to_json()


def test_a_second_stage_refuses_a_model_of_another_shape(tmp_path):
    from dataclasses import replace

    first = train(tmp_path / "a", tiny_config(3), progress=False)
    wider = replace(tiny_config(3), init_from=str(first),
                    model=ModelConfig(d_model=48, n_layers=1, n_heads=2, n_kv_heads=1, d_ffn=64))
    with pytest.raises(ValueError, match="does not fit this run's model"):
        train(tmp_path / "b", wider, progress=False)
    with pytest.raises(ValueError, match=r"holds no model\.safetensors"):
        train(tmp_path / "c", replace(tiny_config(3), init_from=str(tmp_path)), progress=False)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    from lenskit.cli import main

    assert main(["organism", "train", "--out", str(tmp_path / "d"), "--steps", "2",
                 "--init-from", str(tmp_path / "nowhere")]) == 2
    assert not (tmp_path / "d").exists()
