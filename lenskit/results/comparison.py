"""The published study's thresholds beside measured ones.

:data:`STUDY_THRESHOLDS` holds the thresholds the study reports per task group;
:func:`study_group` assigns a measured task to one of its groups; :func:`compare_to_study`
averages measured thresholds (:func:`lenskit.results.thresholds.compute_thresholds`) per
group and method beside the study's; :func:`format_study_comparison` prints that table and
:func:`study_comparison` is the pipeline the runner uses (tasks at chance left out).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from lenskit.results.thresholds import STUDY_TOLERANCE, AtChance, at_chance_rows, primary_rows

__all__ = [
    "STUDY_THRESHOLDS",
    "compare_to_study",
    "format_study_comparison",
    "study_comparison",
    "study_group",
]

#: Thresholds the study reports (Jin et al. 2023): largest sparsity with
#: <= 5% relative drop, SparseGPT, unstructured, mean of OPT-13B/30B and LLaMA-13B/33B.
#: Open-book QA is reported as a range (50-60%).
STUDY_THRESHOLDS = pd.DataFrame(
    [
        ("closed_book", "fact_recall", "closed-book QA", "TriviaQA", 0.30, 0.30),
        ("closed_book", "fact_recall", "closed-book QA", "WebQuestions", 0.40, 0.40),
        ("open_book", "icl", "open-book QA", "TriviaQA / NaturalQuestions", 0.50, 0.60),
        ("overriding", "icl", "overriding QA", "DisentQA", 0.70, 0.70),
        ("function", "icl", "function: linear", "linear classifier", 0.60, 0.60),
        ("function", "icl", "function: 2-layer net", "2-layer ReLU network", 0.60, 0.60),
        ("function", "icl", "function: decision tree", "decision tree", 0.70, 0.70),
    ],
    columns=["kind", "category", "group", "study_task", "threshold_low", "threshold_high"],
).assign(tolerance=STUDY_TOLERANCE, method="sparsegpt", structure="unstructured",
         models="OPT-13B, OPT-30B, LLaMA-13B, LLaMA-33B (mean)")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def study_comparison(thresholds: pd.DataFrame, at_chance: AtChance,
                     echo: Callable[[str], object] = print) -> pd.DataFrame:
    """:func:`compare_to_study` of ``thresholds`` without the tasks ``at_chance`` (from
    :func:`~lenskit.results.thresholds.at_chance_by_model`: each model's own; or task
    names, for every model), naming them through ``echo``."""
    if isinstance(at_chance, Mapping):
        named = [f"{t} ({m})" for m, tasks in at_chance.items() for t in tasks]
    else:
        named = list(at_chance)
    if named:
        echo(f"dense model at chance (left out of figures and the study comparison): "
             f"{', '.join(named)}")
    return compare_to_study(thresholds, exclude_tasks=at_chance)


def study_group(task: str, kind: str) -> str | None:
    """The study row a measured task compares with: its kind, or for function learning the
    function family found in the task name (tree / ReLU net / linear); None if none."""
    if kind in ("closed_book", "open_book", "overriding"):
        return {"closed_book": "closed-book QA", "open_book": "open-book QA",
                "overriding": "overriding QA"}[kind]
    if kind == "function":
        name = task.lower()
        if "tree" in name:
            return "function: decision tree"
        if re.search(r"relu|net|mlp|2.?layer|two.?layer|nn", name):
            return "function: 2-layer net"
        if "linear" in name:
            return "function: linear"
    return None


def compare_to_study(thresholds: pd.DataFrame, *, tolerance: float = STUDY_TOLERANCE,
                     scope: str = "all", structure: str = "unstructured",
                     allocation: str = "uniform",
                     exclude_tasks: AtChance = ()) -> pd.DataFrame:
    """Measured thresholds beside the study's (:data:`STUDY_THRESHOLDS`), by task group.

    Measured rows are those at ``tolerance`` on ``scope``/``structure``/``allocation``,
    each task on its primary metric; each is assigned a study group (:func:`study_group`)
    and averaged over models and tasks per method, as the study averages over its models.
    Returns one row per (group, method) with columns group, kind, study_low, study_high,
    study (text), note, method, measured (mean), measured_min, measured_max, ci_low,
    ci_high (means of the per-task CI bounds), n (thresholds averaged), tasks, models,
    censored (any of them censored). A study group with no measurement has one row with
    method NA and measured NaN, so that the table shows what is missing; ``note`` names
    the group's tasks left out because the dense model is at chance.
    ``exclude_tasks`` are left out (pass
    :func:`~lenskit.results.thresholds.at_chance_by_model` of the results: a task a dense
    model does at chance has no threshold worth averaging for that model; task names
    leave a task out for every model).
    """
    study = STUDY_THRESHOLDS.groupby("group", sort=False).agg(
        kind=("kind", "first"), study_low=("threshold_low", "min"),
        study_high=("threshold_high", "max"),
        study_tasks=("study_task", lambda s: ", ".join(s))).reset_index()
    per_task = STUDY_THRESHOLDS.assign(
        txt=lambda d: d["study_task"] + " " + d["threshold_low"].map(_pct)
        + np.where(d["threshold_high"] > d["threshold_low"],
                   "-" + d["threshold_high"].map(_pct), "") + "%")
    study["study"] = study["group"].map(per_task.groupby("group")["txt"].agg("; ".join))
    thr = thresholds
    left_out: dict[str, list[str]] = {}
    if len(thr) and len(exclude_tasks):
        flagged = at_chance_rows(thr, exclude_tasks)
        gone = thr[flagged]
        kept = set(thr.loc[~flagged, "task"])
        for t, k, m in dict.fromkeys(zip(gone["task"], gone["kind"], gone["model"],
                                         strict=True)):
            group = study_group(str(t), str(k))
            # a task other models still measure is named with the model that lost it
            label = f"{t} ({m})" if t in kept else str(t)
            if group is not None and label not in left_out.get(group, []):
                left_out.setdefault(group, []).append(label)
        thr = thr[~flagged]
    if len(thr):
        thr = thr[np.isclose(thr["tolerance"], tolerance) & (thr["scope"] == scope)
                  & (thr["structure"] == structure) & (thr["allocation"] == allocation)]
    rows = []
    if len(thr):
        thr = primary_rows(thr, None).copy()
        thr["group"] = [study_group(t, k) for t, k in zip(thr["task"], thr["kind"],
                                                           strict=True)]
        thr = thr[thr["group"].notna()]
    for _, s in study.iterrows():
        m = thr[thr["group"] == s["group"]] if len(thr) else thr
        gone = left_out.get(s["group"], [])
        note = (f"left out, dense model at chance: {', '.join(gone)}" if gone else "")
        base = {"group": s["group"], "kind": s["kind"], "study_low": s["study_low"],
                "study_high": s["study_high"], "study": s["study"], "note": note}
        if not len(m):
            rows.append({**base, "method": pd.NA, "measured": np.nan, "measured_min": np.nan,
                         "measured_max": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0,
                         "tasks": "", "models": "", "censored": False})
            continue
        for method, mm in m.groupby("method", sort=True):
            rows.append({**base, "method": method, "measured": mm["threshold"].mean(),
                         "measured_min": mm["threshold"].min(),
                         "measured_max": mm["threshold"].max(),
                         "ci_low": mm["ci_low"].mean(), "ci_high": mm["ci_high"].mean(),
                         "n": len(mm), "tasks": ", ".join(dict.fromkeys(mm["task"])),
                         "models": ", ".join(dict.fromkeys(mm["model"])),
                         "censored": bool(mm["censored"].any())})
    return pd.DataFrame(rows)


def format_study_comparison(comparison: pd.DataFrame) -> str:
    """:func:`compare_to_study`'s table as aligned text for the terminal."""
    rows = [["group", "study (SparseGPT, 4 models)", "method", "measured", "range", "tasks"]]
    for _, r in comparison.iterrows():
        study = _pct(r["study_low"]) + (f"-{_pct(r['study_high'])}"
                                        if r["study_high"] > r["study_low"] else "") + "%"
        note = r.get("note", "") or ""
        if pd.isna(r["method"]):
            rows.append([r["group"], study, "-", "not measured", "", note])
            continue
        measured = ("≥" if r["censored"] else "") + _pct(r["measured"]) + "%"
        rng = f"{_pct(r['measured_min'])}-{_pct(r['measured_max'])}%"
        tasks = r["tasks"] + (f" ({note})" if note else "")
        rows.append([r["group"], study, str(r["method"]), measured, rng, tasks])
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
