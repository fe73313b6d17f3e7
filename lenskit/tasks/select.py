"""Choosing a prompt template before a sweep: dense accuracy per template on held-out items.

:func:`template_report` builds each QA task once per template on the ``select`` part of its
items (about one in five, by id hash; a sweep evaluates the ``eval`` part, so the choice
never sees the evaluated items) and evaluates the unpruned model on each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lenskit.errors import UsageError
from lenskit.tasks.evaluate import evaluate
from lenskit.tasks.registry import TASKS, build_task, parse_specs
from lenskit.tasks.templates import TEMPLATES

__all__ = ["format_template_report", "template_report"]

_QA_KINDS = ("closed_book", "open_book", "overriding")


def template_report(
    model,
    task_specs: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
    templates: Sequence[str] = tuple(TEMPLATES),
    *,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Dense accuracy of ``model`` per (task, template) on each task's ``select`` part.

    Args:
        model: a loaded bridge (:func:`lenskit.load_model`).
        task_specs: QA task specs (see :mod:`lenskit.tasks.registry`); their ``template``
            and ``part`` are overridden.
        templates: names in :data:`~lenskit.tasks.templates.TEMPLATES`.

    Returns:
        One row per (task, template): ``task``, ``template``, ``n``, ``em``,
        ``first_token_acc``, ``memorised_rate`` (overriding; else NaN), ``prompt_tokens``
        (mean), and ``note`` (why a template does not apply, e.g. ``cloze`` on a dataset
        without statements; its metrics are then NaN).
    """
    unknown = [t for t in templates if t not in TEMPLATES]
    if unknown or not templates:
        raise UsageError(f"unknown template(s) {unknown or list(templates)}; allowed: "
                         f"{sorted(TEMPLATES)}")
    parsed = parse_specs(task_specs)
    for name, _ in parsed:
        if TASKS[name].kind not in _QA_KINDS:
            raise UsageError(f"task {name!r} is a {TASKS[name].kind} task; templates apply to "
                             f"QA tasks ({', '.join(_QA_KINDS)})")
    rows = []
    for name, values in parsed:
        for tpl in templates:
            spec = {"task": name, **values, "template": tpl, "part": "select"}
            spec.pop("as", None)
            row: dict[str, Any] = {"task": name, "template": tpl, "n": 0, "em": float("nan"),
                                   "first_token_acc": float("nan"),
                                   "memorised_rate": float("nan"),
                                   "prompt_tokens": float("nan"), "note": ""}
            try:
                task = build_task(spec, model)
            except ValueError as err:
                if tpl == "cloze" and "cloze" in str(err):
                    row["note"] = "no statements (meta['cloze']) in this dataset"
                    rows.append(row)
                    continue
                raise
            res = evaluate(model, task, batch_size=batch_size, n_bootstrap=0)
            row.update(n=len(task), em=res.value(task.name, "em"),
                       first_token_acc=res.value(task.name, "first_token_acc"),
                       prompt_tokens=float(res.rows["prompt_tokens"].mean()))
            if task.kind == "overriding":
                row["memorised_rate"] = res.value(task.name, "memorised_rate")
            rows.append(row)
    return pd.DataFrame(rows)


def format_template_report(report: pd.DataFrame) -> str:
    """A markdown table of :func:`template_report`, best template per task in bold."""
    lines = ["| task | template | n | EM | first-token acc. | memorised | prompt tokens |",
             "|---|---|---|---|---|---|---|"]
    for task, frame in report.groupby("task", sort=False):
        best = frame["em"].max()
        if frame["em"].nunique() < 2:  # a tie everywhere: nothing to choose
            best = None
        for r in frame.itertuples():
            em = "-" if pd.isna(r.em) else f"{r.em:.3f}"
            if not pd.isna(r.em) and r.em == best:
                em = f"**{em}**"
            mem = "-" if pd.isna(r.memorised_rate) else f"{r.memorised_rate:.3f}"
            fta = "-" if pd.isna(r.first_token_acc) else f"{r.first_token_acc:.3f}"
            toks = "-" if pd.isna(r.prompt_tokens) else f"{r.prompt_tokens:.0f}"
            note = f" ({r.note})" if r.note else ""
            lines.append(f"| {task} | {r.template}{note} | {r.n} | {em} | {fta} | {mem} | "
                         f"{toks} |")
    return "\n".join(lines)
