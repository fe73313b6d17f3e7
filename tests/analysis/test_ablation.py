"""Structured ablation on tiny real models: zero ablation by weights equals hook_z / hook_post
zeroing on the bridge (every family), mean ablation's two backends agree, means exclude
padding, neuron groups are what they claim, the copying model's head, bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lenskit.analysis.ablation import head_ablation_map, mean_activations, neuron_ablation_map
from lenskit.analysis.mapping import MAP_COLUMNS, validate_maps
from lenskit.models import load_model, model_info, pruned
from lenskit.tasks import evaluate
from lenskit.tasks.encoding import encode_texts

from .maps_helpers import (
    build_copy_model,
    copy_tasks,
    single_thread,  # noqa: F401 (a fixture)
    small_suite,
    weights_hash,
)

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"progress": False, "n_bootstrap": 0}


@pytest.fixture(scope="module")
def suite():
    return small_suite(4)


@pytest.fixture(scope="module")
def llama(tiny_dirs):
    return load_model(tiny_dirs["llama"])


def _same_predictions(a, b) -> None:
    x, y = a.rows, b.rows
    assert list(x["prediction"]) == list(y["prediction"])
    assert list(x["gold_rank"]) == list(y["gold_rank"])
    np.testing.assert_allclose(x["logprob"], y["logprob"], atol=1e-4, rtol=0)


def _same_maps(a: pd.DataFrame, b: pd.DataFrame) -> None:
    keys = ["scope", "task", "metric"]
    a, b = a.set_index(keys).sort_index(), b.set_index(keys).sort_index()
    assert a.index.equals(b.index)
    exact = ~a.index.get_level_values("metric").isin(["logprob", "perplexity",
                                                      "nll_per_token"])
    assert np.array_equal(a.loc[exact, "value"], b.loc[exact, "value"])
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-4, rtol=1e-5)


def test_ablation_by_weights_and_hf_hooks_equals_bridge_hooks(tiny_model, suite):
    """NOTES section 3 on every family: hook-based (bridge) and weight-based (hf backend)
    zero ablation give identical predictions; the map's hf path is the weight one."""
    info = model_info(tiny_model)
    o = info.site_map["blocks.1.attn.o"]
    dh = o.head_dim
    h = 2
    keep = torch.ones(o.shape, dtype=torch.bool)
    keep[:, h * dh:(h + 1) * dh] = False

    def zero_head(z, hook):
        z[:, :, h, :] = 0.0
        return z

    task = suite["open_book"]
    hooked = evaluate(tiny_model, task, backend="bridge",
                      fwd_hooks=[("blocks.1.attn.hook_z", zero_head)])
    with pruned(tiny_model, {o.name: keep}):
        weighted = evaluate(tiny_model, task, backend="hf")
    plain = evaluate(tiny_model, task, backend="hf")
    _same_predictions(hooked, weighted)
    assert not np.allclose(plain.rows["logprob"], weighted.rows["logprob"])  # it did act
    df = head_ablation_map(tiny_model, {"open_book": task}, layers=[1], heads=[h], **FAST)
    got = df.set_index("metric")["value"]
    want = weighted.summary(n_bootstrap=0).set_index("metric")["value"]
    assert np.array_equal(got.loc[want.index].to_numpy(), want.to_numpy())
    row = df.iloc[0]
    assert (row["scope"], row["head"], row["unit"]) == ("attn.o@1[head=2]", 2, "head")
    assert row["params_removed"] == o.shape[0] * dh
    assert row["achieved_sparsity"] == row["target_sparsity"] == 1 / o.n_heads
    # mean ablation: the forward pre-hook on the HF projection (o, and out for neurons)
    # equals replacing hook_z / mlp.hook_post on the bridge, whatever the module type
    one = {"open_book": task}
    kw = {**FAST, "mode": "mean", "layers": [0]}
    _same_maps(*(head_ablation_map(tiny_model, one, heads=[1], backend=b, **kw)
                 for b in ("hf", "bridge")))
    _same_maps(*(neuron_ablation_map(tiny_model, one, n_chunks=2, backend=b, **kw)
                 for b in ("hf", "bridge")))


def test_head_and_neuron_maps_agree_across_backends(llama):
    suite = small_suite(2)
    before = weights_hash(llama)
    for mode in ("zero", "mean"):
        kw = {**FAST, "mode": mode, "layers": [1]}
        heads = {b: head_ablation_map(llama, suite, backend=b, heads=[3], **kw)
                 for b in ("hf", "bridge")}
        _same_maps(heads["hf"], heads["bridge"])
        neurons = {b: neuron_ablation_map(llama, suite, backend=b, groups="chunks", n_chunks=2,
                                          **kw) for b in ("hf", "bridge")}
        _same_maps(neurons["hf"], neurons["bridge"])
        assert list(heads["hf"].columns) == list(MAP_COLUMNS)
        # ablation maps are valid map tables: the sweep schema, the mode as method
        pd.testing.assert_frame_equal(validate_maps(heads["hf"]), heads["hf"])
        validate_maps(neurons["hf"])
    assert weights_hash(llama) == before and not model_info(llama).originals
    # mean ablation is not zero ablation
    z = head_ablation_map(llama, suite, mode="zero", layers=[1], heads=[0], **FAST)
    m = head_ablation_map(llama, suite, mode="mean", layers=[1], heads=[0], **FAST)
    lp = (z["metric"] == "logprob").to_numpy()
    assert not np.allclose(z.loc[lp, "value"], m.loc[lp, "value"], atol=1e-6, rtol=0)


