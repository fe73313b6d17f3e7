"""Scoring and greedy decoding with a shared-prefix cache equal plain uncached decoding of
the full prompts, on every family, at several prefix lengths, with padded batches.

The tiny random models are made position-sensitive first (every weight matrix x10): with
their near-uniform attention a wrong position offset after the prefix changes the
log-probabilities of the rotary families (gpt_neox, llama) by only ~1e-4 and no greedy
token, so an offset error would go unnoticed there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from lenskit.tasks import scoring
from lenskit.tasks.scoring import HFBackend, score_qa


@pytest.fixture(scope="module")
def sharp_backends(tiny_dirs):
    out = {}
    for family, path in tiny_dirs.items():
        hf = AutoModelForCausalLM.from_pretrained(path).eval()
        with torch.no_grad():
            for p in hf.parameters():
                if p.dim() == 2:
                    p.mul_(10.0)
        out[family] = HFBackend(hf)
    return out


def _score(backend, prompts, golds, prefix=None, decode="cache"):
    stop = torch.zeros(backend.vocab_size, dtype=torch.bool)
    with torch.no_grad():
        return score_qa(backend, prompts, golds, batch_size=4, max_new_tokens=6,
                        stop_mask=stop, pad_id=0, decode=decode, prefix=prefix)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt", "llama"])
def test_prefix_cache_equals_uncached_decoding(sharp_backends, family):
    backend = sharp_backends[family]
    g = torch.Generator().manual_seed(0)
    vocab = backend.vocab_size

    def draw(n):
        return torch.randint(4, vocab, (int(n),), generator=g).tolist()

    for n_prefix in (1, 7, 20):
        prefix = draw(n_prefix)
        # suffixes of 1..8 tokens in batches of 4: every batch is right-padded
        suffixes = [draw(n) for n in torch.randint(1, 9, (9,), generator=g)]
        golds = [draw(n) for n in torch.randint(1, 4, (9,), generator=g)]
        assert len({len(s) for s in suffixes}) > 2
        full = _score(backend, [prefix + s for s in suffixes], golds)
        for decode in ("cache", "rerun"):
            cached = _score(backend, suffixes, golds, prefix, decode)
            assert cached.generated == full.generated, (family, n_prefix, decode)
            assert np.array_equal(cached.first_token, full.first_token)
            assert np.array_equal(cached.gold_rank, full.gold_rank)
            np.testing.assert_allclose(cached.logprob, full.logprob, atol=1e-4, rtol=0)
        # The uncached batch itself equals one prompt at a time (no padding at all).
        alone = [_score(backend, [prefix + s], [gd], decode="rerun")
                 for s, gd in zip(suffixes, golds, strict=True)]
        assert [a.generated[0] for a in alone] == full.generated
        np.testing.assert_allclose([a.logprob[0] for a in alone], full.logprob, atol=1e-4,
                                   rtol=0)
    # The check has teeth: these models' outputs depend on the positions of the suffix
    # (the same suffixes without their prefix decode differently).
    assert _score(backend, suffixes, golds).generated != full.generated


def test_a_prefix_needs_the_hf_backend_without_probe(sharp_backends):
    with pytest.raises(ValueError, match=r"^a shared prefix needs the HF backend and no probe$"):
        score_qa(sharp_backends["gpt2"], [[5]], [[6]], batch_size=1, max_new_tokens=2,
                 stop_mask=torch.zeros(sharp_backends["gpt2"].vocab_size, dtype=torch.bool),
                 pad_id=0, decode="cache", prefix=[4], probe=object())


def _plain_hf(hf, prompts, golds, max_new, stop):
    """The expected fields of :class:`QAScores`, row by row, from plain HF forward passes of
    each full, unpadded row (no batching, no key-value cache, no lenskit code): the gold's
    teacher-forced log-probability, the first greedy token, the gold's first-token rank
    (1 + the tokens scored above it) and greedy decoding by re-running the growing row."""
    gen, stopped, lp, rank, first = [], [], [], [], []
    for p, g in zip(prompts, golds, strict=True):
        logits = hf(torch.tensor([list(p) + list(g[:-1])])).logits[0]
        at = logits[len(p) - 1 :]  # position len(p) - 1 + j predicts gold token j
        logp = torch.log_softmax(at.double(), -1)
        lp.append(sum(float(logp[j, t]) for j, t in enumerate(g)))
        rank.append(1 + int((at[0] > at[0, g[0]]).sum()))
        first.append(int(at[0].argmax()))
        seq, out = list(p), [first[-1]]
        while not stop[out[-1]] and len(out) < max_new:
            seq.append(out[-1])
            out.append(int(hf(torch.tensor([seq])).logits[0, -1].argmax()))
        gen.append(out)
        stopped.append(bool(stop[out[-1]]))
    return gen, np.array(stopped), np.array(lp), np.array(rank), np.array(first)


def _stop_tokens(free, max_new):
    """Two stop tokens, drawn from the undisturbed greedy rows ``free``, that end some row
    at its first token, another after a middle one, and leave a row running to ``max_new``
    (the first such pair in the rows' order)."""
    firsts = list(dict.fromkeys(row[0] for row in free))
    middles = list(dict.fromkeys(t for row in free for t in row[1:-1]))
    for a in firsts:
        for b in middles:
            ends = [next((k + 1 for k, t in enumerate(row) if t in (a, b)), None)
                    for row in free]
            if 1 in ends and None in ends and any(1 < e < max_new for e in ends if e):
                return [a, b]
    raise AssertionError(f"no stop tokens split these rows three ways: {free}")


def _assert_plain(got, expected, what):
    gen, stopped, lp, rank, first = expected
    assert got.generated == gen, what
    assert (got.stopped.dtype, got.gold_rank.dtype, got.first_token.dtype,
            got.logprob.dtype) == (np.bool_, np.int64, np.int64, np.float64), what
    assert got.stopped.tolist() == stopped.tolist(), what
    assert got.first_token.tolist() == first.tolist(), what
    assert got.gold_rank.tolist() == rank.tolist(), what
    np.testing.assert_allclose(got.logprob, lp, atol=1e-4, rtol=0, err_msg=str(what))


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt", "llama"])
def test_score_qa_equals_plain_hf_forward_passes(sharp_backends, family, monkeypatch):
    """Every field of score_qa against plain HF forward passes of each unpadded row, with
    stop tokens that end rows at their first, a middle or no token (rows leave the decoding
    batch at different steps), with and without a shared prefix, decoding on the cache and
    by re-running, with prompt passes split by width (caches merged, or decoded chunk by
    chunk when they cannot be merged), and with a single new token."""

    backend = sharp_backends[family]
    hf = backend.hf
    g = torch.Generator().manual_seed(1)
    vocab = backend.vocab_size

    def draw(n):
        return torch.randint(4, vocab, (int(n),), generator=g).tolist()

    max_new = 6
    with torch.no_grad():
        for n_prefix in (0, 7):
            prefix = draw(n_prefix)
            suffixes = [draw(n) for n in torch.randint(1, 9, (9,), generator=g)]
            golds = [draw(n) for n in torch.randint(1, 4, (9,), generator=g)]
            full = [prefix + s for s in suffixes]
            free = _plain_hf(hf, full, golds, max_new, torch.zeros(vocab, dtype=torch.bool))
            stop = torch.zeros(vocab, dtype=torch.bool)
            stop[_stop_tokens(free[0], max_new)] = True
            expected = _plain_hf(hf, full, golds, max_new, stop)
            lengths = {len(x) for x in expected[0]}
            # the check has teeth: rows stop at their first token, later, and not at all
            assert 1 in lengths and max_new in lengths and len(lengths) > 2, expected[0]
            assert not expected[1].all() and expected[1].any()
            prompts, pre = (suffixes, prefix) if n_prefix else (full, None)
            # batch sizes: batches of 4, 4 and 1 rows, of 3, of 2 (a prefix expanded to two
            # rows), of 5 and 4
            cases = [("cache", None, 4), ("rerun", None, 3), ("cache", "split", 4),
                     ("rerun", "split", 2), ("cache", "unmergeable", 5), ("cache", None, 2),
                     ("cache", "split", 2)]
            for decode, how, batch in cases:
                with monkeypatch.context() as m:
                    if how is not None:  # every distinct width its own prompt pass
                        m.setattr(scoring, "_pass_cost", lambda backend: 0.0)
                    if how == "unmergeable":
                        m.setattr(scoring, "_cache_tensors", lambda cache: None)
                    got = score_qa(backend, prompts, golds, batch_size=batch,
                                   max_new_tokens=max_new, stop_mask=stop, pad_id=0,
                                   decode=decode, prefix=pre)
                _assert_plain(got, expected, (n_prefix, decode, how, batch))
            one = score_qa(backend, prompts, golds, batch_size=4, max_new_tokens=1,
                           stop_mask=stop, pad_id=0, decode="cache", prefix=pre)
            first = expected[4].tolist()
            _assert_plain(one, ([[t] for t in first], stop[first].numpy(), *expected[2:]),
                          (n_prefix, "one token"))
            two = score_qa(backend, prompts, golds, batch_size=4, max_new_tokens=2,
                           stop_mask=stop, pad_id=0, decode="cache", prefix=pre)
            gen2 = [row[:2] for row in expected[0]]
            _assert_plain(two, (gen2, np.array([bool(stop[r[-1]]) for r in gen2]),
                                *expected[2:]), (n_prefix, "two tokens"))
            # every token stops: each row ends at its first
            every = torch.ones(vocab, dtype=torch.bool)
            for decode in ("cache", "rerun"):
                alls = score_qa(backend, prompts, golds, batch_size=4, max_new_tokens=max_new,
                                stop_mask=every, pad_id=0, decode=decode, prefix=pre)
                _assert_plain(alls, ([[t] for t in first], np.ones(9, dtype=bool),
                                     *expected[2:]), (n_prefix, "all stop", decode))
    # prompts and golds pair up one to one
    with pytest.raises(ValueError, match="shorter than argument 1"):
        score_qa(backend, prompts, golds[:-1], batch_size=4, max_new_tokens=2,
                 stop_mask=stop, pad_id=0, decode="cache")


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt", "llama"])
def test_score_qa_equals_plain_hf_forward_passes_through_the_bridge(tiny_dirs, family):
    """Through the TransformerBridge (the backend that lets hooks act; it decodes by
    re-running), every field equals plain HF forward passes of the same weights."""
    from lenskit.models import load_model, model_info
    from lenskit.tasks.scoring import BridgeBackend

    bridge = load_model(tiny_dirs[family])
    hf = model_info(bridge).hf
    vocab = hf.config.vocab_size
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(4, vocab, (int(n),), generator=g).tolist()
               for n in torch.randint(1, 9, (7,), generator=g)]
    golds = [torch.randint(4, vocab, (int(n),), generator=g).tolist()
             for n in torch.randint(1, 4, (7,), generator=g)]
    with torch.no_grad():
        free = _plain_hf(hf, prompts, golds, 5, torch.zeros(vocab, dtype=torch.bool))
        # these untrained rows repeat one token: stopping on the first row's ends some
        # rows at once and leaves the others to run to the end
        stop = torch.zeros(vocab, dtype=torch.bool)
        stop[free[0][0][0]] = True
        expected = _plain_hf(hf, prompts, golds, 5, stop)
        assert expected[1].any() and not expected[1].all()
        got = score_qa(BridgeBackend(bridge, vocab), prompts, golds, batch_size=3,
                       max_new_tokens=5, stop_mask=stop, pad_id=0, decode="rerun")
    _assert_plain(got, expected, family)


