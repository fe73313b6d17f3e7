"""Figures of causal traces and of their agreement with pruning, and the report's traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis.maps_helpers import small_suite

from lenskit.analysis import save_traces, trace_items, trace_rows
from lenskit.cli import main
from lenskit.models import load_model
from lenskit.plots import fig_causal_trace, fig_head_trace, fig_trace_vs_pruning
from lenskit.plots.theme import chart_spec
from lenskit.rundir import RunStore

from .test_figures import sweep_frame


@pytest.fixture(scope="module")
def traced(tiny_dirs):
    model = load_model(tiny_dirs["llama"])
    suite = {"closed_book": small_suite(4)["closed_book"]}
    items = trace_items(model, suite, kinds=("resid", "attn", "mlp", "head"),
                        positions=("subject_last", "last"), progress=False)
    return items, trace_rows(items, n_bootstrap=50)


def _marks(spec: dict) -> list[str]:
    out = []

    def walk(node):
        if isinstance(node, dict):
            if "mark" in node:
                m = node["mark"]
                out.append(m["type"] if isinstance(m, dict) else m)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(spec)
    return out


def test_causal_trace_figure_has_lines_and_intervals(traced):
    _, rows = traced
    spec = chart_spec(fig_causal_trace(rows))
    assert {"line", "errorbar"} <= set(_marks(spec))
    values = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert set(values["part"]) == {"FFW", "attention", "residual stream"}
    assert set(values["where"]) == {"last subject token", "last token"}
    with pytest.raises(ValueError, match="unknown metric"):
        fig_causal_trace(rows, metric="em")


def test_head_trace_figure(traced):
    _, rows = traced
    spec = chart_spec(fig_head_trace(rows))
    assert "rect" in _marks(spec)


def test_trace_vs_pruning_figure_names_the_correlations():
    layers = np.arange(4)
    prof = pd.concat([pd.DataFrame({"model": "m", "measure": meas, "family": fam,
                                    "layer": layers, "value": layers * 0.1,
                                    "ci_low": layers * 0.1 - 0.01,
                                    "ci_high": layers * 0.1 + 0.01, "n": 20})
                      for meas in ("causal effect", "pruning drop") for fam in ("mlp", "attn")])
    agree = pd.DataFrame({"model": ["m", "m"], "family": ["mlp", "attn"], "rho": [0.8, -0.2],
                          "ci_low": [0.4, -0.9], "ci_high": [1.0, 0.6]})
    spec = chart_spec(fig_trace_vs_pruning(prof, agree))
    values = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert values["model"].iloc[0].startswith("m: FFW ρ=+0.80 [+0.40, +1.00]")
    assert {"line", "area"} <= set(_marks(spec))


def test_report_shows_a_runs_traces(tmp_path, traced):
    items, rows = traced
    results = sweep_frame(models=("m",))
    with RunStore.open(tmp_path / "run", {"name": "tiny", "models": ["m"]}) as store:
        for cell_id, r in results.groupby("cell_id", sort=False):
            store.write_cell(str(cell_id), r.reset_index(drop=True))
    plain = tmp_path / "plain.html"
    assert main(["report", str(tmp_path / "run"), "--out", str(plain)]) == 0
    save_traces(tmp_path / "run", rows, items, config={"model": "tiny"})
    page = tmp_path / "page.html"
    assert main(["report", str(tmp_path / "run"), "--out", str(page)]) == 0
    text, before = page.read_text(encoding="utf-8"), plain.read_text(encoding="utf-8")
    assert "Causal traces" in text and "Causal traces" not in before
    # one trace figure and one head figure for the one traced task
    assert text.count("vegaEmbed('#chart") == before.count("vegaEmbed('#chart") + 2
