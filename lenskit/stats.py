"""The statistics every part of lenskit shares, on scipy and statsmodels.

- :func:`weighted_mean` and :func:`bootstrap_means`: aggregates of instance scores and a
  *paired* bootstrap of them (one resample of instances shared by every row, e.g. the
  dense model and each pruned one, so instance difficulty cancels in their difference);
  :func:`paired_bootstrap_drop` turns those into resampled drops from dense.
- :func:`percentile_interval`: the (alpha/2, 1 - alpha/2) quantiles of bootstrap draws.
- :func:`proportion_interval`: Wilson or Clopper-Pearson intervals for a proportion
  (statsmodels), never degenerate: 300 of 300 correct gives about [0.987, 1].
- :func:`ols`: least squares with classical standard errors and Student-t intervals
  (statsmodels); :func:`cluster_bootstrap`: OLS refitted on resampled clusters.
- :func:`correlation`: Pearson or Spearman (scipy) with a Fisher-z interval.

A base module: it imports nothing from lenskit, and knows no metric names (callers say
whether an aggregate is exponentiated and how a drop is measured).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint

from lenskit.errors import UsageError

__all__ = [
    "CORRELATIONS",
    "PROPORTION_METHODS",
    "Correlation",
    "OLSFit",
    "bootstrap_means",
    "cluster_bootstrap",
    "correlation",
    "fisher_z_interval",
    "ols",
    "paired_bootstrap_drop",
    "percentile_interval",
    "proportion_interval",
    "weighted_mean",
]

#: Interval methods of :func:`proportion_interval` (statsmodels names).
PROPORTION_METHODS: tuple[str, ...] = ("wilson", "beta")
#: Correlations of :func:`correlation`.
CORRELATIONS: tuple[str, ...] = ("pearson", "spearman")

# Elements of one [resamples, instances] count buffer: bounds bootstrap memory.
_CHUNK_ELEMENTS = 2_000_000

Seed = int | Sequence[int] | np.random.Generator


def _check_ci(ci: float) -> float:
    if not 0.0 < ci < 1.0:
        raise UsageError(f"ci must be in (0, 1), got {ci}")
    return float(ci)


def _check_count(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None, *,
                  exp: bool = False) -> np.ndarray | float:
    """Weighted mean over the last axis of ``values`` (``[..., n]``), exponentiated when
    ``exp`` (perplexity: the exp of the token-weighted mean NLL). ``weights`` broadcasts
    against ``values`` (None: equal weights). Raises ValueError on an empty last axis or
    weights that sum to zero."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-1:] == (0,) or values.ndim == 0:
        raise UsageError(f"weighted_mean needs at least one value on the last axis, got "
                         f"shape {values.shape}")
    w = np.ones_like(values) if weights is None else np.broadcast_to(
        np.asarray(weights, dtype=np.float64), values.shape)
    total = w.sum(-1)
    if np.any(total <= 0):
        raise UsageError("weights must sum to more than zero")
    mean = (values * w).sum(-1) / total
    out = np.exp(mean) if exp else mean
    return float(out) if np.ndim(out) == 0 else out


