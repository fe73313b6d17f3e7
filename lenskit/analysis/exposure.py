"""Fact recall under pruning against how often each fact was seen in training.

A zipf organism's ``world.json`` records, per fact, how many training documents stated it
(:func:`lenskit.synthetic.corpus.exposure_counts`), and its closed-book items carry that
count (``meta["exposure"]``). Joining a sweep's per-instance scores to those counts shows
which facts pruning takes first: if rarely seen facts fall at low sparsity while the
in-context tasks hold, recall breaks first; if every fact the model knows is seen often
(the rare ones were never learned), pruning has little to take, and this table shows why.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lenskit.errors import UsageError
from lenskit.models.loading import ModelLoadError, resolve_spec
from lenskit.results.schema import CELL_KEYS, validate_instances, validate_results
from lenskit.stats import proportion_interval
from lenskit.synthetic.world import World
from lenskit.tasks import closed_book_exposure
from lenskit.tasks.evaluate import bucket_pools

__all__ = ["EXPOSURE_BINS", "EXPOSURE_COLUMNS", "instance_exposure", "recall_by_exposure",
           "results_exposure"]

#: Default edges of the exposure bins (documents stating a fact): [0, 10), [10, 30), ...
EXPOSURE_BINS: tuple[int, ...] = (0, 10, 30, 100, 300, 1000)

#: Columns of :func:`recall_by_exposure`'s table.
EXPOSURE_COLUMNS: tuple[str, ...] = (
    *CELL_KEYS, "exposure_bin", "exposure_low", "exposure_high", "exposure_median", "value",
    "ci_low", "ci_high", "n",
)


def instance_exposure(model_dir: str | Path) -> dict[str, int]:
    """``{instance_id: exposure}`` of the closed-book items of the organism in ``model_dir``
    (a directory holding ``world.json``; :func:`lenskit.tasks.closed_book_exposure`).
    Raises ValueError when its world records no exposure (a uniform or untrained world)."""

    path = Path(model_dir) / "world.json"
    if not path.is_file():
        raise UsageError(f"{model_dir} holds no world.json (not an organism)")
    out = closed_book_exposure(World.load(path))
    if not out:
        raise UsageError(f"{model_dir}: world.json records no exposure counts (a zipf "
                         "organism trained by lenskit records them)")
    return out


def results_exposure(results: pd.DataFrame) -> dict[str, int]:
    """:func:`instance_exposure` of every pruned model in ``results`` that is an organism
    with exposure counts (found by its name, as :func:`lenskit.load_model` would); empty
    when none is. Models of one family share their world, hence their counts."""

    out: dict[str, int] = {}
    for model in dict.fromkeys(results.loc[results["method"] != "dense", "model"]):
        try:
            path, local = resolve_spec(str(model))
        except (ModelLoadError, OSError):
            continue
        if local and (Path(path) / "world.json").is_file():
            try:
                out.update(instance_exposure(path))
            except ValueError:
                continue
    return out


def _bin_labels(edges: Sequence[int]) -> list[str]:
    return [f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)] + [f"≥{edges[-1]}"]


def recall_by_exposure(results: pd.DataFrame, instances: pd.DataFrame,
                       exposure: Mapping[str, int], *, bins: Sequence[int] = EXPOSURE_BINS,
                       task_prefix: str = "closed_book", metric: str = "em",
                       ci: float = 0.95) -> pd.DataFrame:
    """Exact match of the closed-book instances per cell and exposure bin.

    Args:
        results: the sweep's tidy rows (to name each ``cell_id``'s model, method, scope,
            sparsity...; dense rows included).
        instances: the sweep's instance rows (:data:`~lenskit.results.schema.INSTANCE_COLUMNS`).
        exposure: ``{instance_id: documents stating the fact}`` (:func:`instance_exposure`).
        bins: increasing left edges of the bins, the first 0; the last bin is open.
        task_prefix, metric: which instances count (tasks whose name starts with it).
        ci: level of the Wilson interval of each proportion.

    Returns :data:`EXPOSURE_COLUMNS`: one row per cell and non-empty bin, ``value`` the
    share correct, ``exposure_median`` the median exposure of its instances.
    """
    edges = [int(b) for b in bins]
    if not edges or edges[0] != 0 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise UsageError(f"bins must be increasing left edges starting at 0, got {list(bins)}")
    res = validate_results(results)
    inst = validate_instances(instances)
    inst = inst[inst["task"].str.startswith(task_prefix) & (inst["metric"] == metric)]
    # a pool of popularity buckets repeats its buckets' instances: count each fact once
    inst = inst[~inst["task"].isin(list(bucket_pools(inst["task"].unique())))]
    inst = inst.assign(exposure=inst["instance_id"].map(exposure))
    if not len(inst) or inst["exposure"].isna().all():
        raise UsageError(f"no {task_prefix}* instances of metric {metric!r} with a known "
                         "exposure in the sweep's instances")
    inst = inst.dropna(subset=["exposure"])
    labels = _bin_labels(edges)
    idx = np.searchsorted(np.asarray(edges), inst["exposure"].to_numpy(), side="right") - 1
    inst = inst.assign(exposure_bin=[labels[i] for i in idx], _bin=idx)
    cells = res.drop_duplicates("cell_id").set_index("cell_id")[list(CELL_KEYS)]
    rows = []
    for (cell, b), g in inst.groupby(["cell_id", "_bin"], sort=True):
        if cell not in cells.index:
            continue
        k, n = float(g["value"].sum()), len(g)
        lo, hi = proportion_interval(k, n, ci)
        rows.append({**cells.loc[cell].to_dict(), "exposure_bin": labels[b],
                     "exposure_low": edges[b],
                     "exposure_high": edges[b + 1] - 1 if b + 1 < len(edges) else np.nan,
                     "exposure_median": float(g["exposure"].median()), "value": k / n,
                     "ci_low": lo, "ci_high": hi, "n": n})
    out = pd.DataFrame(rows, columns=list(EXPOSURE_COLUMNS))
    return out.sort_values([*CELL_KEYS, "exposure_low"], ignore_index=True)
