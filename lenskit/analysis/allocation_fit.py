"""Where non-uniform allocations put sparsity, and how the accuracy drop follows it.

Global thresholds and OWL do not prune every matrix alike: per layer and per family they
reach different sparsities at the same overall level. :func:`allocation_profiles` prunes
the model with several allocations (and scopes) at several levels, records the sparsity
each one achieved at every site, and evaluates the suite on each; the result
(:class:`AllocationProfiles`) turns those per-site sparsities into per-cell features
(``s_attn``, ``s_mlp``; or per layer, per layer x family, per component: the fraction of
all of the model's weights of that kind that were pruned).

:func:`fit_sparsity_relation` then regresses the relative accuracy drop on those features,
per task category (fact recall, in-context learning), by ordinary least squares::

    relative_drop[cell, task] = b0 + b_attn * s_attn[cell] + b_mlp * s_mlp[cell] + e

with classical standard errors and Student-t intervals, and a bootstrap over pruned models
(cells): a cell's tasks are measured on the same weights, so they are resampled together.
The bootstrap interval is the one to quote; the t interval assumes independent errors.
The relation is linear by construction: read ``b_mlp`` as "relative drop per unit of FFW
sparsity, other features held fixed" within the range of the data, not as a law.

Identifiability: uniform pruning of everything gives ``s_attn == s_mlp``; OWL moves
sparsity between layers, not between families. Global allocation separates the families
(weights of different scales), and so do the scopes ``"attn"`` and ``"mlp"``: add
``scopes=("all", "attn", "mlp")`` for a well-determined per-family fit. A design that
cannot separate its features raises a ValueError saying which ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lenskit.analysis.mapping import (
    MapEvaluator,
    check_dense,
    check_sparsities,
    prepare_suite,
)
from lenskit.models import model_info
from lenskit.pruning import Pruner, default_calibration
from lenskit.stats import cluster_bootstrap, ols

__all__ = [
    "FEATURE_SETS",
    "PROFILE_ALLOCATIONS",
    "AllocationProfiles",
    "SparsityFit",
    "allocation_profiles",
    "fit_sparsity_relation",
]

PROFILE_ALLOCATIONS = ("uniform", "global", "owl")
FEATURE_SETS = ("family", "layer", "layer_family", "component")
_OWL_KWARGS = ("owl_m", "owl_lambda")
DENSE_CELL = "dense"


def _feature_name(by: str, row: pd.Series | dict) -> str:
    if by == "family":
        return f"s_{row['family']}"
    if by == "layer":
        return f"s_layer{row['layer']}"
    if by == "layer_family":
        return f"s_{row['family']}@{row['layer']}"
    return f"s_{row['family']}.{row['component']}"


@dataclass
class AllocationProfiles:
    """Pruned cells with their per-site sparsity and their measurements.

    Attributes:
        results: one row per cell x task x metric: model, method, seed, cell, allocation,
            scope, target_sparsity (requested, of the scope), achieved_sparsity (of the
            scope), params_removed, task, kind, category, metric, value, n, baseline,
            drop, relative_drop (+ its paired bootstrap interval), named as in the
            results schema (:data:`lenskit.results.schema.RESULT_COLUMNS`). The dense model
            is the cell ``"dense"`` (method ``"dense"``, allocation ``"uniform"``, scope
            ``"all"``, sparsity 0, as in a sweep).
        sites: one row per cell x site of the MODEL (sites outside the scope included,
            with nothing pruned): cell, allocation, scope, sparsity, site, layer, family,
            component, numel, pruned, target_sparsity (NaN outside the scope),
            achieved_sparsity.
        diagnostics: per cell, what the pruner reported (OWL's outlier ratios and
            block sparsities).
    """

    results: pd.DataFrame
    sites: pd.DataFrame
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def features(self, by: str = "family") -> pd.DataFrame:
        """One row per cell: ``cell`` and the achieved sparsity of each part of the model
        (``by="family"``: ``s_attn``, ``s_mlp``; ``"layer"``: ``s_layer0``...;
        ``"layer_family"``: ``s_attn@0``...; ``"component"``: ``s_attn.q``...): pruned
        weights over all of the model's weights of that part."""
        if by not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {by!r}; allowed: {FEATURE_SETS}")
        s = self.sites.copy()
        s["feature"] = [_feature_name(by, r) for r in s.to_dict("records")]
        g = s.groupby(["cell", "feature"], sort=False)[["pruned", "numel"]].sum()
        g["s"] = g["pruned"] / g["numel"]
        wide = g["s"].unstack("feature")
        order = list(dict.fromkeys(s["feature"]))
        return wide[order].reset_index().rename_axis(columns=None)

    def table(self, by: str = "family", metric: str = "em",
              include_dense: bool = True) -> pd.DataFrame:
        """The regression table: one row per cell x task for ``metric`` with the cell's
        features (see :meth:`features`) beside its results."""
        res = self.results[self.results["metric"] == metric]
        if res.empty:
            raise ValueError(f"no results for metric {metric!r}; have "
                             f"{sorted(set(self.results['metric']))}")
        if not include_dense:
            res = res[res["cell"] != DENSE_CELL]
        return res.merge(self.features(by), on="cell", how="left", validate="many_to_one")

    def fit(self, by: str = "family", metric: str = "em", include_dense: bool = True,
            **kwargs: Any) -> SparsityFit:
        """:func:`fit_sparsity_relation` on :meth:`table` (keyword arguments passed on)."""
        return fit_sparsity_relation(self.table(by, metric, include_dense), metric=metric,
                                     **kwargs)


