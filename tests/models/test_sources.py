"""Calibration sources declared by model directories."""

import shutil

import pytest
import torch

from lenskit.models import load_model, sources
from lenskit.models.sources import (
    calibration_sources,
    declared_calibration_source,
    register_calibration_source,
)
from lenskit.pruning import default_calibration
from lenskit.synthetic.world import WorldConfig


def test_world_json_declares_the_organism_corpus(tiny_dirs, tmp_path):
    plain = load_model(tiny_dirs["gpt2"])
    assert declared_calibration_source(plain) is None
    model_dir = tmp_path / "organism"
    shutil.copytree(tiny_dirs["gpt2"], model_dir)
    WorldConfig().build().save(model_dir / "world.json")
    declared = declared_calibration_source(load_model(model_dir))
    assert declared is not None and declared.name == "organism-corpus"
    tokens, description = declared.build(2, 10, 0)
    assert tokens.shape == (2, 10) and tokens.dtype == torch.long
    assert description.startswith("organism corpus")


def test_a_registered_source_is_used_by_default_calibration(tiny_dirs, tmp_path):
    model_dir = tmp_path / "declared"
    shutil.copytree(tiny_dirs["gpt2"], model_dir)
    (model_dir / "ones.marker").write_text("")

    def ones(directory, tokenizer, n_samples, seq_len, seed):
        return torch.full((n_samples, seq_len), seed + 1), f"ones from {directory.name}"

    register_calibration_source("test-ones", ones, marker="ones.marker")
    try:
        cal = default_calibration(load_model(model_dir), n_samples=3, seq_len=5, seed=2)
        assert torch.equal(cal.tokens, torch.full((3, 5), 3))
        assert cal.description == "ones from declared"
        with pytest.raises(ValueError, match="already registered"):
            register_calibration_source("test-ones", ones, marker="ones.marker")
    finally:
        assert "test-ones" in calibration_sources()
        del sources._SOURCES["test-ones"]  # leave the registry as the other tests expect


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "", "builder": print, "marker": "x.json"}, "non-empty name"),
    ({"name": "a", "builder": print, "marker": "dir/x.json"}, "plain file name"),
    ({"name": "a", "builder": 3, "marker": "x.json"}, "callable"),
])
def test_bad_registrations_name_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        register_calibration_source(**kwargs)
