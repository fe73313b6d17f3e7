"""The block walker's statistics passes: a pass whose outputs are not needed stops at its
last wanted input, with bit-for-bit the same masks and weights."""

import functools

import pytest
import torch

from lenskit.models import model_info
from lenskit.pruning import Pruner, prune, statistics


def _calls(model, run) -> int:
    """Completed forward calls of the modules inside the model's blocks during ``run()``."""
    info = model_info(model)
    blocks = info.hf.get_submodule(info.arch.blocks)
    count = [0]

    def hook(*_):
        count[0] += 1

    handles = [m.register_forward_hook(hook) for b in blocks for m in b.modules()]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return count[0]


@pytest.mark.parametrize("scope", ["all", "attn", "mlp"])
def test_early_stopped_statistics_passes_give_identical_results(family, tiny_model, cal,
                                                                 monkeypatch, scope):
    for method in ("wanda", "sparsegpt"):
        fast, full = [], []
        run = functools.partial(prune, tiny_model, method, 0.5, calibration=cal,
                                mode="sequential", scope=scope, apply=False)
        n_fast = _calls(tiny_model, lambda: fast.append(run()))  # noqa: B023
        monkeypatch.setattr(statistics, "EARLY_STOP", False)
        n_full = _calls(tiny_model, lambda: full.append(run()))  # noqa: B023
        monkeypatch.setattr(statistics, "EARLY_STOP", True)
        assert n_fast < n_full  # parts of the blocks were really skipped
        for name, keep in full[0].masks.items():
            assert torch.equal(fast[0].masks[name], keep), (method, name)
            if method == "sparsegpt":
                assert torch.equal(fast[0].weights[name], full[0].weights[name]), name


@pytest.mark.parametrize("scope", ["all", "mlp"])
def test_a_sequential_sweep_gives_every_level_its_own_prune_and_shares_the_first_block(
        family, tiny_model, cal, scope):
    # Each level is calibrated on the model with only its own pruning (never an earlier
    # level's), bit for bit as prune() at that level alone; the first calibrated block's
    # statistics pass (dense in every level) runs once for all levels.
    levels = [0.3, 0.6, 0.0]
    for method in ("wanda", "sparsegpt"):
        swept = []
        n_swept = _calls(tiny_model, lambda: swept.append(  # noqa: B023
            Pruner(tiny_model, method, scope=scope, calibration=cal,  # noqa: B023
                   mode="sequential").sweep(levels)))
        n_one = 0
        for lv in levels:
            one = []
            n_one += _calls(tiny_model, lambda: one.append(prune(  # noqa: B023
                tiny_model, method, lv, scope=scope, calibration=cal,  # noqa: B023
                mode="sequential", apply=False)))
            got = swept[0][lv]
            assert list(got.masks) == list(one[0].masks)
            for name, keep in one[0].masks.items():
                assert torch.equal(got.masks[name], keep), (method, lv, name)
                if method == "sparsegpt":
                    assert torch.equal(got.weights[name], one[0].weights[name]), (lv, name)
        assert n_swept < n_one, (method, n_swept, n_one)
