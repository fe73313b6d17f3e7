"""Calibration data: from tokens, text, the organism's corpus, random tokens; offline errors."""

import json
import shutil

import pytest
import torch

from lenskit.models import load_model, model_info, organism_path
from lenskit.organism.train import TrainConfig
from lenskit.pruning import CalibrationData, default_calibration, prune
from lenskit.synthetic.calibration import CALIBRATION_STEP
from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler
from lenskit.synthetic.world import WorldConfig


def test_default_calibration_without_a_world_is_seeded_random_tokens(llama):
    info = model_info(llama)
    a = default_calibration(llama, n_samples=6, seq_len=20, seed=1)
    assert a.tokens.shape == (6, 20) and a.tokens.dtype == torch.long
    assert (a.tokens[:, 0] == info.tokenizer.bos_token_id).all()
    body = a.tokens[:, 1:]
    assert not torch.isin(body, torch.tensor(info.tokenizer.all_special_ids)).any()
    assert int(a.tokens.max()) < len(info.tokenizer)
    assert torch.equal(a.tokens, default_calibration(llama, 6, 20, seed=1).tokens)
    assert not torch.equal(a.tokens, default_calibration(llama, 6, 20, seed=2).tokens)
    assert "random tokens" in a.description and "seed 1" in a.description
    assert len(body.unique()) > 50  # spread over the vocabulary


def test_default_calibration_of_an_organism_uses_its_corpus(tiny_dirs, tmp_path):
    model_dir = tmp_path / "organism"
    shutil.copytree(tiny_dirs["llama"], model_dir)
    world = WorldConfig().build()
    world.save(model_dir / "world.json")
    model = load_model(model_dir)
    tok = model_info(model).tokenizer
    cal = default_calibration(model, n_samples=5, seq_len=40, seed=0)
    assert cal.tokens.shape == (5, 40)
    assert "organism corpus" in cal.description and "default CorpusConfig" in cal.description
    # sample i is made of consecutive corpus rows of the calibration step, each from <bos>
    sampler = CorpusSampler(world, tok, CorpusConfig(), seed=0)
    stream = []
    row = 0
    while len(stream) < 5 * 40 * 2:
        stream.append(sampler.row_ids(CALIBRATION_STEP, row))
        row += 1
    first = stream[0] + stream[1]
    assert cal.tokens[0].tolist() == first[:40]
    assert (cal.tokens[:, 0] == tok.bos_token_id).all()
    assert (cal.tokens != tok.unk_token_id).all()  # the corpus is in the vocabulary
    again = default_calibration(model, n_samples=5, seq_len=40, seed=0)
    assert torch.equal(cal.tokens, again.tokens)
    assert not torch.equal(cal.tokens, default_calibration(model, 5, 40, seed=1).tokens)
    # it is what prune() uses when no calibration is given
    r = prune(model, "wanda", 0.5, apply=False, seed=0)
    assert r.config["calibration"]["description"].startswith("organism corpus")
    assert r.config["calibration"]["n_samples"] == 128
    # with training.json, the training mixture is used
    cfg = TrainConfig(corpus=CorpusConfig(mixture={"closed_book": 1.0}))
    (model_dir / "training.json").write_text(json.dumps({"train_config": cfg.to_json()}))
    qa = default_calibration(model, n_samples=2, seq_len=40)
    assert "training mixture" in qa.description
    assert tok.decode(qa.tokens[0]).count("Q :") >= 2  # closed-book documents only


def test_from_text_cuts_seeded_windows_of_the_token_stream(llama, tmp_path):
    tok = model_info(llama).tokenizer
    world = WorldConfig().build()
    text = " ".join(world.statement(e, "capital", v["capital"]) for e, v in world.facts.items())
    path = tmp_path / "calib.txt"
    path.write_text(text)
    stream = tok(text, add_special_tokens=False)["input_ids"]
    for source in (path, str(path), text):
        cal = CalibrationData.from_text(source, tok, n_samples=4, seq_len=12, seed=3)
        assert cal.tokens.shape == (4, 12)
        for row in cal.tokens.tolist():
            starts = [i for i in range(len(stream) - 11) if stream[i:i + 12] == row]
            assert starts, "a window is not a contiguous piece of the text"
    a = CalibrationData.from_text(path, tok, n_samples=4, seq_len=12, seed=3)
    b = CalibrationData.from_text(text, tok, n_samples=4, seq_len=12, seed=3)
    assert torch.equal(a.tokens, b.tokens) and str(path) in a.description
    bos = CalibrationData.from_text(text, tok, n_samples=2, seq_len=12, seed=0, add_bos=True)
    assert (bos.tokens[:, 0] == tok.bos_token_id).all()
    with pytest.raises(ValueError, match="fewer than"):
        CalibrationData.from_text("The capital", tok, n_samples=2, seq_len=50)
    with pytest.raises(ValueError, match="does not exist"):
        CalibrationData.from_text(tmp_path / "missing.txt", tok)


def test_from_tokens_validates_its_input():
    cal = CalibrationData.from_tokens([[1, 2, 3], [4, 5, 6]])
    assert cal.tokens.dtype == torch.long and cal.n_samples == 2 and cal.seq_len == 3
    for bad, msg in ((torch.ones(3), "integer tensor"), (torch.ones(2, 3), "integer tensor"),
                     (torch.zeros(0, 4, dtype=torch.long), "non-empty"),
                     (torch.tensor([[1, -1]]), ">= 0")):
        with pytest.raises(ValueError, match=msg):
            CalibrationData.from_tokens(bad)
    with pytest.raises(ValueError, match="n_samples"):
        CalibrationData.from_text("a b c", None, n_samples=0)


def test_hf_dataset_gives_a_clear_error_offline(llama, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="offline"):
        CalibrationData.from_hf_dataset("allenai/c4", "en", "train",
                                        tokenizer=model_info(llama).tokenizer)


def test_sample_count_and_length_are_parameters_not_the_position_table(llama):
    cal = default_calibration(llama, n_samples=3, seq_len=7)
    r = prune(llama, "sparsegpt", 0.5, calibration=cal, apply=False)
    assert r.config["calibration"] == {"description": cal.description, "n_samples": 3,
                                       "seq_len": 7, "fingerprint": cal.fingerprint}
    other = default_calibration(llama, n_samples=3, seq_len=7, seed=1)
    assert other.fingerprint != cal.fingerprint


def test_default_calibration_of_the_shipped_organism_is_pinned():
    # Fingerprints computed before the organism's corpus source moved behind
    # lenskit.models.sources: the default calibration must not change with the design.
    model = load_model(organism_path())
    cal = default_calibration(model, n_samples=4, seq_len=32, seed=0)
    assert cal.fingerprint == "44aba32486564c98"
    assert default_calibration(model, n_samples=3, seq_len=300, seed=5).fingerprint \
        == "336928a7269ad18a"
    assert cal.description.startswith("organism corpus (training mixture from training.json")
