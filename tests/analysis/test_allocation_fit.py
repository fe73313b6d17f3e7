"""The sparsity-drop relation: the fitter on data with a known relation (exact recovery,
standard errors against the closed form, interval coverage, cluster bootstrap) and the
profile pipeline on a tiny real model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lenskit.analysis.allocation_fit import (
    AllocationProfiles,
    allocation_profiles,
    fit_sparsity_relation,
)
from lenskit.models import load_model, model_info, pruned
from lenskit.pruning import Pruner, default_calibration
from lenskit.stats import cluster_bootstrap, ols
from lenskit.tasks import evaluate_suite

from .maps_helpers import single_thread, small_suite  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("single_thread")
TRUE = {"fact_recall": (0.02, 0.4, 1.2), "icl": (0.0, 0.6, 0.3)}  # intercept, attn, mlp


def synthetic(noise: float, seed: int = 0, n_cells: int = 30, tasks: int = 3,
              cell_noise: float = 0.0) -> pd.DataFrame:
    """Cells with random per-family sparsities; every task's drop follows TRUE exactly,
    plus independent noise and, optionally, noise shared by a cell's tasks."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cells):
        sa, sm = rng.uniform(0, 0.8, size=2)
        shared = rng.normal(0, cell_noise)
        for cat, (b0, ba, bm) in TRUE.items():
            for t in range(tasks):
                rows.append({"cell": f"c{c}", "category": cat, "task": f"{cat}{t}",
                             "metric": "em", "s_attn": sa, "s_mlp": sm,
                             "relative_drop": b0 + ba * sa + bm * sm + shared
                             + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_exact_relation_is_recovered():
    fit = fit_sparsity_relation(synthetic(noise=0.0), n_bootstrap=50)
    c = fit.coefficients.set_index(["group", "term"])
    for cat, values in TRUE.items():
        for term, v in zip(("intercept", "s_attn", "s_mlp"), values, strict=True):
            assert c.loc[(cat, term), "coef"] == pytest.approx(v, abs=1e-12)
            assert c.loc[(cat, term), "se"] == pytest.approx(0.0, abs=1e-10)
            assert c.loc[(cat, term), "boot_low"] == pytest.approx(v, abs=1e-10)
        assert c.loc[(cat, "s_mlp"), "r2"] == pytest.approx(1.0)
        assert c.loc[(cat, "s_mlp"), "n_obs"] == 90 and c.loc[(cat, "s_mlp"), "n_clusters"] == 30
    obs = fit.observations
    assert np.allclose(obs["residual"], 0, atol=1e-12)
    # the partial line passes through the mean prediction; residuals of partials are zero
    pr = fit.partial_residuals("s_mlp")
    line = fit.partial("s_mlp", n_points=5)
    for cat in TRUE:
        sub = pr[pr["group"] == cat]
        b0, ba, bm = TRUE[cat]
        expect = b0 + ba * sub["s_attn"].mean() + bm * sub["x"]
        assert np.allclose(sub["partial"], expect)
        ln = line[line["group"] == cat]
        assert np.allclose(ln["fit"], b0 + ba * sub["s_attn"].mean() + bm * ln["x"])
        assert np.allclose(ln["low"], ln["fit"]) and np.allclose(ln["high"], ln["fit"])


def test_standard_errors_match_the_closed_form():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, 12)
    y = 0.5 + 2.0 * x + rng.normal(0, 0.1, 12)
    df = pd.DataFrame({"s_x": x, "relative_drop": y})
    fit = fit_sparsity_relation(df, group=None, cluster=None, metric=None, n_bootstrap=0)
    c = fit.coefficients.set_index("term")
    b1 = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    resid = y - (y.mean() - b1 * x.mean()) - b1 * x
    s = np.sqrt(resid @ resid / 10)
    assert c.loc["s_x", "coef"] == pytest.approx(b1)
    assert c.loc["s_x", "se"] == pytest.approx(s / np.sqrt(np.sum((x - x.mean()) ** 2)))
    assert c.loc["intercept", "se"] == pytest.approx(
        s * np.sqrt(1 / 12 + x.mean() ** 2 / np.sum((x - x.mean()) ** 2)))
    assert c.loc["s_x", "ci_high"] - b1 == pytest.approx(2.228138852 * c.loc["s_x", "se"])
    assert c.loc["s_x", "sigma"] == pytest.approx(s) and c.loc["s_x", "dof"] == 10
    assert np.isnan(c.loc["s_x", "boot_low"])


def test_intervals_cover_the_truth_at_their_level():
    hits_t = hits_boot = 0
    runs = 80
    for seed in range(runs):
        data = synthetic(noise=0.05, seed=seed, n_cells=16, tasks=1)
        fit = fit_sparsity_relation(data[data["category"] == "icl"], n_bootstrap=150,
                                    seed=seed)
        row = fit.coefficients.set_index("term").loc["s_mlp"]
        hits_t += row["ci_low"] <= TRUE["icl"][2] <= row["ci_high"]
        hits_boot += row["boot_low"] <= TRUE["icl"][2] <= row["boot_high"]
    assert 0.88 <= hits_t / runs <= 0.99
    assert 0.82 <= hits_boot / runs <= 0.99  # percentile bootstrap runs a bit narrow


def test_cluster_bootstrap_resamples_whole_cells():
    data = synthetic(noise=0.0, seed=1, n_cells=20, tasks=4, cell_noise=0.05)
    icl = data[data["category"] == "icl"]
    x = np.column_stack([np.ones(len(icl)), icl[["s_attn", "s_mlp"]].to_numpy()])
    y = icl["relative_drop"].to_numpy()
    by_cell = cluster_bootstrap(x, y, icl["cell"].to_numpy(), 300, seed=0)
    by_row = cluster_bootstrap(x, y, np.arange(len(icl)), 300, seed=0)
    assert by_cell.shape == (300, 3)
    # tasks of a cell share its noise: treating them as independent understates the spread
    assert by_cell[:, 2].std() > 1.5 * by_row[:, 2].std()
    again = fit_sparsity_relation(icl, n_bootstrap=100, seed=7).draws["icl"]
    assert np.array_equal(again, fit_sparsity_relation(icl, n_bootstrap=100, seed=7)
                          .draws["icl"])


def test_bad_designs_and_inputs():
    data = synthetic(noise=0.01)
    same = data.assign(s_mlp=data["s_attn"])
    with pytest.raises(ValueError, match=r"group 'fact_recall'.*\['s_attn', 's_mlp'\] are "
                                         r"linearly dependent"):
        fit_sparsity_relation(same)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['s_ffn'\]"):
        fit_sparsity_relation(data, features=["s_attn", "s_ffn"])
    with pytest.raises(ValueError, match="no features"):
        fit_sparsity_relation(data.drop(columns=["s_attn", "s_mlp"]))
    with pytest.raises(ValueError, match="no rows for metric 'logprob'"):
        fit_sparsity_relation(data, metric="logprob")
    with pytest.raises(ValueError, match="ci must be in"):
        fit_sparsity_relation(data, ci=95)
    with pytest.raises(ValueError, match="3 observations cannot determine 4"):
        ols(np.ones((3, 4)), np.zeros(3))
    inf = data.copy()
    inf.loc[0, "relative_drop"] = np.inf
    with pytest.warns(UserWarning, match="dropped 1 row"):
        fit = fit_sparsity_relation(inf, n_bootstrap=0)
    assert fit.coefficients.set_index(["group", "term"]).loc[("fact_recall", "s_mlp"),
                                                            "n_obs"] == 89


@pytest.fixture(scope="module")
def llama(tiny_dirs):
    return load_model(tiny_dirs["llama"])


def test_profiles_on_a_real_model(llama):
    suite = small_suite(3)
    cal = default_calibration(llama, n_samples=4, seq_len=16, seed=0)
    prof = allocation_profiles(llama, suite, allocations=("uniform", "global", "owl"),
                               sparsities=(0.3, 0.6), scopes=("all", "mlp"), calibration=cal,
                               metrics=["logprob", "em"], progress=False)
    assert isinstance(prof, AllocationProfiles)
    info = model_info(llama)
    cells = list(dict.fromkeys(prof.results["cell"]))
    assert cells[0] == "dense" and len(cells) == 1 + 3 * 2 * 2
    feats = prof.features().set_index("cell")
    assert list(feats.columns) == ["s_attn", "s_mlp"]
    assert (feats.loc["dense"] == 0).all()
    assert feats.loc["uniform:all:0.3", "s_attn"] == pytest.approx(0.3, abs=0.002)
    assert feats.loc["uniform:mlp:0.6", "s_attn"] == 0.0
    # the per-site record is the masks: global prunes exactly floor(s * n) of its scope
    r = Pruner(llama, "magnitude", scope="all", allocation="global").prune(0.6)
    sites = prof.sites[prof.sites["cell"] == "global:all:0.6"].set_index("site")
    assert sites["pruned"].to_dict() == r.report().set_index("site")["pruned"].to_dict()
    assert sites["pruned"].sum() == int(0.6 * info.total_params)
    assert feats.loc["global:all:0.6", "s_attn"] != feats.loc["global:all:0.6", "s_mlp"]
    # OWL: the per-layer sparsities the pruner reported are the ones achieved
    owl = prof.sites[prof.sites["cell"] == "owl:all:0.3"]
    layer_s = prof.diagnostics["owl:all:0.3"]["owl"]["layer_sparsity"]
    by_layer = owl.groupby("layer")[["pruned", "numel"]].sum()
    for layer, s in layer_s.items():
        assert by_layer.loc[int(layer), "pruned"] / by_layer.loc[int(layer), "numel"] == \
            pytest.approx(s, abs=0.002)
    assert len(set(layer_s.values())) == 2  # OWL moved sparsity between the layers
    # the measurements of a cell are an evaluation with its masks
    res = prof.results[(prof.results["cell"] == "global:all:0.6")
                       & (prof.results["metric"] == "logprob")].set_index("task")["value"]
    with pruned(llama, r.masks):
        ref = evaluate_suite(llama, suite, n_bootstrap=0).summary(n_bootstrap=0)
    ref = ref[ref["metric"] == "logprob"].set_index("task")["value"]
    assert np.array_equal(res.to_numpy(), ref.loc[res.index].to_numpy())
    dense = prof.results[prof.results["cell"] == "dense"]
    assert (dense["relative_drop"] == 0).all() and (dense["method"] == "dense").all()
    # the table and the fit
    table = prof.table(metric="logprob")
    assert len(table) == len(cells) * len(suite)
    assert "dense" not in set(prof.table(metric="logprob", include_dense=False)["cell"])
    fit = prof.fit(metric="logprob", n_bootstrap=30)
    assert fit.groups == ["fact_recall", "icl"]
    assert list(fit.coefficients["term"].unique()) == ["intercept", "s_attn", "s_mlp"]
    assert fit.coefficients["n_clusters"].eq(len(cells)).all()
    per_layer = prof.features("layer_family")
    assert list(per_layer.columns[1:3]) == ["s_attn@0", "s_mlp@0"]


def test_profile_inputs_are_checked(llama):
    suite = small_suite(2)
    with pytest.raises(ValueError, match=r"unknown allocation\(s\) \['matched'\]"):
        allocation_profiles(llama, suite, allocations=("matched",), progress=False)
    with pytest.raises(ValueError, match=r"\['owl_lambda'\] need allocation 'owl'"):
        allocation_profiles(llama, suite, allocations=("global",), owl_lambda=0.1,
                            progress=False)
    with pytest.raises(ValueError, match="allocation='global' is not defined for sparsegpt"):
        allocation_profiles(llama, suite, method="sparsegpt", progress=False,
                            calibration=default_calibration(llama, n_samples=2, seq_len=8))
    with pytest.raises(ValueError, match=r"sparsities must hold numbers in \[0, 1\]"):
        allocation_profiles(llama, suite, sparsities=(-0.1,), progress=False)
    with pytest.raises(ValueError, match="unknown feature set 'head'"):
        AllocationProfiles(pd.DataFrame(), pd.DataFrame()).features("head")
