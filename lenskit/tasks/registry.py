"""Tasks by name: a registry of task builders, spec strings, and ``build_suite``.

Every task has a name and typed parameters with defaults (``lenskit tasks`` lists them).
A spec names a task and sets some parameters, either as a string::

    triviaqa:n=500,shots=3,path=/data/triviaqa-rc
    countries_capital_overriding:template=cloze,stop=.|;

(lists such as ``stop`` separate their values with ``|``) or as a mapping (a TOML table)
``{task = "triviaqa", n = 500, shots = 3}``. One parser reads both and suggests the nearest
name for an unknown task or parameter. :func:`build_suite` turns specs into task sets,
named by the task (or its ``as`` parameter, to evaluate one task twice).

QA tasks share the parameters ``n`` (items; ``all`` for every one), ``seed``, ``shots``
(fixed demonstrations, see :mod:`lenskit.tasks.templates`), ``template``, ``stop``,
``fold_accents`` and ``part``: items are split once, by a hash of their id, into an
``eval`` part (~80%, the default) and a ``select`` part (~20%) that
:func:`lenskit.tasks.select.template_report` uses to choose a template without touching
the evaluated items (``all``: no split).
"""

from __future__ import annotations

import difflib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lenskit.errors import UsageError
from lenskit.tasks.core import TaskSet

__all__ = ["PARTS", "TASKS", "Param", "TaskBuilder", "build_suite", "build_task",
           "describe_tasks", "parse_spec", "parse_specs", "resolve_spec", "select_part"]

PARTS = ("eval", "select", "all")
# One item in five (by id hash) is held out for choosing templates.
_SELECT_EVERY = 5


@dataclass(frozen=True)
class Param:
    """One parameter of a task: its type (``int``, ``float``, ``bool``, ``str``, ``list``,
    ``int?`` = int or None), default, allowed values and meaning."""

    name: str
    type: str
    default: Any
    help: str = ""
    choices: tuple[Any, ...] = ()

    def parse(self, value: Any, task: str) -> Any:
        """``value`` (a string from a spec, or a TOML value) as this parameter's type."""
        where = f"task {task!r}, parameter {self.name!r}"
        try:
            out = self._convert(value)
        except (TypeError, ValueError) as err:
            raise UsageError(f"{where}: cannot read {value!r} as {self.type} ({err})") from err
        if self.choices and out not in self.choices:
            raise UsageError(f"{where}: {out!r} is not allowed; allowed: {list(self.choices)}")
        return out

    def _convert(self, value: Any) -> Any:
        t = self.type
        if t == "int?" and (value is None or str(value).lower() in ("none", "all", "")):
            return None
        if t in ("int", "int?"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise UsageError("not an integer")
            return int(value)
        if t == "float":
            return float(value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError("use true or false")
            return text in ("true", "1", "yes")
        if t == "list":
            if isinstance(value, str):
                return tuple(v for v in value.split("|") if v != "")
            return tuple(str(v) for v in value)
        if t == "str?":
            return None if value is None or str(value) in ("", "none") else str(value)
        return str(value)


@dataclass(frozen=True)
class TaskBuilder:
    """A named task: what it measures, its parameters, and the function that builds it.

    ``build(params, model)`` gets every parameter (defaults filled in) and the model (or
    ``None``; perplexity tasks need its tokenizer) and returns a :class:`TaskSet`.
    ``check(params)``, when given, raises :class:`~lenskit.errors.UsageError` for values that
    are each valid alone but not together (e.g. a function task's class count against its
    labels); it loads no data, so a sweep's config is refused before its run directory exists.
    """

    name: str
    kind: str
    description: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any], Any], TaskSet] = field(repr=False)
    check: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        names = [p.name for p in self.params]
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UsageError(f"task {self.name!r} has no parameter {name!r}{hint} "
                         f"(parameters: {', '.join(names)})")

    def resolve(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``values`` (each parsed and checked)."""
        out = {p.name: p.default for p in self.params}
        for key, value in values.items():
            out[key] = self.param(key).parse(value, self.name)
        if self.check is not None:
            self.check(out)
        return out


TASKS: dict[str, TaskBuilder] = {}


def register(builder: TaskBuilder) -> TaskBuilder:
    if builder.name in TASKS:
        raise UsageError(f"task {builder.name!r} is registered twice")
    TASKS[builder.name] = builder
    return builder


def _task(name: str) -> TaskBuilder:
    # The tasks are registered by lenskit.tasks.catalog, which the package imports.
    if name in TASKS:
        return TASKS[name]
    near = difflib.get_close_matches(name, list(TASKS), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise UsageError(f"unknown task {name!r}{hint} (run `lenskit tasks` for the list)")


def select_part(items: Sequence, part: str) -> list:
    """The items of one part: ``eval`` (id hash not divisible by 5), ``select`` (the rest)
    or ``all``. The split depends on ids only: the same item is always in the same part."""
    if part not in PARTS:
        raise UsageError(f"unknown part {part!r}; allowed: {PARTS}")
    if part == "all":
        return list(items)
    held = [zlib.crc32(str(it.id).encode()) % _SELECT_EVERY == 0 for it in items]
    return [it for it, h in zip(items, held, strict=True) if h == (part == "select")]


# ----------------------------------------------------------------------------- specs


def parse_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(task name, raw parameter values)`` of a spec string or mapping (a TOML table).

    A string is ``name`` or ``name:key=value,key=value``; a mapping has ``task`` (the name)
    and parameters. Names and keys are checked (with a did-you-mean) but values are parsed
    by :func:`build_task`.
    """
    if isinstance(spec, Mapping):
        values = dict(spec)
        name = values.pop("task", None)
        if not isinstance(name, str) or not name:
            raise UsageError(f"a task table needs task = '<name>', got {dict(spec)!r}")
    elif isinstance(spec, str):
        name, _, rest = spec.strip().partition(":")
        name = name.strip()
        values = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise UsageError(f"task spec {spec!r}: expected key=value, got {part!r}")
            values[key.strip()] = value.strip()
    else:
        raise UsageError(f"a task spec is a string or a table, got {type(spec).__name__}")
    builder = _task(name)
    for key in values:
        if key != "as":
            builder.param(key)
    return name, values


def parse_specs(specs: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]
                ) -> list[tuple[str, dict[str, Any]]]:
    """Many specs: a list of strings/tables, one string (``;`` between specs), one task
    table, or a table of tables ``{name: {params}}`` (TOML ``[tasks.triviaqa]``)."""
    if isinstance(specs, str):
        items: list = [s for s in (p.strip() for p in specs.split(";")) if s]
    elif isinstance(specs, Mapping):
        if "task" in specs:
            items = [specs]
        else:
            items = []
            for name, params in specs.items():
                if not isinstance(params, Mapping):
                    raise UsageError(f"tasks.{name} must be a table of parameters, got "
                                     f"{params!r}")
                items.append({"task": name, **params})
    else:
        items = list(specs)
    if not items:
        raise UsageError("no task specs given")
    return [parse_spec(s) for s in items]


