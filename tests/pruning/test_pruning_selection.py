"""Structures, exact counts, one-sort nested masks, N:M patterns, scores and OWL by hand."""

import itertools
from fractions import Fraction

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lenskit.pruning import parse_structure
from lenskit.pruning.allocation import outlier_ratio, owl_layer_sparsities
from lenskit.pruning.scores import magnitude_scores, random_scores, wanda_scores
from lenskit.pruning.selection import (
    keep_from_ranks,
    keep_lowest,
    lowest_k,
    nm_keep,
    ranks,
    split_flat,
)
from lenskit.pruning.statistics import GroupStats
from lenskit.pruning.structure import Structure, n_to_prune


def test_parse_structure_accepts_unstructured_and_any_n_m():
    assert parse_structure("unstructured").unstructured
    assert parse_structure("2:4") == Structure(2, 4)
    assert parse_structure(" 4 : 8 ") == Structure(4, 8)
    assert parse_structure("3:7").sparsity == pytest.approx(3 / 7)
    assert str(parse_structure("2:4")) == "2:4"


@pytest.mark.parametrize("bad", ["5:4", "2-4", "0:4", "a:b", "2:4:8", "", "dense"])
def test_parse_structure_rejects_bad_values_by_name(bad):
    with pytest.raises(ValueError, match=r"N:M|unstructured") as err:
        parse_structure(bad)
    assert repr(bad) in str(err.value)


def test_n_to_prune_floors_the_exact_decimal_product():
    assert n_to_prune(0.29, 100) == 29  # float math gives 28.999...
    assert n_to_prune(0.5, 7) == 3
    assert n_to_prune(0.0, 10) == 0 and n_to_prune(1.0, 10) == 10
    assert n_to_prune(1 / 3, 9) == 2  # 0.333...3 * 9 = 2.99...: the float is below 1/3


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 33), seed=st.integers(0, 2**16),
       levels=st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=6),
       granularity=st.sampled_from(["row", "matrix"]), ties=st.booleans())
# 1/3 as a float is below one third: 3 weights at "1/3" prune none (a float product says 1).
@example(rows=1, cols=3, seed=0, levels=[0.0, 1 / 3], granularity="row", ties=False)
@example(rows=1, cols=3, seed=0, levels=[0.0, 1 / 3], granularity="matrix", ties=False)
def test_masks_from_one_sort_are_exact_and_nested(rows, cols, seed, levels, granularity, ties):
    g = torch.Generator().manual_seed(seed)
    scores = (torch.randint(0, 3, (rows, cols), generator=g).float() if ties
              else torch.randn(rows, cols, generator=g))
    rank = ranks(scores, granularity)
    masks = {s: keep_from_ranks(rank, s, granularity) for s in sorted(levels)}
    for s, keep in masks.items():
        # the one-level selection every prune() call uses is the same mask, ties included
        assert torch.equal(keep_lowest(scores, s, granularity), keep)
        pruned = ~keep
        if granularity == "row":
            k = n_to_prune(s, cols)
            exact = Fraction(repr(s)) * cols  # the decimal the float prints as, times n
            assert exact - 1 < k <= exact  # floor(s * cols)
            assert (pruned.sum(1) == k).all()
            # the pruned entries are the lowest of each row
            for r in range(rows):
                if 0 < pruned[r].sum() < cols:
                    assert scores[r][pruned[r]].max() <= scores[r][keep[r]].min()
        else:
            k = n_to_prune(s, rows * cols)
            exact = Fraction(repr(s)) * rows * cols
            assert exact - 1 < k <= exact
            assert int(pruned.sum()) == k
            if 0 < pruned.sum() < rows * cols:
                assert scores[pruned].max() <= scores[keep].min()
    ordered = list(masks.values())
    for lo, hi in itertools.pairwise(ordered):
        assert not (~lo & hi).any(), "a weight pruned at lower sparsity is kept at higher"