def test_hidden_keeps_a_cache_only_when_asked(sharp_backends):
    """The prompt pass returns the key-value cache for cached decoding and none otherwise
    (re-run decoding and single-token answers do not hold one in memory)."""
    backend = sharp_backends["llama"]
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    with torch.no_grad():
        plain = backend.hf.base_model(input_ids=ids).last_hidden_state
        hidden, cache = backend.hidden(ids, use_cache=False)
        assert cache is None
        torch.testing.assert_close(hidden, plain)
        hidden, cache = backend.hidden(ids)
        torch.testing.assert_close(hidden, plain)
        assert scoring._cache_tensors(cache)[0][0].shape[:3] == (2, 2, 4)


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma2", "cohere", "granite"])
def test_logits_equal_the_models_own_heads(tmp_path, family, monkeypatch):
    """Logits formed from the base model's hidden states equal the causal LM's own logits,
    also where the head scales them (Cohere's logit_scale, Granite's division by
    logits_scaling) or soft-caps them (Gemma-2), in chunks of rows or at once, and for no
    rows at all."""
    from lenskit.models import make_tiny_model

    hf = AutoModelForCausalLM.from_pretrained(make_tiny_model(family, tmp_path / family))
    hf.eval()
    # values far from 1 (and a cap that bends the logits) so that each is visible; 2.0 is
    # where a test of the scale against another constant than 1 would go wrong
    if family == "gemma2":
        hf.config.final_logit_softcapping = 0.05
    if family == "cohere":
        hf.logit_scale = 2.0
    if family == "granite":
        hf.config.logits_scaling = 0.25
    backend = HFBackend(hf)
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]])
    with torch.no_grad():
        want = hf(input_ids=ids).logits.float()
        hidden = backend.base(input_ids=ids).last_hidden_state
        torch.testing.assert_close(backend.logits(hidden), want, atol=1e-5, rtol=1e-5)
        # three rows per chunk: the 10 positions in four chunks
        monkeypatch.setattr(scoring, "_HEAD_CHUNK_ELEMENTS", 3 * backend.vocab_size + 1)
        torch.testing.assert_close(backend.logits(hidden), want, atol=1e-5, rtol=1e-5)
        assert backend.logits(hidden[:, :0]).shape == (2, 0, backend.vocab_size)
    if family == "gemma2":
        assert want.abs().max() < 0.05 and want.abs().max() > 0.04  # the cap bends them


