"""The result of an evaluation: per-instance rows and their aggregates per task and metric,
with Wilson intervals for proportions and bootstrap intervals for the other metrics."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lenskit.errors import UsageError
from lenskit.stats import proportion_interval

__all__ = ["CHANCE_METRICS", "PROPORTION_METRICS", "EvalResult"]


def _task_metrics(kind: str) -> tuple[str, ...]:
    if kind == "perplexity":
        return ("perplexity", "nll_per_token")
    base = ("em", "logprob", "first_token_acc", "mrr")
    return (*base, "memorised_rate") if kind == "overriding" else base


#: Metrics whose guessing level is the task's ``chance`` (the share of correct answers).
CHANCE_METRICS: tuple[str, ...] = ("em", "first_token_acc")

#: Metrics that are proportions (the mean of 0/1 instance scores): their intervals are
#: Wilson score intervals, which never collapse to a point (all correct still gives an
#: upper bound of 1 and a lower bound below it).
PROPORTION_METRICS: tuple[str, ...] = ("em", "first_token_acc", "memorised_rate")
_PROPORTION_SOURCE = {"em": "correct", "first_token_acc": "first_token_correct",
                      "memorised_rate": "memorised"}


def _proportion_ci(frame: pd.DataFrame, metric: str, ci: float) -> tuple[float, float] | None:
    """The Wilson interval of a proportion metric, or None when its instance scores are not
    all 0/1 (then the bootstrap interval is used)."""
    v = frame[_PROPORTION_SOURCE[metric]].to_numpy(dtype=np.float64, na_value=np.nan)
    v = v[~np.isnan(v)]
    if not len(v) or not np.isin(v, (0.0, 1.0)).all():
        return None
    return proportion_interval(float(v.sum()), len(v), ci, method="wilson")


def _metric_values(frame: pd.DataFrame, metric: str, idx: np.ndarray | None) -> np.ndarray:
    """The metric over resamples ``idx`` ``[B, n]`` (or the sample itself when None)."""
    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)

    if metric in ("perplexity", "nll_per_token"):
        lp, nt = col("logprob"), col("scored_tokens")
        nll = -lp.sum() / nt.sum() if idx is None else -lp[idx].sum(1) / nt[idx].sum(1)
        return np.exp(nll) if metric == "perplexity" else np.asarray(nll)
    source = {"em": "correct", "logprob": "logprob", "first_token_acc": "first_token_correct",
              "memorised_rate": "memorised", "mrr": "gold_rank"}[metric]
    values = col(source)
    if metric == "mrr":
        values = 1.0 / values
    return values.mean() if idx is None else values[idx].mean(1)


@dataclass
class EvalResult:
    """Per-instance rows of one or more evaluated task sets.

    Attributes:
        rows: one row per instance with columns
            :data:`~lenskit.tasks.evaluate.ROW_COLUMNS`: ``correct`` (exact match against
            any alias), ``logprob`` (sum of log-probabilities of the gold
            answer's tokens under teacher forcing, or of a window's scored tokens),
            ``scored_tokens`` (how many tokens that sum covers), ``gold_rank`` (rank of the
            gold's first token at the answer position, 1 = top), ``first_token_correct``,
            ``memorised`` (overriding: the prediction matches the memorised answer),
            ``generated_tokens``, ``stopped`` (decoding ended on a newline/EOS).
        n_bootstrap, seed: defaults of :meth:`summary`.
        meta: backend, decoding mode, batch size, and per task: seconds, source, split...
    """

    rows: pd.DataFrame
    n_bootstrap: int = 1000
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        tasks = list(dict.fromkeys(self.rows["task"])) if len(self.rows) else []
        return f"EvalResult(tasks={tasks}, n_rows={len(self.rows)})"

    @staticmethod
    def concat(results: Sequence[EvalResult]) -> EvalResult:
        """One result holding the rows of all ``results`` (task names must not repeat)."""
        if not results:
            raise UsageError("nothing to concatenate")
        names: list[str] = []
        tasks_meta: dict[str, Any] = {}
        for r in results:
            for name in dict.fromkeys(r.rows["task"]):
                if name in names:
                    raise UsageError(f"task {name!r} appears in more than one result")
                names.append(name)
            tasks_meta.update(r.meta.get("tasks", {}))
        first = results[0]
        meta = {k: v for k, v in first.meta.items() if k != "tasks"}
        meta["tasks"] = tasks_meta
        rows = pd.concat([r.rows for r in results], ignore_index=True)
        return EvalResult(rows=rows, n_bootstrap=first.n_bootstrap, seed=first.seed, meta=meta)

    def pooled(self, name: str, tasks: Sequence[str]) -> EvalResult:
        """This result with one more task, ``name``, whose instances are those of ``tasks``
        together (rows copied, no model call): e.g. closed-book recall over all popularity
        buckets. Instance ids are prefixed with their task (``closed_book_head/...``) so
        they stay unique; the pooled task's chance level is the instance-weighted mean of
        the tasks' (when all have one). ``tasks`` must be present, of one kind, and ``name``
        new."""
        have = list(dict.fromkeys(self.rows["task"]))
        missing = [t for t in tasks if t not in have]
        if not tasks or missing:
            raise UsageError(f"cannot pool {list(tasks)} into {name!r}: missing {missing}; "
                             f"this result holds {have}")
        if name in have:
            raise UsageError(f"cannot pool into {name!r}: a task of that name is present")
        part = self.rows[self.rows["task"].isin(list(tasks))]
        kinds = sorted(set(part["kind"]))
        if len(kinds) != 1:
            raise UsageError(f"cannot pool tasks of different kinds {kinds} into {name!r}")
        rows = part.assign(task=name, instance_id=part["task"] + "/" + part["instance_id"])
        meta = dict(self.meta)
        tasks_meta = dict(meta.get("tasks", {}))
        chances = [tasks_meta.get(t, {}).get("chance") for t in tasks]
        sizes = [int((part["task"] == t).sum()) for t in tasks]
        chance = (None if any(c is None for c in chances)
                  else float(np.average(chances, weights=sizes)))
        tasks_meta[name] = {"pooled_from": list(tasks), "n": int(sum(sizes)), "chance": chance,
                            "seconds": 0.0}
        meta["tasks"] = tasks_meta
        return EvalResult(rows=pd.concat([self.rows, rows], ignore_index=True),
                          n_bootstrap=self.n_bootstrap, seed=self.seed, meta=meta)

    def summary(self, n_bootstrap: int | None = None, seed: int | None = None,
                ci: float = 0.95) -> pd.DataFrame:
        """One row per (task, metric): task, kind, category, metric, value, n, ci_low,
        ci_high, chance.

        Metrics: ``em``, ``logprob`` (mean over instances of the gold's summed
        log-probability), ``first_token_acc``, ``mrr`` (mean reciprocal rank of the gold's
        first token) and, for overriding, ``memorised_rate``; for perplexity tasks
        ``perplexity`` (token-weighted) and ``nll_per_token``. Intervals (when
        ``n_bootstrap > 0``; NaN otherwise) are Wilson score intervals for the proportions
        (:data:`PROPORTION_METRICS`: 300 of 300 correct gives [0.987, 1], never a point)
        and bootstrap percentile intervals over instances (windows) for the other metrics,
        seeded per task: the same seed gives the same intervals whatever other tasks the
        result holds. ``chance`` is the task's guessing level (``TaskSet.chance``, as
        recorded in ``meta``) on :data:`CHANCE_METRICS`, NaN for other metrics and tasks
        without one.
        """
        n_boot = self.n_bootstrap if n_bootstrap is None else n_bootstrap
        seed = self.seed if seed is None else seed
        if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
            raise UsageError(f"n_bootstrap must be an int >= 0, got {n_boot!r}")
        if not 0 < ci < 1:
            raise UsageError(f"ci must be in (0, 1), got {ci}")
        out = []
        for name, frame in self.rows.groupby("task", sort=False):
            kind, category = frame["kind"].iloc[0], frame["category"].iloc[0]
            metrics = _task_metrics(kind)
            n = len(frame)
            point = {m: float(_metric_values(frame, m, None)) for m in metrics}
            boots: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
            if n_boot:
                rng = np.random.default_rng([int(seed), zlib.crc32(str(name).encode())])
                # Resample in chunks to bound memory on large sets; all metrics of a task
                # share the resamples.
                chunk = max(1, min(n_boot, 4_000_000 // max(n, 1)))
                done = 0
                while done < n_boot:
                    b = min(chunk, n_boot - done)
                    idx = rng.integers(0, n, size=(b, n))
                    for m in metrics:
                        boots[m].append(np.asarray(_metric_values(frame, m, idx)))
                    done += b
            task_chance = self.meta.get("tasks", {}).get(name, {}).get("chance")
            for m in metrics:
                lo = hi = np.nan
                wilson = (_proportion_ci(frame, m, ci)
                          if n_boot and m in PROPORTION_METRICS else None)
                if wilson is not None:
                    lo, hi = wilson
                elif n_boot:
                    samples = np.concatenate(boots[m])
                    lo, hi = np.quantile(samples, [(1 - ci) / 2, 1 - (1 - ci) / 2])
                chance = (float(task_chance) if task_chance is not None
                          and m in CHANCE_METRICS else np.nan)
                out.append({"task": name, "kind": kind, "category": category, "metric": m,
                            "value": point[m], "n": n, "ci_low": float(lo),
                            "ci_high": float(hi), "chance": chance})
        return pd.DataFrame(out, columns=["task", "kind", "category", "metric", "value", "n",
                                          "ci_low", "ci_high", "chance"])

    def value(self, task: str, metric: str) -> float:
        """The point estimate of one metric of one task (no bootstrap)."""
        frame = self.rows[self.rows["task"] == task]
        if frame.empty:
            raise UsageError(f"no task {task!r} in this result; have "
                             f"{sorted(set(self.rows['task']))}")
        allowed = _task_metrics(frame["kind"].iloc[0])
        if metric not in allowed:
            raise UsageError(f"unknown metric {metric!r} for task {task!r}; allowed: {allowed}")
        return float(_metric_values(frame, metric, None))
