"""Figures of the study from tidy results, in a paper theme, saved as SVG, PNG and PDF.

Importing this package registers the altair theme ``"lenskit_paper"``
(:mod:`lenskit.plots.theme`) without enabling it: lenskit's charts are rendered under it
(:func:`chart_spec`, :func:`save_chart`, :func:`themed`); :func:`use_theme` enables it
for the user's own charts. Figure functions (:mod:`lenskit.plots.figures`) take tidy
results frames and return altair charts; :func:`make_figures` writes every figure a run
supports with captions (``lenskit figures RUN_DIR``); :func:`write_report` writes one
self-contained interactive HTML page (``lenskit report RUN_DIR``).
"""

from lenskit.plots.attention import (
    fig_drift_correlation,
    fig_drift_heatmaps,
    fig_drift_scatter,
)
from lenskit.plots.figures import (
    fig_attention_vs_ffw,
    fig_dense_scaling,
    fig_sparsity_curves,
    fig_study_comparison,
    make_figures,
)
from lenskit.plots.maps import (
    fig_allocation_fit,
    fig_cumulative_map,
    fig_head_ablation,
    fig_neuron_ablation,
    fig_sensitivity_map,
)
from lenskit.plots.popularity import fig_bucket_curves, fig_recall_by_exposure
from lenskit.plots.report import report_html, write_report
from lenskit.plots.theme import (
    CATEGORY_COLORS,
    COLORS,
    OKABE_ITO,
    PAPER_THEME,
    chart_spec,
    color_scale,
    paper_theme,
    save_chart,
    themed,
    use_theme,
)
from lenskit.plots.traces import fig_causal_trace, fig_head_trace, fig_trace_vs_pruning

__all__ = [
    "CATEGORY_COLORS",
    "COLORS",
    "OKABE_ITO",
    "PAPER_THEME",
    "chart_spec",
    "color_scale",
    "fig_allocation_fit",
    "fig_attention_vs_ffw",
    "fig_bucket_curves",
    "fig_causal_trace",
    "fig_cumulative_map",
    "fig_dense_scaling",
    "fig_drift_correlation",
    "fig_drift_heatmaps",
    "fig_drift_scatter",
    "fig_head_ablation",
    "fig_head_trace",
    "fig_neuron_ablation",
    "fig_recall_by_exposure",
    "fig_sensitivity_map",
    "fig_sparsity_curves",
    "fig_study_comparison",
    "fig_trace_vs_pruning",
    "make_figures",
    "paper_theme",
    "report_html",
    "save_chart",
    "themed",
    "use_theme",
    "write_report",
]
