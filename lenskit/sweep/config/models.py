"""Which models a sweep prunes, which it evaluates dense only, and their names in results.

Model specs are what :func:`lenskit.load_model` takes ("organism", hub names, local
directories). Where and how a model is placed (device, dtype, device map) is a setting of
the same concern and belongs here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenskit.sweep.config.errors import check_list

__all__ = ["DEFAULT_DENSE_MODELS", "model_label", "model_problems"]

# The default study also evaluates the organism's narrower sibling dense, as the point of
# comparison for down-scaling by training a smaller model instead of pruning.
DEFAULT_DENSE_MODELS: tuple[str, ...] = ("organism-d64",)


def model_label(spec: str) -> str:
    """The name a model gets in results: hub names and "organism" as given, a local
    directory by its last path component (``/data/models/pythia-70m`` -> ``pythia-70m``)."""
    text = str(spec).rstrip("/")
    if text.startswith((".", "/", "~")) or Path(text).is_dir():
        return Path(text).name or text
    return text


def model_problems(models: Any, dense_models: Any) -> list[str]:
    """Every problem with the ``models`` and ``dense_models`` settings."""
    p: list[str] = []
    distinct = check_list(p, "models", models)
    if not isinstance(dense_models, list):
        p.append(f"dense_models must be a list, got {dense_models!r}")
    else:
        for m in dense_models:
            if m in distinct:
                p.append(f"dense model {m!r} is also in models (its dense cells are "
                         f"there already)")
    for m in [*distinct, *(dense_models if isinstance(dense_models, list) else [])]:
        if not isinstance(m, str) or not m.strip():
            p.append(f"model spec {m!r} must be a non-empty string")
    return p
