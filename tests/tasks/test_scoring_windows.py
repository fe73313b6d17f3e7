"""Perplexity scoring of windows (``scoring.score_windows``) against plain HF forward passes.

The expected value of a window is computed here, from the causal LM's own logits of the
window alone (no padding, no batching, no lenskit code): the sum over its scored tokens
``j >= score_from`` of ``log p(token j | tokens < j)``, i.e. minus
``torch.nn.functional.cross_entropy`` of the logits at positions ``score_from - 1 ..
len - 2`` against tokens ``score_from .. len - 1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lenskit.models import load_model, make_tiny_model, model_info
from lenskit.tasks import perplexity_task, scoring
from lenskit.tasks.scoring import BridgeBackend, HFBackend, score_windows


@pytest.fixture(scope="module")
def window_dirs(tmp_path_factory) -> dict:
    """gpt2 (learned absolute positions) and llama (rotary, grouped-query attention)."""
    root = tmp_path_factory.mktemp("windows")
    return {f: make_tiny_model(f, root / f) for f in ("gpt2", "llama")}


def _plain_hf(hf, windows, score_from, *, logits_of=None, dtype=torch.float64) -> np.ndarray:
    """Sum of log p(token) over each window's scored tokens, one unpadded window at a time,
    from ``hf``'s logits (or ``logits_of(ids)``'s), cast to ``dtype``."""
    out = []
    with torch.no_grad():
        for w, sf in zip(windows, score_from, strict=True):
            ids = torch.tensor([list(w)])
            logits = (hf(input_ids=ids).logits if logits_of is None else logits_of(ids))[0]
            logits = logits.to(dtype)
            nll = torch.nn.functional.cross_entropy(logits[sf - 1 : len(w) - 1],
                                                    torch.tensor(list(w[sf:])),
                                                    reduction="sum")
            out.append(-float(nll))
    return np.array(out)


def _windows(vocab: int, seed: int):
    """Windows of 2 to 12 tokens (every batch of more than one is right-padded), scored
    from their second token, from a middle one or only at their last."""
    g = torch.Generator().manual_seed(seed)
    lengths = [7, 2, 12, 5, 9, 3, 12, 6]
    windows = [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths]
    score_from = [1, 1, 5, 4, 1, 2, 11, 3]
    return windows, score_from


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_score_windows_equals_plain_hf_cross_entropy(window_dirs, family, monkeypatch):
    """Every window's log-probability sum equals the plain HF one, in the input order, with
    batches of 1, 2, 3 and all rows, padded with a real token id or 0, and with the LM head
    applied to three scored positions at a time (several chunks per batch)."""
    hf = AutoModelForCausalLM.from_pretrained(window_dirs[family]).eval()
    backend = HFBackend(hf)
    windows, score_from = _windows(backend.vocab_size, seed=0)
    expected = _plain_hf(hf, windows, score_from)
    # the check has teeth: the same tokens scored with one token less of context (every
    # position shifted by one) change the sums by far more than the tolerance
    shifted = _plain_hf(hf, [w[1:] for w in windows[2:4]], [sf - 1 for sf in score_from[2:4]])
    assert np.abs(shifted - expected[2:4]).min() > 1e-2
    with torch.no_grad():
        for batch_size in (1, 2, 3, 16):
            for pad in (0, windows[0][0]):
                got = score_windows(backend, windows, score_from, batch_size=batch_size,
                                    pad_id=pad)
                assert got.dtype == np.float64 and got.shape == (len(windows),)
                np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0,
                                           err_msg=f"{family} batch {batch_size} pad {pad}")
        # the scored positions turned into log-probabilities three at a time
        monkeypatch.setattr(scoring, "_HEAD_CHUNK_ELEMENTS", 3 * backend.vocab_size + 1)
        got = score_windows(backend, windows, score_from, batch_size=3, pad_id=0)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        empty = score_windows(backend, [], [], batch_size=3, pad_id=0)
    assert empty.dtype == np.float64 and empty.shape == (0,)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_score_windows_through_the_bridge_equals_plain_hf(window_dirs, family, monkeypatch):
    """Through the TransformerBridge (hooks apply) the sums equal plain HF forward passes of
    the same weights, in batches and in chunks of scored positions; a bfloat16 bridge's
    logits are turned into log-probabilities in float32, not in bfloat16 (checked against
    the bridge's own logits of each window: TransformerLens' forward, not lenskit's)."""
    bridge = load_model(window_dirs[family])
    hf = model_info(bridge).hf
    vocab = hf.config.vocab_size
    backend = BridgeBackend(bridge, vocab)
    windows, score_from = _windows(vocab, seed=1)
    expected = _plain_hf(hf, windows, score_from)
    with torch.no_grad():
        for batch_size in (1, 3):
            got = score_windows(backend, windows, score_from, batch_size=batch_size,
                                pad_id=0)
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        with monkeypatch.context() as m:
            m.setattr(scoring, "_HEAD_CHUNK_ELEMENTS", 3 * vocab + 1)
            got = score_windows(backend, windows, score_from, batch_size=4, pad_id=0)
            np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        # bfloat16 weights, one window per batch (no padding: the same pass as the oracle's)
        half = load_model(window_dirs[family], dtype=torch.bfloat16)

        def logits_of(ids):
            return half(ids, return_type="logits")

        want = _plain_hf(None, windows, score_from, logits_of=logits_of)
        # teeth: log-probabilities taken in bfloat16 are off by more than the tolerance
        rough = _plain_hf(None, windows, score_from, logits_of=logits_of, dtype=torch.bfloat16)
        assert np.abs(rough - want).max() > 1e-2
        got = score_windows(BridgeBackend(half, vocab), windows, score_from, batch_size=1,
                            pad_id=0)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_score_windows_of_overlapping_windows_with_a_bos(window_dirs):
    """Windows as ``perplexity_task`` cuts a text (llama's tokenizer prepends a BOS: every
    token is scored once, the overlap with the previous window is context) and as it cuts
    token lists without a BOS (a document's first token is context): each window's sum equals
    the plain HF one, and with a BOS a document that fits one window is scored in full,
    its first token given the BOS alone."""
    path = window_dirs["llama"]
    tok = AutoTokenizer.from_pretrained(path)
    hf = AutoModelForCausalLM.from_pretrained(path).eval()
    backend = HFBackend(hf)
    text = " ".join(["The capital of Brirul is red ."] * 4)
    doc = tok(text, add_special_tokens=False)["input_ids"]
    task = perplexity_task(text, tok, window=10, stride=6)
    windows = [w.tokens for w in task]
    score_from = [w.score_from for w in task]
    assert len(windows) > 3 and score_from[0] == 1 and max(score_from) > 1
    raw = perplexity_task([doc[:9], doc[9:14]], window=4, stride=3)
    windows += [w.tokens for w in raw]
    score_from += [w.score_from for w in raw]
    expected = _plain_hf(hf, windows, score_from)
    with torch.no_grad():
        got = score_windows(backend, windows, score_from, batch_size=3, pad_id=tok.pad_token_id)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        # one window holding the whole short document after its BOS: the document's NLL
        short = doc[:8]
        whole = score_windows(backend, [[tok.bos_token_id, *short]], [1], batch_size=1,
                              pad_id=0)
        logits = hf(input_ids=torch.tensor([[tok.bos_token_id, *short]])).logits[0, :-1]
        nll = torch.nn.functional.cross_entropy(logits.double(), torch.tensor(short),
                                                reduction="sum")
    assert whole[0] == pytest.approx(-float(nll), abs=1e-4)


def test_score_windows_batches_longest_first_one_pass_each(window_dirs):
    """Rows are batched longest first, ties in input order (the order that
    ``runners.run_perplexity`` relies on when it calls the scorer one batch at a time to
    advance a progress bar: the same batches as one call), one forward pass per batch of
    ``batch_size`` rows, each right-padded to its longest row; no pass keeps a key-value
    cache (nothing is decoded after a window: a cache would hold every layer's keys and
    values of the whole batch for nothing). The passes are recorded by hooks on the base
    model."""
    hf = AutoModelForCausalLM.from_pretrained(window_dirs["llama"]).eval()
    backend = HFBackend(hf)
    g = torch.Generator().manual_seed(2)
    lengths = [3, 5, 8, 5, 3, 8, 5, 3, 8, 3, 5, 8]  # ties across every batch boundary
    windows = [torch.randint(4, backend.vocab_size, (n,), generator=g).tolist()
               for n in lengths]
    seen, caches = [], []

    def record(module, args, kwargs):
        seen.append(kwargs["input_ids"].tolist())

    handles = [backend.base.register_forward_pre_hook(record, with_kwargs=True),
               backend.base.register_forward_hook(lambda m, a, out: caches.append(out.cache))]
    try:
        with torch.no_grad():
            score_windows(backend, windows, [1] * len(windows), batch_size=5, pad_id=0)
    finally:
        for h in handles:
            h.remove()
    assert caches == [None, None, None]
    order = sorted(range(len(windows)), key=lambda i: -lengths[i])  # a stable sort
    assert order == [2, 5, 8, 11, 1, 3, 6, 10, 0, 4, 7, 9]
    expected = []
    for start in range(0, len(windows), 5):
        rows = order[start:start + 5]
        width = lengths[rows[0]]
        expected.append([windows[i] + [0] * (width - lengths[i]) for i in rows])
    assert seen == expected
