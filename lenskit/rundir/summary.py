"""What a run's results add up to: its threshold and study-comparison tables, computed
from the results it holds (:mod:`lenskit.results`) and written into it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from lenskit.results.comparison import format_study_comparison, study_comparison
from lenskit.results.thresholds import at_chance_by_model, compute_thresholds, format_thresholds
from lenskit.rundir.store import RunStore

__all__ = ["RunSummary", "summarise_run"]


@dataclass(frozen=True)
class RunSummary:
    """A run's results (schema rows), per-instance rows, thresholds and study comparison."""

    results: pd.DataFrame
    instances: pd.DataFrame
    thresholds: pd.DataFrame
    comparison: pd.DataFrame


def summarise_run(store: RunStore, order: Sequence[str] | None = None, *,
                  echo: Callable[[str], None] = print) -> RunSummary:
    """Thresholds and the study comparison of the results in ``store``, written as the
    tables ``thresholds`` and ``study_comparison``; both are echoed as text.

    With ``order`` (cell ids), only those cells count: a run directory may also hold the
    cells of earlier, smaller or differently calibrated grids, or of a merged run."""
    only = order is not None
    results = store.results(order, only=only)
    instances = store.instances(order, only=only)
    thresholds = compute_thresholds(results, instances if len(instances) else None)
    at_chance = at_chance_by_model(results)
    text = format_thresholds(thresholds, at_chance=at_chance)
    comparison = study_comparison(thresholds, at_chance, echo)  # names tasks at chance
    store.write_table("thresholds", thresholds)
    store.write_table("study_comparison", comparison)
    echo(text)
    if len(comparison):
        echo(format_study_comparison(comparison))
    return RunSummary(results, instances, thresholds, comparison)
