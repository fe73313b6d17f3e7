"""PatternStats on hand-made attention patterns: every metric against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from lenskit.analysis.attention_stats import BatchLayout, PatternStats, row_metrics


def causal_softmax(scores: torch.Tensor) -> torch.Tensor:
    t = scores.shape[-1]
    mask = torch.ones(t, t, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)


def entropy_bits(row) -> float:
    return -sum(p * math.log2(p) for p in row if p > 0)


def js_bits(p, r) -> float:
    m = [(a + b) / 2 for a, b in zip(p, r, strict=True)]
    return entropy_bits(m) - (entropy_bits(p) + entropy_bits(r)) / 2


def test_literal_values_of_simple_rows():
    # One query row over 4 keys (the 4th query of a 4-token prompt).
    uniform = [0.25, 0.25, 0.25, 0.25]
    onehot0 = [1.0, 0.0, 0.0, 0.0]
    onehot3 = [0.0, 0.0, 0.0, 1.0]
    half = [0.5, 0.5, 0.0, 0.0]
    rows = torch.tensor([uniform, onehot0, half, onehot3])[None, :, None, :]  # [1, 4, 1, 4]
    pat = torch.zeros(1, 4, 4, 4)
    pat[:, :, 3, :] = rows[:, :, 0, :]
    pat[:, :, :3, 0] = 1.0  # earlier rows: all on the first key (valid causal rows)
    ref = pat.clone()
    ref[:, :, 3, :] = torch.tensor(onehot0)  # reference row: all mass on key 0
    stats = PatternStats(1, 4)
    stats.add(0, pat, BatchLayout(torch.tensor([4])), ref)
    ent = stats.mean("entropy", "answer")[0]
    # uniform over the 4 visible keys: exactly 1; one-hot: 0; half/half: ln2/ln4 = 1/2
    assert ent.tolist() == pytest.approx([1.0, 0.0, 0.5, 0.0], abs=1e-7)
    assert stats.mean("sink", "answer")[0].tolist() == pytest.approx([0.25, 1.0, 0.5, 0.0])
    js = stats.mean("js", "answer")[0].tolist()
    # identical rows: 0 bits; disjoint one-hots: 1 bit; uniform vs one-hot and half vs
    # one-hot by hand
    assert js[1] == pytest.approx(0.0, abs=1e-7) and js[3] == pytest.approx(1.0, abs=1e-6)
    assert js[0] == pytest.approx(js_bits(uniform, onehot0), abs=1e-6)
    assert js[2] == pytest.approx(js_bits(half, onehot0), abs=1e-6)
    # m = (3/4, 1/4): H(m) = 3/4 log2(4/3) + 1/4 * 2 bits; H(half) = 1, H(one-hot) = 0
    assert js[2] == pytest.approx(0.75 * math.log2(4 / 3) + 0.5 - 0.5, abs=1e-6)
    assert stats.counts[("entropy", "answer")][0] == 1
    # "all" averages queries 1..3; rows 1 and 2 put everything on key 0: entropy 0, sink 1
    ent_all = stats.mean("entropy", "all")[0].tolist()
    assert ent_all == pytest.approx([v / 3 for v in [1.0, 0.0, 0.5, 0.0]], abs=1e-7)
    assert stats.counts[("entropy", "all")][0] == 3


def _hand_metrics(pat, ref, lengths, spans):
    """Loop-by-loop reference of every metric (pure Python floats)."""
    b_n, h_n = pat.shape[:2]
    out = {}
    for h in range(h_n):
        acc = {k: [] for k in ("ent", "sink", "js", "ent_a", "sink_a", "js_a", "span")}
        for b in range(b_n):
            n = int(lengths[b])
            for q in range(1, n):
                row = pat[b, h, q, : q + 1].tolist()
                rrow = ref[b, h, q, : q + 1].tolist()
                e = entropy_bits(row) / math.log2(q + 1)
                acc["ent"].append(e)
                acc["sink"].append(row[0])
                acc["js"].append(js_bits(row, rrow))
                if q == n - 1:
                    acc["ent_a"].append(e)
                    acc["sink_a"].append(row[0])
                    acc["js_a"].append(js_bits(row, rrow))
                    if spans[b] is not None:
                        s, e2 = spans[b]
                        acc["span"].append(sum(row[s:e2]))
        out[h] = {k: sum(v) / len(v) for k, v in acc.items()}
    return out


def test_random_padded_batch_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    b, h, t = 3, 2, 6
    lengths = torch.tensor([6, 4, 2])
    pat = causal_softmax(torch.randn(b, h, t, t, generator=g) * 2)
    ref = causal_softmax(torch.randn(b, h, t, t, generator=g) * 2)
    spans = [(1, 3), None, (0, 1)]
    span = torch.zeros(b, t, dtype=torch.bool)
    span[0, 1:3] = True
    span[2, 0:1] = True
    stats = PatternStats(2, h)
    stats.add(1, pat, BatchLayout(lengths, span), ref)
    hand = _hand_metrics(pat, ref, lengths, spans)
    names = {("entropy", "all"): "ent", ("sink", "all"): "sink", ("js", "all"): "js",
             ("entropy", "answer"): "ent_a", ("sink", "answer"): "sink_a",
             ("js", "answer"): "js_a", ("span_mass", "answer"): "span"}
    for key, name in names.items():
        got = stats.mean(*key)
        assert torch.isnan(got[0]).all()  # layer 0 was never fed
        assert got[1].tolist() == pytest.approx([hand[k][name] for k in range(h)], abs=2e-6), key
    # counts: queries 1..L-1 of each row; one answer per row; spans on rows 0 and 2
    assert stats.counts[("entropy", "all")][1] == 5 + 3 + 1
    assert stats.counts[("sink", "answer")][1] == 3
    assert stats.counts[("span_mass", "answer")][1] == 2
    rec = list(stats.records())
    assert {r["layer"] for r in rec} == {1} and len(rec) == 7 * h


def test_pad_query_rows_and_accumulation_over_batches():
    g = torch.Generator().manual_seed(1)
    pat = causal_softmax(torch.randn(2, 3, 5, 5, generator=g))
    lengths = torch.tensor([5, 3])
    a = PatternStats(1, 3)
    a.add(0, pat, BatchLayout(lengths), pat)
    # pad query rows (row 1, queries 3-4) hold something else entirely: nothing changes
    other = pat.clone()
    other[1, :, 3:, :] = torch.softmax(torch.randn(3, 2, 5, generator=g), -1)
    b = PatternStats(1, 3)
    b.add(0, other, BatchLayout(lengths), other)
    for key in a.pairs():
        assert torch.equal(a.mean(*key), b.mean(*key))
    # the same rows fed one at a time (unpadded) give the same averages
    c = PatternStats(1, 3)
    c.add(0, pat[:1], BatchLayout(lengths[:1]), pat[:1])
    c.add(0, pat[1:, :, :3, :3], BatchLayout(lengths[1:]), pat[1:, :, :3, :3])
    for key in a.pairs():
        assert torch.allclose(a.mean(*key), c.mean(*key), atol=1e-7)
    assert a.mean("js", "all").abs().max() < 1e-6  # a pattern against itself


def test_repeat_scores_by_hand_and_on_an_exact_induction_pattern():
    p0, n = 1, 4
    t = p0 + 2 * n
    g = torch.Generator().manual_seed(2)
    pat = causal_softmax(torch.randn(2, 2, t, t, generator=g) * 3)
    stats = PatternStats(1, 2)
    stats.add(0, pat, BatchLayout(torch.tensor([t, t]), answers=False, repeat=(p0, n)))
    ind = [sum(float(pat[b, h, q, q - n + 1]) for b in range(2) for q in range(p0 + n, t)) /
           (2 * n) for h in range(2)]
    prev = [sum(float(pat[b, h, q, q - 1]) for b in range(2) for q in range(p0 + 1, t)) /
            (2 * (2 * n - 1)) for h in range(2)]
    assert stats.mean("induction", "repeat")[0].tolist() == pytest.approx(ind, abs=1e-7)
    assert stats.mean("prev_token", "repeat")[0].tolist() == pytest.approx(prev, abs=1e-7)
    assert ("entropy", "answer") not in stats.pairs()  # no answer position on repeats
    # head 0: a perfect induction head on the second copy, previous-token head elsewhere
    exact = torch.zeros(1, 2, t, t)
    exact[0, :, 0, 0] = 1
    for q in range(1, t):
        exact[0, 0, q, q - n + 1 if q >= p0 + n else q - 1] = 1
        exact[0, 1, q, q - 1] = 1
    s = PatternStats(1, 2)
    s.add(0, exact, BatchLayout(torch.tensor([t]), answers=False, repeat=(p0, n)))
    assert s.mean("induction", "repeat")[0].tolist() == pytest.approx([1.0, 0.0])
    # head 0 attends to the previous token on queries 1..4 of the 7 counted; head 1 always
    assert s.mean("prev_token", "repeat")[0].tolist() == pytest.approx([(n - 1) / 7, 1.0])


def test_row_metrics_js_is_symmetric_and_bounded():
    g = torch.Generator().manual_seed(3)
    p = causal_softmax(torch.randn(2, 2, 7, 7, generator=g) * 4)
    r = causal_softmax(torch.randn(2, 2, 7, 7, generator=g) * 4)
    a, b = row_metrics(p, r)["js"], row_metrics(r, p)["js"]
    assert torch.allclose(a, b, atol=1e-6)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert float(a[..., 1:].max()) > 0.05  # sharp random patterns do differ
    assert torch.equal(row_metrics(p)["sink"], p[..., 0])
    with pytest.raises(ValueError, match="reference pattern has shape"):
        row_metrics(p, r[:, :, :5, :5])


def test_bad_inputs():
    with pytest.raises(ValueError, match="lengths must be"):
        BatchLayout(torch.tensor([3, 0]))
    with pytest.raises(ValueError, match="span must be"):
        BatchLayout(torch.tensor([3]), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="repeat"):
        BatchLayout(torch.tensor([7, 9]), repeat=(1, 4))
    with pytest.raises(ValueError, match="n_layers and n_heads"):
        PatternStats(0, 2)
    stats = PatternStats(2, 2)
    pat = causal_softmax(torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"layer 2 is outside 0\.\.1"):
        stats.add(2, pat, BatchLayout(torch.tensor([3])))
    with pytest.raises(ValueError, match=r"\[batch, 2 heads, query, key\]"):
        stats.add(0, pat.repeat(1, 2, 1, 1), BatchLayout(torch.tensor([3])))
    with pytest.raises(ValueError, match="does not fit a batch"):
        stats.add(0, pat, BatchLayout(torch.tensor([3, 3])))
    with pytest.raises(ValueError, match="no 'js' at 'all'"):
        stats.mean("js", "all")


@pytest.mark.parametrize("width", [5, 33, 70, 131])
def test_blocked_rows_match_a_direct_computation(width):
    """The blocked computation (upper triangle skipped) against xlogy over full rows."""
    g = torch.Generator().manual_seed(width)
    p = causal_softmax(torch.randn(2, 3, width, width, generator=g, dtype=torch.float64) * 3)
    r = causal_softmax(torch.randn(2, 3, width, width, generator=g, dtype=torch.float64) * 3)
    rows = row_metrics(p, r)
    negent = torch.special.xlogy(p, p).sum(-1)
    m = (p + r) / 2
    js = (torch.special.xlogy(m, m).sum(-1) * -1
          + 0.5 * (negent + torch.special.xlogy(r, r).sum(-1))) / math.log(2)
    assert torch.allclose(rows["negent"], negent, atol=1e-12)
    assert torch.allclose(rows["js"], js.clamp(0, 1), atol=1e-12)
