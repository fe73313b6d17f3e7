"""Maskers: one per method behind a small base class, reading only their job and the dense
statistics; a masker built without a Pruner makes the Pruner's masks, bit for bit."""

from __future__ import annotations

import pytest
import torch

from lenskit.models import model_info
from lenskit.names import METHODS
from lenskit.pruning import Pruner
from lenskit.pruning.maskers import MASKERS, DenseStatistics, Masker, MaskJob
from lenskit.pruning.options import Level, original_weights


def test_one_masker_per_method():
    assert list(MASKERS) == list(METHODS)
    assert all(issubclass(m, Masker) for m in MASKERS.values())
    assert {m for m, cls in MASKERS.items() if cls.needs_calibration} == {"wanda", "sparsegpt"}


@pytest.mark.parametrize(("method", "mode", "kwargs"), [
    ("random", "dense", {}), ("magnitude", "dense", {"per_row": True}),
    ("wanda", "dense", {}), ("wanda", "sequential", {}),
    ("sparsegpt", "dense", {}), ("sparsegpt", "sequential", {}),
])
def test_a_masker_alone_makes_the_pruners_masks(method, mode, kwargs, llama, llama_cal):
    levels = [0.3, 0.6]
    pruner = Pruner(llama, method, scope="attn", mode=mode, calibration=llama_cal, seed=3,
                    **kwargs)
    expected = pruner.sweep(levels)
    info = model_info(llama)
    selection = info.select("attn")
    job = MaskJob(llama, selection, pruner.structure, "uniform", mode, 3, pruner.params)
    masker = MASKERS[method](job, DenseStatistics(info, selection, llama_cal, 16))
    assert masker.granularity == pruner.granularity
    with torch.no_grad(), original_weights(llama):
        masks, weights, _ = masker.run([Level(s, s, s) for s in levels],
                                       [{s.name: lv for s in selection} for lv in levels])
    for lv, mk, wt in zip(levels, masks, weights, strict=True):
        got = expected[lv]
        assert list(mk) == list(got.masks) == [s.name for s in selection]
        assert all(torch.equal(mk[n], got.masks[n]) for n in mk)
        if method == "sparsegpt":
            assert all(torch.equal(wt[n], got.weights[n]) for n in wt)
        else:
            assert wt is None and got.weights is None