def test_mean_activations_use_only_real_tokens(llama, suite):
    task = suite["open_book"]
    rows = encode_texts(model_info(llama).tokenizer, [i.prompt for i in task])
    assert len({len(r) for r in rows}) > 1  # the batch really is padded
    batched = mean_activations(llama, task, batch_size=4)
    alone = mean_activations(llama, task, batch_size=1)
    # an independent computation: every prompt alone through run_with_cache
    z_sum = post_sum = 0.0
    for r in rows:
        _, cache = llama.run_with_cache(torch.tensor([r]))
        z_sum = z_sum + cache["blocks.1.attn.hook_z"][0].double().sum(0)
        post_sum = post_sum + cache["blocks.0.mlp.hook_post"][0].double().sum(0)
    n = sum(len(r) for r in rows)
    assert batched.n_tokens == alone.n_tokens == n
    for means in (batched, alone):
        torch.testing.assert_close(means.z[1], (z_sum / n).float(), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(means.post[0], (post_sum / n).float(), atol=1e-6, rtol=1e-5)
    # counting the padded positions would have given another mean
    width = max(len(r) for r in rows)
    padded = llama.run_with_cache(torch.tensor(
        [r + [model_info(llama).tokenizer.pad_token_id] * (width - len(r)) for r in rows]))[1]
    naive = padded["blocks.1.attn.hook_z"].double().mean((0, 1)).float()
    assert not torch.allclose(naive, batched.z[1], atol=1e-4)
    only = mean_activations(llama, task, layers=[0], which="post")
    assert set(only.post) == {0} and not only.z
    with pytest.raises(ValueError, match="unknown activation"):
        mean_activations(llama, task, which=("resid",))


def test_neuron_groups(llama, suite):
    info = model_info(llama)
    out = info.site_map["blocks.0.mlp.out"]
    d = out.shape[1]
    chunks = neuron_ablation_map(llama, suite, groups="chunks", n_chunks=3, layers=[0],
                                 metrics=["logprob"], **FAST)
    labels = list(dict.fromkeys(chunks["unit_label"]))
    assert labels == ["chunk 0/3", "chunk 1/3", "chunk 2/3"]
    removed = chunks.drop_duplicates("scope")["params_removed"]
    assert removed.sum() == out.numel  # the chunks partition the neurons
    lowest = neuron_ablation_map(llama, suite, groups="lowest_norm", fractions=(0.25, 0.5),
                                 layers=[0], metrics=["logprob"], **FAST)
    per = lowest.drop_duplicates("scope").set_index("target_sparsity")
    assert per.loc[0.25, "params_removed"] == out.shape[0] * (d // 4)
    assert per.loc[0.5, "achieved_sparsity"] == (d // 2) / d
    assert list(per["unit_label"]) == ["lowest-norm 25%", "lowest-norm 50%"]
    # zero-ablating the lowest-norm quarter equals zeroing exactly those columns of out
    norms = out.weight().double().norm(dim=0)
    idx = torch.argsort(norms, stable=True)[: d // 4]
    keep = torch.ones(out.shape, dtype=torch.bool)
    keep[:, idx] = False
    with pruned(llama, {out.name: keep}):
        ref = evaluate(llama, suite["open_book"]).value("open_book", "logprob")
    got = lowest[(lowest["target_sparsity"] == 0.25) & (lowest["task"] == "open_book")]["value"]
    assert got.item() == ref
    highest = neuron_ablation_map(llama, suite, groups="highest_norm", fractions=(0.25,),
                                  layers=[0], metrics=["logprob"], **FAST)
    assert highest["scope"].iloc[0] == "mlp.out@0[highest_norm=0.25]"
    assert not np.array_equal(highest["value"].to_numpy(),
                              lowest[lowest["target_sparsity"] == 0.25]["value"].to_numpy())


def test_the_copying_models_head_carries_open_book_qa(tmp_path):
    model = load_model(build_copy_model(tmp_path / "copy"))
    tasks = copy_tasks()
    for mode, over in (("zero", "task"), ("mean", "task"), ("mean", "suite")):
        df = head_ablation_map(model, tasks, mode=mode, mean_over=over, metrics=["em"], **FAST)
        assert df["baseline"].item() == 1.0 and df["relative_drop"].item() == 1.0


def test_bad_inputs(llama, suite):
    cases = [
        (head_ablation_map, {"mode": "resample"}, r"unknown mode 'resample'; allowed: \("),
        (head_ablation_map, {"mean_over": "batch"}, "unknown mean_over 'batch'"),
        (head_ablation_map, {"backend": "tl"}, "unknown backend 'tl'"),
        (head_ablation_map, {"heads": [4]}, r"heads must be ints in 0..3 .* got 4"),
        (head_ablation_map, {"layers": [2]}, r"layers must be ints in 0..1"),
        (neuron_ablation_map, {"groups": "random"}, "unknown groups 'random'"),
        (neuron_ablation_map, {"n_chunks": 0}, r"n_chunks must be an int in 1..64"),
        (neuron_ablation_map, {"groups": "lowest_norm", "fractions": (0.5, 1.5)},
         r"fractions must be numbers in \(0, 1\], got 1.5"),
        (neuron_ablation_map, {"groups": "lowest_norm", "fractions": (0.0,)},
         r"fractions must be numbers in \(0, 1\], got 0.0"),
    ]
    for fn, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            fn(llama, suite, **{**FAST, **kwargs})
