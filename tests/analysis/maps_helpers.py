"""Helpers for the map tests: small real suites, a hand-wired copying model, weight hashes,
and a recorder of which weights are zero whenever the plain HF model runs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from weight_hashes import weights_hash  # noqa: F401 (re-exported; tests/ is on the path)

from lenskit.models import model_info
from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import (
    FunctionSpec,
    QAItem,
    function_task,
    open_book_task,
    organism_suite,
)

_WORLD_SUITE = {}


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tests on one torch thread: tiny models gain nothing from a second
    thread, and lose ~20x when another process holds the second core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_suite(n: int = 5, perplexity: bool = False) -> dict:
    """Closed-book and open-book questions of the organism world (``n`` each), a tiny
    function task and, optionally, a perplexity task: every category, in seconds."""
    if "suite" not in _WORLD_SUITE:
        _WORLD_SUITE["suite"] = organism_suite(WorldConfig().build(), size="small", seed=0)
    suite = _WORLD_SUITE["suite"]
    out = {
        "closed_book": suite["closed_book"].subset(n, seed=1),
        "open_book": suite["open_book"].subset(n, seed=2),
        "fn": function_task(FunctionSpec(n_dims=2, n_exemplars=4), 4, seed=0, name="fn"),
    }
    if perplexity:
        out["perplexity"] = suite["perplexity"].subset(3, seed=0)
    return out


class ZeroRecorder:
    """Records, at every forward pass of the plain HF model (what evaluation runs), the
    fraction of exact zeros in each site's weight that has any."""

    def __init__(self, model) -> None:
        self.info = model_info(model)
        self.calls: list[dict[str, float]] = []
        # evaluation runs the base model (the LM head is applied to gathered states only)
        self.handle = self.info.hf.base_model.register_forward_pre_hook(self._record)

    def _record(self, _module, _args) -> None:
        snap = {}
        for s in self.info.sites:
            w = s.weight()
            zero = float((w == 0).sum()) / w.numel()
            if zero:
                snap[s.name] = zero
        self.calls.append(snap)

    def states(self) -> list[dict[str, float]]:
        """The distinct consecutive states seen (one per evaluation of an intervention)."""
        return [k for k, _ in itertools.groupby(self.calls)]

    def close(self) -> None:
        self.handle.remove()


# The hand-wired copying model of the task tests (tests/tasks/copy_model.py).
def build_copy_model(directory: Path) -> Path:
    from tasks.copy_model import build_copy_model as build

    return build(directory)


def copy_tasks() -> dict:
    """Open-book questions the copying model answers perfectly (8 entities x 8 cities)."""
    from tasks.copy_model import ENTITIES, VALUES

    items = [QAItem(f"what is the capital of {e}?", (v,), context=f"The capital of {e} is {v}.",
                    id=f"copy-{k}")
             for k, (e, v) in enumerate(itertools.product(ENTITIES, VALUES))]
    return {"open_book": open_book_task(items[::4], name="open_book")}
