"""Sweeps: the grid of a study, checked before it starts and run cell by cell.

- :mod:`~lenskit.sweep.settings`: every setting of a sweep config, declared once (kind,
  place in a config file, whether it changes results, ``lenskit sweep`` flag).
- :mod:`~lenskit.sweep.config`: :class:`SweepConfig` (TOML/YAML/overrides, validation)
  and its expansion into :class:`Cell` objects.
- :mod:`~lenskit.sweep.preflight`: every check that can fail before a model is loaded.
- :mod:`~lenskit.sweep.plan`: :func:`plan_sweep`, everything a run needs derived from its
  config once (cells, executor, the record its run directory stores), before the run
  directory is touched.
- :mod:`~lenskit.sweep.runner`: :func:`run_sweep`, every cell of a plan, resumably, into a
  run directory (:mod:`lenskit.rundir`), which attaches baselines and writes.
- :mod:`~lenskit.sweep.executors`: where the cells run: this process, or the actors of a
  Ray cluster (``executor = "ray"``).

The names below load on first use, so that the command line reads
:mod:`~lenskit.sweep.settings` to build its parser without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "lenskit.sweep.config": (
        "DEFAULT_SPARSITIES", "CalibrationConfig", "Cell", "ConfigError", "SweepConfig",
        "default_config", "is_attention_scope", "is_ffw_scope", "load_config", "model_label",
        "parse_structure",
    ),
    "lenskit.sweep.plan": ("SweepPlan", "plan_sweep"),
    "lenskit.sweep.runner": ("SweepOutcome", "finish_run", "run_sweep"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = ("config", "executors", "plan", "preflight", "runner", "settings")

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from lenskit.sweep.config import (  # noqa: F401
        DEFAULT_SPARSITIES,
        CalibrationConfig,
        Cell,
        ConfigError,
        SweepConfig,
        default_config,
        is_attention_scope,
        is_ffw_scope,
        load_config,
        model_label,
        parse_structure,
    )
    from lenskit.sweep.plan import SweepPlan, plan_sweep  # noqa: F401
    from lenskit.sweep.runner import SweepOutcome, finish_run, run_sweep  # noqa: F401
