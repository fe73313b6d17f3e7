"""lenskit.stats against scipy/statsmodels computed directly, and on simulated data with
known truth (fixed seeds): interval coverage, pairing, edge cases with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from lenskit.stats import (
    bootstrap_means,
    cluster_bootstrap,
    correlation,
    fisher_z_interval,
    ols,
    paired_bootstrap_drop,
    percentile_interval,
    proportion_interval,
    weighted_mean,
)


def _rel_drop(value, base):
    return (base - value) / np.abs(base)


# ---------------------------------------------------------------- proportions


def test_proportion_intervals_match_statsmodels_and_never_collapse():
    for method in ("wilson", "beta"):
        for k, n in ((0, 10), (3, 10), (150, 300), (300, 300)):
            lo, hi = proportion_interval(k, n, 0.95, method)
            want = proportion_confint(k, n, alpha=0.05, method=method)
            assert (lo, hi) == pytest.approx(want, abs=1e-12)
            assert 0.0 <= lo < hi <= 1.0
    lo, hi = proportion_interval(300, 300)
    assert hi == 1.0 and lo == pytest.approx(0.98735, abs=1e-4)  # not [1, 1]
    # n = 1: still a proper interval
    lo, hi = proportion_interval(1, 1)
    assert 0.0 < lo < hi == 1.0


def test_wilson_interval_by_hand():
    # Wilson's score interval, written out: centre (k + z^2/2) / (n + z^2), half-width
    # z sqrt(k (n - k) / n + z^2 / 4) / (n + z^2), with z the two-sided normal quantile.
    z95 = 1.959963984540054
    for k, n, ci, z in ((3, 10, 0.95, z95), (7, 10, 0.95, z95), (12, 40, 0.95, z95),
                        (3, 10, 0.90, 1.6448536269514722)):
        centre = (k + z * z / 2) / (n + z * z)
        half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        assert proportion_interval(k, n, ci) == pytest.approx((centre - half, centre + half),
                                                              abs=1e-12)
    lo, hi = proportion_interval(3, 10)
    assert round(lo, 4) == 0.1078 and round(hi, 4) == 0.6032
    lo, hi = proportion_interval(3, 10, method="beta")  # Clopper-Pearson: wider
    assert round(lo, 4) == 0.0667 and round(hi, 4) == 0.6525


def _exact_coverage(p: float, n: int, ci: float, method: str = "wilson") -> float:
    """P(lo <= p <= hi) summed over the binomial distribution of the successes."""
    k = np.arange(n + 1)
    covered = [lo <= p <= hi for lo, hi in (proportion_interval(int(i), n, ci, method)
                                            for i in k)]
    return float(np.sum(scipy.stats.binom.pmf(k, n, p) * np.array(covered)))


def test_wilson_coverage_where_it_differs_from_wald_and_clopper_pearson():
    # At p = 0.95, n = 40 Wilson covers 95.2%, the Wald interval only 86.8% and
    # Clopper-Pearson 98.6%: a coverage test here tells the three apart.
    assert 0.94 <= _exact_coverage(0.95, 40, 0.95) <= 0.96
    assert _exact_coverage(0.95, 40, 0.95, "beta") >= 0.98
    # The level is honoured: 90% Wilson intervals cover about 90% (88.4% at n = 30).
    assert 0.87 <= _exact_coverage(0.9, 30, 0.90) <= 0.91
    # Simulated draws agree with the exact sum.
    rng = np.random.default_rng(0)
    p, n, reps = 0.95, 40, 2000
    hits = sum(lo <= p <= hi for lo, hi in (proportion_interval(int(k), n)
                                            for k in rng.binomial(n, p, size=reps)))
    assert 0.935 <= hits / reps <= 0.97


def test_proportion_bad_inputs():
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        proportion_interval(0, 0)
    with pytest.raises(ValueError, match=r"successes must be in \[0, n\] = \[0, 5\], got 6"):
        proportion_interval(6, 5)
    with pytest.raises(ValueError, match="unknown proportion interval 'agresti'"):
        proportion_interval(1, 5, method="agresti")
    with pytest.raises(ValueError, match=r"ci must be in \(0, 1\), got 1.5"):
        proportion_interval(1, 5, ci=1.5)


# ---------------------------------------------------------------- OLS


def test_ols_matches_statsmodels_and_t_quantiles():
    rng = np.random.default_rng(1)
    n = 40
    x = np.column_stack([np.ones(n), rng.uniform(0, 1, n), rng.normal(size=n)])
    y = x @ np.array([0.5, 2.0, -1.0]) + rng.normal(0, 0.3, n)
    fit = ols(x, y)
    ref = sm.OLS(y, x).fit()
    np.testing.assert_allclose(fit.coef, ref.params, rtol=1e-10)
    np.testing.assert_allclose(fit.se, ref.bse, rtol=1e-10)
    assert fit.r2 == pytest.approx(ref.rsquared, rel=1e-10)
    assert fit.dof == n - 3
    lo, hi = fit.interval(0.9)
    np.testing.assert_allclose(np.column_stack([lo, hi]), ref.conf_int(alpha=0.1), rtol=1e-10)
    # the t quantile the interval uses is scipy's
    q = (hi - fit.coef) / fit.se
    np.testing.assert_allclose(q, scipy.stats.t.ppf(0.95, n - 3), rtol=1e-10)


def test_ols_coverage_on_simulated_data():
    rng = np.random.default_rng(2)
    n, reps, slope = 25, 600, 1.5
    hits = 0
    for _ in range(reps):
        x = np.column_stack([np.ones(n), rng.uniform(0, 1, n)])
        y = 0.2 + slope * x[:, 1] + rng.normal(0, 0.5, n)
        lo, hi = ols(x, y).interval(0.95)
        hits += lo[1] <= slope <= hi[1]
    assert 0.92 <= hits / reps <= 0.98


def test_ols_edge_cases():
    with pytest.raises(ValueError, match="0 observations cannot determine 1"):
        ols(np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(ValueError, match="1 observations cannot determine 2"):
        ols(np.ones((1, 2)), np.ones(1))
    with pytest.raises(ValueError, match=r"rank 1 < 2 columns: \['a', 'b'\]"):
        ols(np.ones((5, 2)), np.arange(5.0), names=["a", "b"])
    with pytest.raises(ValueError, match="must be finite"):
        ols(np.array([[1.0], [np.nan]]), np.ones(2))
    exact = ols(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(exact.coef, [1.0, 2.0])
    assert exact.dof == 0 and np.isnan(exact.interval()[0]).all()


def test_cluster_bootstrap_is_wider_with_shared_cluster_noise():
    rng = np.random.default_rng(3)
    cells, per = 30, 4
    clusters = np.repeat(np.arange(cells), per)
    s = np.repeat(rng.uniform(0, 1, cells), per)
    y = 1.0 * s + np.repeat(rng.normal(0, 0.3, cells), per) + rng.normal(0, 0.05, cells * per)
    x = np.column_stack([np.ones_like(s), s])
    by_cell = cluster_bootstrap(x, y, clusters, 400, seed=0)
    by_row = cluster_bootstrap(x, y, np.arange(len(y)), 400, seed=0)
    assert by_cell.shape == (400, 2)
    # rows of one cell share their noise: resampling rows understates the uncertainty
    assert by_cell[:, 1].std() > 1.3 * by_row[:, 1].std()
    assert np.array_equal(by_cell, cluster_bootstrap(x, y, clusters, 400, seed=0))
    assert cluster_bootstrap(x, y, clusters, 0).shape == (0, 2)
    with pytest.raises(ValueError, match="at least one observation"):
        cluster_bootstrap(np.zeros((0, 2)), np.zeros(0), np.zeros(0), 10)


# ---------------------------------------------------------------- bootstrap


def test_weighted_mean_and_its_errors():
    assert weighted_mean([1.0, 3.0], [3.0, 1.0]) == pytest.approx(1.5)
    assert weighted_mean([0.0, np.log(4.0)], exp=True) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least one value"):
        weighted_mean([])
    with pytest.raises(ValueError, match="sum to more than zero"):
        weighted_mean([1.0], [0.0])


def test_bootstrap_means_match_resampling_by_hand():
    values = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    w = np.array([1.0, 2.0, 1.0, 1.0])
    got = bootstrap_means(values, w, 50, seed=7)
    rng = np.random.default_rng(7)
    counts = rng.multinomial(4, np.full(4, 0.25), size=50) * w
    want = counts @ values.T / counts.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want)
    # the bootstrap of the mean has the spread of the standard error
    rng = np.random.default_rng(8)
    sample = rng.normal(size=400)
    boot = bootstrap_means(sample, None, 4000, seed=1)[:, 0]
    assert boot.std() == pytest.approx(sample.std() / np.sqrt(400), rel=0.08)


def test_paired_bootstrap_drop_cancels_shared_instances():
    # the modified model answers exactly like the dense one: every paired drop is 0
    dense = np.array([1.0, 0.0] * 20)
    drops = paired_bootstrap_drop(dense, dense, None, _rel_drop, 500, seed=0)
    assert drops.shape == (500, 1) and (drops == 0).all()
    # one more wrong answer: the drop is (draws of that instance) / (dense correct draws)
    pruned = dense.copy()
    pruned[0] = 0.0
    drops = paired_bootstrap_drop(dense, np.stack([dense, pruned]), None, _rel_drop, 500,
                                  seed=0)
    assert (drops[:, 0] == 0).all() and (drops[:, 1] >= 0).all() and drops[:, 1].max() > 0
    with pytest.raises(ValueError, match="same instances"):
        paired_bootstrap_drop(dense, dense[:5], None, _rel_drop, 10)
    with pytest.raises(ValueError, match="at least one instance, got 0"):
        bootstrap_means(np.zeros((1, 0)), None, 10)
    with pytest.raises(ValueError, match="n_boot must be an int >= 1, got 0"):
        bootstrap_means(dense, None, 0)


def test_percentile_interval_coverage_of_a_mean():
    rng = np.random.default_rng(4)
    hits, reps = 0, 200
    for r in range(reps):
        sample = rng.exponential(1.0, size=80)
        lo, hi = percentile_interval(bootstrap_means(sample, None, 400, seed=r)[:, 0])
        hits += lo <= 1.0 <= hi
    assert 0.85 <= hits / reps <= 0.99
    lo, hi = percentile_interval(np.array([1.0, 2.0, 3.0, 4.0]), 0.5, method="inverted_cdf")
    assert (lo, hi) == (1.0, 3.0)
    assert np.isnan(percentile_interval(np.array([np.nan, np.nan]))[0])


# ---------------------------------------------------------------- correlation


def test_correlation_matches_scipy_with_fisher_interval():
    rng = np.random.default_rng(5)
    x = rng.normal(size=50)
    y = 0.6 * x + rng.normal(0, 0.8, 50)
    for method, fn in (("pearson", scipy.stats.pearsonr), ("spearman", scipy.stats.spearmanr)):
        c = correlation(x, y, method)
        ref = fn(x, y)
        assert c.r == pytest.approx(ref.statistic, rel=1e-12)
        assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert c.ci_low < c.r < c.ci_high and c.n == 50
    c = correlation(x, y, "pearson")
    z, se = np.arctanh(c.r), 1 / np.sqrt(47)
    assert (c.ci_low, c.ci_high) == pytest.approx(
        (np.tanh(z - 1.959963985 * se), np.tanh(z + 1.959963985 * se)), rel=1e-8)
    # scipy >= 1.11 gives the same Fisher interval for Pearson
    ci = scipy.stats.pearsonr(x, y).confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-8)


def test_correlation_coverage_on_simulated_data():
    rng = np.random.default_rng(6)
    rho, n, reps = 0.5, 40, 600
    cov = [[1, rho], [rho, 1]]
    hits = 0
    for _ in range(reps):
        xy = rng.multivariate_normal([0, 0], cov, size=n)
        c = correlation(xy[:, 0], xy[:, 1])
        hits += c.ci_low <= rho <= c.ci_high
    assert 0.92 <= hits / reps <= 0.98


def test_correlation_edge_cases():
    with pytest.raises(ValueError, match="at least 3 pairs, got 2"):
        correlation([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="constant"):
        correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown correlation 'kendall'"):
        correlation([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "kendall")
    three = correlation([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert np.isnan(three.ci_low)  # Fisher z needs n >= 4
    assert fisher_z_interval(1.0, 10) == (1.0, 1.0)
    with pytest.raises(ValueError, match="n must be an int >= 4, got 3"):
        fisher_z_interval(0.5, 3)


# ---------------------------------------------------------------- exact messages, edges
# (written against the surviving mutants of `make mutate`: see MUTANTS.md)

_OK = np.array([1.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize("call, message", [
    (lambda: proportion_interval(1, 5, ci=0.0), "ci must be in (0, 1), got 0.0"),
    (lambda: proportion_interval(1, 5, ci=1.0), "ci must be in (0, 1), got 1.0"),
    (lambda: proportion_interval(1, True), "n must be an int >= 1, got True"),
    (lambda: proportion_interval(1, 2.0), "n must be an int >= 1, got 2.0"),
    (lambda: weighted_mean(np.zeros(0)),
     "weighted_mean needs at least one value on the last axis, got shape (0,)"),
    (lambda: weighted_mean(np.float64(1.0)),
     "weighted_mean needs at least one value on the last axis, got shape ()"),
    (lambda: weighted_mean(_OK, np.zeros(4)), "weights must sum to more than zero"),
    (lambda: bootstrap_means(np.zeros((2, 2, 2)), None, 5),
     "values must be [k, n], got shape (2, 2, 2)"),
    (lambda: bootstrap_means(np.zeros((1, 0)), None, 5),
     "a bootstrap needs at least one instance, got 0"),
    (lambda: bootstrap_means(_OK, None, 0), "n_boot must be an int >= 1, got 0"),
    (lambda: bootstrap_means(_OK, np.ones(3), 5), "weights must be [n] = [4], got shape (3,)"),
    (lambda: bootstrap_means(_OK, np.array([1.0, -0.5, 1.0, 1.0]), 5),
     "weights must be >= 0 and sum to more than zero"),
    (lambda: bootstrap_means(_OK, np.zeros(4), 5),
     "weights must be >= 0 and sum to more than zero"),
    (lambda: paired_bootstrap_drop(_OK, np.zeros((1, 3)), None, _rel_drop, 5),
     "dense must be [n] and pruned [k, n] on the same instances; got (4,) and (1, 3)"),
    (lambda: ols(np.ones(3), np.ones(3)), "x must be [n, p] and y [n]; got (3,) and (3,)"),
    (lambda: ols(np.ones((3, 1)), np.ones(2)),
     "x must be [n, p] and y [n]; got (3, 1) and (2,)"),
    (lambda: ols(np.ones((3, 1)), np.array([1.0, np.nan, 2.0])),
     "x and y must be finite (drop rows with NaN or infinite values)"),
    (lambda: cluster_bootstrap(np.ones((3, 1)), np.ones(3), [0, 1], 5),
     "x must be [n, p], y and clusters [n]; got (3, 1), (3,) and 2 clusters"),
    (lambda: cluster_bootstrap(np.ones(3), np.ones(3), [0, 1, 2], 5),
     "x must be [n, p], y and clusters [n]; got (3,), (3,) and 3 clusters"),
    (lambda: cluster_bootstrap(np.ones((0, 1)), np.ones(0), [], 5),
     "a cluster bootstrap needs at least one observation, got 0"),
    (lambda: cluster_bootstrap(np.ones((3, 1)), np.ones(3), [0, 1, 2], -1),
     "n_bootstrap must be an int >= 0, got -1"),
    (lambda: fisher_z_interval(0.5, 10, method="kendall"),
     "unknown correlation 'kendall'; allowed: ('pearson', 'spearman')"),
    (lambda: fisher_z_interval(1.5, 10), "a correlation must be in [-1, 1], got 1.5"),
    (lambda: fisher_z_interval(-1.5, 10), "a correlation must be in [-1, 1], got -1.5"),
    (lambda: fisher_z_interval(0.5, 3), "n must be an int >= 4, got 3"),
    (lambda: correlation(_OK, _OK, method="kendall"),
     "unknown correlation 'kendall'; allowed: ('pearson', 'spearman')"),
    (lambda: correlation(np.ones((2, 2)), np.ones((2, 2))),
     "x and y must be [n] of the same length; got (2, 2), (2, 2)"),
    (lambda: correlation(_OK, _OK[:3]),
     "x and y must be [n] of the same length; got (4,), (3,)"),
    (lambda: correlation(np.array([1.0, np.inf, 2, 3]), _OK), "x and y must be finite"),
    (lambda: correlation(_OK, np.array([1.0, np.nan, 2, 3])), "x and y must be finite"),
    (lambda: correlation(np.ones(4), _OK), "x or y is constant: its correlation is undefined"),
    (lambda: correlation(_OK, np.ones(4)), "x or y is constant: its correlation is undefined"),
])
def test_bad_input_messages_are_exact(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


def test_collinear_columns_are_named_or_numbered():
    x = np.column_stack([np.ones(5), np.arange(5.0), 2 * np.arange(5.0), np.arange(5.0) ** 2])
    y = np.arange(5.0)
    msg = ("the design has rank 3 < 4 columns: {} are linearly dependent in these data, "
           "so their effects cannot be separated")
    with pytest.raises(ValueError) as err:
        ols(x, y)
    assert str(err.value) == msg.format([1, 2])  # by weight in the null vector
    with pytest.raises(ValueError) as err:
        ols(x, y, names=["c", "a", "b", "q"])
    assert str(err.value) == msg.format(["a", "b"])
    with pytest.raises(ValueError) as err:
        ols(np.array([[1.0, 0.0], [1.0, 0.0]]), np.ones(2))
    assert "[1]" in str(err.value)  # the all-zero column alone


def test_weighted_mean_returns_floats_and_rows():
    assert type(weighted_mean([1, 2, 3])) is float and weighted_mean([1, 2, 3]) == 2.0
    assert weighted_mean(np.array([1.0, 3.0]), np.array([3.0, 1.0])) == 1.5
    rows = weighted_mean(np.array([[1.0, 3.0], [2.0, 4.0], [0.0, 1.0]]), np.array([1.0, 3.0]))
    np.testing.assert_allclose(rows, [2.5, 3.5, 0.75])
    # per-row weights that sum to less than one are fine (only a zero total is not)
    assert weighted_mean(np.array([2.0, 4.0]), np.array([0.1, 0.3])) == pytest.approx(3.5)
    assert weighted_mean(np.log([2.0, 8.0]), exp=True) == pytest.approx(4.0)


def test_percentile_interval_shapes_and_all_nan():
    lo, hi = percentile_interval(np.arange(101.0), 0.9)
    assert (lo, hi) == pytest.approx((5.0, 95.0)) and type(lo) is float
    draws = np.arange(202.0).reshape(2, 101).T  # [101 draws, 2 statistics]
    lo, hi = percentile_interval(draws, 0.9)
    np.testing.assert_allclose(lo, [5.0, 106.0])
    np.testing.assert_allclose(hi, [95.0, 196.0])
    lo, hi = percentile_interval(draws.T, 0.9, axis=1)
    np.testing.assert_allclose(lo, [5.0, 106.0])
    # one draw is an interval of that draw; all-NaN draws give NaN of the right shape
    assert percentile_interval(np.array([3.0])) == (3.0, 3.0)
    lo, hi = percentile_interval(np.full(10, np.nan))
    assert np.isnan(lo) and np.isnan(hi) and type(lo) is float
    lo, hi = percentile_interval(np.full((10, 3), np.nan))
    assert lo.shape == hi.shape == (3,) and np.isnan(lo).all() and lo is not hi
    lo, hi = percentile_interval(np.zeros((0, 3)))
    assert lo.shape == (3,) and np.isnan(hi).all()
    # a column with some NaN draws uses the others
    col = np.array([[1.0, np.nan], [2.0, 5.0], [3.0, 7.0]])
    lo, hi = percentile_interval(col, 0.5)
    np.testing.assert_allclose(lo, [1.5, 5.5])


def test_bootstrap_means_defaults_and_chunks():
    v = np.random.default_rng(3).random((2, 50))
    # the default seed is 0 (reproducible without naming one)
    np.testing.assert_array_equal(bootstrap_means(v, None, 40), bootstrap_means(v, None, 40,
                                                                                seed=0))
    # a Generator is used as given (its stream continues)
    g = np.random.default_rng(5)
    a = bootstrap_means(v, None, 40, seed=g)
    np.testing.assert_array_equal(a, bootstrap_means(v, None, 40, seed=5))
    assert not np.array_equal(bootstrap_means(v, None, 40, seed=g), a)
    # n_boot not a multiple of any chunk: exactly n_boot rows, each the mean of a resample
    out = bootstrap_means(v, np.arange(1.0, 51.0), 7)
    assert out.shape == (7, 2) and np.isfinite(out).all()
    assert (out >= v.min()).all() and (out <= v.max()).all()
    # exp=True is exp of the mean of the values (geometric means of exp'd values)
    np.testing.assert_allclose(bootstrap_means(v, None, 9, exp=True),
                               np.exp(bootstrap_means(v, None, 9)))


def test_fisher_z_by_hand_for_both_methods():
    z = 1.959963984540054
    for method, var in (("pearson", 1.0), ("spearman", 1.06)):
        se = np.sqrt(var / (20 - 3))
        want = (np.tanh(np.arctanh(0.4) - z * se), np.tanh(np.arctanh(0.4) + z * se))
        assert fisher_z_interval(0.4, 20, 0.95, method) == pytest.approx(want, abs=1e-12)
    assert fisher_z_interval(1.0, 10) == (1.0, 1.0)
    assert fisher_z_interval(-1.0, 10) == (-1.0, -1.0)
    # correlation passes its method, level and n through
    x = np.arange(6.0)
    y = np.array([0.0, 2.0, 1.0, 4.0, 3.0, 5.0])
    c = correlation(x, y, "spearman", ci=0.9)
    assert (c.method, c.n, c.ci) == ("spearman", 6, 0.9)
    assert (c.ci_low, c.ci_high) == pytest.approx(fisher_z_interval(c.r, 6, 0.9, "spearman"))
    c4 = correlation(x[:4], y[:4])
    assert np.isfinite(c4.ci_low) and np.isfinite(c4.ci_high)  # n = 4 has an interval
    c3 = correlation(x[:3], y[:3])
    assert np.isnan(c3.ci_low) and np.isnan(c3.ci_high)
    assert correlation(x, 2 * x + 1).r == pytest.approx(1.0)
    assert correlation(x, -x).r == pytest.approx(-1.0)


def test_ols_r2_sigma_and_exact_fits():
    x = np.column_stack([np.ones(4), np.arange(4.0)])
    y = np.array([1.0, 2.0, 2.0, 5.0])
    fit = ols(x, y)
    rss = float(((y - fit.fitted) ** 2).sum())
    assert fit.sigma == pytest.approx(np.sqrt(rss / 2))
    assert fit.r2 == pytest.approx(1 - rss / ((y - y.mean()) ** 2).sum())
    assert fit.cov.shape == (2, 2) and fit.fitted.shape == (4,)
    lo, hi = fit.interval(0.95)
    q = scipy.stats.t.ppf(0.975, 2)
    np.testing.assert_allclose(hi - lo, 2 * q * fit.se)
    # without a ones column R^2 is uncentred
    fit0 = ols(np.arange(1.0, 5.0)[:, None], y)
    rss0 = float(((y - fit0.fitted) ** 2).sum())
    assert fit0.r2 == pytest.approx(1 - rss0 / (y ** 2).sum())
    # dof 1 still gives finite intervals
    assert np.isfinite(ols(x[:3], np.array([1.0, 2.0, 4.0])).interval()[0]).all()
    # an exact fit (n == p): no residual variance, NaN sigma, se and intervals
    exact = ols(x[:2], np.array([1.0, 3.0]))
    assert exact.dof == 0 and np.isnan(exact.sigma) and np.isnan(exact.se).all()
    assert np.isnan(exact.interval()[0]).all() and exact.r2 == 1.0
    # y all zero without a ones column: tss = 0 and an exact fit: R^2 = 1 (not NaN)
    assert ols(np.array([[1.0], [2.0], [3.0]]), np.zeros(3)).r2 == 1.0
    # a constant y with a ones column: R^2 = 1, although statsmodels' residuals are ~1e-31
    # and a mean of seven 0.1s is not 0.1 (tss > 0 by rounding)
    xs = np.column_stack([np.ones(7), np.arange(7.0)])
    assert np.full(7, 0.1).mean() != 0.1
    for c in (0.1, 3.0, -2.5):
        assert ols(xs, np.full(7, c)).r2 == 1.0
    # without a ones column a constant non-zero y has variation to explain (uncentred)
    assert ols(np.arange(1.0, 8.0)[:, None], np.full(7, 3.0)).r2 < 1.0


def test_bootstrap_weights_and_chunks_by_hand():
    v = np.array([[1.0, 2.0, 4.0, 8.0]])
    # zero weights, weights below one and a total below one are all allowed
    for w in ([0.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]):
        assert np.isfinite(bootstrap_means(v, np.array(w), 5)).all()
    # several chunks (n * n_boot above the chunk size): each row is the weighted mean of one
    # multinomial resample, drawn in order from the seeded generator
    n = 400_000
    big = np.random.default_rng(0).random((1, n))
    got = bootstrap_means(big, None, 12, seed=3)  # chunks of 5, 5 and 2 resamples
    rng = np.random.default_rng(3)
    want = [(rng.multinomial(n, np.full(n, 1.0 / n)) * big[0]).sum() / n for _ in range(12)]
    np.testing.assert_allclose(got[:, 0], want, rtol=1e-12)


def test_paired_bootstrap_drop_defaults_weights_and_exp():
    rng = np.random.default_rng(2)
    dense, pruned = rng.random(30), rng.random((2, 30))
    w = rng.random(30)
    base = paired_bootstrap_drop(dense, pruned, None, _rel_drop, 20)
    np.testing.assert_array_equal(base, paired_bootstrap_drop(dense, pruned, None, _rel_drop,
                                                              20, 0, exp=False))
    means = bootstrap_means(np.vstack([dense, pruned]), w, 20, 4)
    np.testing.assert_allclose(paired_bootstrap_drop(dense, pruned, w, _rel_drop, 20, 4),
                               _rel_drop(means[:, 1:], means[:, :1]))
    means = bootstrap_means(np.vstack([dense, pruned]), w, 20, 4, exp=True)
    np.testing.assert_allclose(paired_bootstrap_drop(dense, pruned, w, _rel_drop, 20, 4,
                                                     exp=True),
                               _rel_drop(means[:, 1:], means[:, :1]))


def test_cluster_bootstrap_resamples_exactly_k_clusters():
    # intercept only, one observation per cluster, y = 0, 1, 100: a resample's coefficient is
    # (c1 + 100 c2) / 3 for cluster counts c summing to 3 (never, e.g., 0.5 or 50)
    y = np.array([0.0, 1.0, 100.0])
    coef = cluster_bootstrap(np.ones((3, 1)), y, ["a", "b", "c"], 300)
    assert coef.shape == (300, 1)
    allowed = {round((c1 + 100 * c2) / 3, 9) for c1 in range(4) for c2 in range(4 - c1)}
    assert {round(float(c), 9) for c in coef[:, 0]} <= allowed
    assert len({round(float(c), 9) for c in coef[:, 0]}) >= 6
    np.testing.assert_array_equal(coef, cluster_bootstrap(np.ones((3, 1)), y, ["a", "b", "c"],
                                                          300, seed=0))  # default seed 0
    # a rank-deficient resample (one cluster drawn three times: x constant) is redrawn, and
    # exactly n_bootstrap rows come back
    x = np.column_stack([np.ones(4), [0.0, 0.0, 1.0, 1.0]])
    out = cluster_bootstrap(x, np.array([0.0, 0.1, 1.0, 1.1]), [0, 0, 1, 1], 40, seed=1)
    assert out.shape == (40, 2) and np.isfinite(out).all()
    assert cluster_bootstrap(x, np.zeros(4), [0, 0, 1, 1], 0).shape == (0, 2)


def test_more_edges():
    with pytest.raises(ValueError) as err:
        weighted_mean(np.zeros((3, 0)))
    assert str(err.value) == ("weighted_mean needs at least one value on the last axis, got "
                              "shape (3, 0)")
    with pytest.raises(ValueError) as err:
        ols(np.zeros((0, 0)), np.zeros(0))
    assert str(err.value) == "0 observations cannot determine 0 coefficients"
    # R^2 with a total sum of squares below one (small values) is still 1 - rss / tss
    x = np.column_stack([np.ones(4), np.arange(4.0)])
    y = np.array([0.1, 0.2, 0.2, 0.5])
    fit = ols(x, y)
    rss = float(((y - fit.fitted) ** 2).sum())
    assert fit.r2 == pytest.approx(1 - rss / ((y - y.mean()) ** 2).sum())
    for n in (1, 7, 300):
        for method in ("wilson", "beta"):
            assert proportion_interval(0, n, method=method)[0] == 0.0
            assert proportion_interval(n, n, method=method)[1] == 1.0


def test_cluster_bootstrap_stops_when_resamples_are_rarely_usable():
    # 8 clusters, each the only one where its column is non-zero: a resample has full rank
    # only when it draws all 8 (p = 8!/8^8, about 0.2%), so the draws stop at their cap of
    # 10 x n_bootstrap (in batches of 16) and fewer rows come back, without looping forever.
    x = np.eye(8)
    coef = cluster_bootstrap(x, np.arange(8.0), np.arange(8), 5, seed=0)
    assert coef.shape[1] == 8 and coef.shape[0] < 5
    for row in coef:  # any usable resample reproduces y exactly (one column per cluster)
        np.testing.assert_allclose(row, np.arange(8.0))
