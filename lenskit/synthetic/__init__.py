"""Synthetic data: the organism's world and the study's parameterised functions.

Everything here is data generation, seeded and free of models, so that every layer above
(models, tasks, pruning, the organism's trainer) can build on it:

- :mod:`~lenskit.synthetic.world`: the seeded world of entities, relations and values
  (:class:`World`, :class:`WorldConfig`);
- :mod:`~lenskit.synthetic.episodes`: closed-book, open-book and overriding episodes;
- :mod:`~lenskit.synthetic.functions`: parameterised functions (linear, 2-layer ReLU net,
  decision tree) and their in-context instances;
- :mod:`~lenskit.synthetic.formats`: the text formats of QA items and function exemplars,
  shared by training text and task prompts;
- :mod:`~lenskit.synthetic.tokenizer`: the organism's word-level tokenizer;
- :mod:`~lenskit.synthetic.corpus`: the organism's training corpus, sampled on the fly.
"""

from lenskit.synthetic.corpus import (
    CorpusConfig,
    CorpusSampler,
    corpus_config_from_json,
    exposure_counts,
)
from lenskit.synthetic.formats import FunctionFormat, QAFormat
from lenskit.synthetic.functions import FunctionSpec, sample_function_instances
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import World, WorldConfig, build_world

__all__ = [
    "CorpusConfig",
    "CorpusSampler",
    "FunctionFormat",
    "FunctionSpec",
    "QAFormat",
    "World",
    "WorldConfig",
    "build_tokenizer",
    "build_world",
    "corpus_config_from_json",
    "exposure_counts",
    "organism_vocabulary",
    "sample_function_instances",
]
