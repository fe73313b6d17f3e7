"""The study: everything that runs and records a sweep of pruned models.

- :mod:`~lenskit.study.config`: :class:`SweepConfig` (TOML/YAML/overrides, validation)
  and its expansion into :class:`Cell` objects.
- :mod:`~lenskit.study.runner`: :func:`run_sweep`, every cell of a config, resumably.
- :mod:`~lenskit.study.executors`: where the cells run: this process, or the actors of a
  Ray cluster (``executor = "ray"``).
- :mod:`~lenskit.study.store`: :class:`RunStore`, a run directory written atomically cell
  by cell so that sweeps resume and grow; :mod:`~lenskit.study.merge`: :func:`merge_runs`.
  Its parts: :mod:`~lenskit.study.manifest` (format and checks),
  :mod:`~lenskit.study.rundir` (preparing the directory), :mod:`~lenskit.study.files`
  (atomic writes), :mod:`~lenskit.study.environment` (versions, host, git revision).
- :mod:`~lenskit.study.schema`: the columns of a results table and helpers on them.
- :mod:`~lenskit.study.thresholds`: the largest sparsity a task survives within a
  tolerance, with confidence intervals.
- :mod:`~lenskit.study.comparison`: the published study's thresholds beside measured ones.
"""

from lenskit.study.comparison import (
    STUDY_THRESHOLDS,
    compare_to_study,
    format_study_comparison,
    study_comparison,
)
from lenskit.study.config import (
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
from lenskit.study.merge import merge_runs
from lenskit.study.runner import (
    SweepOutcome,
    finish_run,
    run_sweep,
)
from lenskit.study.schema import (
    CATEGORIES,
    CELL_KEYS,
    DENSE,
    INSTANCE_COLUMNS,
    KIND_CATEGORY,
    KINDS,
    MEASUREMENT_KEYS,
    RESULT_COLUMNS,
    SchemaError,
    attach_baselines,
    empty_results,
    higher_is_better,
    instance_rows,
    instances_from_eval,
    known_allocations,
    known_methods,
    relative_drop,
    validate_instances,
    validate_results,
)
from lenskit.study.store import (
    ConfigMismatchError,
    RunLockedError,
    RunStore,
    environment_info,
    iter_missing,
)
from lenskit.study.thresholds import (
    STUDY_TOLERANCE,
    TOLERANCES,
    chance_level,
    compute_thresholds,
    format_thresholds,
    primary_metric,
    tasks_at_chance,
    threshold_from_curve,
)

__all__ = [
    "CATEGORIES",
    "CELL_KEYS",
    "DEFAULT_SPARSITIES",
    "DENSE",
    "INSTANCE_COLUMNS",
    "KINDS",
    "KIND_CATEGORY",
    "MEASUREMENT_KEYS",
    "RESULT_COLUMNS",
    "STUDY_THRESHOLDS",
    "STUDY_TOLERANCE",
    "TOLERANCES",
    "CalibrationConfig",
    "Cell",
    "ConfigError",
    "ConfigMismatchError",
    "RunLockedError",
    "RunStore",
    "SchemaError",
    "SweepConfig",
    "SweepOutcome",
    "attach_baselines",
    "chance_level",
    "compare_to_study",
    "compute_thresholds",
    "default_config",
    "empty_results",
    "environment_info",
    "finish_run",
    "format_study_comparison",
    "format_thresholds",
    "higher_is_better",
    "instance_rows",
    "instances_from_eval",
    "is_attention_scope",
    "is_ffw_scope",
    "iter_missing",
    "known_allocations",
    "known_methods",
    "load_config",
    "merge_runs",
    "model_label",
    "parse_structure",
    "primary_metric",
    "relative_drop",
    "run_sweep",
    "study_comparison",
    "tasks_at_chance",
    "threshold_from_curve",
    "validate_instances",
    "validate_results",
]