def allocation_profiles(
    model,
    suite,
    *,
    method: str = "magnitude",
    allocations: Iterable[str] = PROFILE_ALLOCATIONS,
    sparsities: Iterable[float] = (0.3, 0.5, 0.7),
    scopes: Iterable[str] = ("all",),
    calibration=None,
    batch_size: int = 64,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
    n_per_task: int | None = None,
    metrics: Sequence[str] | None = None,
    n_bootstrap: int = 0,
    progress: bool = True,
    **method_kwargs: Any,
) -> AllocationProfiles:
    """Prune with each allocation x scope at each sparsity; record per-site sparsity and
    evaluate the suite on each (the dense model once).

    Args:
        model: a dense bridge from :func:`lenskit.load_model`.
        suite: task sets (dict or list), e.g. :func:`lenskit.tasks.default_suite`.
        method: a pruning method (``global`` is not defined for ``sparsegpt``).
        allocations: any of ``"uniform"``, ``"global"``, ``"owl"``.
        sparsities: fractions of each scope's weights.
        scopes: scope strings (``"all"``, ``"attn"``, ``"mlp"``, ``"attn@0-1"``...).
        calibration: shared by every pruner that needs one (default: the seeded
            :func:`~lenskit.pruning.default_calibration`, built once).
        method_kwargs: method parameters; ``owl_m``/``owl_lambda`` go to OWL only.
        Others as in :func:`lenskit.analysis.sensitivity_map`.

    Returns:
        :class:`AllocationProfiles`.
    """
    from tqdm.auto import tqdm

    allocs = [allocations] if isinstance(allocations, str) else list(dict.fromkeys(allocations))
    bad = [a for a in allocs if a not in PROFILE_ALLOCATIONS]
    if bad or not allocs:
        raise ValueError(f"unknown allocation(s) {bad or allocs}; allowed: "
                         f"{PROFILE_ALLOCATIONS} ('matched' fixes a parameter count rather "
                         "than an allocation: compare scopes instead)")
    scope_list = [scopes] if isinstance(scopes, str) else list(dict.fromkeys(scopes))
    if not scope_list:
        raise ValueError("scopes is empty; give at least one scope such as 'all'")
    levels = check_sparsities(sparsities)
    check_dense(model)
    info = model_info(model)
    prepared = prepare_suite(suite, tasks, n_per_task, seed)
    base_kwargs = {k: v for k, v in method_kwargs.items() if k not in _OWL_KWARGS}
    owl_kwargs = {k: v for k, v in method_kwargs.items() if k in _OWL_KWARGS}
    if owl_kwargs and "owl" not in allocs:
        raise ValueError(f"{sorted(owl_kwargs)} need allocation 'owl' among {allocs}")
    needs_cal = method in ("wanda", "sparsegpt") or "owl" in allocs
    if calibration is None and needs_cal:
        calibration = default_calibration(model, seed=seed)
    pruners = []
    for alloc in allocs:
        for scope in scope_list:
            kw = {**base_kwargs, **(owl_kwargs if alloc == "owl" else {})}
            pruners.append((alloc, scope, Pruner(model, method, scope=scope, allocation=alloc,
                                                 calibration=calibration if needs_cal else None,
                                                 seed=seed, **kw)))
    ev = MapEvaluator(model, prepared, batch_size=batch_size, metrics=metrics,
                      n_bootstrap=n_bootstrap, seed=seed)
    all_sites = pd.DataFrame([{"site": s.name, "layer": s.layer, "family": s.family,
                               "component": s.component, "numel": s.numel}
                              for s in info.sites])

    def cell_labels(cell, alloc, scope, s, achieved, removed):
        return {"model": info.spec, "method": method if cell != DENSE_CELL else "dense",
                "seed": seed, "cell": cell, "allocation": alloc, "scope": scope,
                "target_sparsity": s, "achieved_sparsity": achieved,
                "params_removed": removed}

    # the dense model as in a sweep: uniform allocation over everything, nothing pruned
    dense_rows = ev.dense_rows(cell_labels(DENSE_CELL, "uniform", "all", 0.0, 0.0, 0))
    results = [dense_rows]
    sites = [all_sites.assign(cell=DENSE_CELL, allocation="uniform", scope="all", sparsity=0.0,
                              pruned=0, target_sparsity=np.nan, achieved_sparsity=0.0)]
    diagnostics: dict[str, Any] = {}
    bar = tqdm(total=len(pruners) * len(levels), disable=not progress, unit="cell",
               desc="allocations", dynamic_ncols=True)
    for alloc, scope, pruner in pruners:
        swept = pruner.sweep(levels)
        for s in levels:
            r = swept[s]
            cell = f"{alloc}:{scope}:{s:g}"
            bar.set_postfix_str(cell)
            rep = r.report().set_index("site")
            per_site = all_sites.assign(
                cell=cell, allocation=alloc, scope=scope, sparsity=s,
                pruned=all_sites["site"].map(rep["pruned"]).fillna(0).astype("int64"),
                target_sparsity=all_sites["site"].map(rep["target_sparsity"]).astype(float))
            per_site["achieved_sparsity"] = per_site["pruned"] / per_site["numel"]
            sites.append(per_site)
            if r.diagnostics:
                diagnostics[cell] = r.diagnostics
            with r.applied(model):
                results.append(ev.measure(cell_labels(cell, alloc, scope, s,
                                                      r.achieved_sparsity,
                                                      r.params_removed)))
            bar.update()
    bar.close()
    site_cols = ["cell", "allocation", "scope", "sparsity", "site", "layer", "family",
                 "component", "numel", "pruned", "target_sparsity", "achieved_sparsity"]
    return AllocationProfiles(
        results=pd.concat(results, ignore_index=True),
        sites=pd.concat(sites, ignore_index=True)[site_cols],
        diagnostics=diagnostics,
    )


