"""Interpretability analyses: where sparsity falls, and what it does to each ability.

- :mod:`~lenskit.analysis.sensitivity`, :mod:`~lenskit.analysis.ablation`: maps of what
  breaks when one site group is pruned (or one head / group of FFW neurons ablated) at a
  time, cumulative layer maps; rows as :data:`~lenskit.analysis.mapping.MAP_COLUMNS` (the
  sweep's results schema plus map-only columns, so maps and sweeps concatenate).
- :mod:`~lenskit.analysis.allocation_fit`: per-site sparsity of non-uniform allocations
  and a fitted relation (with uncertainty) between per-family sparsity and accuracy drop.
- :mod:`~lenskit.analysis.attention`, :mod:`~lenskit.analysis.attention_stats`,
  :mod:`~lenskit.analysis.attention_drop`: attention patterns under pruning (entropy,
  divergence to dense, sink and answer-span mass, induction scores per layer and head,
  computed online), and which heads' drift predicts which ability's accuracy drop.

Analyses read the tidy results of :mod:`lenskit.results`; running sweeps is :mod:`lenskit.sweep`
and recording them :mod:`lenskit.rundir`.
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
from lenskit.analysis.mapping import MAP_COLUMNS, validate_maps
from lenskit.analysis.sensitivity import (
    DIRECTIONS,
    GROUPINGS,
    cumulative_map,
    sensitivity_map,
    sensitivity_table,
)

__all__ = [
    "ABLATION_MODES",
    "ATTENTION_COLUMNS",
    "CORRELATION_COLUMNS",
    "DIRECTIONS",
    "DRIFT_COLUMNS",
    "GROUPINGS",
    "MAP_COLUMNS",
    "NEURON_GROUPINGS",
    "ActivationMeans",
    "AllocationProfiles",
    "AttentionProbe",
    "AttentionRun",
    "RepeatedTokens",
    "SparsityFit",
    "accuracy_drops",
    "allocation_profiles",
    "attention_drift",
    "attention_metrics",
    "cumulative_map",
    "drift_drop_table",
    "drift_vs_drop",
    "fit_sparsity_relation",
    "head_ablation_map",
    "mean_activations",
    "neuron_ablation_map",
    "sensitivity_map",
    "sensitivity_table",
    "validate_maps",
]
