"""Sweeps: the grid of a study, checked before it starts and run cell by cell.

- :mod:`~lenskit.sweep.config`: :class:`SweepConfig` (TOML/YAML/overrides, validation)
  and its expansion into :class:`Cell` objects.
- :mod:`~lenskit.sweep.preflight`: every check that can fail before a model is loaded.
- :mod:`~lenskit.sweep.runner`: :func:`run_sweep`, every cell of a config, resumably, into a
  run directory (:mod:`lenskit.rundir`).
- :mod:`~lenskit.sweep.executors`: where the cells run: this process, or the actors of a
  Ray cluster (``executor = "ray"``).
"""

from lenskit.sweep.config import (
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
from lenskit.sweep.runner import (
    SweepOutcome,
    finish_run,
    run_sweep,
)

__all__ = [
    "DEFAULT_SPARSITIES",
    "CalibrationConfig",
    "Cell",
    "ConfigError",
    "SweepConfig",
    "SweepOutcome",
    "default_config",
    "finish_run",
    "is_attention_scope",
    "is_ffw_scope",
    "load_config",
    "model_label",
    "parse_structure",
    "run_sweep",
]
