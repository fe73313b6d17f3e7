"""What a :class:`~lenskit.pruning.Pruner` accepts and works on: modes, each method's
parameters with their checks, one requested level, and the original weights it scores."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from lenskit.errors import UsageError
from lenskit.models.loading import model_info
from lenskit.models.masks import offload, restore
from lenskit.pruning.allocation import ALLOCATION_PARAMS

__all__ = ["METHOD_PARAMS", "MODES", "OWL_PARAMS", "Level", "check_param", "original_weights"]


MODES = ("dense", "sequential")
METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "random": {"per_row": False},
    "magnitude": {"per_row": False},
    "wanda": {},
    "sparsegpt": {"blocksize": 128, "percdamp": 0.01},
}
OWL_PARAMS: dict[str, Any] = ALLOCATION_PARAMS["owl"]


@dataclass(frozen=True)
class Level:
    """One requested level: what was asked (``key``) and the scope's sparsity it means."""

    key: float | int
    sparsity: float | None  # as given (None for N:M defaults / n_params requests)
    scope_sparsity: float
    n_params: int | None = None  # matched allocation


def check_param(name: str, value: Any) -> Any:
    if name == "per_row":
        if not isinstance(value, bool):
            raise UsageError(f"per_row must be True or False, got {value!r}")
    elif name == "blocksize":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"blocksize must be a positive int, got {value!r}")
    elif name == "percdamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise UsageError(f"percdamp must be a number >= 0, got {value!r}")
        value = float(value)
    elif name == "owl_m":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise UsageError(f"owl_m must be a number > 0, got {value!r}")
        value = float(value)
    elif name == "owl_lambda":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= 0.5:
            raise UsageError(f"owl_lambda must be a number in [0, 0.5], got {value!r}")
        value = float(value)
    return value


@contextmanager
def original_weights(model):
    """Put every modified site back to its original weight for the duration of the block,
    then leave each one exactly as it was (original record included)."""
    info = model_info(model)
    saved = {n: (orig, offload(info.site_map[n])) for n, orig in info.originals.items()}
    restore(model)
    try:
        yield
    finally:
        restore(model)
        with torch.no_grad():
            for name, (orig, current) in saved.items():
                for b in info.site_map[name].bindings:
                    b.write_(current)
                info.originals[name] = orig
