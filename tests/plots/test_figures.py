"""Figures: spec snapshots on small hand-made frames, what the specs hold, saved files.

Snapshots live in tests/plots/snapshots/*.json. After an intended change of a figure,
regenerate them with ``LENSKIT_UPDATE_SNAPSHOTS=1 pytest tests/plots`` and review the diff.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest

from lenskit.plots import (
    COLORS,
    PAPER_THEME,
    chart_spec,
    fig_attention_vs_ffw,
    fig_dense_scaling,
    fig_sparsity_curves,
    fig_study_comparison,
    make_figures,
    save_chart,
    use_theme,
)
from lenskit.results import attach_baselines, compare_to_study, compute_thresholds
from lenskit.sweep import SweepConfig

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("LENSKIT_UPDATE_SNAPSHOTS") == "1"

# model -> weight counts of its scopes
COUNTS = {"m": {"all": 900, "attn": 300, "mlp": 600}, "s": {"all": 300, "attn": 100, "mlp": 200}}
DENSE = {"m": {"facts": 0.8, "copy": 0.5}, "s": {"facts": 0.4, "copy": 0.45}}
TASKS = {"facts": ("closed_book", "fact_recall"), "copy": ("open_book", "icl")}


def value(model: str, task: str, scope: str, removed: int) -> float:
    """Accuracy after pruning: facts fall with every weight removed, twice as fast for FFW
    weights; copying falls only with attention weights."""
    frac = removed / COUNTS[model]["all"]
    if task == "facts":
        return DENSE[model][task] * (1 - frac * (2.0 if scope == "mlp" else 1.0))
    return DENSE[model][task] * (1 - (frac if scope in ("attn", "all") else 0.0) * 0.5)


def sweep_frame(models=("m",)) -> pd.DataFrame:
    """Results of a real sweep grid (SweepConfig -> Cell.to_rows) with made-up accuracies."""
    parts = []
    for model in models:
        cfg = SweepConfig(models=[model], methods=["wanda"], sparsities=[0.3, 0.6],
                          scopes=["all", "attn", "mlp"])
        cells = cfg.cells() if model == "m" else cfg.cells()[:1]  # "s": dense only
        for cell in cells:
            counts = COUNTS[model]
            removed = (0 if cell.is_dense else
                       round(cell.resolve_sparsity(counts) * counts[cell.scope]))
            meas = pd.DataFrame([
                {"task": t, "kind": k, "category": c, "metric": "em", "n": 50,
                 "value": value(model, t, cell.scope, removed)}
                for t, (k, c) in TASKS.items()])
            # normal-approximation 95% intervals of a proportion of 50
            half = 1.96 * np.sqrt(meas["value"] * (1 - meas["value"]) / meas["n"])
            meas["ci_low"], meas["ci_high"] = meas["value"] - half, meas["value"] + half
            parts.append(cell.to_rows(meas, scope_params=counts, params_removed=removed))
    return attach_baselines(pd.concat(parts, ignore_index=True))


def assert_snapshot(name: str, spec: dict) -> None:
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(spec, indent=1, sort_keys=True) + "\n"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), (f"no snapshot {path}; create it with "
                           f"LENSKIT_UPDATE_SNAPSHOTS=1 pytest {Path(__file__).name}")
    expected = json.loads(path.read_text())
    actual = json.loads(text)
    if actual != expected:
        first = _first_difference(expected, actual)
        pytest.fail(f"figure spec {name} differs from its snapshot at {first}; if the change "
                    f"is intended, rerun with LENSKIT_UPDATE_SNAPSHOTS=1 and review the diff")


def _first_difference(a, b, path="$") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k} (only in {'new' if k in b else 'snapshot'})"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{path}.{k}")
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} -> {b!r}"


def data_of(spec: dict, part: dict | None = None) -> pd.DataFrame:
    """The inline data of ``part`` of a spec (default: the spec's own top-level data)."""
    part = spec if part is None else part
    return pd.DataFrame(spec["datasets"][part["data"]["name"]])


def layers_of(spec: dict) -> list[dict]:
    """The layers of a (faceted) layer chart."""
    return spec["spec"]["layer"] if "spec" in spec else spec["layer"]


def marks_with(layers: list[dict], channel: str, field: str) -> list[str]:
    """Mark types of the layers that encode ``field`` on ``channel``."""
    out = []
    for layer in layers:
        enc = layer.get("encoding", {}).get(channel, {})
        if enc.get("field") == field:
            mark = layer["mark"]
            out.append(mark["type"] if isinstance(mark, dict) else mark)
    return out


def assert_uncertainty_drawn(layers: list[dict], y: str) -> None:
    """Measured values appear as points, joined by lines, each with an error bar from
    ``ci_low`` to ``ci_high`` (the CI fields are encoded)."""
    assert "point" in marks_with(layers, "y", y) and "line" in marks_with(layers, "y", y)
    assert marks_with(layers, "y", "ci_low") and marks_with(layers, "y2", "ci_high")
    assert all(m == "rule" for m in marks_with(layers, "y", "ci_low"))


def half_width(v: float, n: int = 50) -> float:
    return 1.96 * np.sqrt(v * (1 - v) / n)


def test_sparsity_curves():
    spec = chart_spec(fig_sparsity_curves(sweep_frame()))
    assert_snapshot("fig1_sparsity_curves", spec)
    d = data_of(spec)
    # scope "all" at 30%: 270 of 900 weights removed; facts 0.8 * 0.7, copy 0.5 * 0.85
    facts = d[(d.task == "facts") & (d.target_sparsity == 0.3)].iloc[0]
    assert facts.rel == pytest.approx(0.7)
    mean = d[(d.series == "mean") & (d.ability == "fact recall")
             & (d.target_sparsity == 0.3)].iloc[0]
    assert mean.rel == pytest.approx(0.7)
    # one task per ability: its relative CI is the task's CI over the dense baseline
    h = half_width(0.56) / 0.8
    assert (mean.ci_low, mean.ci_high) == (pytest.approx(0.7 - h, abs=1e-5),
                                          pytest.approx(0.7 + h, abs=1e-5))
    # drawn points: the dense start and the tested levels only, never anything between
    means = d[d.series == "mean"]
    assert sorted(set(means.target_sparsity)) == [0.0, 0.3, 0.6]
    start = means[means.target_sparsity == 0]
    assert len(start) == 2 and (start.rel == 1).all()
    assert set(d.ability) == {"fact recall", "in-context learning"}
    layers = layers_of(spec)
    assert layers[0]["encoding"]["y"]["datum"] == pytest.approx(0.95)
    assert_uncertainty_drawn(layers, "rel")
    # only the means are drawn (the per-task rows are there for tooltips)
    assert all(layer["transform"] == [{"filter": "(datum.series === 'mean')"}]
               for layer in layers[1:])
    color = layers[-1]["encoding"]["color"]
    assert color["scale"]["domain"] == ["fact recall", "in-context learning"]
    assert color["scale"]["range"] == [COLORS["ability"]["fact recall"],
                                       COLORS["ability"]["in-context learning"]]
    assert spec["facet"]["row"]["field"] == "model" and spec["facet"]["column"]["field"] == "method"
    assert spec["title"]["text"] == "Accuracy vs sparsity"
    assert spec["config"]["legend"]["symbolOpacity"] == 1  # the paper theme is applied


def test_attention_vs_ffw():
    spec = chart_spec(fig_attention_vs_ffw(sweep_frame()))
    assert_snapshot("fig2_attention_vs_ffw", spec)
    d = data_of(spec)  # both panels share one dataset
    d = d[d.ability == "fact recall"]
    # matched: FFW loses as many weights as attention at the same attention sparsity
    attn = d[(d.part == "attention") & (d.pruning == "same sparsity")].set_index(
        "target_sparsity")["params_removed"]
    matched = d[d.pruning == "matched weights"].sort_values("params_removed")
    assert list(matched.params_removed) == [0, 90, 180] == list(attn.sort_index())
    # facts under matched FFW pruning: 180 of 900 removed, x2 -> 0.8 * (1 - 0.4)
    row = matched[matched.params_removed == 180].iloc[0]
    assert row.rel == pytest.approx(0.6) and row.target_sparsity == pytest.approx(0.3)
    assert row.ci_high - row.rel == pytest.approx(half_width(0.48) / 0.8, abs=1e-5)
    titles = [c["title"] for c in spec["vconcat"]]
    assert titles == ["by equal sparsity of the part", "by weights removed"]
    for panel in spec["vconcat"]:
        layers = panel["spec"]["layer"]
        assert_uncertainty_drawn(layers, "rel")
        color = layers[-1]["encoding"]["color"]["scale"]
        assert color == {"domain": ["attention", "FFW"],
                         "range": [COLORS["part"]["attention"], COLORS["part"]["FFW"]]}
    bottom = spec["vconcat"][1]["spec"]["layer"]
    assert bottom[1]["encoding"]["strokeDash"]["scale"]["domain"] == [
        "same sparsity", "matched weights"]
    assert "0k" not in json.dumps(bottom) and "'0'" in bottom[1]["encoding"]["x"]["axis"][
        "labelExpr"]
    # without matched cells no dash legend: nothing would draw its dashed entry
    uniform = sweep_frame()
    uniform = uniform[uniform.allocation != "matched"]
    bottom = chart_spec(fig_attention_vs_ffw(uniform))["vconcat"][1]["spec"]["layer"]
    assert all("strokeDash" not in layer.get("encoding", {}) for layer in bottom)


def test_dense_scaling():
    spec = chart_spec(fig_dense_scaling(sweep_frame(models=("m", "s"))))
    assert_snapshot("fig3_dense_scaling", spec)
    d = data_of(spec)
    dense = d[d.series == "dense"].sort_values(["ability", "params"])
    assert list(dense.model) == ["s", "m", "s", "m"]
    assert list(dense.value) == pytest.approx([0.4, 0.8, 0.45, 0.5])
    assert list(dense.ci_high - dense.value) == pytest.approx(
        [half_width(v) for v in (0.4, 0.8, 0.45, 0.5)], abs=1e-5)  # plotted data: 6 decimals
    pruned = d[(d.series == "pruned") & (d.ability == "fact recall")].sort_values("params")
    # 60% and 30% of 900 pruned leave 360 and 630 weights, then the dense model itself
    assert list(pruned.params) == [360, 630, 900]
    layers = layers_of(spec)
    assert layers[0]["encoding"]["x"]["scale"]["type"] == "log"
    assert_uncertainty_drawn(layers, "value")
    color = layers[2]["encoding"]["color"]["scale"]
    assert color == {"domain": ["wanda", "dense"],
                     "range": [COLORS["method"]["wanda"], COLORS["method"]["dense"]]}


def test_study_comparison():
    thr = compute_thresholds(sweep_frame())
    cmp = compare_to_study(thr)
    spec = chart_spec(fig_study_comparison(cmp))
    assert_snapshot("fig4_study_comparison", spec)
    layers = spec["layer"]
    measured = data_of(spec, layers[3])
    closed = measured[measured.group == "closed-book QA"].iloc[0]
    # facts on scope "all" drop 30% at 30% sparsity: beyond 5% at the first level -> 0
    assert closed.measured == 0.0 and closed.reading == "measured"
    open_book = measured[measured.group == "open-book QA"].iloc[0]
    # copy drops 15% at 30%: also 0
    assert open_book.measured == 0.0
    assert set(measured.group) == {"closed-book QA", "open-book QA"}
    # CI drawn as a line, the task range as ticks; the legend names readings, not booleans
    assert layers[1]["encoding"]["x"]["field"] == "ci_low"
    assert layers[1]["encoding"]["x2"]["field"] == "ci_high"
    assert layers[2]["mark"]["type"] == "tick"
    shape = layers[3]["encoding"]["shape"]
    assert shape["scale"]["domain"] == ["measured"] and shape["title"] == "threshold"
    assert layers[3]["encoding"]["color"]["scale"]["range"] == [COLORS["method"]["wanda"]]
    # a censored threshold gets the "at least" triangle
    censored = cmp.assign(censored=True)
    shape = chart_spec(fig_study_comparison(censored))["layer"][3]["encoding"]["shape"]
    assert shape["scale"] == {"domain": ["at least (every tested level within 5%)"],
                              "range": ["triangle-right"]}


def test_figures_reject_what_they_cannot_draw():
    df = sweep_frame()
    with pytest.raises(ValueError, match=r"no rows for scope 'attn\.q'.*'all', 'attn', 'mlp'"):
        fig_sparsity_curves(df, scope="attn.q")
    with pytest.raises(ValueError, match="at least two models"):
        fig_dense_scaling(df)
    two = pd.concat([df, df.assign(model="other")], ignore_index=True)
    with pytest.raises(ValueError, match=r"several models \['m', 'other'\]; choose one"):
        fig_attention_vs_ffw(two)
    chart = fig_attention_vs_ffw(two, model="other")
    assert "other" in chart_spec(chart)["title"]["subtitle"]
    with pytest.raises(ValueError, match="lacks column"):
        fig_study_comparison(pd.DataFrame({"group": ["x"]}))


def test_save_chart_writes_valid_files(tmp_path):
    chart = alt.Chart(pd.DataFrame({"x": [0, 1], "y": [1, 0]})).mark_line().encode(
        x="x:Q", y="y:Q")
    paths = save_chart(chart, tmp_path / "sub" / "fig.png")
    assert [p.name for p in paths] == ["fig.svg", "fig.png", "fig.pdf"]
    svg, png, pdf = (p.read_bytes() for p in paths)
    assert b"<svg" in svg[:200] and svg.rstrip().endswith(b"</svg>")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:]
    with pytest.raises(ValueError, match="unknown figure format"):
        save_chart(chart, tmp_path / "x", formats=("jpg",))


