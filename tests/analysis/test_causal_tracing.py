"""Causal tracing: known-by-construction models show the sites they were built with, every
family runs, and the two ends of the trace are exact (restoring the residual stream at
every position gives the clean run, restoring nothing gives the corrupted one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lenskit.analysis import (
    TRACE_METRICS,
    TraceSite,
    causal_trace,
    trace_items,
    trace_rows,
    trace_sites,
    validate_maps,
)
from lenskit.analysis.trace_inputs import embedding_noise_std, trace_prompts
from lenskit.models import load_model, model_info
from lenskit.tasks.encoding import encode_prompts

from .maps_helpers import single_thread, small_suite  # noqa: F401
from .trace_model import ENTITIES, FACT_LAYER, MOVE_HEAD, MOVE_LAYER, build_trace_model, trace_task

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trace_model(tmp_path_factory):
    return load_model(build_trace_model(tmp_path_factory.mktemp("trace") / "m"))


def _effects(items: pd.DataFrame) -> pd.Series:
    return (items["p_restored"] - items["p_corrupted"]).groupby(items["scope"]).mean()


@pytest.mark.parametrize("kw", [dict(corruption="noise"), dict(corruption="noise", noise=6.0,
                                                                 n_noise=3),
                                dict(corruption="counterfactual")])
def test_trace_finds_the_wired_ffw_layer_and_head(trace_model, kw):
    items = trace_items(trace_model, {"closed_book": trace_task()},
                        kinds=("resid", "attn", "mlp", "head"), progress=False, **kw)
    assert set(items["instance_id"]) == {f"fact-{e}" for e in ENTITIES}
    assert (items["p_clean"] > 0.99).all()
    assert items["p_corrupted"].mean() < 0.6  # the noise destroys most of the fact
    ie = _effects(items)
    mlp = {layer: ie[f"mlp@{layer}[pos=subject_last]"] for layer in range(3)}
    attn = {layer: ie[f"attn@{layer}[pos=last]"] for layer in range(3)}
    heads = {(layer, h): ie[f"attn.o@{layer}[head={h},pos=last]"]
             for layer in range(3) for h in range(2)}
    assert max(mlp, key=mlp.get) == FACT_LAYER and mlp[FACT_LAYER] > 0.3
    assert max(attn, key=attn.get) == MOVE_LAYER and attn[MOVE_LAYER] > 0.3
    assert max(heads, key=heads.get) == (MOVE_LAYER, MOVE_HEAD)
    # sites that write nothing by construction restore nothing, exactly
    for layer in set(range(3)) - {FACT_LAYER}:
        assert mlp[layer] == pytest.approx(0.0, abs=1e-9)
    assert ie[f"mlp@{FACT_LAYER}[pos=last]"] == pytest.approx(0.0, abs=1e-9)
    for (layer, h), v in heads.items():
        if (layer, h) != (MOVE_LAYER, MOVE_HEAD):
            assert v == pytest.approx(0.0, abs=1e-9)
    # the residual stream carries the fact at the subject until the moving layer reads it
    assert ie["resid@0[pos=subject_last]"] > 0.3 and ie["resid@1[pos=subject_last]"] > 0.3
    assert ie["resid@2[pos=subject_last]"] == pytest.approx(0.0, abs=1e-9)
    assert ie["resid@2[pos=last]"] == pytest.approx(
        (items["p_clean"] - items["p_corrupted"]).mean(), abs=1e-6)


def test_ffw_window_restores_the_wired_layer_from_its_neighbours(trace_model):
    items = trace_items(trace_model, {"closed_book": trace_task(4)}, kinds=("mlp",),
                        positions=("subject_last",), window=3, corruption="counterfactual",
                        progress=False)
    ie = _effects(items)
    # windows [0, 1] (around 0), [0, 2] (around 1), [1, 2] (around 2): all contain layer 1
    assert set(ie.index) == {"mlp@0-1[pos=subject_last]", "mlp@0-2[pos=subject_last]",
                             "mlp@1-2[pos=subject_last]"}
    assert (ie > 0.99).all()


def test_every_family_runs_with_exact_ends(tiny_model):
    info = model_info(tiny_model)
    suite = small_suite(4)
    suite = {k: suite[k] for k in ("closed_book", "open_book")}
    n = info.n_layers
    sites = [*trace_sites(tiny_model, kinds=("resid", "attn", "mlp", "head"),
                          positions=("subject_first", "subject", "last")),
             TraceSite("resid", n - 1, (n - 1,), "all"), TraceSite("resid", 0, (0,), "all"),
             TraceSite("resid", 0, (), "last")]
    items = trace_items(tiny_model, suite, sites=sites, n_noise=2, batch_size=16,
                        progress=False)
    n_heads = int(tiny_model.cfg.n_heads)
    per_prompt = 3 * n * (3 + n_heads) + 3
    assert len(items) == 8 * per_prompt
    assert items.groupby(["task", "instance_id"]).size().eq(per_prompt).all()
    assert np.isfinite(items[["p_clean", "p_corrupted", "p_restored"]].to_numpy()).all()
    for scope in (f"resid@{n - 1}[pos=all]", "resid@0[pos=all]"):
        got = items[items["scope"] == scope]
        np.testing.assert_allclose(got["p_restored"], got["p_clean"], rtol=1e-5, atol=1e-9)
    nothing = items[items["scope"] == "resid@none[pos=last]"]
    np.testing.assert_allclose(nothing["p_restored"], nothing["p_corrupted"], rtol=1e-9)
    # p_clean is the softmax of the bridge's own logits at each prompt's last token
    task = suite["closed_book"]
    ids, lengths = encode_prompts(info.tokenizer, [i.prompt for i in task.instances])
    prompts = {p.id: p for p in trace_prompts(info, task)}
    with torch.inference_mode():
        logits = tiny_model(ids).double()
    probs = torch.softmax(logits[torch.arange(len(ids)), lengths - 1], -1)
    want = {i.id: float(probs[k, prompts[i.id].answer]) for k, i in enumerate(task.instances)}
    got = nothing[nothing["task"] == "closed_book"].set_index("instance_id")["p_clean"]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5)
    rows = trace_rows(items, n_bootstrap=50)
    validate_maps(rows)
    assert len(rows) == 2 * per_prompt * len(TRACE_METRICS)


def test_noise_is_seeded_and_batch_independent(tiny_dirs):
    model = load_model(tiny_dirs["gpt2"])
    suite = {"closed_book": small_suite(6)["closed_book"]}
    kw = dict(kinds=("mlp",), positions=("last",), layers=1, progress=False)
    a = trace_items(model, suite, batch_size=64, seed=3, **kw)
    b = trace_items(model, suite, batch_size=1, seed=3, **kw)
    c = trace_items(model, suite, batch_size=64, seed=4, **kw)
    key = ["instance_id"]
    a, b, c = (x.sort_values(key).reset_index(drop=True) for x in (a, b, c))
    np.testing.assert_allclose(a["p_corrupted"], b["p_corrupted"], rtol=1e-5)
    np.testing.assert_allclose(a["p_restored"], b["p_restored"], rtol=1e-5)
    assert not np.allclose(a["p_corrupted"], c["p_corrupted"], rtol=1e-7, atol=0)


def test_noise_scale_is_the_subject_embedding_std(tiny_dirs):
    model = load_model(tiny_dirs["llama"])
    info = model_info(model)
    task = small_suite(5)["closed_book"]
    prompts = trace_prompts(info, task)
    ids = [t for p in prompts for t in p.tokens[p.span[0]:p.span[1]]]
    emb = info.hf.get_input_embeddings().weight.detach()
    assert embedding_noise_std(info, prompts) == pytest.approx(float(emb[ids].double().std()))
    items = trace_items(model, {"closed_book": task}, kinds=("resid",), positions=("last",),
                        layers=0, noise=2.0, progress=False)
    assert items.attrs["noise_std"] == pytest.approx(2 * float(emb[ids].double().std()))
    # the subject really is the entity's tokens
    for p, inst in zip(prompts, task.instances, strict=True):
        text = info.tokenizer.decode(list(p.tokens[p.span[0]:p.span[1]]))
        assert text.strip() == inst.meta["entity"]


def test_counterfactual_prompts_swap_only_the_subject(tiny_dirs):
    info = model_info(load_model(tiny_dirs["llama"]))
    task = small_suite(6)["closed_book"]
    prompts = trace_prompts(info, task, corruption="counterfactual", seed=0)
    assert prompts
    for p in prompts:
        a, b = p.span
        assert len(p.counterfactual) == len(p.tokens)
        assert p.counterfactual[:a] == p.tokens[:a] and p.counterfactual[b:] == p.tokens[b:]
        assert p.counterfactual[a:b] != p.tokens[a:b] and p.donor and p.donor != p.id


def test_rows_aggregate_items_with_intervals(trace_model):
    rows = causal_trace(trace_model, {"closed_book": trace_task()}, kinds=("mlp",),
                        positions=("subject_last",), corruption="counterfactual",
                        n_bootstrap=200, progress=False)
    assert set(rows["metric"]) == set(TRACE_METRICS)
    assert (rows["analysis"] == "causal_trace").all() and (rows["method"] ==
                                                           "counterfactual").all()
    assert list(rows.columns[:3]) == ["model", "model_params", "method"]
    hit = rows[(rows["scope"] == f"mlp@{FACT_LAYER}[pos=subject_last]")].set_index("metric")
    assert hit.loc["normalised_effect", "value"] == pytest.approx(1.0, abs=1e-6)
    assert hit.loc["p_restored", "baseline"] == pytest.approx(hit.loc["p_restored", "p_clean"])
    lo, hi = hit.loc["p_restored", ["ci_low", "ci_high"]]
    assert lo <= hit.loc["p_restored", "value"] <= hi
    assert (rows["n"] == len(ENTITIES)).all()
    assert (rows["family"] == "mlp").all() and (rows["unit"] == "site").all()


@pytest.mark.parametrize("kw, match", [
    (dict(kinds=("ffw",)), "unknown kinds"),
    (dict(positions=("middle",)), "unknown positions"),
    (dict(window=0), "window must be"),
    (dict(layers=7), "layers must be"),
    (dict(kinds=("head",), heads=[9]), "heads must be"),
    (dict(corruption="shuffle"), "unknown corruption"),
    (dict(corrupt="object"), "unknown corrupt"),
    (dict(noise=0), "noise must be"),
    (dict(n_noise=0), "n_noise must be"),
    (dict(tasks=["fn"]), "needs QA tasks"),
])
def test_bad_arguments_are_refused(tiny_dirs, kw, match):
    model = load_model(tiny_dirs["opt"])
    with pytest.raises(ValueError, match=match):
        trace_items(model, small_suite(2), progress=False, **{"tasks": ["closed_book"], **kw})


def test_an_instance_without_subject_is_refused(trace_model):
    from lenskit.tasks import TaskSet
    from lenskit.tasks.core import TaskInstance

    task = TaskSet(name="closed_book", kind="closed_book",
                   instances=(TaskInstance("x", "Q: what is the capital of Trosh?\nA:",
                                           ("Kolan",)),))
    with pytest.raises(ValueError, match="names no subject"):
        trace_items(trace_model, [task], progress=False)
    moved = TaskSet(name="closed_book", kind="closed_book",
                    instances=(TaskInstance("x", "Q: what is the capital of Trosh?\nA:",
                                            ("Kolan",), meta={"entity": "Vexan"}),))
    with pytest.raises(ValueError, match="does not occur"):
        trace_items(trace_model, [moved], progress=False)
