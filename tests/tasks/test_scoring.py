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
    with pytest.raises(ValueError, match="a shared prefix needs the HF backend and no probe"):
        score_qa(sharp_backends["gpt2"], [[5]], [[6]], batch_size=1, max_new_tokens=2,
                 stop_mask=torch.zeros(sharp_backends["gpt2"].vocab_size, dtype=torch.bool),
                 pad_id=0, decode="cache", prefix=[4], probe=object())
