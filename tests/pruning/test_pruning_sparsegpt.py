"""SparseGPT at the layer level: the reference's semantics, its defects fixed, and the
reconstruction-error ordering of the methods on correlated inputs."""

import pytest
import torch

from lenskit.pruning import parse_structure
from lenskit.pruning.reference import reference_sparsegpt
from lenskit.pruning.scores import magnitude_scores, wanda_scores
from lenskit.pruning.selection import keep_from_ranks, nm_keep, ranks
from lenskit.pruning.sparsegpt import factor_hessian, sparsegpt_prune
from lenskit.pruning.statistics import GroupStats
from lenskit.pruning.structure import n_to_prune


def layer(d_in=192, d_out=48, tokens=1536, seed=0):
    """A random layer and LLM-like inputs: correlated features (a rank-16 common part plus
    noise), log-normal per-feature scales and a few outlier features."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(tokens, 16, generator=g) @ (torch.randn(16, d_in, generator=g) / 4)
    x = z + 0.5 * torch.randn(tokens, d_in, generator=g)
    scale = torch.exp(0.8 * torch.randn(d_in, generator=g))
    scale[:3] *= 8
    x = x * scale
    w = torch.randn(d_out, d_in, generator=g) / d_in**0.5
    stats = GroupStats(d_in, "hessian")
    stats.add(x.reshape(12, -1, d_in))
    return w, x, stats


def rel_error(w, w_new, x):
    return float((x @ (w - w_new).T).norm() / (x @ w.T).norm())


@pytest.mark.parametrize("structure,sparsity", [("unstructured", 0.5), ("unstructured", 0.3),
                                                ("2:4", 0.5), ("4:8", 0.5), ("1:4", 0.25)])
def test_matches_the_reference_loop_with_exact_counts(structure, sparsity):
    w, _, stats = layer()
    s = parse_structure(structure)
    new, keep = sparsegpt_prune(w, factor_hessian(stats.hessian()), sparsity, s, blocksize=64)
    ref = reference_sparsegpt(w, stats.hessian(), sparsity, s.n, s.m, blocksize=64, exact=True)
    assert torch.equal(keep, ref != 0)
    assert torch.allclose(new, ref, atol=1e-5, rtol=1e-4)
    assert torch.equal(new == 0, ~keep)


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.77])
def test_unstructured_count_is_exact_per_matrix_where_the_reference_overshoots(sparsity):
    w, _, stats = layer(d_in=200)  # blocks of 128 + 72 columns
    h = stats.hessian()
    _, keep = sparsegpt_prune(w, factor_hessian(h), sparsity, parse_structure("unstructured"))
    assert int((~keep).sum()) == n_to_prune(sparsity, w.numel())
    # the reference's `<=` threshold prunes one weight too many per block
    ref = reference_sparsegpt(w, h, sparsity)
    n_blocks = 2
    assert int((ref == 0).sum()) == n_to_prune(sparsity, 128 * 48) + \
        n_to_prune(sparsity, 72 * 48) + n_blocks


def test_n_m_pattern_is_exact_for_every_row_and_group():
    w, _, stats = layer()
    for n, m in [(2, 4), (4, 8), (1, 3), (3, 4)]:
        _, keep = sparsegpt_prune(w, factor_hessian(stats.hessian()), 0.0,
                                  parse_structure(f"{n}:{m}"), blocksize=100)
        assert ((~keep).view(w.shape[0], -1, m).sum(-1) == n).all()


def test_sparsity_zero_changes_nothing_and_one_prunes_everything():
    w, _, stats = layer()
    stats.xtx[:, 5] = 0  # a dead input: the reference would zero its column even at 0%
    stats.xtx[5, :] = 0
    f = factor_hessian(stats.hessian())
    new, keep = sparsegpt_prune(w, f, 0.0, parse_structure("unstructured"))
    assert keep.all() and torch.equal(new, w)
    new, keep = sparsegpt_prune(w, f, 1.0, parse_structure("unstructured"))
    assert not keep.any() and not new.any()
    new, keep = sparsegpt_prune(w, f, 0.0, parse_structure("4:4"))
    assert not keep.any() and not new.any()


def test_dead_inputs_are_pruned_first_and_kept_ones_keep_their_value():
    w, _, stats = layer(d_in=64, d_out=16)
    dead = [3, 40]
    stats.xtx[:, dead] = 0
    stats.xtx[dead, :] = 0
    f = factor_hessian(stats.hessian())
    assert f.dead.nonzero().squeeze(1).tolist() == dead
    new, keep = sparsegpt_prune(w, f, 16 / w.numel(), parse_structure("unstructured"))
    assert (~keep).sum() == 16 and not keep[:, 3].any()  # the first dead column, 16 rows
    # pruning a dead input causes no update anywhere: all other weights are untouched
    assert torch.equal(new[:, [c for c in range(64) if c != 3]],
                       w[:, [c for c in range(64) if c != 3]])


def test_not_positive_definite_hessian_retries_damping_then_falls_back():
    w, _, _ = layer(d_in=32, d_out=8)
    h = torch.eye(32)
    h[0, 0] = -1.0  # indefinite: the requested damping (0.01 * mean diag) is not enough
    with pytest.warns(RuntimeWarning, match="not positive definite"):
        f = factor_hessian(h, 0.01, name="test")
    assert f.fallback is None and f.percdamp > 0.01
    new, keep = sparsegpt_prune(w, f, 0.5, parse_structure("unstructured"))
    assert int((~keep).sum()) == w.numel() // 2 and torch.isfinite(new).all()

    h = torch.eye(32)
    h[0, 1] = h[1, 0] = 1e9  # no damping in the retry schedule fixes this one
    with pytest.warns(RuntimeWarning, match="diagonal"):
        f = factor_hessian(h, 0.01)
    assert f.fallback == "diagonal"
    new, keep = sparsegpt_prune(w, f, 0.5, parse_structure("2:4"))
    assert ((~keep).view(8, -1, 4).sum(-1) == 2).all()
    assert torch.equal(new, w * keep)  # no update without a usable inverse

    with pytest.raises(ValueError, match="non-finite"):
        factor_hessian(torch.full((4, 4), float("nan")))


@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_reconstruction_error_orders_sparsegpt_wanda_magnitude(structure):
    s = parse_structure(structure)
    for seed in range(3):
        w, x, stats = layer(seed=seed)
        new, keep = sparsegpt_prune(w, factor_hessian(stats.hessian()), 0.5, s)
        scores = {"wanda": wanda_scores(w, stats.norms()), "magnitude": magnitude_scores(w)}
        keeps = {k: (keep_from_ranks(ranks(v, "row"), 0.5, "row") if s.unstructured
                     else nm_keep(v, s.n, s.m)) for k, v in scores.items()}
        err_sg = rel_error(w, new, x)
        err_wanda = rel_error(w, w * keeps["wanda"], x)
        err_mag = rel_error(w, w * keeps["magnitude"], x)
        assert err_sg < err_wanda < err_mag, (seed, err_sg, err_wanda, err_mag)
        # the weight update is what helps: the same mask without it is worse
        assert err_sg < rel_error(w, w * keep, x)


@pytest.mark.parametrize("cols", [40, 601])  # 601: the blocked inverse recurses, odd halves
def test_factor_is_the_upper_cholesky_of_the_damped_inverse(cols):
    g = torch.Generator().manual_seed(cols)
    a = torch.randn(cols, cols + 8, generator=g, dtype=torch.float64)
    h = a @ a.T / cols
    h[:, 7] = h[7, :] = 0  # a dead input
    f = factor_hessian(h.float(), 0.05)
    assert f.dead.nonzero().squeeze(1).tolist() == [7] and f.percdamp == 0.05
    assert f.fallback is None
    # the reference's steps in float64: dead diagonal -> 1, H + 0.05 mean(diag) I,
    # inverse, upper Cholesky factor
    hd = h.clone()
    hd[7, 7] = 1.0
    hd += 0.05 * torch.diagonal(hd).mean() * torch.eye(cols, dtype=torch.float64)
    want = torch.linalg.cholesky(torch.linalg.inv(hd), upper=True)
    torch.testing.assert_close(f.u.double(), want, atol=2e-4 * float(want.abs().max()), rtol=1e-3)
    assert f.u.dtype == torch.float32 and torch.equal(f.u, f.u.triu())


def test_damping_schedule_and_diagonal_fallback_values():
    h = torch.eye(32)
    h[0, 0] = -1.0  # mean diag 30/32: 10x the mean is the first damping that is enough
    with pytest.warns(RuntimeWarning, match=r"^H0: H \+ 0.01 \* mean\(diag H\) is not positive "
                      r"definite; used damping 10$"):
        f = factor_hessian(h, 0.01, name="H0")
    assert f.percdamp == 10.0 and f.fallback is None
    h = torch.eye(32)
    h[0, 1] = h[1, 0] = 1e9
    with pytest.warns(RuntimeWarning, match=r"^H: H is not positive definite even with damping "
                      r"10000; using its diagonal \(no weight update\)$"):
        f = factor_hessian(h, 0.01)
    # the diagonal of H plus the last damping tried (1e4 * mean diag = 1e4)
    assert f.percdamp == 1e4 and f.fallback == "diagonal"
    torch.testing.assert_close(f.u, torch.diag(torch.full((32,), 10001.0).rsqrt()))


def test_wide_n_m_groups_match_the_reference_loop():
    # groups of more than 16 columns: the per-group selection sorts instead of counting
    w, _, stats = layer(d_in=192)
    s = parse_structure("12:24")
    new, keep = sparsegpt_prune(w, factor_hessian(stats.hessian()), 0.0, s, blocksize=48)
    ref = reference_sparsegpt(w, stats.hessian(), 0.5, s.n, s.m, blocksize=48, exact=True)
    assert torch.equal(keep, ref != 0)
    assert torch.allclose(new, ref, atol=1e-5, rtol=1e-4)


def test_default_block_is_128_columns_as_in_the_reference():
    w, _, stats = layer(d_in=300)  # blocks of 128, 128 and 44 columns
    s = parse_structure("unstructured")
    _, keep = sparsegpt_prune(w, factor_hessian(stats.hessian()), 0.4, s)
    ref = reference_sparsegpt(w, stats.hessian(), 0.4, blocksize=128, exact=True)
    assert torch.equal(keep, ref != 0)


def test_shapes_dtypes_and_a_single_pruned_weight():
    w, _, stats = layer(d_in=64, d_out=16)
    f = factor_hessian(stats.hessian())
    un = parse_structure("unstructured")
    for sparsity, structure in [(0.0, un), (1.0, un), (0.0, parse_structure("4:4"))]:
        new, keep = sparsegpt_prune(w.double(), f, sparsity, structure)
        assert new.shape == keep.shape == w.shape
        assert new.dtype == torch.float32 and keep.dtype == torch.bool
    # one weight: no early return, the loop prunes exactly one
    new, keep = sparsegpt_prune(w, f, 1 / w.numel(), un)
    assert int((~keep).sum()) == 1
    ref = reference_sparsegpt(w, stats.hessian(), 1 / w.numel(), exact=True)
    assert torch.equal(keep, ref != 0)
    # a float64 weight is pruned in float32, as the float32 one is
    new64, keep64 = sparsegpt_prune(w.double(), f, 0.5, un)
    new32, keep32 = sparsegpt_prune(w, f, 0.5, un)
    assert new64.dtype == torch.float32 and torch.equal(keep64, keep32)
    assert torch.equal(new64, new32)


@pytest.mark.parametrize("structure", ["1:4", "2:4", "12:24"])
def test_dead_inputs_are_pruned_first_in_n_m_groups(structure):
    w, _, stats = layer(d_in=48, d_out=16)
    dead = [1, 26]
    stats.xtx[:, dead] = 0
    stats.xtx[dead, :] = 0
    w = w * 1e-3  # small weights: every live score is below 1, and above a dead one's 0
    s = parse_structure(structure)
    _, keep = sparsegpt_prune(w, factor_hessian(stats.hessian()), 0.0, s, blocksize=24)
    assert not keep[:, dead].any()
    assert ((~keep).view(16, -1, s.m).sum(-1) == s.n).all()


@pytest.mark.parametrize("structure", ["2:4", "100:200"])
def test_n_m_ties_go_to_the_lower_index(structure):
    # all-zero weights: every score ties, nothing is updated, the first n of each group go
    s = parse_structure(structure)
    w = torch.zeros(4, 2 * s.m)
    f = factor_hessian(torch.eye(2 * s.m))
    _, keep = sparsegpt_prune(w, f, 0.0, s, blocksize=2 * s.m)
    group = [False] * s.n + [True] * (s.m - s.n)
    assert keep.tolist() == [group * 2] * 4


def test_retried_damping_is_added_once_and_warnings_point_at_the_caller():
    import warnings

    h = torch.eye(32, dtype=torch.float64)
    h[0, 0] = -0.05  # 0.01 x mean diag is not enough, 0.1 x is
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = factor_hessian(h, 0.01)
    # attributed to the caller (stacklevel 2), not to sparsegpt.py
    assert len(caught) == 1 and not caught[0].filename.endswith("lenskit/pruning/sparsegpt.py")
    assert f.percdamp == 0.1 and f.u.dtype == torch.float32
    hd = h + 0.1 * torch.diagonal(h).mean() * torch.eye(32, dtype=torch.float64)
    want = torch.linalg.cholesky(torch.linalg.inv(hd), upper=True)
    torch.testing.assert_close(f.u.double(), want, rtol=1e-5, atol=1e-5)
    # no damping asked: the retries start at 10 x 1e-3, not at 1e-3
    with pytest.warns(RuntimeWarning, match="used damping 0.01$"):
        assert factor_hessian(torch.ones(4, 4), 0.0).percdamp == 0.01
    # the fallback: each diagonal entry (negative ones as 0) plus the last damping tried
    h = 0.5 * torch.eye(8)
    h[3, 3] = -2.0
    h[0, 1] = h[1, 0] = 1e9
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = factor_hessian(h, 0.01)
    assert len(caught) == 1 and not caught[0].filename.endswith("lenskit/pruning/sparsegpt.py")
    assert f.fallback == "diagonal"
    added = 1e4 * (7 * 0.5 - 2.0) / 8
    d = torch.full((8,), 0.5 + added)
    d[3] = added
    torch.testing.assert_close(f.u, torch.diag(d.rsqrt()), rtol=2e-6, atol=0)
    with pytest.raises(ValueError, match=r"^the calibration Hessian of blocks.0.mlp has "
                       r"non-finite entries: the activations overflowed \(check the model's "
                       r"dtype and the calibration\)$"):
        factor_hessian(torch.full((4, 4), float("inf")), name="blocks.0.mlp")
