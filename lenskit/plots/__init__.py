"""Figures of the study from tidy results, in a paper theme, saved as SVG, PNG and PDF.

Importing this package registers and enables the altair theme ``"lenskit_paper"``
(:mod:`lenskit.plots.theme`). Figure functions (:mod:`lenskit.plots.figures`) take tidy
results frames and return altair charts; :func:`make_figures` writes every figure a run
supports (``lenskit figures RUN_DIR``).
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
from lenskit.plots.theme import (
    CATEGORY_COLORS,
    OKABE_ITO,
    PAPER_THEME,
    chart_spec,
    paper_theme,
    save_chart,
)

__all__ = [
    "CATEGORY_COLORS",
    "OKABE_ITO",
    "PAPER_THEME",
    "chart_spec",
    "fig_allocation_fit",
    "fig_attention_vs_ffw",
    "fig_cumulative_map",
    "fig_dense_scaling",
    "fig_drift_correlation",
    "fig_drift_heatmaps",
    "fig_drift_scatter",
    "fig_head_ablation",
    "fig_neuron_ablation",
    "fig_sensitivity_map",
    "fig_sparsity_curves",
    "fig_study_comparison",
    "make_figures",
    "paper_theme",
    "save_chart",
]
