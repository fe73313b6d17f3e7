"""The scorer's batching: prompt passes split by width, their caches merged for decoding,
finished rows leaving the decoding batch. Results must not depend on any of it."""

import itertools

import numpy as np
import pytest

from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import QAItem, evaluate, organism_suite, scoring, templated_task
from lenskit.tasks.scoring import prefill_chunks


def _brute_force(sizes, pass_cost):
    n = len(sizes)
    best = float("inf")
    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            bounds = [0, *cuts, n]
            cost = sum(pass_cost + sizes[a] * (b - a) for a, b in itertools.pairwise(bounds))
            best = min(best, cost)
    return best


@pytest.mark.parametrize("pass_cost", [0.0, 3.0, 14.0, 1e9, float("inf")])
def test_prefill_chunks_are_optimal_and_cover_every_row(pass_cost):
    rng = np.random.default_rng(0)
    for _ in range(20):
        sizes = sorted(rng.integers(1, 40, size=int(rng.integers(1, 9))).tolist(), reverse=True)
        chunks = prefill_chunks(sizes, pass_cost)
        assert chunks[0][0] == 0 and chunks[-1][1] == len(sizes)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
        cost = sum(pass_cost + sizes[a] * (b - a) for a, b in chunks)
        assert cost == pytest.approx(_brute_force(sizes, pass_cost))
    assert prefill_chunks([30, 29, 5, 4], 1e9) == [(0, 4)]
    assert prefill_chunks([30, 29, 5, 4], 3.0) == [(0, 2), (2, 4)]


def _fewshot():
    suite = organism_suite(WorldConfig().build(), size="small", seed=0)
    out = {}
    for kind in ("closed_book", "open_book", "overriding"):
        items = []
        for inst in list(suite[kind])[:12]:
            lines = inst.prompt.split("\n")
            context = "\n".join(lines[:-2]) if kind != "closed_book" else None
            items.append(QAItem(lines[-2][len("Q: "):], inst.answers, context=context,
                                memorised_answer=inst.memorised_answer, id=inst.id))
        out[kind] = templated_task(kind, items, shots=2, template="qa")
    out["zero_shot"] = suite["open_book"].subset(10, seed=4)  # no shared prefix
    return out


def _assert_same(a, b):
    x, y = a.rows, b.rows
    for col in ("prediction", "gold_rank", "generated_tokens", "stopped",
                "first_token_correct"):
        assert list(x[col]) == list(y[col]), col
    np.testing.assert_allclose(x["logprob"], y["logprob"], atol=1e-4, rtol=0)


def test_split_prompt_passes_and_merged_caches_give_the_same_results(tiny_model,
                                                                     monkeypatch):
    """Every distinct width its own pass (pass cost 0), caches merged for decoding, with
    and without a shared prefix, against one pass per batch and against re-running."""
    tasks = _fewshot()
    whole = {k: evaluate(tiny_model, t, batch_size=8, n_bootstrap=0) for k, t in tasks.items()}
    rerun = {k: evaluate(tiny_model, t, batch_size=8, n_bootstrap=0, decode="rerun")
             for k, t in tasks.items()}
    calls = []
    split = scoring.prefill_chunks

    def counting(sizes, pass_cost):
        out = split(sizes, pass_cost)
        calls.append(len(out))
        return out

    monkeypatch.setattr(scoring, "_pass_cost", lambda backend: 0.0)
    monkeypatch.setattr(scoring, "prefill_chunks", counting)
    for k, t in tasks.items():
        res = evaluate(tiny_model, t, batch_size=8, n_bootstrap=0)
        _assert_same(res, whole[k])
        _assert_same(res, rerun[k])
    assert max(calls) > 1  # the batches were really split


def test_unmergeable_caches_decode_chunk_by_chunk(tiny_model, monkeypatch):
    tasks = _fewshot()
    whole = {k: evaluate(tiny_model, t, batch_size=8, n_bootstrap=0) for k, t in tasks.items()}
    monkeypatch.setattr(scoring, "_pass_cost", lambda backend: 0.0)
    monkeypatch.setattr(scoring, "_cache_tensors", lambda cache: None)
    for k, t in tasks.items():
        _assert_same(evaluate(tiny_model, t, batch_size=8, n_bootstrap=0), whole[k])


