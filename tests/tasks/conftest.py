"""Fixtures for the task-suite tests: a hand-wired copying model and a stand-in organism."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from transformers import LlamaForCausalLM

from lenskit.models import load_model
from lenskit.organism.train import ModelConfig, TrainConfig
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import QAItem

from .copy_model import ENTITIES, VALUES, build_copy_model


@pytest.fixture(scope="session")
def copy_model_dir(tmp_path_factory):
    return build_copy_model(tmp_path_factory.mktemp("copy") / "model")


@pytest.fixture
def copy_model(copy_model_dir):
    return load_model(copy_model_dir)


@pytest.fixture(scope="session")
def copy_items() -> list[QAItem]:
    """Questions about every (entity, city) pair; the passage states the city; the
    'memorised' answer is another city (the copying model has no memory)."""
    items = []
    for k, (e, v) in enumerate(itertools.product(ENTITIES, VALUES)):
        other = VALUES[(VALUES.index(v) + 1 + k % 3) % len(VALUES)]
        items.append(QAItem(f"what is the capital of {e}?", (v,),
                            context=f"The capital of {e} is {v}.", memorised_answer=other,
                            id=f"copy-{k}"))
    return items


@pytest.fixture(scope="session")
def organism_dir(tmp_path_factory):
    """A directory laid out like a trained organism (HF model, tokenizer, world.json), with
    random weights of a small organism-shaped Llama."""
    out = tmp_path_factory.mktemp("organism") / "model"
    world = WorldConfig().build()
    tok = build_tokenizer(organism_vocabulary(world))
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ffn=64)
    model = LlamaForCausalLM(cfg.hf_config(tok)).eval()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    world.save(out / "world.json")
    # as the trainer writes it: the corpus settings (function specs...) the suite reuses
    (out / "training.json").write_text(json.dumps({"train_config": TrainConfig().to_json()}))
    return out


@pytest.fixture(scope="session")
def organism_model(organism_dir):
    return load_model(organism_dir)