def test_ties_are_broken_towards_the_lower_index():
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    half = [[False, False, True, True]]
    assert keep_from_ranks(ranks(scores, "row"), 0.5, "row").tolist() == half
    assert keep_lowest(scores, 0.5, "row").tolist() == half
    assert keep_lowest(scores, 0.5, "matrix").tolist() == half
    assert nm_keep(scores, 1, 2).tolist() == [[False, True, False, True]]
    # a tie at the k-th value with a strictly lower entry before it: 0.0 is pruned first,
    # then the lowest-index 1.0 of the tie; the row's other 1.0s stay
    scores = torch.tensor([[1.0, 0.0, 1.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0, 3.0]])
    want = [[False, False, True, True, True], [False, False, True, True, True]]
    assert keep_lowest(scores, 0.4, "row").tolist() == want
    assert keep_from_ranks(ranks(scores, "row"), 0.4, "row").tolist() == want
    want = [[False, False, False, False, True], [True] * 5]  # 4 of 10: 0.0 then 3 x 1.0
    assert keep_lowest(scores, 0.4, "matrix").tolist() == want
    assert keep_from_ranks(ranks(scores, "matrix"), 0.4, "matrix").tolist() == want


@pytest.mark.parametrize("s", [0.0, 1.0])
def test_keep_lowest_at_the_ends_keeps_all_or_none(s):
    scores = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    for granularity in ("row", "matrix"):
        assert keep_lowest(scores, s, granularity).tolist() == [[s == 0.0] * 5] * 3
    with pytest.raises(ValueError, match=r"unknown granularity 'column'"):
        keep_lowest(scores, 0.5, "column")
    with pytest.raises(ValueError, match=r"unknown granularity 'column'"):
        ranks(scores, "column")


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), groups=st.integers(1, 6), m=st.integers(1, 8),
       data=st.data(), seed=st.integers(0, 2**16))
def test_nm_keep_prunes_exactly_n_lowest_of_every_m(rows, groups, m, data, seed):
    n = data.draw(st.integers(1, m))
    scores = torch.randn(rows, groups * m, generator=torch.Generator().manual_seed(seed))
    keep = nm_keep(scores, n, m).view(rows, groups, m)
    s = scores.view(rows, groups, m)
    assert ((~keep).sum(-1) == n).all()
    for r in range(rows):
        for gi in range(groups):
            if n < m:
                assert s[r, gi][~keep[r, gi]].max() <= s[r, gi][keep[r, gi]].min()


