"""Which tasks a sweep evaluates, and how large the suite is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lenskit.study.config.errors import ConfigError, check_list, did_you_mean, unknown

__all__ = ["TASK_SIZES", "select_tasks", "task_problems"]

TASK_SIZES: tuple[str, ...] = ("small", "full")


def task_problems(tasks: Any, task_size: Any) -> list[str]:
    """Every problem with the ``tasks`` and ``task_size`` settings. Task names themselves
    depend on the model's suite: :func:`select_tasks` checks them once it is built."""
    p: list[str] = []
    names = check_list(p, "tasks", tasks, None, "task")
    for t in names:
        if not isinstance(t, str) or not t.strip():
            p.append(f"task name {t!r} must be a non-empty string")
    if "default" in names and len(names) > 1:
        p.append("tasks: 'default' already means the whole default suite; "
                 "list either 'default' or task names")
    if task_size not in TASK_SIZES:
        p.append(unknown("task_size", task_size, TASK_SIZES))
    return p


def select_tasks(tasks: list[str], suite: Mapping[str, Any]) -> dict[str, Any]:
    """The tasks of ``suite`` that ``tasks`` names: all of them for ``["default"]``, else
    those named, in that order. Raises :class:`ConfigError` listing every name the suite
    lacks."""
    if tasks == ["default"]:
        return dict(suite)
    missing = [t for t in tasks if t not in suite]
    if missing:
        raise ConfigError([f"unknown task {t!r}; this model's suite has: "
                           f"{', '.join(suite)}{did_you_mean(t, suite)}" for t in missing])
    return {t: suite[t] for t in tasks}