# ----------------------------------------------------------------------------- fitting


@dataclass
class SparsityFit:
    """A fitted linear relation between achieved sparsity and accuracy drop, per group.

    Attributes:
        coefficients: one row per group x term (``"intercept"`` and each feature): coef,
            se (classical OLS), ci_low/ci_high (Student-t), boot_low/boot_high (bootstrap
            over clusters, percentile), n_obs, n_clusters, dof, r2, sigma (residual SD).
        observations: the rows fitted: group, cluster, task, response, the features,
            fitted and residual.
        draws: group -> bootstrap coefficients ``[B, p]`` (columns as ``terms``).
        features, response, intercept, ci: how the fit was made.
    """

    coefficients: pd.DataFrame
    observations: pd.DataFrame
    draws: dict[str, np.ndarray]
    features: tuple[str, ...]
    response: str
    intercept: bool
    ci: float

    @property
    def terms(self) -> tuple[str, ...]:
        return (("intercept",) if self.intercept else ()) + self.features

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(self.coefficients["group"]))

    def coef(self, group: str) -> np.ndarray:
        """The coefficients ``[p]`` of ``group`` in the order of :attr:`terms`."""
        c = self.coefficients[self.coefficients["group"] == group]
        if c.empty:
            raise ValueError(f"unknown group {group!r}; the fit has {self.groups}")
        return c.set_index("term").loc[list(self.terms), "coef"].to_numpy()

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ValueError(f"missing feature column(s) {missing}")
        x = frame[list(self.features)].to_numpy(dtype=np.float64)
        return np.column_stack([np.ones(len(frame)), x]) if self.intercept else x

    def predict(self, frame: pd.DataFrame, group: str) -> np.ndarray:
        """Predicted response for the feature values in ``frame`` ``[n]``."""
        return self._design(frame) @ self.coef(group)

    def partial(self, feature: str, *, n_points: int = 25) -> pd.DataFrame:
        """The fitted relation along one feature, the others held at their mean in each
        group's data: group, feature, x (a grid over the observed range), fit, low, high
        (the bootstrap percentile band at level ``ci``; NaN without bootstrap)."""
        if feature not in self.features:
            raise ValueError(f"unknown feature {feature!r}; the fit has {self.features}")
        rows = []
        for g in self.groups:
            obs = self.observations[self.observations["group"] == g]
            lo, hi = float(obs[feature].min()), float(obs[feature].max())
            grid = np.linspace(lo, hi, n_points) if hi > lo else np.array([lo])
            frame = pd.DataFrame({f: np.full(len(grid), obs[f].mean()) for f in self.features})
            frame[feature] = grid
            x = self._design(frame)
            fit = x @ self.coef(g)
            draws = self.draws.get(g)
            if draws is not None and len(draws):
                curves = draws @ x.T
                band_lo, band_hi = np.quantile(curves, [(1 - self.ci) / 2,
                                                        1 - (1 - self.ci) / 2], axis=0)
            else:
                band_lo = band_hi = np.full(len(grid), np.nan)
            rows.append(pd.DataFrame({"group": g, "feature": feature, "x": grid, "fit": fit,
                                      "low": band_lo, "high": band_hi}))
        return pd.concat(rows, ignore_index=True)

    def partial_residuals(self, feature: str) -> pd.DataFrame:
        """Observations seen along one feature: ``x`` (the feature) and ``partial`` = the
        response minus the fitted effect of the other features' deviations from their
        group mean; they scatter around :meth:`partial`'s line by exactly the residuals."""
        if feature not in self.features:
            raise ValueError(f"unknown feature {feature!r}; the fit has {self.features}")
        parts = []
        for g in self.groups:
            obs = self.observations[self.observations["group"] == g].copy()
            coef = dict(zip(self.terms, self.coef(g), strict=True))
            adjust = sum(coef[f] * (obs[f] - obs[f].mean()) for f in self.features
                         if f != feature)
            obs["x"] = obs[feature]
            obs["partial"] = obs["response"] - adjust
            parts.append(obs.assign(feature=feature))
        return pd.concat(parts, ignore_index=True)