@pytest.mark.parametrize("n", [10, 5000, 100_000])
def test_lowest_k_equals_a_stable_sort(n):
    g = torch.Generator().manual_seed(n)
    for values in (torch.randn(n, generator=g), torch.randint(0, 7, (n,), generator=g).float()):
        for k in (0, 1, n // 3, n // 2, n - 1, n):
            expected = torch.zeros(n, dtype=torch.bool)
            expected[torch.argsort(values, stable=True)[:k]] = True
            assert torch.equal(lowest_k(values, k), expected)


def test_wanda_on_a_hand_checked_example():
    # 3 calibration tokens x 4 input features; feature norms by hand: 5, 1, 1, 2.
    x = torch.tensor([[3.0, 0.0, 1.0, 0.0],
                      [4.0, 0.0, 0.0, 2.0],
                      [0.0, 1.0, 0.0, 0.0]])
    stats = GroupStats(4, "norms")
    stats.add(x[None])
    assert stats.norms().tolist() == [5.0, 1.0, 1.0, 2.0]
    w = torch.tensor([[1.0, -2.0, 3.0, -4.0],
                      [-4.0, 2.0, -2.0, 1.0]])
    score = wanda_scores(w, stats.norms())
    assert score.tolist() == [[5.0, 2.0, 3.0, 8.0], [20.0, 2.0, 2.0, 2.0]]
    rank = ranks(score, "row")
    # 50%: two per row; row 0 drops features 1, 2 (magnitude would drop 0, 1); row 1 has a
    # three-way tie at 2.0 and drops the two lowest indices.
    assert keep_from_ranks(rank, 0.5, "row").tolist() == [[True, False, False, True],
                                                          [True, False, False, True]]
    assert keep_from_ranks(rank, 0.25, "row").tolist() == [[True, False, True, True],
                                                           [True, False, True, True]]
    assert nm_keep(score, 2, 4).tolist() == keep_from_ranks(rank, 0.5, "row").tolist()
    mag = keep_from_ranks(ranks(magnitude_scores(w), "row"), 0.5, "row")
    assert mag[0].tolist() == [False, False, True, True]


def test_hessian_statistics_equal_x_transpose_x():
    g = torch.Generator().manual_seed(0)
    for d in (24, 600):  # below and above the block-triangular threshold
        x = torch.randn(3, 10, d, generator=g)
        st_ = GroupStats(d, "hessian")
        st_.add(x[:2])
        st_.add(x[2:])
        flat = x.reshape(-1, d).double()
        assert torch.allclose(st_.gram().double(), flat.T @ flat, rtol=1e-4, atol=1e-3)
        assert torch.allclose(st_.hessian().double(), 2 / 3 * flat.T @ flat, rtol=1e-4,
                              atol=1e-3)
        assert torch.allclose(st_.norms().double(), flat.norm(dim=0), rtol=1e-5)


def test_random_scores_depend_on_seed_and_name_only():
    a = random_scores((4, 5), 0, "blocks.0.attn.q")
    assert torch.equal(a, random_scores((4, 5), 0, "blocks.0.attn.q"))
    assert not torch.equal(a, random_scores((4, 5), 1, "blocks.0.attn.q"))
    assert not torch.equal(a, random_scores((4, 5), 0, "blocks.0.attn.k"))


def test_owl_layer_sparsities_by_hand():
    # D = 1%, 3%, 2%: r = 2*0.08*(D - 1%)/2% = 0, 0.16, 0.08; mean 0.08; s_l = 0.5 - (r - 0.08).
    out = owl_layer_sparsities({0: 0.01, 1: 0.03, 2: 0.02}, {0: 10, 1: 10, 2: 10}, 0.5, 0.08)
    assert out == pytest.approx({0: 0.58, 1: 0.42, 2: 0.5})
    # Unequal sizes: the parameter-weighted mean stays at s.
    out = owl_layer_sparsities({0: 0.01, 1: 0.03}, {0: 30, 1: 10}, 0.5, 0.08)
    assert (30 * out[0] + 10 * out[1]) / 40 == pytest.approx(0.5)
    assert out[0] - out[1] == pytest.approx(0.16)
    assert owl_layer_sparsities({0: 0.02, 1: 0.02}, {0: 1, 1: 1}, 0.3, 0.08) == {0: 0.3, 1: 0.3}
    assert owl_layer_sparsities({0: 0.0, 1: 1.0}, {0: 1, 1: 1}, 0.99, 0.08)[0] == 1.0  # clipped


def test_outlier_ratio_counts_scores_above_m_times_the_mean():
    scores = [torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 1.0, 1.0, 31.0]])]
    # mean 4, threshold 5 x 4 = 20: one of ten entries is above.
    assert outlier_ratio(scores, 5) == pytest.approx(0.1)


def test_large_ties_use_a_stable_sort():
    # torch's default (unstable) CPU sort reorders equal keys from about 100 entries on:
    # a tie of 256 must still prune the lowest indices first.
    scores = torch.zeros(2, 256)
    first_half = torch.arange(256)[None, :].expand(2, -1) >= 128
    for granularity in ("row", "matrix"):
        keep = keep_from_ranks(ranks(scores, granularity), 0.5, granularity)
        want = first_half if granularity == "row" else torch.tensor([[False] * 256,
                                                                     [True] * 256])
        assert torch.equal(keep, want)
        assert torch.equal(keep_lowest(scores, 0.5, granularity), want)
    assert torch.equal(nm_keep(scores, 64, 128),
                       (torch.arange(256) % 128 >= 64)[None, :].expand(2, -1))
    assert torch.equal(lowest_k(scores.reshape(-1), 200), torch.arange(512) < 200)


