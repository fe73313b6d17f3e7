"""Map figures: spec snapshots on small hand-made map frames, what the specs hold, and a
figure of a real map (the hand-wired copying model).

Snapshots live in tests/plots/snapshots/*.json (helper shared with test_figures.py);
regenerate with ``LENSKIT_UPDATE_SNAPSHOTS=1 pytest tests/plots`` and review the diff.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analysis.maps_helpers import (  # tests/analysis (tests/ is on the path)
    build_copy_model,
    copy_tasks,
    single_thread,  # noqa: F401 (a fixture)
)

from lenskit.analysis.allocation_fit import fit_sparsity_relation
from lenskit.analysis.mapping import MAP_COLUMNS, finish_frame
from lenskit.analysis.sensitivity import sensitivity_map, sensitivity_table
from lenskit.models import load_model
from lenskit.plots import chart_spec
from lenskit.plots.maps import (
    fig_allocation_fit,
    fig_cumulative_map,
    fig_head_ablation,
    fig_neuron_ablation,
    fig_sensitivity_map,
)

from .test_figures import assert_snapshot, data_of

TASKS = {"facts": ("closed_book", "fact_recall"), "copy": ("open_book", "icl"),
         "fn": ("function", "icl")}
COMPONENTS = {"attn": ("q", "k", "v", "o"), "mlp": ("in", "gate", "out")}


def drop(task: str, layer: int, family: str, scale: float = 1.0) -> float:
    """Made-up drops: facts live in late FFW, copying in attention."""
    if task == "facts":
        return scale * (0.1 + 0.3 * layer if family == "mlp" else 0.05)
    return scale * (0.4 if family == "attn" else -0.02) * (0.5 if task == "fn" else 1.0)


def rows(analysis: str, groups: list[dict], method: str = "magnitude",
         metrics: tuple[str, ...] = ("em",)) -> pd.DataFrame:
    """A map frame: one row per group x task x metric; ``value = 0.8 * (1 - drop)``."""
    out = []
    for g in groups:
        d = g.pop("drop")
        for task, (kind, category) in TASKS.items():
            for metric in metrics:
                rel = d(task)
                out.append({
                    "model": "m", "analysis": analysis, "method": method, "seed": 0,
                    "first_layer": g["layer"], "last_layer": g["layer"], "direction": "",
                    "unit": "weights", "head": pd.NA, "unit_label": g["scope"],
                    "achieved_sparsity": g["target_sparsity"], "params_removed": 100,
                    "group_params": 200, "model_params": 1000, "task": task, "kind": kind,
                    "category": category, "metric": metric, "value": 0.8 * (1 - rel), "n": 50,
                    "baseline": 0.8, "drop": 0.8 * rel, "relative_drop": rel,
                    "relative_drop_low": np.nan, "relative_drop_high": np.nan, **g})
    return finish_frame([pd.DataFrame(out)])


def sensitivity_frame() -> pd.DataFrame:
    groups = []
    for s in (0.5, 0.8):
        for layer in (0, 1):
            for fam, comps in COMPONENTS.items():
                for c in comps:
                    groups.append({"scope": f"{fam}.{c}@{layer}", "layer": layer, "family": fam,
                                   "component": c, "target_sparsity": s,
                                   "drop": lambda t, layer=layer, fam=fam, s=s: drop(
                                       t, layer, fam, s / 0.5)})
    return rows("sensitivity", groups)


def test_sensitivity_map_figure():
    df = sensitivity_frame()
    spec = chart_spec(fig_sensitivity_map(df))
    assert_snapshot("map_sensitivity", spec)
    d = data_of(spec)
    # fact recall is one task: its cell is its drop; icl averages copy and fn
    cell = d[(d.ability == "fact recall") & (d.layer == 1) & (d.component == "out")
             & (d.level == "50%")].iloc[0]
    assert cell.relative_drop == pytest.approx(0.4) and cell.label == "40"
    icl = d[(d.ability == "in-context learning") & (d.layer == 0) & (d.component == "q")
            & (d.level == "80%")].iloc[0]
    assert icl.relative_drop == pytest.approx((0.64 + 0.32) / 2)
    assert icl.n_tasks == 2
    assert d.relative_drop.abs().max() == pytest.approx(0.64)  # facts, layer 1 FFW at 80%
    layer = spec["spec"]["layer"]
    x = layer[0]["encoding"]["x"]
    assert x["sort"] == ["q", "k", "v", "o", "in", "gate", "out"]
    assert layer[0]["encoding"]["y"]["sort"] == [1, 0]  # layer 0 at the bottom
    assert layer[0]["encoding"]["color"]["scale"]["domain"] == [-0.64, 0.64]
    assert spec["facet"]["column"]["field"] == "ability"
    assert spec["facet"]["row"]["field"] == "level"
    # the table of the same frame holds the same numbers
    table = sensitivity_table(df, "em", "fact_recall", sparsity=0.5)
    assert table.loc[1, "out"] == pytest.approx(cell.relative_drop)
    fam = rows("sensitivity", [{"scope": f"{f}@{lay}", "layer": lay, "family": f,
                                "component": "all", "target_sparsity": 0.5,
                                "drop": lambda t, lay=lay, f=f: drop(t, lay, f)}
                               for lay in (0, 1) for f in ("attn", "mlp")])
    fspec = chart_spec(fig_sensitivity_map(fam))
    assert fspec["spec"]["layer"][0]["encoding"]["x"]["sort"] == ["attn", "mlp"]
    assert "row" not in fspec["facet"] and "at 50% sparsity" in fspec["title"]


def test_cumulative_figure():
    parts = []
    for direction in ("bottom_up", "top_down"):
        for k in range(3):
            first, last = (0, k) if direction == "bottom_up" else (k, 2)
            df = rows("cumulative", [{"scope": f"mlp@{first}-{last}", "layer": k,
                                      "family": "mlp", "component": "all", "target_sparsity": 0.5,
                                      "drop": lambda t, n=last - first + 1, top=last: (
                                          0.1 * n * (1 + top) if t == "facts" else 0.02 * n)}])
            parts.append(df.assign(direction=direction, first_layer=first, last_layer=last))
    df = finish_frame(parts)
    spec = chart_spec(fig_cumulative_map(df))
    assert_snapshot("map_cumulative", spec)
    d = data_of(spec)
    start = d[d.n_layers == 0]
    assert len(start) == 4 and (start.rel == 1).all()  # 2 directions x 2 abilities
    # one layer from the top (layer 2) costs facts 30%, one from the bottom 10%
    one = d[(d.n_layers == 1) & (d.ability == "fact recall")].set_index("direction")["rel"]
    assert one["top-down (k..L-1)"] == pytest.approx(0.7)
    assert one["bottom-up (0..k)"] == pytest.approx(0.9)
    enc = spec["spec"]["layer"][0]["encoding"]
    assert enc["x"]["axis"]["values"] == [0, 1, 2, 3]
    assert enc["strokeDash"]["field"] == "direction"


def test_head_and_neuron_ablation_figures():
    heads = []
    for mode in ("zero", "mean"):
        df = rows("head_ablation", [
            {"scope": f"attn.o@{lay}[head={h}]", "layer": lay, "family": "attn",
             "component": "o", "target_sparsity": 0.25, "unit": "head", "head": h,
             "unit_label": f"head {h}",
             "drop": lambda t, lay=lay, h=h, m=mode: (0.9 if (lay, h) == (1, 2) and t != "facts"
                                                      else 0.05) * (0.5 if m == "mean" else 1)}
            for lay in (0, 1) for h in range(4)], method=mode)
        heads.append(df)
    df = pd.concat(heads, ignore_index=True)
    spec = chart_spec(fig_head_ablation(df))
    assert_snapshot("map_head_ablation", spec)
    d = data_of(spec)
    top = d.sort_values("relative_drop").iloc[-1]
    assert (top["layer"], top["head"], top["ability"], top["mode"]) == \
        (1, 2, "in-context learning", "zero")
    assert spec["spec"]["layer"][0]["encoding"]["x"]["sort"] == [0, 1, 2, 3]
    assert spec["facet"]["row"]["field"] == "mode"
    neurons = rows("neuron_ablation", [
        {"scope": f"mlp.out@{lay}[lowest_norm={f:g}]", "layer": lay, "family": "mlp",
         "component": "out", "target_sparsity": f, "unit": "neurons",
         "unit_label": f"lowest-norm {f:.0%}", "drop": lambda t, f=f: f * f}
        for lay in (0, 1) for f in (0.5, 0.1, 0.25)], method="zero")
    nspec = chart_spec(fig_neuron_ablation(neurons))
    assert_snapshot("map_neuron_ablation", nspec)
    enc = nspec["spec"]["layer"][0]["encoding"]["x"]
    assert enc["sort"] == ["10%", "25%", "50%"] and enc["title"] == "lowest-norm neurons ablated"
    chunks = rows("neuron_ablation", [
        {"scope": f"mlp.out@0[chunk={i}/2]", "layer": 0, "family": "mlp", "component": "out",
         "target_sparsity": 0.5, "unit": "neurons", "unit_label": f"chunk {i}/2",
         "drop": lambda t, i=i: 0.1 * i} for i in (1, 0)])
    cspec = chart_spec(fig_neuron_ablation(chunks))
    assert cspec["spec"]["layer"][0]["encoding"]["x"]["sort"] == ["0", "1"]


def test_allocation_fit_figure():
    rng = np.random.default_rng(0)
    obs = []
    for c in range(12):
        sa, sm = rng.uniform(0, 0.8, 2)
        for cat, (ba, bm) in {"fact_recall": (0.2, 1.0), "icl": (0.5, 0.1)}.items():
            obs.append({"cell": f"c{c}", "category": cat, "task": cat, "s_attn": sa,
                        "s_mlp": sm, "relative_drop": ba * sa + bm * sm})
    fit = fit_sparsity_relation(pd.DataFrame(obs), metric=None, n_bootstrap=40)
    spec = chart_spec(fig_allocation_fit(fit))
    assert_snapshot("map_allocation_fit", spec)
    d = data_of(spec)
    assert set(d.feature) == {"attn", "mlp"}
    # exact data: partial residuals lie on the fitted lines, whose slope is the coefficient
    lines = d[(d.series == "fit") & (d.feature == "mlp") & (d.ability == "fact recall")]
    slope = np.polyfit(lines.x, lines.y, 1)[0]
    assert slope == pytest.approx(1.0, abs=1e-5)
    pts = d[(d.series == "observation") & (d.feature == "mlp") & (d.ability == "fact recall")]
    assert np.allclose(pts.y, np.interp(pts.x, lines.x, lines.y), atol=1e-5)
    assert "fact recall mlp: +1.00" in spec["title"]["subtitle"][0]
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['s_q'\]"):
        fig_allocation_fit(fit, features=["s_q"])


@pytest.mark.usefixtures("single_thread")
def test_figure_of_a_real_map(tmp_path):
    model = load_model(build_copy_model(tmp_path / "copy"))
    df = sensitivity_map(model, copy_tasks(), sparsities=(1.0,), metrics=["em"],
                         progress=False, n_bootstrap=0)
    assert list(df.columns) == list(MAP_COLUMNS)
    d = data_of(chart_spec(fig_sensitivity_map(df, categories=("icl",))))
    cells = d.set_index("component")["relative_drop"]
    assert cells["o"] == 1.0 and cells["out"] == 0.0
    assert cells.to_dict() == sensitivity_table(df, "em", "icl").loc[0].to_dict()


def test_figures_reject_what_they_cannot_draw():
    df = sensitivity_frame()
    with pytest.raises(ValueError, match=r"no rows of analysis \['head_ablation'\]"):
        fig_head_ablation(df)
    with pytest.raises(ValueError, match="no rows for metric 'logprob'"):
        fig_sensitivity_map(df, metric="logprob")
    with pytest.raises(ValueError, match=r"not a map frame: missing column\(s\) \['analysis'"):
        fig_sensitivity_map(df.drop(columns=["analysis"]))
