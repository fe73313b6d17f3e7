"""Tidy results: the vocabulary every sweep, analysis and figure shares.

- :mod:`~lenskit.results.schema`: the columns of a results table (one row per cell and
  task), the dense baselines attached to it (:func:`attach_baselines` when a sweep writes a
  cell; :func:`with_baselines`, the one place readers get them) and helpers on them.
- :mod:`~lenskit.results.thresholds`: the largest sparsity a task survives within a
  tolerance, with confidence intervals; chance levels.
- :mod:`~lenskit.results.comparison`: the published study's thresholds beside measured ones.

Nothing here runs a model or touches a run directory: sweeps (:mod:`lenskit.sweep`) and run
directories (:mod:`lenskit.rundir`) write these tables, :mod:`lenskit.analysis` and
:mod:`lenskit.plots` read them.
"""

from lenskit.results.comparison import (
    STUDY_THRESHOLDS,
    compare_to_study,
    format_study_comparison,
    study_comparison,
)
from lenskit.results.schema import (
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
    with_baselines,
)
from lenskit.results.thresholds import (
    STUDY_TOLERANCE,
    TOLERANCES,
    at_chance_by_model,
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
    "DENSE",
    "INSTANCE_COLUMNS",
    "KINDS",
    "KIND_CATEGORY",
    "MEASUREMENT_KEYS",
    "RESULT_COLUMNS",
    "STUDY_THRESHOLDS",
    "STUDY_TOLERANCE",
    "TOLERANCES",
    "SchemaError",
    "at_chance_by_model",
    "attach_baselines",
    "chance_level",
    "compare_to_study",
    "compute_thresholds",
    "empty_results",
    "format_study_comparison",
    "format_thresholds",
    "higher_is_better",
    "instance_rows",
    "instances_from_eval",
    "known_allocations",
    "known_methods",
    "primary_metric",
    "relative_drop",
    "study_comparison",
    "tasks_at_chance",
    "threshold_from_curve",
    "validate_instances",
    "validate_results",
    "with_baselines",
]
