"""Ordinary least squares with classical standard errors and a cluster bootstrap, in numpy.

Small on purpose (no statsmodels/scipy dependency): :func:`ols` fits ``y ~ X b`` and gives
standard errors ``sqrt(diag(s^2 (X^T X)^-1))`` with ``s^2 = RSS / (n - p)`` and Student-t
intervals; :func:`cluster_bootstrap` refits on resampled clusters (e.g. pruned models,
whose tasks are measured on the same weights and so are not independent) for intervals
that do not assume independent, homoscedastic errors. The t quantiles come from the
regularised incomplete beta function (continued fraction, evaluated to 1e-14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OLSFit", "cluster_bootstrap", "ols", "student_t_cdf", "student_t_ppf"]

_TINY = 1e-300


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((a - 1.0 + m2) * (a + m2)),
                    -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            step = c * d
            h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the
    # symmetry I_x(a, b) = 1 - I_{1-x}(b, a) otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t with ``df > 0`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_ppf(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the
    CDF to ~1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass
class OLSFit:
    """An OLS fit: coefficients ``[p]``, standard errors ``[p]``, covariance ``[p, p]``,
    residual standard deviation, degrees of freedom ``n - p``, R^2 (centred when the design
    has an all-ones column) and the fitted values ``[n]``."""

    coef: np.ndarray
    se: np.ndarray
    cov: np.ndarray
    sigma: float
    dof: int
    r2: float
    fitted: np.ndarray

    def interval(self, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Student-t intervals ``coef -/+ t_{dof} se`` (NaN when ``dof == 0``)."""
        if self.dof < 1:
            nan = np.full_like(self.coef, np.nan)
            return nan, nan.copy()
        q = student_t_ppf(0.5 + ci / 2.0, self.dof)
        return self.coef - q * self.se, self.coef + q * self.se


def ols(x: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> OLSFit:
    """Least squares ``y ~ x b`` for ``x`` ``[n, p]`` (include a ones column for an
    intercept) and ``y`` ``[n]``.

    Raises ValueError when ``x`` does not have full column rank (naming the columns
    involved when ``names`` are given) or ``n < p``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [n, p] and y [n]; got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (drop rows with NaN or infinite values)")
    n, p = x.shape
    if n < p:
        raise ValueError(f"{n} observations cannot determine {p} coefficients")
    rank = np.linalg.matrix_rank(x)
    if rank < p:
        # a null vector of x shows which columns are linearly dependent
        null = np.linalg.svd(x)[2][-1]
        involved = [i for i in np.argsort(-np.abs(null)) if abs(null[i]) > 1e-6]
        cols = [names[i] for i in involved] if names else involved
        raise ValueError(f"the design has rank {rank} < {p} columns: {cols} are linearly "
                         "dependent in these data, so their effects cannot be separated")
    q, r = np.linalg.qr(x)
    coef = np.linalg.solve(r, q.T @ y)
    fitted = x @ coef
    resid = y - fitted
    dof = n - p
    rss = float(resid @ resid)
    sigma2 = rss / dof if dof > 0 else np.nan
    r_inv = np.linalg.inv(r)
    cov = sigma2 * (r_inv @ r_inv.T)
    has_const = bool(np.any(np.all(x == 1.0, axis=0)))
    centre = y.mean() if has_const else 0.0
    tss = float(((y - centre) ** 2).sum())
    r2 = 1.0 - rss / tss if tss > 0 else (1.0 if rss == 0 else np.nan)
    return OLSFit(coef, np.sqrt(np.diag(cov)), cov, math.sqrt(sigma2) if dof > 0 else np.nan,
                  dof, r2, fitted)


def cluster_bootstrap(x: np.ndarray, y: np.ndarray, clusters: np.ndarray, n_bootstrap: int,
                      seed: int = 0) -> np.ndarray:
    """OLS coefficients on ``n_bootstrap`` resamples of whole clusters (with replacement):
    ``[B, p]``.

    A resample is a weighted least-squares problem (an observation's weight is how often
    its cluster was drawn), so all resamples are solved at once from their normal
    equations. Resamples whose design is rank-deficient are redrawn (at most ``10 B``
    draws in all; the result may then have fewer rows).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    _, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    k = int(inverse.max()) + 1
    p = x.shape[1]
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    have, drawn = 0, 0
    while have < n_bootstrap and drawn < 10 * max(1, n_bootstrap):
        b = min(max(n_bootstrap - have, 16), 4096)
        drawn += b
        picks = rng.integers(0, k, size=(b, k))
        counts = np.stack([np.bincount(row, minlength=k) for row in picks]).astype(np.float64)
        w = counts[:, inverse]  # [b, n]: each observation weighted by its cluster's draws
        xtx = np.einsum("bn,np,nq->bpq", w, x, x)
        xty = np.einsum("bn,np,n->bp", w, x, y)
        ok = np.linalg.matrix_rank(xtx) == p
        if ok.any():
            coef = np.linalg.solve(xtx[ok], xty[ok][..., None])[..., 0]
            out.append(coef[: n_bootstrap - have])
            have += len(out[-1])
    return np.concatenate(out) if out else np.zeros((0, p))