class _Recorder:
    """A prompt probe that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def begin_batch(self, rows, lengths) -> None:
        self.events.append(("batch", list(rows), lengths.tolist()))

    def pattern(self, layer, pattern) -> None:
        self.events.append(("pattern", layer, pattern.clone()))


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "opt", "llama"])
def test_a_probe_sees_every_prompt_pass_and_no_decoding_step(tiny_dirs, family):
    """A probe is told each batch's rows (longest prompt + gold first) and prompt lengths,
    then gets every layer's attention pattern of that batch's one prompt pass, equal to an
    eager HF forward over the same padded rows, and nothing from the decoding steps."""
    from lenskit.models import load_model, model_info
    from lenskit.tasks.probe import observe_prompt_patterns

    info = model_info(load_model(tiny_dirs[family]))
    hf = info.hf
    n_layers = len(hf.get_submodule(info.arch.blocks))
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(4, 60, (int(n),), generator=g).tolist()
               for n in (3, 7, 2, 6, 7, 4, 5)]
    golds = [[5], [6, 7], [8, 9, 10], [11], [12, 13], [14], [15, 16]]
    recorder = _Recorder()
    with torch.no_grad(), observe_prompt_patterns(info, recorder) as switch:
        score_qa(HFBackend(hf), prompts, golds, batch_size=3, max_new_tokens=4,
                 stop_mask=torch.zeros(hf.config.vocab_size, dtype=torch.bool), pad_id=0,
                 decode="cache", probe=switch)
        # by hand: rows by prompt + gold length, longest first (ties in input order)
        order = sorted(range(7), key=lambda i: -(len(prompts[i]) + len(golds[i]) - 1))
        assert order == [1, 4, 3, 6, 2, 5, 0]
        expected = []
        for start in range(0, 7, 3):
            rows = order[start:start + 3]
            seqs = [prompts[i] + golds[i][:-1] for i in rows]
            ids = torch.zeros((len(rows), max(map(len, seqs))), dtype=torch.long)
            for r, s in enumerate(seqs):
                ids[r, :len(s)] = torch.tensor(s)
            expected.append(("batch", rows, [len(prompts[i]) for i in rows]))
            attn = hf(input_ids=ids, output_attentions=True).attentions
            expected += [("pattern", layer, attn[layer]) for layer in range(n_layers)]
    assert len(recorder.events) == len(expected) == 3 * (1 + n_layers)
    for got, want in zip(recorder.events, expected, strict=True):
        assert got[:2] == want[:2]
        if got[0] == "batch":
            assert got[2] == want[2]
        else:
            torch.testing.assert_close(got[2], want[2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("decode", ["cache", "rerun"])
def test_token_id_0_is_generated_and_stops_like_any_other(tiny_dirs, decode):
    """Token id 0 is a real token (GPT-2's "!"): a row that generates it goes on, or stops
    there when it is a stop token. The head's row 0 is set to twice the row of the token the
    model generates most, so that greedy decoding picks id 0 where that token had a positive
    logit."""
    from collections import Counter

    hf = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).eval()
    g = torch.Generator().manual_seed(4)
    vocab = hf.config.vocab_size
    prompts = [torch.randint(4, vocab, (int(n),), generator=g).tolist()
               for n in torch.randint(2, 9, (8,), generator=g)]
    golds = [torch.randint(4, vocab, (2,), generator=g).tolist() for _ in range(8)]
    none = torch.zeros(vocab, dtype=torch.bool)
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() == 2:
                p.mul_(10.0)
        free = _plain_hf(hf, prompts, golds, 6, none)
        top = Counter(t for row in free[0] for t in row).most_common(1)[0][0]
        head = hf.get_output_embeddings().weight
        head[0] = 2 * head[top].clone()
        backend = HFBackend(hf)
        free = _plain_hf(hf, prompts, golds, 6, none)
        assert any(0 in row[:-1] for row in free[0]), free[0]  # id 0 mid-row: teeth
        stop = none.clone()
        stop[0] = True
        ends = _plain_hf(hf, prompts, golds, 6, stop)
        assert any(row[-1] == 0 and len(row) > 1 for row in ends[0]), ends[0]
        for mask, expected in ((none, free), (stop, ends)):
            got = score_qa(backend, prompts, golds, batch_size=3, max_new_tokens=6,
                           stop_mask=mask, pad_id=0, decode=decode)
            _assert_plain(got, expected, decode)
