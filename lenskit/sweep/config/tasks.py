"""Which tasks a sweep evaluates, and how large the suite is.

A sweep evaluates the model's default suite (:func:`lenskit.tasks.default_suite`, sized by
``task_size``) unless ``suite`` lists task specs by name (:mod:`lenskit.tasks.registry`:
``"triviaqa:n=500,shots=3,path=/data/triviaqa-rc"`` or TOML tables); ``tasks`` then picks
tasks of that suite by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lenskit.sweep.config.errors import ConfigError, check_list, did_you_mean, unknown
from lenskit.tasks.registry import parse_specs, resolve_spec

__all__ = ["TASK_SIZES", "select_tasks", "suite_problems", "suite_specs", "task_problems"]

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


def suite_specs(raw: Any) -> list[str | dict[str, Any]]:
    """The ``suite`` setting as a list of task specs: a list of strings and tables, one
    string (``;`` between specs, as on the command line), or a table of tables
    (TOML ``[suite.triviaqa]``). Tables are kept as plain dicts with their ``task`` name."""
    if isinstance(raw, str):
        return [s.strip() for s in raw.split(";") if s.strip()]
    if isinstance(raw, Mapping):
        if "task" in raw:
            return [dict(raw)]
        out: list[str | dict[str, Any]] = []
        for name, params in raw.items():
            if not isinstance(params, Mapping):
                raise ValueError(f"suite.{name} must be a table of task parameters")
            out.append({"task": str(name), **params})
        return out
    if isinstance(raw, (list, tuple)):
        for s in raw:
            if not isinstance(s, (str, Mapping)):
                raise ValueError(f"a task spec is a string or a table, got {s!r}")
        return [s if isinstance(s, str) else dict(s) for s in raw]
    raise ValueError("expected task specs: a list of strings or tables")


def suite_problems(suite: Any) -> list[str]:
    """Every problem with the ``suite`` specs (unknown task names and parameters, with a
    did-you-mean, and bad values), found without loading any data."""
    if not suite:
        return []
    try:
        parsed = parse_specs(suite)
    except ValueError as e:
        return [f"suite: {e}"]
    p: list[str] = []
    for name, values in parsed:
        try:
            resolve_spec(name, values)
        except ValueError as e:
            p.append(f"suite: {e}")
    return p
