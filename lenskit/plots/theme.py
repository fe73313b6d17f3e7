"""The paper theme, the colour palette, and saving charts as SVG, PNG and PDF.

Importing :mod:`lenskit.plots` registers the altair theme ``"lenskit_paper"`` (once) and
enables it, so that figures shown in a notebook look as they will in print;
``alt.theme.enable("default")`` switches back. :func:`save_chart` and :func:`chart_spec`
apply the theme themselves, whatever theme is active.

Colours are the Okabe-Ito palette (Okabe & Ito 2008), distinguishable under the common
forms of colour blindness; the two abilities the study contrasts get fixed colours in every
figure (fact recall: vermillion, in-context learning: blue).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt

__all__ = [
    "CATEGORY_COLORS",
    "CATEGORY_LABELS",
    "OKABE_ITO",
    "PAPER_THEME",
    "chart_spec",
    "paper_theme",
    "save_chart",
]

PAPER_THEME = "lenskit_paper"

#: Okabe-Ito: orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple, black.
OKABE_ITO: tuple[str, ...] = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
                              "#D55E00", "#CC79A7", "#000000")
#: Display names of the task categories of the results schema.
CATEGORY_LABELS: dict[str, str] = {"fact_recall": "fact recall", "icl": "in-context learning",
                                   "lm": "language modelling"}
CATEGORY_COLORS: dict[str, str] = {"fact recall": "#D55E00", "in-context learning": "#0072B2",
                                   "language modelling": "#999999"}

_FONT = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"


def paper_theme() -> dict[str, Any]:
    """The theme's Vega-Lite config: sans-serif 9-11 pt text, light grid, no view frame,
    Okabe-Ito categories, panels sized for a two-column paper (180 x 130 px each)."""
    return {
        "config": {
            "background": "white",
            "font": _FONT,
            "padding": 6,
            "view": {"stroke": None, "continuousWidth": 180, "continuousHeight": 130},
            "title": {"fontSize": 12, "fontWeight": "bold", "anchor": "start", "offset": 8},
            "axis": {"labelFontSize": 9, "titleFontSize": 10, "titleFontWeight": "normal",
                     "gridColor": "#e5e5e5", "domainColor": "#444444", "tickColor": "#444444",
                     "labelColor": "#222222", "titleColor": "#222222"},
            "header": {"labelFontSize": 10, "titleFontSize": 10, "titleFontWeight": "normal",
                       "labelFontWeight": "bold"},
            "legend": {"labelFontSize": 9, "titleFontSize": 10, "titleFontWeight": "normal",
                       "symbolSize": 60, "orient": "right"},
            "range": {"category": list(OKABE_ITO)},
            "line": {"strokeWidth": 1.5},
            "point": {"size": 28, "filled": True},
            "rule": {"color": "#666666"},
        }
    }


if PAPER_THEME not in alt.theme.names():  # register once, even if the module is reloaded
    alt.theme.register(PAPER_THEME, enable=True)(lambda: alt.theme.ThemeConfig(paper_theme()))
else:
    alt.theme.enable(PAPER_THEME)


def chart_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite spec (with its data inline) under the paper theme."""
    with alt.theme.enable(PAPER_THEME):
        return chart.to_dict()


def save_chart(chart: alt.TopLevelMixin, path_stem: str | Path,
               formats: Sequence[str] = ("svg", "png", "pdf"), *, scale: float = 2.0
               ) -> list[Path]:
    """Write ``chart`` as ``<path_stem>.svg``, ``.png`` (``scale`` x pixel density) and
    ``.pdf`` under the paper theme, offline (vl-convert). Returns the paths written.

    ``path_stem`` is a path without extension (an extension given is replaced).
    """
    allowed = ("svg", "png", "pdf")
    bad = [f for f in formats if f not in allowed]
    if bad:
        raise ValueError(f"unknown figure format(s) {bad}; allowed: {', '.join(allowed)}")
    stem = Path(path_stem)
    if stem.suffix in {f".{f}" for f in allowed}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with alt.theme.enable(PAPER_THEME):
        for fmt in formats:
            path = stem.parent / f"{stem.name}.{fmt}"
            if fmt == "png":
                chart.save(str(path), format="png", scale_factor=scale)
            else:
                chart.save(str(path), format=fmt)
            paths.append(path)
    return paths
