"""Sweep configuration: the grid a study runs, validated before any work starts.

A sweep is models x seeds x methods x structures x allocations x scopes x sparsities,
every cell evaluated on the same tasks. It is declared in a TOML file (YAML when PyYAML is
installed), in Python, or on the command line as overrides, e.g.::

    name = "default"
    models = ["organism"]
    methods = ["wanda", "magnitude"]
    sparsities = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    scopes = ["all", "attn", "mlp"]
    matched = true            # also prune FFW to remove as many weights as attention does

    [calibration]
    n_samples = 32
    seq_len = 128

    [method_kwargs.sparsegpt]
    blocksize = 128

:meth:`SweepConfig.validate` collects *every* problem (unknown names, with the closest
known one; empty grids; sparsities outside [0, 1]; impossible combinations; arguments a
method or allocation does not take) and raises one ValueError listing
them. :meth:`SweepConfig.cells` expands the grid into :class:`Cell` objects in the order a
runner should visit them.

The package holds one module per concern: :mod:`.grid` (methods, structures, sparsities,
allocations, scopes, matched comparison, seeds), :mod:`.models`, :mod:`.tasks`,
:mod:`.calibration`, :mod:`.execution` (batch size, output directory), :mod:`.options`
(``method_kwargs``/``allocation_kwargs`` against what the pruners take), :mod:`.cells`,
:mod:`.overrides` (``--set key=value``), :mod:`.files` (TOML/YAML), :mod:`.loading` and
:mod:`.sweep`, which composes them into :class:`SweepConfig`.
"""


from lenskit.models.sites import is_attention_scope, is_ffw_scope
from lenskit.pruning.structure import parse_structure
from lenskit.sweep.config.calibration import CalibrationConfig
from lenskit.sweep.config.cells import Cell
from lenskit.sweep.config.errors import ConfigError
from lenskit.sweep.config.grid import (
    DEFAULT_SPARSITIES,
    STRUCTURED_ALLOCATIONS,
    UNSUPPORTED_COMBINATIONS,
)
from lenskit.sweep.config.loading import default_config, load_config
from lenskit.sweep.config.models import DEFAULT_DENSE_MODELS, model_label
from lenskit.sweep.config.sweep import SweepConfig
from lenskit.sweep.config.tasks import TASK_SIZES

__all__ = [
    "DEFAULT_DENSE_MODELS",
    "DEFAULT_SPARSITIES",
    "STRUCTURED_ALLOCATIONS",
    "TASK_SIZES",
    "UNSUPPORTED_COMBINATIONS",
    "CalibrationConfig",
    "Cell",
    "ConfigError",
    "SweepConfig",
    "default_config",
    "is_attention_scope",
    "is_ffw_scope",
    "load_config",
    "model_label",
    "parse_structure",
]
