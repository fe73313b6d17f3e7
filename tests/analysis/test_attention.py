"""Attention metrics on real tiny models: a model whose pattern is known exactly, a sharp
random model checked against a row-by-row recomputation from cached patterns, padding
invariance, GQA, bounded memory, exact restoration, the drift frame and bad inputs."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from lenskit.analysis.attention import (
    ATTENTION_COLUMNS,
    DRIFT_COLUMNS,
    RepeatedTokens,
    attention_drift,
    attention_metrics,
    repeated_token_ids,
)
from lenskit.analysis.attention_stats import PatternStats
from lenskit.models import MaskSet, load_model, make_tiny_model, model_info, pruned, restore
from lenskit.pruning import Pruner
from lenskit.tasks import encode_prompts, organism_suite, token_span

torch.set_num_threads(1)


def _edited_model(directory, n_layers: int, q_scale: float, k_scale: float = 1.0):
    """A tiny Llama (4 query heads, 2 key-value heads) with query and key weights scaled."""
    make_tiny_model("llama", directory, n_layers=n_layers)
    hf = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        for layer in hf.model.layers:
            layer.self_attn.q_proj.weight.mul_(q_scale)
            layer.self_attn.k_proj.weight.mul_(k_scale)
    hf.save_pretrained(directory)
    return load_model(directory)


@pytest.fixture(scope="module")
def uniform_model(tmp_path_factory):
    """Zero query weights: every query attends uniformly to its visible keys."""
    return _edited_model(tmp_path_factory.mktemp("uniform"), 1, 0.0)


@pytest.fixture(scope="module")
def sharp_model(tmp_path_factory):
    """Random weights with queries and keys scaled up: patterns far from uniform."""
    return _edited_model(tmp_path_factory.mktemp("sharp"), 2, 20.0, 20.0)


@pytest.fixture(scope="module")
def suite():
    from lenskit.synthetic.world import WorldConfig

    return organism_suite(WorldConfig().build(), size="small", seed=0)


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model_info(model).hf.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    for site in model_info(model).sites:
        for b in site.bindings:
            h.update(b.read().cpu().numpy().tobytes())
    return h.hexdigest()


def value(df, metric, queries, model="dense", layer=None):
    sel = df[(df.metric == metric) & (df.queries == queries) & (df.model == model)]
    if layer is not None:
        sel = sel[sel.layer == layer]
    return sel.sort_values(["layer", "head"])["value"].to_numpy()


def random_masks(model, selection: str, seed: int, with_weights: bool = False):
    info = model_info(model)
    g = torch.Generator().manual_seed(seed)
    masks = {s.name: torch.rand(s.shape, generator=g) > 0.5 for s in info.select(selection)}
    weights = ({n: torch.randn(m.shape, generator=g) * 0.3 for n, m in masks.items()}
               if with_weights else None)
    return MaskSet(masks, fingerprint=info.fingerprint, model=info.spec), weights


# ---------------------------------------------------------------------------------------
# A pattern known exactly: uniform causal attention
# ---------------------------------------------------------------------------------------

def test_uniform_model_end_to_end(uniform_model, suite):
    model = uniform_model
    tok = model_info(model).tokenizer
    task = suite["open_book"].subset(10, seed=1)
    masks, _ = random_masks(model, "attn.k,v", seed=0)  # q stays 0: still uniform
    df = attention_metrics(model, task, masks=masks, batch_size=4)
    assert list(df.columns) == list(ATTENTION_COLUMNS)
    _, lengths = encode_prompts(tok, [i.prompt for i in task.instances])
    lengths = lengths.tolist()
    spans = [token_span(tok, i.prompt, i.answer_span) for i in task.instances]
    # by hand: query q of a row sees q + 1 keys with weight 1 / (q + 1)
    sink_all = np.mean([1 / (q + 1) for n in lengths for q in range(1, n)])
    sink_answer = np.mean([1 / n for n in lengths])
    span_mass = np.mean([(e - s) / n for (s, e), n in zip(spans, lengths, strict=True)])
    for model_label in ("dense", "pruned"):
        for queries in ("all", "answer"):
            assert value(df, "entropy", queries, model_label) == pytest.approx(1.0, abs=1e-5)
        assert value(df, "sink", "all", model_label) == pytest.approx(sink_all, abs=1e-6)
        assert value(df, "sink", "answer", model_label) == pytest.approx(sink_answer, abs=1e-6)
        assert value(df, "span_mass", "answer", model_label) == pytest.approx(span_mass,
                                                                              abs=1e-6)
    assert value(df, "js", "all", "pruned") == pytest.approx(0.0, abs=1e-6)
    assert value(df, "js", "answer", "pruned") == pytest.approx(0.0, abs=1e-6)
    n_all = df[(df.metric == "sink") & (df.queries == "all")]["n"].unique().tolist()
    assert n_all == [sum(n - 1 for n in lengths)]
    assert set(df[df.metric == "span_mass"]["n"]) == {10}


def test_uniform_model_repeats_and_transformerlens_detect_head(uniform_model):
    from transformer_lens.head_detector import detect_head

    model = uniform_model
    spec = RepeatedTokens(n_sequences=1, length=6, seed=3)
    ids, p0 = repeated_token_ids(model_info(model).tokenizer, spec)
    n, t = spec.length, p0 + 2 * spec.length
    assert ids[0, p0 : p0 + n].tolist() == ids[0, p0 + n :].tolist()
    assert len(set(ids[0, p0 : p0 + n].tolist())) == n
    df = attention_metrics(model, spec)
    ind = value(df, "induction", "repeat")
    prev = value(df, "prev_token", "repeat")
    assert ind == pytest.approx(np.mean([1 / (q + 1) for q in range(p0 + n, t)]), abs=1e-6)
    assert prev == pytest.approx(np.mean([1 / (q + 1) for q in range(p0 + 1, t)]), abs=1e-6)
    assert set(df["queries"]) == {"all", "repeat"}  # no answer position on repeats
    # TransformerLens divides the same mass by all t query rows
    text = " ".join(model_info(model).tokenizer.convert_ids_to_tokens(ids[0, p0:].tolist()))
    assert torch.equal(model.to_tokens(text), ids)
    tl = detect_head(model, text, "induction_head")[0].numpy()
    assert tl == pytest.approx(ind * n / t, abs=1e-6)


# ---------------------------------------------------------------------------------------
# A sharp random model against a row-by-row recomputation
# ---------------------------------------------------------------------------------------

def _patterns(model, ids):
    _, cache = model.run_with_cache(ids[None])
    return [cache[f"blocks.{layer}.attn.hook_pattern"][0].double().numpy()
            for layer in range(model_info(model).n_layers)]


def _entropy_bits(p):
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _check_against_cached_patterns(model, task, df, masks, weights=None, n_heads=4):
    """Every per-head metric of ``df`` (dense and pruned) recomputed row by row from the
    ``hook_pattern`` cache of one unpadded prompt at a time."""
    info = model_info(model)
    prompts = [i.prompt for i in task.instances]
    rows = [encode_prompts(info.tokenizer, [p])[0][0] for p in prompts]
    dense = [_patterns(model, r) for r in rows]
    with pruned(model, masks, weights):
        pr = [_patterns(model, r) for r in rows]
    spans = [token_span(info.tokenizer, i.prompt, i.answer_span) for i in task.instances]
    for which, pats in (("pruned", pr), ("dense", dense)):
        for layer in range(info.n_layers):
            for head in range(n_heads):
                acc = {k: [] for k in ("ent", "sink", "js", "js_a", "ent_a", "span")}
                for d, p, r, (s, e) in zip(dense, pats, rows, spans, strict=True):
                    n = len(r)
                    for q in range(1, n):
                        a, b = p[layer][head, q, : q + 1], d[layer][head, q, : q + 1]
                        m = (a + b) / 2
                        js = _entropy_bits(m) - (_entropy_bits(a) + _entropy_bits(b)) / 2
                        acc["ent"].append(_entropy_bits(a) / np.log2(q + 1))
                        acc["sink"].append(a[0])
                        acc["js"].append(js)
                    acc["js_a"].append(acc["js"][-1])
                    acc["ent_a"].append(acc["ent"][-1])
                    acc["span"].append(p[layer][head, n - 1, s:e].sum())
                got = df[(df.layer == layer) & (df["head"] == head) & (df.model == which)]
                get = got.set_index(["metric", "queries"])["value"]
                assert get["entropy", "all"] == pytest.approx(np.mean(acc["ent"]), abs=1e-5)
                assert get["sink", "all"] == pytest.approx(np.mean(acc["sink"]), abs=1e-5)
                assert get["entropy", "answer"] == pytest.approx(np.mean(acc["ent_a"]),
                                                                 abs=1e-5)
                assert get["span_mass", "answer"] == pytest.approx(np.mean(acc["span"]),
                                                                   abs=1e-5)
                if which == "pruned":
                    assert get["js", "all"] == pytest.approx(np.mean(acc["js"]), abs=1e-5)
                    assert get["js", "answer"] == pytest.approx(np.mean(acc["js_a"]),
                                                                abs=1e-5)


def test_sharp_model_matches_cached_patterns(sharp_model, suite):
    model = sharp_model
    task = suite["overriding"].subset(5, seed=2)
    masks, weights = random_masks(model, "attn", seed=1, with_weights=True)
    df = attention_metrics(model, task, masks=masks, weights=weights, batch_size=3)
    _check_against_cached_patterns(model, task, df, masks, weights)
    # the pruned patterns really moved, and sharply: not a trivially small divergence
    assert value(df, "js", "all", "pruned").mean() > 0.05
    assert value(df, "entropy", "all", "dense").max() < 0.9


def test_padding_invariance_and_gqa(sharp_model, suite):
    model = sharp_model
    assert model.cfg.n_heads == 4 and model.cfg.n_key_value_heads == 2
    task = suite["open_book"].subset(7, seed=3)
    masks, _ = random_masks(model, "mlp", seed=2)
    batched = attention_metrics(model, task, masks=masks, batch_size=4)
    single = attention_metrics(model, task, masks=masks, batch_size=1)
    assert (batched[["layer", "head", "metric", "queries", "model", "n"]]
            .equals(single[["layer", "head", "metric", "queries", "model", "n"]]))
    np.testing.assert_allclose(batched["value"], single["value"], atol=2e-6)
    # one pattern per query head: heads sharing a key-value head still differ
    assert sorted(set(batched["head"])) == [0, 1, 2, 3]
    ent = value(batched, "entropy", "all", "dense", layer=0)
    assert abs(ent[0] - ent[1]) > 1e-3 and abs(ent[2] - ent[3]) > 1e-3


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt"])
def test_other_families(tiny_dirs, family, suite):
    model = load_model(tiny_dirs[family])
    task = suite["overriding"].subset(6, seed=4)
    masks, _ = random_masks(model, "all", seed=3)
    before = weights_digest(model)
    df = attention_metrics(model, task, masks=masks, batch_size=4)
    assert weights_digest(model) == before
    assert sorted(set(df["layer"])) == [0, 1] and sorted(set(df["head"])) == [0, 1, 2, 3]
    # entropy, sink mass, answer-span mass and JS divergence by hand from hook_pattern
    _check_against_cached_patterns(model, task, df, masks)
    assert (value(df, "js", "all", "pruned") > 0).all()


# ---------------------------------------------------------------------------------------
# Memory, restoration, the drift frame
# ---------------------------------------------------------------------------------------

def test_memory_is_bounded_by_one_batch(sharp_model, suite):
    model = sharp_model
    info = model_info(model)
    task = suite["open_book"].subset(9, seed=5)
    masks, _ = random_masks(model, "attn", seed=4)
    longest = max(len(r) for r in encode_prompts(info.tokenizer,
                                                 [i.prompt for i in task.instances])[0])
    peaks = {}
    for bs in (2, 4):
        _, run = attention_metrics(model, task, masks=masks, batch_size=bs, return_run=True)
        # the references of exactly one batch (the first, longest one) at most, never two
        one_batch = info.n_layers * bs * 4 * longest * (longest + 1) * 4
        assert run.peak_reference_bytes == one_batch == run.batch_pattern_bytes
        peaks[bs] = run.peak_reference_bytes
    assert peaks[2] * 2 == peaks[4]
    # without a reference nothing is held
    _, run = attention_metrics(model, task, masks=masks, reference=None, return_run=True)
    assert run.peak_reference_bytes == 0 and run.dense is None


def test_weights_restored_exactly(sharp_model, suite):
    model = sharp_model
    task = suite["closed_book"].subset(5, seed=6)
    before = weights_digest(model)
    masks, weights = random_masks(model, "all", seed=5, with_weights=True)
    attention_metrics(model, task, masks=masks, weights=weights)
    assert weights_digest(model) == before
    assert not model_info(model).originals
    # a prompt longer than the context fails before any weight is touched
    with pytest.raises(ValueError, match="longer than the model's context of 512"):
        attention_metrics(model, RepeatedTokens(n_sequences=2, length=300), masks=masks)
    assert weights_digest(model) == before


def test_failure_inside_the_pruned_pass_restores_weights(sharp_model, suite, monkeypatch):
    model = sharp_model
    task = suite["closed_book"].subset(4, seed=7)
    before = weights_digest(model)
    masks, weights = random_masks(model, "all", seed=8, with_weights=True)
    real_add = PatternStats.add
    calls = []

    def failing_add(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:  # dense layers 0 and 1 are done; this is the pruned pass
            assert model_info(model).originals  # the masks are applied right now
            raise RuntimeError("injected failure")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(PatternStats, "add", failing_add)
    with pytest.raises(RuntimeError, match="injected failure"):
        attention_metrics(model, task, masks=masks, weights=weights)
    assert weights_digest(model) == before and not model_info(model).originals


def test_attention_drift_frame(sharp_model, suite):
    model = sharp_model
    pr = Pruner(model, "magnitude", scope="all")
    results = {"mag 30%": pr.prune(0.3), "mag 70%": pr.prune(0.7),
               "mag 50% attn": Pruner(model, "magnitude", scope="attn").prune(0.5)}
    assert not model_info(model).originals
    before = weights_digest(model)
    tasks = {"open_book": suite["open_book"], "closed_book": suite["closed_book"]}
    drift = attention_drift(model, tasks, results, max_prompts=6, batch_size=4,
                            repeats=RepeatedTokens(4, 6))
    assert weights_digest(model) == before
    assert list(drift.columns) == list(DRIFT_COLUMNS)
    assert set(drift["task"]) == {"open_book", "closed_book", "repeated_tokens"}
    assert set(drift["config"]) == set(results)
    meta = drift.drop_duplicates("config").set_index("config")
    assert meta.loc["mag 50% attn", "scope"] == "attn" and meta.loc["mag 30%", "scope"] == "all"
    assert meta.loc["mag 70%", "sparsity"] == 0.7 and meta.loc["mag 70%", "method"] == "magnitude"
    assert meta.loc["mag 70%", "achieved_sparsity"] == pytest.approx(0.7, abs=0.01)
    js = drift[drift.metric == "js"]
    assert (js["dense"] == 0).all() and (js["drift"] == js["value"]).all()
    other = drift[drift.metric != "js"]
    np.testing.assert_allclose(other["drift"], other["value"] - other["dense"])
    # closed-book prompts have no in-context span; induction only on the repeats
    assert set(drift[drift.metric == "span_mass"]["task"]) == {"open_book"}
    assert set(drift[drift.metric == "induction"]["task"]) == {"repeated_tokens"}
    # more sparsity, more divergence (mean over heads and tasks)
    mean_js = js.groupby("config")["value"].mean()
    assert mean_js["mag 70%"] > mean_js["mag 30%"] > 0
    # one configuration alone gives the same numbers as attention_metrics
    sub = suite["open_book"].subset(6, seed=0)
    single = attention_metrics(model, sub, masks=results["mag 30%"], batch_size=4)
    got = drift[(drift.config == "mag 30%") & (drift.task == "open_book")]
    merged = got.merge(single[single.model == "pruned"], on=["layer", "head", "metric",
                                                              "queries"])
    assert len(merged) == len(got) > 0
    np.testing.assert_allclose(merged["value_x"], merged["value_y"], atol=1e-6)


def test_bad_inputs_fail_before_anything_runs(sharp_model, uniform_model, suite):
    model = sharp_model
    task = suite["open_book"].subset(3, seed=0)
    masks, _ = random_masks(model, "attn", seed=6)
    before = weights_digest(model)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        attention_metrics(model, task, batch_size=0)
    with pytest.raises(ValueError, match="reference must be 'dense' or None, got 'pruned'"):
        attention_metrics(model, task, masks=masks, reference="pruned")
    with pytest.raises(ValueError, match=r"layer indices in 0..1; got \[5\]"):
        attention_metrics(model, task, layers=[5])
    with pytest.raises(ValueError, match="weights need masks"):
        attention_metrics(model, task, weights={})
    other, _ = random_masks(uniform_model, "attn", seed=0)
    with pytest.raises(ValueError, match="made for another model"):
        attention_metrics(model, task, masks=other)
    with pytest.raises(ValueError, match="one \\(start, end\\) character span or None per"):
        attention_metrics(model, ["a b", "c d"], answer_spans=[(0, 1)])
    with pytest.raises(ValueError, match="answer_spans is taken from the instances"):
        attention_metrics(model, task, answer_spans=[None] * 3)
    with pytest.raises(ValueError, match="non-empty list of prompt strings"):
        attention_metrics(model, [])
    with pytest.raises(ValueError, match="must all be strings, TaskInstances"):
        attention_metrics(model, ["a", 3])
    with pytest.raises(ValueError, match=r"RepeatedTokens\.length must be an int >= 2"):
        RepeatedTokens(length=1)
    with pytest.raises(ValueError, match="non-empty dict label -> PruneResult"):
        attention_drift(model, [task], {})
    with pytest.raises(ValueError, match="expected a PruneResult, a MaskSet"):
        attention_drift(model, [task], {"x": 3})
    with pytest.raises(ValueError, match="max_prompts must be None or an int >= 1"):
        attention_drift(model, [task], {"x": masks}, max_prompts=0)
    assert weights_digest(model) == before
    # a model that is already pruned cannot be the dense reference
    with pruned(model, masks):
        with pytest.raises(ValueError, match=r"already has .* pruned site"):
            attention_metrics(model, task, masks=masks)
        # without masks it is measured as it is, and labelled so
        df = attention_metrics(model, task)
        assert set(df["model"]) == {"pruned"}
    restore(model)
    assert weights_digest(model) == before
    assert isinstance(df, pd.DataFrame)


# ---------------------------------------------------------------------------------------
# The shipped organism (skipped when data/organism is absent)
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def organism():
    from lenskit.models import ModelLoadError, organism_path

    try:
        organism_path()
    except ModelLoadError:
        pytest.skip("the organism is not shipped in data/organism")
    return load_model("organism")


def test_organism_copy_heads_and_drift(organism):
    model = organism
    task = organism_suite(model, size="small")["open_book"].subset(24, seed=0)
    pr = Pruner(model, "magnitude", scope="attn")
    results = {"attn 30%": pr.prune(0.3), "attn 70%": pr.prune(0.7)}
    drift = attention_drift(model, [task], results, repeats=None)
    span = drift[(drift.metric == "span_mass") & (drift.config == "attn 30%")]
    tok = model_info(model).tokenizer
    _, lengths = encode_prompts(tok, [i.prompt for i in task.instances])
    spans = [token_span(tok, i.prompt, i.answer_span) for i in task.instances]
    uniform = np.mean([(e - s) / n for (s, e), n in zip(spans, lengths.tolist(), strict=True)])
    # the organism answers open-book questions by copying: some head puts most of the
    # answer position's attention on the answer stated in the passage (chance: ~3%)
    assert span["dense"].max() > 0.5 > 10 * uniform
    js = drift[(drift.metric == "js") & (drift.queries == "all")].groupby("config")["value"]
    assert js.mean()["attn 70%"] > js.mean()["attn 30%"] > 0


def test_layer_subset_and_perplexity_windows(sharp_model, suite):
    model = sharp_model
    task = suite["open_book"].subset(6, seed=8)
    full = attention_metrics(model, task)
    only = attention_metrics(model, task, layers=[0])  # the forward stops after layer 0
    assert set(only["layer"]) == {0}
    np.testing.assert_allclose(only["value"], full[full.layer == 0]["value"], atol=1e-6)
    windows = suite["perplexity"]
    df = attention_metrics(model, windows, batch_size=8)
    assert set(df["queries"]) == {"all"}  # a window has no answer position
    n_all = int(df["n"].iloc[0])
    assert n_all == sum(len(w.tokens) - 1 for w in windows.instances)
