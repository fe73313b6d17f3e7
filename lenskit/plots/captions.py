"""Captions of the study's figures, written beside them as ``README.md``.

Each entry says what the figure shows, how to read it, and gives alt text (a plain
description for readers who cannot see the image). Titles on the figures stay short; the
explanation lives here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import altair as alt

__all__ = ["CAPTIONS", "caption", "write_captions"]

_CI = ("Error bars: confidence intervals of the plotted means (per-task intervals from the "
       "sweep's `ci_low`/`ci_high`, combined over tasks as for a mean of independent "
       "estimates). Points are tested sparsities; the thin lines only join neighbouring "
       "tested levels, nothing between them was measured.")

#: Figure name prefix -> (what it shows, how to read it, alt text).
CAPTIONS: dict[str, tuple[str, str, str]] = {
    "fig1_sparsity_curves": (
        "Accuracy relative to the dense model (%) against sparsity (% of the scope's "
        "weights pruned), one curve per ability (fact recall, in-context learning: the mean "
        "of its tasks), one panel per model (rows) and pruning method (columns).",
        "Each curve starts at the dense model (0%, 100%). The dashed line is the threshold "
        "criterion (5% relative drop): where a curve falls below it, that ability has lost "
        "more than 5% of its dense accuracy. A curve that stays higher for longer is the "
        "more robust ability. " + _CI,
        "Line chart with points and error bars: relative accuracy of fact recall "
        "(vermillion) and in-context learning (blue) against sparsity, per model "
        "and method, with a dashed horizontal line at 95%."),
    "fig2_attention_vs_ffw": (
        "Pruning attention only against pruning the feed-forward (FFW) blocks only, for one "
        "model and method. Top row: by equal sparsity of the pruned part (%). Bottom row: "
        "by the number of weights removed (count). Columns: abilities.",
        "Reddish purple is attention, bluish green is FFW. At equal sparsity FFW loses more "
        "weights (it holds about twice as many), so the bottom row compares equal numbers "
        "of weights removed; dashed lines, when present, are FFW cells pruned to remove "
        "exactly as many weights as attention-only pruning. The dashed horizontal line is "
        "the 5% relative-drop criterion. " + _CI,
        "Two rows of line charts with points and error bars: relative accuracy of each "
        "ability when only attention (purple) or only FFW (green) weights are pruned, "
        "against sparsity of the part (top) and weights removed (bottom)."),
    "fig3_dense_scaling": (
        "Absolute accuracy (mean over an ability's tasks) against the remaining block "
        "parameters (count, log scale): the dense models of a family (black, labelled) and "
        "the same models pruned (one colour per method). Columns: abilities.",
        "Each pruned curve starts at its dense model and moves left as weights are pruned. "
        "A pruned curve above the black line means that pruning a larger model keeps more "
        "accuracy than a dense model of the same size. " + _CI,
        "Scatter-line chart on a logarithmic parameter axis: a black line through the dense "
        "models, and coloured curves per method extending leftwards from each dense model "
        "as it is pruned."),
    "fig4_study_comparison": (
        "The largest sparsity each task group tolerates with at most 5% relative drop: "
        "measured here (dots, one colour per method) against the range the study reports "
        "(grey band; SparseGPT, mean of four models).",
        "A dot is the mean threshold over the group's tasks and models; the coloured line "
        "through it is its confidence interval (mean of the per-task bounds) and the small "
        "ticks mark the lowest and highest task. A triangle means the threshold is only a "
        "lower bound: every sparsity tested stayed within 5%. A dot at 0% means "
        "the lowest sparsity tested already dropped by more than 5%.",
        "Dot plot: one row per task group, a grey band for the study's range and coloured "
        "dots with interval lines for the measured thresholds, on a 0-100% sparsity axis."),
    "fig5_recall_by_bucket": (
        "Exact match (%) against sparsity for the closed-book facts of each popularity "
        "bucket (head: the most often seen third of the entities, torso, tail) and, dashed, "
        "open-book and overriding QA, one panel per model (rows) and method (columns).",
        "Each curve starts at the dense model. Where the tail curve falls before the head "
        "curve, pruning takes the rarely seen facts first; where the dashed in-context "
        "curves hold while the closed-book curves fall, recall breaks first. Error bars: "
        "the sweep's confidence intervals of each task.",
        "Line chart with points and error bars: exact match of head, torso and tail "
        "closed-book facts (warm colours) and of open-book and overriding QA (blue, dashed) "
        "against sparsity, per model and method."),
    "fig6_recall_by_exposure": (
        "Closed-book exact match (%) against how many training documents stated the fact "
        "(bins; the bin's median on a log axis), one line per sparsity (the dense model at "
        "0%), one panel per model (rows) and method (columns).",
        "Read along a line: recall rises with exposure. Read across lines: the gap between "
        "the dense line and a pruned line is what pruning took, per exposure. Facts the "
        "dense model never learned (few exposures) cannot be lost, so a flat low tail says "
        "that recall had little to lose there. Error bars: Wilson 95% intervals of each "
        "bin's proportion.",
        "Line chart on a logarithmic exposure axis: closed-book exact match per exposure "
        "bin, one line per sparsity level from dark (dense) to light (most pruned)."),
}


def caption(name: str) -> tuple[str, str, str]:
    """(what it shows, how to read it, alt text) of the figure file stem ``name`` (a
    per-model fig2 such as ``fig2_attention_vs_ffw_M_METHOD`` shares fig2's caption)."""
    for prefix, text in CAPTIONS.items():
        if name == prefix or name.startswith(prefix + "_"):
            return text
    raise ValueError(f"no caption for figure {name!r}; known: {sorted(CAPTIONS)}")


def _title(chart: alt.TopLevelMixin) -> str:
    t = chart.to_dict(validate=False).get("title", "")
    if isinstance(t, dict):
        return " · ".join(str(x) for x in (t.get("text"), t.get("subtitle")) if x)
    return str(t)


def write_captions(charts: Mapping[str, alt.TopLevelMixin], out_dir: str | Path,
                   formats: Sequence[str], *, has_ci: bool = True) -> Path:
    """Write ``out_dir/README.md``: one entry per chart (name -> chart, in order) with its
    files, title, what it shows, how to read it and its alt text. Returns the path.
    ``has_ci=False`` (the results carry no confidence intervals) says so at the top."""
    out = Path(out_dir)
    lines = ["# Figures", "",
             "Written by `lenskit figures` / `make_figures`; regenerated with the figures.", ""]
    if not has_ci:
        lines += ["**No confidence intervals**: these results have no `ci_low`/`ci_high`, so "
                  "the figures have no error bars; their uncertainty is unknown, not zero.", ""]
    for name, chart in charts.items():
        shows, read, alt_text = caption(name)
        files = ", ".join(f"[{fmt.upper()}]({name}.{fmt})" for fmt in formats)
        lines += [f"## {name}: {_title(chart)}", "", f"Files: {files}", "",
                  f"**Shows.** {shows}", "", f"**How to read it.** {read}", "",
                  f"**Alt text.** {alt_text}", ""]
        if "png" in formats:
            lines += [f"![{alt_text}]({name}.png)", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
