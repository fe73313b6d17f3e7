"""The paper theme, the one colour table, and saving charts as SVG, PNG and PDF.

Importing :mod:`lenskit.plots` *registers* the altair theme ``"lenskit_paper"`` but never
enables it: charts the user builds keep whatever theme is active. lenskit applies the theme
to its own charts only: :func:`chart_spec` and :func:`save_chart` render under it,
:func:`themed` returns a copy of a chart with the theme's config attached (for display in a
notebook), and :func:`use_theme` enables it explicitly (also usable as a context manager).

Colours (:data:`COLORS`) are the Okabe-Ito palette (Okabe & Ito 2008, distinguishable under
the common forms of colour blindness) plus two darker tones; every ability, pruned part
(family of sites) and method has one fixed colour, the same in every figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import altair as alt

from lenskit.errors import UsageError

__all__ = [
    "CATEGORY_COLORS",
    "CATEGORY_LABELS",
    "COLORS",
    "OKABE_ITO",
    "PAPER_THEME",
    "chart_spec",
    "color_scale",
    "paper_theme",
    "save_chart",
    "themed",
    "use_theme",
]

PAPER_THEME = "lenskit_paper"

#: Okabe-Ito: orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple, black.
OKABE_ITO: tuple[str, ...] = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
                              "#D55E00", "#CC79A7", "#000000")
#: Display names of the task categories of the results schema.
CATEGORY_LABELS: dict[str, str] = {"fact_recall": "fact recall", "icl": "in-context learning",
                                   "lm": "language modelling"}

#: The one colour table: kind of thing -> display name -> colour. No colour means two
#: things in one kind, and abilities, parts and methods never share a colour, so a reader
#: who learnt "vermillion = fact recall" in one figure is not misled in another.
COLORS: dict[str, dict[str, str]] = {
    "ability": {"fact recall": "#D55E00", "in-context learning": "#0072B2",
                "language modelling": "#999999"},
    "part": {"attention": "#CC79A7", "FFW": "#009E73"},
    "method": {"magnitude": "#E69F00", "wanda": "#56B4E9", "sparsegpt": "#332288",
               "random": "#8C6D31", "dense": "#000000"},
}
#: Ability -> colour (kept for the analysis figures; the same as ``COLORS["ability"]``).
CATEGORY_COLORS: dict[str, str] = COLORS["ability"]
_OTHER = ("#666666", "#AA4499", "#117733", "#882255", "#44AA99", "#DDCC77")

_FONT = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"


def color_scale(kind: str, present: Iterable[str]) -> alt.Scale:
    """An altair colour scale for the ``present`` values of ``kind`` ("ability", "part" or
    "method"), in the table's order, with each value's fixed colour. Values the table does
    not know get grey tones after the known ones. Only present values enter the domain,
    so a legend never lists what is not drawn."""
    if kind not in COLORS:
        raise UsageError(f"unknown colour kind {kind!r}; allowed: {sorted(COLORS)}")
    table = COLORS[kind]
    have = list(dict.fromkeys(str(v) for v in present))
    domain = [v for v in table if v in have] + sorted(v for v in have if v not in table)
    extra = iter(_OTHER * (1 + len(domain) // len(_OTHER)))
    return alt.Scale(domain=domain, range=[table.get(v) or next(extra) for v in domain])


def paper_theme() -> dict[str, Any]:
    """The theme's Vega-Lite config: sans-serif 9-11 pt text, light grid, no view frame,
    Okabe-Ito categories, panels sized for a two-column paper (180 x 130 px each), legends
    whose symbols are opaque and as thick as the lines they stand for."""
    return {
        "config": {
            "background": "white",
            "font": _FONT,
            "padding": 8,
            "view": {"stroke": None, "continuousWidth": 180, "continuousHeight": 130},
            "title": {"fontSize": 12, "fontWeight": "bold", "anchor": "start", "offset": 8,
                      "subtitleFontSize": 10, "subtitleColor": "#444444"},
            "axis": {"labelFontSize": 9, "titleFontSize": 10, "titleFontWeight": "normal",
                     "gridColor": "#e5e5e5", "domainColor": "#444444", "tickColor": "#444444",
                     "labelColor": "#222222", "titleColor": "#222222", "labelOverlap": True},
            "header": {"labelFontSize": 10, "titleFontSize": 10, "titleFontWeight": "normal",
                       "labelFontWeight": "bold"},
            "legend": {"labelFontSize": 9, "titleFontSize": 10, "titleFontWeight": "normal",
                       "symbolSize": 60, "orient": "right", "symbolOpacity": 1,
                       "symbolStrokeWidth": 2, "labelLimit": 260},
            "range": {"category": list(OKABE_ITO)},
            "line": {"strokeWidth": 1.5},
            "point": {"size": 28, "filled": True},
            "rule": {"color": "#666666"},
        }
    }


def _register() -> None:
    if PAPER_THEME not in alt.theme.names():  # register once; never enable here
        alt.theme.register(PAPER_THEME, enable=False)(
            lambda: alt.theme.ThemeConfig(paper_theme()))


_register()


def use_theme():
    """Enable the paper theme for every chart from now on (``alt.theme.enable``); used as
    ``with use_theme(): ...`` it is enabled for the block only. Returns altair's handle."""
    return alt.theme.enable(PAPER_THEME)


def themed(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """A copy of ``chart`` with the paper theme's config attached, whatever theme is active
    (for display; a configured chart can no longer be layered or concatenated)."""
    return chart.copy().configure(**paper_theme()["config"])


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
        raise UsageError(f"unknown figure format(s) {bad}; allowed: {', '.join(allowed)}")
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