def resolve_spec(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of task ``name`` with ``values`` parsed and checked (defaults for
    the rest); raises ``ValueError`` naming a bad value. Loads no data."""
    return _task(name).resolve({k: v for k, v in values.items() if k != "as"})


def build_task(spec: str | Mapping[str, Any], model=None) -> TaskSet:
    """One task set from a spec (its name: the task's, or the spec's ``as``)."""
    name, values = parse_spec(spec)
    alias = values.pop("as", None)
    builder = _task(name)
    task = builder.build(builder.resolve(values), model)
    if alias:
        task = replace(task, name=str(alias))
    return task


def build_suite(specs: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
                model=None, seed: int | None = None) -> dict[str, TaskSet]:
    """Task sets by name from specs (see :func:`parse_specs`); every spec is checked
    before any task is built. ``model`` (a loaded bridge) gives perplexity tasks their
    tokenizer and window limit; ``seed`` (e.g. a sweep's seed) is the ``seed`` of every
    task whose spec sets none."""
    parsed = parse_specs(specs)
    if seed is not None:
        parsed = [(name, values if "seed" in values or not any(
            p.name == "seed" for p in _task(name).params) else {**values, "seed": seed})
            for name, values in parsed]
    for name, values in parsed:  # fail on bad values before loading any data
        resolve_spec(name, values)
    out: dict[str, TaskSet] = {}
    for name, values in parsed:
        task = build_task({"task": name, **values}, model)
        if task.name in out:
            raise UsageError(f"two specs build a task named {task.name!r}; give one an "
                             "'as' name (e.g. as=triviaqa_5shot)")
        out[task.name] = task
    return out


def describe_tasks() -> str:
    """A plain-text table of every task, its kind and its parameters with defaults."""
    lines = []
    for b in TASKS.values():
        lines.append(f"{b.name}  [{b.kind}]  {b.description}")
        for p in b.params:
            choices = f" one of {'|'.join(map(str, p.choices))}" if p.choices else ""
            default = "|".join(p.default) if isinstance(p.default, tuple) else p.default
            lines.append(f"    {p.name}={default}  ({p.type}{choices}) {p.help}")
    return "\n".join(lines)