def bootstrap_means(values: np.ndarray, weights: np.ndarray | None, n_boot: int,
                    seed: Seed = 0, *, exp: bool = False) -> np.ndarray:
    """Paired bootstrap of weighted means: ``[n_boot, k]`` for ``values`` ``[k, n]``.

    Each resample draws ``n`` instances with replacement (multinomial counts) and weights
    every row's instances by the same counts times ``weights`` ``[n]``, so all ``k`` rows
    see the same instances. ``exp`` exponentiates each mean (see :func:`weighted_mean`).
    ``seed`` is an int, a sequence of ints, or a numpy Generator (drawn from in place).
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if values.ndim != 2:
        raise UsageError(f"values must be [k, n], got shape {values.shape}")
    n = values.shape[1]
    if n == 0:
        raise UsageError("a bootstrap needs at least one instance, got 0")
    n_boot = _check_count(n_boot, "n_boot", 1)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise UsageError(f"weights must be [n] = [{n}], got shape {w.shape}")
    if (w < 0).any() or not w.sum() > 0:
        raise UsageError("weights must be >= 0 and sum to more than zero")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    p = np.full(n, 1.0 / n)
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // n))
    parts, done = [], 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        cw = rng.multinomial(n, p, size=b).astype(np.float64) * w[None, :]  # [b, n]
        with np.errstate(invalid="ignore", divide="ignore"):
            # a resample of only zero-weight instances has no mean (NaN)
            parts.append((cw @ values.T) / cw.sum(1, keepdims=True))
        done += b
    means = np.concatenate(parts)
    return np.exp(means) if exp else means


def paired_bootstrap_drop(dense: np.ndarray, pruned: np.ndarray, weights: np.ndarray | None,
                          drop: Callable[[np.ndarray, np.ndarray], np.ndarray], n_boot: int,
                          seed: Seed = 0, *, exp: bool = False) -> np.ndarray:
    """Bootstrap drops from dense, paired over instances: ``[n_boot, k]``.

    ``dense`` ``[n]`` and ``pruned`` ``[k, n]`` (or ``[n]``) are the instance scores of the
    dense model and of ``k`` modified ones on the same ``n`` instances (same order);
    each resample aggregates all of them on the same instances (:func:`bootstrap_means`)
    and returns ``drop(value, baseline)`` (e.g. the relative drop of the metric).
    """
    dense = np.asarray(dense, dtype=np.float64)
    pruned = np.atleast_2d(np.asarray(pruned, dtype=np.float64))
    if dense.ndim != 1 or pruned.shape[1] != dense.shape[0]:
        raise UsageError(f"dense must be [n] and pruned [k, n] on the same instances; got "
                         f"{dense.shape} and {pruned.shape}")
    means = bootstrap_means(np.vstack([dense[None, :], pruned]), weights, n_boot, seed,
                            exp=exp)
    base = np.broadcast_to(means[:, :1], means[:, 1:].shape)
    return np.asarray(drop(means[:, 1:], base), dtype=np.float64)


def percentile_interval(draws: np.ndarray, ci: float = 0.95, *, axis: int = 0,
                        method: str = "linear") -> tuple[np.ndarray | float, np.ndarray | float]:
    """The ``((1 - ci) / 2, (1 + ci) / 2)`` quantiles of ``draws`` along ``axis``, NaN
    draws ignored (all-NaN gives NaN). ``method`` is numpy's quantile method
    (``"inverted_cdf"`` keeps both bounds observed values)."""
    ci = _check_ci(ci)
    draws = np.asarray(draws, dtype=np.float64)
    a = (1.0 - ci) / 2.0
    if draws.size == 0 or np.isnan(draws).all():
        shape = np.delete(draws.shape, axis) if draws.ndim > 1 else ()
        nan = np.full(tuple(shape), np.nan)
        return (float(nan), float(nan)) if nan.ndim == 0 else (nan, nan.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN
        lo, hi = np.nanquantile(draws, [a, 1.0 - a], axis=axis, method=method)
    return (float(lo), float(hi)) if np.ndim(lo) == 0 else (lo, hi)


def proportion_interval(successes: float, n: int, ci: float = 0.95,
                        method: str = "wilson") -> tuple[float, float]:
    """Confidence interval of a proportion ``successes / n``: ``"wilson"`` (score
    interval) or ``"beta"`` (Clopper-Pearson, exact), from statsmodels. Both stay inside
    [0, 1] and have positive width for every ``n >= 1``. Raises ValueError for ``n < 1``
    or ``successes`` outside ``[0, n]``."""
    ci = _check_ci(ci)
    if method not in PROPORTION_METHODS:
        raise UsageError(f"unknown proportion interval {method!r}; allowed: "
                         f"{PROPORTION_METHODS}")
    n = _check_count(n, "n", 1)
    if not 0 <= successes <= n:
        raise UsageError(f"successes must be in [0, n] = [0, {n}], got {successes}")
    lo, hi = proportion_confint(successes, n, alpha=1.0 - ci, method=method)
    # at 0 or n successes the bound is exactly 0 or 1 (statsmodels' Wilson rounds it off)
    lo = 0.0 if successes == 0 else max(float(lo), 0.0)
    hi = 1.0 if successes == n else min(float(hi), 1.0)
    return lo, hi


@dataclass
class OLSFit:
    """An OLS fit: coefficients ``[p]``, standard errors ``[p]``, covariance ``[p, p]``,
    residual standard deviation, degrees of freedom ``n - p``, R^2 (centred when the design
    has an all-ones column; 1 when ``y`` has no variation to explain) and the fitted values
    ``[n]``."""

    coef: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    sigma: float
    dof: int
    r2: float
    fitted: np.ndarray

    def interval(self, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Student-t intervals ``coef -/+ t_{dof} se`` (NaN when ``dof == 0``)."""
        ci = _check_ci(ci)
        if self.dof < 1:
            nan = np.full_like(self.coef, np.nan)
            return nan, nan.copy()
        q = float(scipy.stats.t.ppf(0.5 + ci / 2.0, self.dof))
        return self.coef - q * self.se, self.coef + q * self.se


