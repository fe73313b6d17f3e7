"""Task scores during training: the organism's own task suite, scored as shipped.

The evaluator saves the model being trained to a temporary directory exactly as the
final organism is saved, loads it with :func:`lenskit.load_model` and scores it with
:func:`lenskit.tasks.organism_suite`, so the numbers in the training log are those the
task suite reports for the shipped model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from lenskit.models import load_model
from lenskit.synthetic.world import World
from lenskit.tasks import evaluate_suite, organism_suite

__all__ = ["task_evaluator"]

# The metrics logged per task (others are in the full EvalResult).
_LOGGED = {"em", "memorised_rate", "perplexity"}


def task_evaluator(size: str = "small", seed: int = 0, batch_size: int = 64):
    """An evaluator for :func:`lenskit.organism.train.train`: ``{"<task>/<metric>": value}``."""

    def evaluate_model(model, tokenizer, world: World, cfg) -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            model.save_pretrained(d, safe_serialization=True)
            tokenizer.save_pretrained(d)
            world.save(d / "world.json")
            (d / "training.json").write_text(json.dumps({"train_config": cfg.to_json()}))
            bridge = load_model(d)
            result = evaluate_suite(bridge, organism_suite(bridge, size, seed),
                                    batch_size=batch_size)
            summary = result.summary(n_bootstrap=0)
        return {
            f"{row.task}/{row.metric}": round(float(row.value), 4)
            for row in summary.itertuples()
            if row.metric in _LOGGED
        }

    return evaluate_model
