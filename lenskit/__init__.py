"""lenskit: layer-wise ablation studies of language models.

Prune attention and FFW weights separately, per layer and component, exactly and
reversibly; measure fact recall against in-context learning; relate where sparsity falls to
what breaks. The data flows one way through the packages:

- :mod:`lenskit.models`: hooked models (TransformerLens bridges), sites, masks;
- :mod:`lenskit.pruning`: scores, masks, allocation, calibration;
- :mod:`lenskit.tasks`: prompts, decoding, scoring;
- :mod:`lenskit.results`: the tidy-results vocabulary: schema, baselines, thresholds;
- :mod:`lenskit.rundir`: run directories that resume, grow and merge;
- :mod:`lenskit.sweep`: sweep configs, preflight checks, the runner and its executors;
- :mod:`lenskit.analysis`: sensitivity maps, ablation, attention patterns, causal tracing;
- :mod:`lenskit.plots`: paper figures; :mod:`lenskit.organism`: the small model shipped here.

Every public name is listed below and importable from ``lenskit`` directly; each is loaded
on first use, so ``import lenskit`` stays fast (torch and transformers load when needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lenskit.version import __version__

_EXPORTS: dict[str, tuple[str, ...]] = {
    "lenskit.models": (
        "ARCHITECTURES", "COMPONENTS", "FAMILIES", "LoadedModel", "MaskSet", "ModelLoadError",
        "Selection", "Site", "SiteSelection", "apply_masks", "check_consistency", "describe",
        "dense_siblings", "hf_model", "install_family", "load_model", "make_tiny_model",
        "model_info", "organism_path", "pruned",
        "register_calibration_source", "restore", "sites",
    ),
    "lenskit.pruning": (
        "ALLOCATIONS", "CalibrationData", "METHODS", "PruneResult", "Pruner",
        "calibration_from_source", "default_calibration", "export_pruned", "matched_sparsities",
        "parse_structure", "prune",
    ),
    "lenskit.tasks": (
        "CATEGORIES", "EvalResult", "FunctionFormat", "FunctionSpec", "QAFormat", "QAItem",
        "TASK_KINDS", "TaskInstance", "TaskSet", "TextWindow", "build_suite",
        "closed_book_task", "countries_suite", "default_suite", "encode_prompts", "evaluate",
        "evaluate_suite", "exact_match", "function_task", "load_disentqa",
        "load_natural_questions", "load_popqa", "load_triviaqa", "load_webquestions",
        "normalize_answer",
        "open_book_task", "organism_suite", "overriding_task", "perplexity_task",
        "template_report", "token_span",
    ),
    "lenskit.results": (
        "RESULT_COLUMNS", "STUDY_THRESHOLDS", "at_chance_by_model", "chance_level",
        "compare_to_study",
        "compute_thresholds", "format_thresholds", "study_comparison", "tasks_at_chance",
    ),
    "lenskit.rundir": ("RunManifest", "RunStore", "merge_runs"),
    "lenskit.sweep": (
        "Cell", "ConfigError", "SweepConfig", "default_config", "load_config", "run_sweep",
    ),
    "lenskit.analysis": (
        "RepeatedTokens", "accuracy_drops", "allocation_profiles", "attention_drift",
        "attention_metrics", "cumulative_map", "drift_drop_table", "drift_vs_drop",
        "fit_sparsity_relation", "head_ablation_map", "mean_activations", "neuron_ablation_map",
        "recall_by_exposure", "sensitivity_map", "sensitivity_table", "TraceSite", "causal_trace", "trace_items",
        "trace_rows", "trace_sites", "rank_agreement", "layer_sensitivity_items",
        "head_ablation_items", "layer_agreement", "layer_profiles", "trace_effects", "save_traces", "load_traces",
    ),
    "lenskit.plots": (
        "fig_allocation_fit", "fig_attention_vs_ffw", "fig_bucket_curves", "fig_cumulative_map",
        "fig_dense_scaling", "fig_recall_by_exposure",
        "fig_drift_correlation", "fig_drift_heatmaps", "fig_drift_scatter", "fig_head_ablation",
        "fig_neuron_ablation", "fig_sensitivity_map", "fig_sparsity_curves",
        "fig_study_comparison", "make_figures", "save_chart", "use_theme", "write_report",
        "fig_causal_trace", "fig_head_trace", "fig_trace_vs_pruning",
    ),
    "lenskit.organism": ("World", "build_world", "train_family", "train_organism"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lenskit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from lenskit.analysis import *  # noqa: F403
    from lenskit.models import *  # noqa: F403
    from lenskit.organism import *  # noqa: F403
    from lenskit.plots import *  # noqa: F403
    from lenskit.pruning import *  # noqa: F403
    from lenskit.results import *  # noqa: F403
    from lenskit.rundir import *  # noqa: F403
    from lenskit.sweep import *  # noqa: F403
    from lenskit.tasks import *  # noqa: F403
