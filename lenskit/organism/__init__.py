"""The organism: a small model trained here on a synthetic world of facts and in-context tasks.

- :mod:`~lenskit.synthetic.world`: the seeded world (entities, relations, values);
- :mod:`~lenskit.synthetic.episodes`: closed-book, open-book and overriding episodes;
- :mod:`~lenskit.synthetic.tokenizer`: its word-level tokenizer;
- :mod:`~lenskit.synthetic.corpus`: the training corpus, sampled on the fly;
- :mod:`~lenskit.organism.family`: the near-capacity family (one world, several widths),
  trained in sequence and resumable, each member in two stages (facts, then in-context
  function learning);
- :mod:`~lenskit.organism.train`: the resumable trainer; :mod:`~lenskit.organism.card`: the
  measured model card; :mod:`~lenskit.organism.monitor`: task scores during training.
"""

from lenskit.organism.family import (
    FAMILY_WIDTHS,
    family_config,
    icl_stage_config,
    member_name,
    train_family,
)
from lenskit.organism.train import ModelConfig, TrainConfig, checkpoint_model, export_checkpoint
from lenskit.organism.train import train as train_organism
from lenskit.synthetic.world import World, WorldConfig, build_world

__all__ = [
    "FAMILY_WIDTHS",
    "ModelConfig",
    "TrainConfig",
    "World",
    "WorldConfig",
    "build_world",
    "checkpoint_model",
    "export_checkpoint",
    "family_config",
    "icl_stage_config",
    "member_name",
    "train_family",
    "train_organism",
]