def fit_sparsity_relation(
    data: pd.DataFrame | AllocationProfiles,
    *,
    features: Sequence[str] | None = None,
    response: str = "relative_drop",
    group: str | None = "category",
    cluster: str | None = "cell",
    metric: str | None = "em",
    by: str = "family",
    intercept: bool = True,
    include_dense: bool = True,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> SparsityFit:
    """Regress ``response`` on sparsity features, separately per ``group``.

    Args:
        data: an :class:`AllocationProfiles` (its :meth:`~AllocationProfiles.table` for
            ``by``, ``metric`` and ``include_dense`` is used) or a table with one row per
            observation: the response, the features, and optionally the group and cluster
            columns (and ``metric``, which is then filtered on).
        features: feature columns (default: every column whose name starts with ``s_``).
        response: the column to explain (default ``relative_drop``).
        group: fit separately per value of this column (``None``: one fit, group
            ``"all"``).
        cluster: observations sharing a value are resampled together by the bootstrap
            (``None``: each row alone).
        intercept: include a constant term.
        n_bootstrap: cluster-bootstrap resamples (0: none).
        ci: interval level of both the t and the bootstrap intervals.
        seed: seeds the bootstrap.

    Rows whose response is not finite (e.g. a relative drop from a zero baseline) are
    dropped with a warning. Raises ValueError for missing columns, an empty table, or a
    group whose design cannot separate the features (naming them).
    """
    if isinstance(data, AllocationProfiles):
        data = data.table(by, metric or "em", include_dense)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a DataFrame or AllocationProfiles, got "
                         f"{type(data).__name__}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
            or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be an int >= 0, got {n_bootstrap!r}")
    df = data
    if metric is not None and "metric" in df.columns:
        df = df[df["metric"] == metric]
        if df.empty:
            raise ValueError(f"no rows for metric {metric!r}; have "
                             f"{sorted(set(data['metric']))}")
    feats = tuple(features) if features is not None else tuple(
        c for c in df.columns if str(c).startswith("s_"))
    if not feats:
        raise ValueError("no features: pass features= or name feature columns 's_...'")
    needed = [response, *feats, *([group] if group else []), *([cluster] if cluster else [])]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the table has {list(df.columns)}")
    if df.empty:
        raise ValueError("the table is empty")
    finite = np.isfinite(df[response].to_numpy(dtype=np.float64))
    if not finite.all():
        warnings.warn(f"dropped {int((~finite).sum())} row(s) whose {response} is not finite "
                      "(a zero baseline?)", stacklevel=2)
        df = df[finite]
    groups = list(dict.fromkeys(df[group])) if group else ["all"]
    terms = (("intercept",) if intercept else ()) + feats
    coef_rows, obs_parts, draws = [], [], {}
    for g in groups:
        sub = df[df[group] == g] if group else df
        x = sub[list(feats)].to_numpy(dtype=np.float64)
        if intercept:
            x = np.column_stack([np.ones(len(sub)), x])
        y = sub[response].to_numpy(dtype=np.float64)
        clusters = (sub[cluster].astype(str).to_numpy() if cluster
                    else np.arange(len(sub)).astype(str))
        try:
            fit = ols(x, y, list(terms))
        except ValueError as err:
            raise ValueError(f"group {g!r}: {err}") from None
        lo, hi = fit.interval(ci)
        b = (cluster_bootstrap(x, y, clusters, int(n_bootstrap), seed) if n_bootstrap
             else np.zeros((0, len(terms))))
        draws[str(g)] = b
        if len(b):
            blo, bhi = np.quantile(b, [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=0)
        else:
            blo = bhi = np.full(len(terms), np.nan)
        n_clusters = len(set(clusters))
        for i, term in enumerate(terms):
            coef_rows.append({"group": str(g), "term": term, "coef": fit.coef[i],
                              "se": fit.se[i], "ci_low": lo[i], "ci_high": hi[i],
                              "boot_low": blo[i], "boot_high": bhi[i], "n_obs": len(sub),
                              "n_clusters": n_clusters, "dof": fit.dof, "r2": fit.r2,
                              "sigma": fit.sigma})
        obs = pd.DataFrame({"group": str(g), "cluster": clusters,
                            "task": sub["task"].to_numpy() if "task" in sub else "",
                            "response": y})
        for f in feats:
            obs[f] = sub[f].to_numpy(dtype=np.float64)
        obs["fitted"] = fit.fitted
        obs["residual"] = y - fit.fitted
        obs_parts.append(obs)
    return SparsityFit(pd.DataFrame(coef_rows), pd.concat(obs_parts, ignore_index=True),
                       draws, feats, response, intercept, ci)
