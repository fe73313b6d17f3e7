"""The block walker's statistics passes: a pass whose outputs are not needed stops at its
last wanted input, with bit-for-bit the same masks and weights."""

import functools

import pytest
import torch

from lenskit.models import model_info
from lenskit.pruning import prune, statistics


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
