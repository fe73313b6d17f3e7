"""Analysis: sweep configs, the tidy results schema, run directories, thresholds.

- :mod:`~lenskit.analysis.schema`: the columns of a results table and helpers on them.
- :mod:`~lenskit.analysis.config`: :class:`SweepConfig` (TOML/YAML/overrides, validation)
  and its expansion into :class:`Cell` objects.
- :mod:`~lenskit.analysis.store`: :class:`RunStore`, a run directory written atomically cell
  by cell so that sweeps resume.
- :mod:`~lenskit.analysis.thresholds`: the largest sparsity a task survives within a
  tolerance, with confidence intervals, and the study's reported numbers beside them.
- :mod:`~lenskit.analysis.sensitivity`, :mod:`~lenskit.analysis.ablation`: maps of what
  breaks when one site group is pruned (or one head / group of FFW neurons ablated) at a
  time, cumulative layer maps; rows as :data:`~lenskit.analysis.mapping.MAP_COLUMNS`.
- :mod:`~lenskit.analysis.allocation_fit`: per-site sparsity of non-uniform allocations
  and a fitted relation (with uncertainty) between per-family sparsity and accuracy drop.
- :mod:`~lenskit.analysis.attention`, :mod:`~lenskit.analysis.attention_stats`,
  :mod:`~lenskit.analysis.attention_drop`: attention patterns under pruning (entropy,
  divergence to dense, sink and answer-span mass, induction scores per layer and head,
  computed online), and which heads' drift predicts which ability's accuracy drop.
"""

from lenskit.analysis.ablation import (
    ABLATION_MODES,
    NEURON_GROUPINGS,
    ActivationMeans,
    head_ablation_map,
    mean_activations,
    neuron_ablation_map,
)
from lenskit.analysis.allocation_fit import (
    AllocationProfiles,
    SparsityFit,
    allocation_profiles,
    fit_sparsity_relation,
)
from lenskit.analysis.attention import (
    ATTENTION_COLUMNS,
    DRIFT_COLUMNS,
    AttentionProbe,
    AttentionRun,
    RepeatedTokens,
    attention_drift,
    attention_metrics,
)
from lenskit.analysis.attention_drop import (
    CORRELATION_COLUMNS,
    accuracy_drops,
    drift_drop_table,
    drift_vs_drop,
)
from lenskit.analysis.config import (
    DEFAULT_SPARSITIES,
    CalibrationConfig,
    Cell,
    ConfigError,
    SweepConfig,
    default_config,
    is_attention_scope,
    is_ffw_scope,
    known_tasks,
    load_config,
    model_label,
    parse_structure,
)
from lenskit.analysis.mapping import MAP_COLUMNS
from lenskit.analysis.schema import (
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
from lenskit.analysis.sensitivity import (
    DIRECTIONS,
    GROUPINGS,
    cumulative_map,
    sensitivity_map,
    sensitivity_table,
)
from lenskit.analysis.store import (
    ConfigMismatchError,
    RunLockedError,
    RunStore,
    environment_info,
    iter_missing,
)
from lenskit.analysis.sweep import SweepOutcome, finish_run, run_sweep
from lenskit.analysis.thresholds import (
    STUDY_THRESHOLDS,
    STUDY_TOLERANCE,
    TOLERANCES,
    chance_level,
    compare_to_study,
    compute_thresholds,
    format_study_comparison,
    format_thresholds,
    primary_metric,
    study_comparison,
    tasks_at_chance,
    threshold_from_curve,
)

__all__ = [
    "ABLATION_MODES",
    "ATTENTION_COLUMNS",
    "CATEGORIES",
    "CELL_KEYS",
    "CORRELATION_COLUMNS",
    "DEFAULT_SPARSITIES",
    "DENSE",
    "DIRECTIONS",
    "DRIFT_COLUMNS",
    "GROUPINGS",
    "INSTANCE_COLUMNS",
    "KINDS",
    "KIND_CATEGORY",
    "MAP_COLUMNS",
    "MEASUREMENT_KEYS",
    "NEURON_GROUPINGS",
    "RESULT_COLUMNS",
    "STUDY_THRESHOLDS",
    "STUDY_TOLERANCE",
    "TOLERANCES",
    "ActivationMeans",
    "AllocationProfiles",
    "AttentionProbe",
    "AttentionRun",
    "CalibrationConfig",
    "Cell",
    "ConfigError",
    "ConfigMismatchError",
    "RepeatedTokens",
    "RunLockedError",
    "RunStore",
    "SchemaError",
    "SparsityFit",
    "SweepConfig",
    "SweepOutcome",
    "accuracy_drops",
    "allocation_profiles",
    "attach_baselines",
    "attention_drift",
    "attention_metrics",
    "chance_level",
    "compare_to_study",
    "compute_thresholds",
    "cumulative_map",
    "default_config",
    "drift_drop_table",
    "drift_vs_drop",
    "empty_results",
    "environment_info",
    "finish_run",
    "fit_sparsity_relation",
    "format_study_comparison",
    "format_thresholds",
    "head_ablation_map",
    "higher_is_better",
    "instance_rows",
    "instances_from_eval",
    "is_attention_scope",
    "is_ffw_scope",
    "iter_missing",
    "known_allocations",
    "known_methods",
    "known_tasks",
    "load_config",
    "mean_activations",
    "model_label",
    "neuron_ablation_map",
    "parse_structure",
    "primary_metric",
    "relative_drop",
    "run_sweep",
    "sensitivity_map",
    "sensitivity_table",
    "study_comparison",
    "tasks_at_chance",
    "threshold_from_curve",
    "validate_instances",
    "validate_results",
]