def ols(x: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> OLSFit:
    """Least squares ``y ~ x b`` for ``x`` ``[n, p]`` (include a ones column for an
    intercept) and ``y`` ``[n]``, fitted by statsmodels with classical standard errors.

    Raises ValueError when ``x`` does not have full column rank (naming the columns
    involved when ``names`` are given), ``n < p``, or a value is not finite.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise UsageError(f"x must be [n, p] and y [n]; got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UsageError("x and y must be finite (drop rows with NaN or infinite values)")
    n, p = x.shape
    if n < p or n == 0:
        raise UsageError(f"{n} observations cannot determine {p} coefficients")
    rank = np.linalg.matrix_rank(x)
    if rank < p:
        # a null vector of x shows which columns are linearly dependent
        null = np.linalg.svd(x)[2][-1]
        involved = [int(i) for i in np.argsort(-np.abs(null)) if abs(null[i]) > 1e-6]
        cols = [names[i] for i in involved] if names else involved
        raise UsageError(f"the design has rank {rank} < {p} columns: {cols} are linearly "
                         "dependent in these data, so their effects cannot be separated")
    res = OLS(y, x).fit()
    dof = n - p
    fitted = np.asarray(res.fittedvalues, dtype=np.float64)
    rss = float(((y - fitted) ** 2).sum())
    if dof > 0:
        cov = np.asarray(res.cov_params(), dtype=np.float64)
        sigma = math.sqrt(rss / dof)
    else:  # an exact fit: no residual variance to estimate
        cov = np.full((p, p), np.nan)
        sigma = np.nan
    has_const = bool(np.any(np.all(x == 1.0, axis=0)))
    centre = y.mean() if has_const else 0.0
    if (np.ptp(y) == 0) if has_const else not y.any():
        # y has no variation (constant with a ones column, or all zero without one): the
        # design reproduces it exactly, so R^2 = 1 (sklearn's convention). Decided on y, not
        # on tss and rss: rounding leaves rss ~1e-31 and may leave tss > 0 (a mean of equal
        # floats need not equal them), which would give NaN or any number.
        r2 = 1.0
    else:
        tss = float(((y - centre) ** 2).sum())
        r2 = 1.0 - rss / tss
    return OLSFit(np.asarray(res.params, dtype=np.float64), np.sqrt(np.diag(cov)), cov,
                  sigma, dof, r2, fitted)


def cluster_bootstrap(x: np.ndarray, y: np.ndarray, clusters: np.ndarray, n_bootstrap: int,
                      seed: int = 0) -> np.ndarray:
    """OLS coefficients on ``n_bootstrap`` resamples of whole clusters (with replacement):
    ``[B, p]``.

    Observations in a cluster (e.g. the tasks of one pruned model, measured on the same
    weights) are not independent, so whole clusters are drawn. A resample is a weighted
    least-squares problem (an observation's weight is how often its cluster was drawn),
    so all resamples are solved at once from their normal equations. Resamples whose
    design is rank-deficient are redrawn (at most ``10 B`` draws in all; the result may
    then have fewer rows).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_bootstrap = _check_count(n_bootstrap, "n_bootstrap", 0)
    if x.ndim != 2 or y.shape != (x.shape[0],) or len(clusters) != len(y):
        raise UsageError(f"x must be [n, p], y and clusters [n]; got {x.shape}, {y.shape} "
                         f"and {len(clusters)} clusters")
    if len(y) == 0:
        raise UsageError("a cluster bootstrap needs at least one observation, got 0")
    _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(inverse.max()) + 1
    p = x.shape[1]
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    have, drawn = 0, 0
    while have < n_bootstrap and drawn < 10 * max(1, n_bootstrap):
        b = min(max(n_bootstrap - have, 16), 4096)
        drawn += b
        counts = rng.multinomial(k, np.full(k, 1.0 / k), size=b).astype(np.float64)
        w = counts[:, inverse]  # [b, n]: each observation weighted by its cluster's draws
        xtx = np.einsum("bn,np,nq->bpq", w, x, x)
        xty = np.einsum("bn,np,n->bp", w, x, y)
        ok = np.linalg.matrix_rank(xtx) == p
        if ok.any():
            coef = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
            out.append(coef[: n_bootstrap - have])
            have += len(out[-1])
    return np.concatenate(out) if out else np.zeros((0, p))


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient ``r`` of ``n`` pairs, its two-sided p-value (scipy) and
    a Fisher-z interval ``[ci_low, ci_high]`` at level ``ci``."""

    method: str
    r: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int
    ci: float


def fisher_z_interval(r: float, n: int, ci: float = 0.95,
                      method: str = "pearson") -> tuple[float, float]:
    """Interval of a correlation by Fisher's z: ``tanh(atanh(r) -/+ q se)`` with
    ``se = 1 / sqrt(n - 3)`` (Pearson) or ``sqrt(1.06 / (n - 3))`` (Spearman, Fieller et
    al. 1957). Needs ``n >= 4``; ``|r| == 1`` gives the point ``[r, r]``."""
    ci = _check_ci(ci)
    n = _check_count(n, "n", 4)
    if method not in CORRELATIONS:
        raise UsageError(f"unknown correlation {method!r}; allowed: {CORRELATIONS}")
    if not -1.0 <= r <= 1.0:
        raise UsageError(f"a correlation must be in [-1, 1], got {r}")
    if abs(r) == 1.0:
        return float(r), float(r)
    se = math.sqrt((1.06 if method == "spearman" else 1.0) / (n - 3))
    q = float(scipy.stats.norm.ppf(0.5 + ci / 2.0))
    z = math.atanh(r)
    return math.tanh(z - q * se), math.tanh(z + q * se)


def correlation(x: np.ndarray, y: np.ndarray, method: str = "pearson",
                ci: float = 0.95) -> Correlation:
    """Pearson or Spearman correlation of paired samples ``x``, ``y`` ``[n]`` (scipy),
    with a Fisher-z interval (:func:`fisher_z_interval`; NaN bounds when ``n < 4``).

    Raises ValueError for an unknown method, unequal lengths, non-finite values, fewer
    than 3 pairs, or a constant sample (no correlation is defined).
    """
    if method not in CORRELATIONS:
        raise UsageError(f"unknown correlation {method!r}; allowed: {CORRELATIONS}")
    ci = _check_ci(ci)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise UsageError(f"x and y must be [n] of the same length; got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UsageError("x and y must be finite")
    n = len(x)
    if n < 3:
        raise UsageError(f"a correlation needs at least 3 pairs, got {n}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise UsageError("x or y is constant: its correlation is undefined")
    res = scipy.stats.pearsonr(x, y) if method == "pearson" else scipy.stats.spearmanr(x, y)
    r = float(np.clip(res.statistic, -1.0, 1.0))
    lo, hi = fisher_z_interval(r, n, ci, method) if n >= 4 else (np.nan, np.nan)
    return Correlation(method, r, float(res.pvalue), lo, hi, n, ci)
