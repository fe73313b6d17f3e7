"""The organism's calibration rows: in-distribution token ids that are not training rows.

Pruning statistics (Wanda's activation norms, SparseGPT's Hessians) are taken on calibration
sequences. For the organism the natural source is its own training corpus: each sample is a
row of :class:`~lenskit.synthetic.corpus.CorpusSampler` (the training mixture from
``training.json`` when present, the default :class:`CorpusConfig` otherwise), drawn at a
step index (:data:`CALIBRATION_STEP`) far beyond any training step, so rows are
in-distribution but not the exact training rows. A row starts with ``<bos>`` like every
training row, and a row shorter than ``seq_len`` is continued by the next row.

:mod:`lenskit.models.sources` registers :func:`organism_corpus_calibration` as the
``"organism-corpus"`` source of every model directory that holds ``world.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler, corpus_config_from_json
from lenskit.synthetic.world import World

__all__ = ["CALIBRATION_STEP", "organism_corpus_calibration", "training_corpus_config"]

CALIBRATION_STEP = 10**9  # corpus "step" used for calibration rows (training uses 0..steps-1)


def training_corpus_config(model_dir: str | Path) -> tuple[CorpusConfig, str]:
    """The training corpus config of an organism and where it came from: every field that
    ``training.json`` records and ``CorpusConfig`` has (its first stage's, for an organism
    trained in two stages: the mixture it learned its facts and language from, as its task
    suite uses); the default config when there is no readable ``training.json``."""
    try:
        meta = json.loads((Path(model_dir) / "training.json").read_text())
        first = meta.get("first_stage")
        corpus = (first or meta)["train_config"]["corpus"]
        where = "training mixture from training.json" + (" (first stage)" if first else "")
        return corpus_config_from_json(corpus), where
    except (OSError, KeyError, TypeError, ValueError, AttributeError):
        return CorpusConfig(), "default CorpusConfig mixture"


def organism_corpus_calibration(model_dir: str | Path, tokenizer: PreTrainedTokenizerBase,
                                n_samples: int, seq_len: int, seed: int
                                ) -> tuple[torch.Tensor, str]:
    """``n_samples`` sequences of ``seq_len`` corpus token ids of the organism in
    ``model_dir`` (its ``world.json``; mixture from :func:`training_corpus_config`), seeded
    by ``seed``; returns the ``[n_samples, seq_len]`` int64 tensor and a description."""
    model_dir = Path(model_dir)
    world = World.load(model_dir / "world.json")
    cfg, which = training_corpus_config(model_dir)
    sampler = CorpusSampler(world, tokenizer, cfg, seed=seed)
    rows = []
    next_row = 0
    for _ in range(n_samples):
        ids: list[int] = []
        while len(ids) < seq_len:
            ids.extend(sampler.row_ids(CALIBRATION_STEP, next_row))
            next_row += 1
        rows.append(ids[:seq_len])
    return (torch.tensor(rows, dtype=torch.long),
            f"organism corpus ({which}; world.json of {model_dir}): {n_samples} x {seq_len} "
            f"tokens, rows of step {CALIBRATION_STEP}, seed {seed}")
