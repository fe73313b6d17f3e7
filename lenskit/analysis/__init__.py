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
- :mod:`~lenskit.analysis.causal_tracing`: causal tracing (ROME's activation patching):
  which layer's FFW, attention, residual stream or head carries a fact to the answer, in
  the maps' rows, and (:mod:`~lenskit.analysis.trace_agreement`) how it ranks layers and
  heads against the pruning and ablation maps.
- :mod:`~lenskit.analysis.exposure`: closed-book recall under pruning against how often
  each fact was seen in training (a zipf organism's recorded exposure).

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
from lenskit.analysis.causal_tracing import (
    POSITIONS,
    SITE_KINDS,
    TRACE_COLUMNS,
    TRACE_ITEM_COLUMNS,
    TRACE_METRICS,
    TraceSite,
    causal_trace,
    trace_items,
    trace_rows,
    trace_sites,
)
from lenskit.analysis.exposure import (
    EXPOSURE_BINS,
    EXPOSURE_COLUMNS,
    instance_exposure,
    recall_by_exposure,
    results_exposure,
)
from lenskit.analysis.mapping import MAP_COLUMNS, validate_maps
from lenskit.analysis.sensitivity import (
    DIRECTIONS,
    GROUPINGS,
    cumulative_map,
    sensitivity_map,
    sensitivity_table,
)
from lenskit.analysis.trace_agreement import (
    AGREEMENT_COLUMNS,
    head_ablation_items,
    layer_agreement,
    layer_profiles,
    layer_sensitivity_items,
    rank_agreement,
    trace_effects,
)
from lenskit.analysis.trace_store import TRACES_DIR, load_traces, save_traces

__all__ = [
    "ABLATION_MODES",
    "AGREEMENT_COLUMNS",
    "ATTENTION_COLUMNS",
    "CORRELATION_COLUMNS",
    "DIRECTIONS",
    "DRIFT_COLUMNS",
    "EXPOSURE_BINS",
    "EXPOSURE_COLUMNS",
    "GROUPINGS",
    "MAP_COLUMNS",
    "NEURON_GROUPINGS",
    "POSITIONS",
    "SITE_KINDS",
    "TRACES_DIR",
    "TRACE_COLUMNS",
    "TRACE_ITEM_COLUMNS",
    "TRACE_METRICS",
    "ActivationMeans",
    "AllocationProfiles",
    "AttentionProbe",
    "AttentionRun",
    "RepeatedTokens",
    "SparsityFit",
    "TraceSite",
    "accuracy_drops",
    "allocation_profiles",
    "attention_drift",
    "attention_metrics",
    "causal_trace",
    "cumulative_map",
    "drift_drop_table",
    "drift_vs_drop",
    "fit_sparsity_relation",
    "head_ablation_items",
    "head_ablation_map",
    "instance_exposure",
    "layer_agreement",
    "layer_profiles",
    "layer_sensitivity_items",
    "load_traces",
    "mean_activations",
    "neuron_ablation_map",
    "rank_agreement",
    "recall_by_exposure",
    "results_exposure",
    "save_traces",
    "sensitivity_map",
    "sensitivity_table",
    "trace_effects",
    "trace_items",
    "trace_rows",
    "trace_sites",
    "validate_maps",
]