def test_selection_stays_on_the_scores_device_and_returns_bool():
    # The "meta" device stands in for an accelerator: every result must be created on the
    # device of the scores (a CPU tensor would be created by a dropped ``device=``).
    meta = torch.empty(3, 8, device="meta")
    flat = meta.reshape(-1)
    for out in (ranks(meta, "row"), ranks(meta, "matrix"), lowest_k(flat, 0),
                lowest_k(flat, 24), keep_lowest(meta, 0.0, "row"),
                keep_lowest(meta, 1.0, "row"), keep_lowest(meta, 0.5, "row"),
                keep_lowest(meta, 0.0, "matrix"), nm_keep(meta, 2, 4)):
        assert out.device.type == "meta"
    x = torch.randn(40)
    for k in (0, 7, 40):
        assert lowest_k(x, k).dtype == torch.bool
    for s in (0.0, 0.5, 1.0):
        assert keep_lowest(x.view(4, 10), s, "row").dtype == torch.bool


def test_split_flat_cuts_the_concatenation_back_into_matrices():
    mats = [torch.arange(6.0).view(2, 3), torch.arange(6.0, 10.0).view(4, 1),
            torch.arange(10.0, 20.0).view(2, 5)]
    flat = torch.cat([m.reshape(-1) for m in mats])
    parts = split_flat(flat, [(2, 3), (4, 1), (2, 5)])
    assert [p.shape for p in parts] == [(2, 3), (4, 1), (2, 5)]
    for p, m in zip(parts, mats, strict=True):
        assert torch.equal(p, m)
    with pytest.raises(RuntimeError, match="sum exactly to 20"):
        split_flat(flat, [(2, 3), (4, 1)])  # sizes that do not add up


def test_group_statistics_count_sequences_and_tokens_and_name_bad_kinds():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)  # 2-D: one sequence of 7 tokens
    for kind in ("norms", "hessian"):
        st_ = GroupStats(5, kind)
        st_.add(x.float())
        st_.add(x[None, :4].float(), n_sequences=3)  # OPT-style: the caller counts sequences
        assert (st_.n_sequences, st_.n_tokens, st_.kind, st_.d_in) == (4, 11, kind, 5)
        both = torch.cat([x, x[:4]])
        torch.testing.assert_close(st_.norms().double(), both.norm(dim=0), rtol=1e-6, atol=0)
        assert st_.norms().dtype == torch.float32
        assert st_.sq.dtype == torch.float64 and st_.sq.device.type == "cpu"
    torch.testing.assert_close(st_.hessian().double(), 2 / 4 * both.T @ both, rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(st_.gram(3.0).double(), 3 * both.T @ both, rtol=1e-5, atol=1e-5)
    empty = GroupStats(3, "hessian")
    assert torch.equal(empty.hessian(), torch.zeros(3, 3))  # no sequences: no division by 0
    with pytest.raises(ValueError, match=r"^these statistics hold feature norms only, not a "
                       r"Hessian$"):
        GroupStats(3, "norms").gram()
    with pytest.raises(ValueError, match=r"^unknown statistic 'xtx'; allowed: \('norms', "
                       r"'hessian'\)$"):
        GroupStats(3, "xtx")


@pytest.mark.parametrize("d", [512, 1600])  # the first block-triangular size; 256-row panels
def test_block_triangular_gram_is_symmetric_and_exact(d):
    g = torch.Generator().manual_seed(d)
    x = torch.randn(2, 3, d, generator=g)
    st_ = GroupStats(d, "hessian")
    st_.add(x)
    flat = x.reshape(-1, d).double()
    got = st_.gram(0.5)
    assert torch.equal(got, got.T)
    torch.testing.assert_close(got.double(), 0.5 * flat.T @ flat, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(st_.norms().double(), flat.norm(dim=0), rtol=1e-5, atol=0)


def test_group_statistics_of_one_sequence_and_of_bfloat16_inputs():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 9, 6, generator=g).bfloat16()  # one sequence, as a model in bf16 gives
    x32 = x.float().reshape(-1, 6).double()
    for kind in ("norms", "hessian"):
        st_ = GroupStats(6, kind)
        st_.add(x)
        assert st_.n_sequences == 1
        # summed in float32 (not bfloat16): to float32 rounding of the exact sums
        torch.testing.assert_close(st_.norms().double(), x32.norm(dim=0), rtol=1e-6, atol=0)
    torch.testing.assert_close(st_.hessian().double(), 2.0 * x32.T @ x32, rtol=1e-6, atol=1e-6)