def test_theme_is_registered_once_and_used_when_saving():
    assert PAPER_THEME in alt.theme.names()
    chart = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x:Q")
    with alt.theme.enable("default"):
        assert chart_spec(chart)["config"]["font"].startswith("Helvetica")
    with use_theme():
        assert alt.theme.active == PAPER_THEME
    assert alt.theme.active != PAPER_THEME


def test_importing_plots_leaves_the_active_theme_alone():
    code = ("import altair as alt; alt.theme.enable('dark'); import lenskit.plots; "
            "import lenskit.plots.report; print(alt.theme.active)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.stdout.strip() == "dark"


def test_make_figures(tmp_path, caplog):
    df = sweep_frame()
    with caplog.at_level(logging.INFO, logger="lenskit.plots.figures"):
        paths = make_figures(df, tmp_path, formats=("svg",))
    assert [p.name for p in paths] == ["fig1_sparsity_curves.svg", "fig2_attention_vs_ffw.svg",
                                       "study_comparison.csv", "fig4_study_comparison.svg",
                                       "README.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    readme = paths[-1].read_text()
    # one caption per figure saved, each with what it shows, how to read it and alt text
    assert readme.count("\n## fig") == 3 and "fig3" not in readme
    assert readme.count("**Alt text.**") == readme.count("**How to read it.**") == 3
    assert "## fig1_sparsity_curves: Accuracy vs sparsity" in readme
    assert "No confidence intervals" not in readme
    # without CIs the captions say that the uncertainty is unknown
    bare = make_figures(df.assign(ci_low=np.nan, ci_high=np.nan), tmp_path / "bare",
                        formats=("svg",))
    assert "No confidence intervals" in bare[-1].read_text()
    assert "skipped fig3_dense_scaling: dense scaling needs dense rows of at least two" \
        in caplog.text
    # only dense rows: nothing to draw, and no error
    assert make_figures(df[df.method == "dense"], tmp_path / "none") == []