def test_merged_caches_step_like_one_pass(tiny_model):
    """Decoding logits on caches of separately run chunks, merged, equal those on the cache
    of one pass over all rows (every family; the decoding mask hides the merge padding)."""
    import torch

    from lenskit.models import model_info
    from lenskit.tasks.encoding import pad_right

    backend = scoring.HFBackend(model_info(tiny_model).hf)
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(3, 60, (n,), generator=g).tolist() for n in (9, 8, 4, 3, 2)]
    lengths = torch.tensor([len(r) for r in rows])
    nxt = torch.tensor([5, 6, 7, 8, 9])
    with torch.inference_mode():
        ids, _ = pad_right(rows, 0)
        _, whole = backend.hidden(ids)
        parts, widths = [], []
        for lo, hi in [(0, 2), (2, 5)]:
            ids_c, _ = pad_right(rows[lo:hi], 0)
            parts.append(backend.hidden(ids_c)[1])
            widths.append(ids_c.shape[1])
        merged = scoring._merge_caches(parts, widths)
        assert merged is not None
        for cache in (whole, merged):
            assert scoring._cache_tensors(cache)[0][0].shape[2] == 9
        mask = torch.cat([(torch.arange(9)[None] < lengths[:, None]).long(),
                          torch.ones(5, 1, dtype=torch.long)], 1)
        ref, _ = backend.step(whole, nxt, mask, lengths)
        got, merged = backend.step(merged, nxt, mask, lengths)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        # rows leave the batch: the kept rows' next step is unchanged
        keep = torch.tensor([0, 3])
        assert scoring._select_rows(merged, keep)
        scoring._select_rows(whole, keep)
        mask = torch.cat([mask[keep], torch.ones(2, 1, dtype=torch.long)], 1)
        ref, _ = backend.step(whole, nxt[keep], mask, lengths[keep] + 1)
        got, _ = backend.step(merged, nxt[keep], mask, lengths[keep] + 1)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_caches_in_the_layout_before_transformers_4_56():
    """transformers < 4.56 (allowed by the pin) keeps a dynamic cache's tensors in two lists,
    ``key_cache`` and ``value_cache``, one entry per layer: they are read, narrowed to the
    kept rows and merged as in the per-layer layout; other caches are not touched."""
    from types import SimpleNamespace

    import torch

    g = torch.Generator().manual_seed(0)

    def legacy(batch, width):  # [batch, heads, width, head_dim] per layer, two layers
        return SimpleNamespace(
            key_cache=[torch.randn(batch, 2, width, 3, generator=g) for _ in range(2)],
            value_cache=[torch.randn(batch, 2, width, 3, generator=g) for _ in range(2)])

    a, b = legacy(2, 5), legacy(3, 4)
    keys_a, values_a = list(a.key_cache), list(a.value_cache)
    keys_b, values_b = list(b.key_cache), list(b.value_cache)
    got = scoring._cache_tensors(a)
    assert len(got) == 2
    for layer in range(2):
        assert got[layer][0] is keys_a[layer] and got[layer][1] is values_a[layer]
    merged = scoring._merge_caches([a, b], [5, 4])
    assert merged is a
    for layer in range(2):
        for mine, first, second in ((merged.key_cache, keys_a, keys_b),
                                    (merged.value_cache, values_a, values_b)):
            assert mine[layer].shape == (5, 2, 5, 3)
            assert torch.equal(mine[layer][:2], first[layer])
            assert torch.equal(mine[layer][2:, :, :4], second[layer])
            assert not mine[layer][2:, :, 4].any()  # the narrower chunk's padding column
    full_k = [t.clone() for t in merged.key_cache]
    full_v = [t.clone() for t in merged.value_cache]
    assert scoring._select_rows(merged, torch.tensor([4, 1]))
    for layer in range(2):
        assert torch.equal(merged.key_cache[layer], full_k[layer][[4, 1]])
        assert torch.equal(merged.value_cache[layer], full_v[layer][[4, 1]])
    # a cache that is neither layout (keys without values, no lists) is left alone
    for other in (SimpleNamespace(key_cache=keys_b, value_cache=None),
                  SimpleNamespace(key_cache=None, value_cache=values_b), SimpleNamespace()):
        assert scoring._cache_tensors(other) is None
        assert not scoring._select_rows(other, torch.tensor([0]))
    assert scoring._merge_caches([legacy(1, 2), SimpleNamespace()], [2, 2]) is None
