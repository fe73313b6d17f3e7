"""Per-method and per-allocation keyword arguments (``method_kwargs``, ``allocation_kwargs``),
checked against what the pruning code takes: :data:`lenskit.pruning.pruner.METHOD_PARAMS`
and :data:`lenskit.pruning.allocation.ALLOCATION_PARAMS` name the parameters,
:func:`lenskit.pruning.pruner.check_param` their values. A sweep's cell passes both to
:class:`lenskit.pruning.Pruner`, so a config that passes here builds its pruners.
"""

from __future__ import annotations

from typing import Any

from lenskit.pruning.allocation import ALLOCATION_PARAMS
from lenskit.pruning.pruner import METHOD_PARAMS, check_param
from lenskit.sweep.config.errors import did_you_mean, unknown

__all__ = ["option_problems"]

_TABLES = {"method_kwargs": ("method", METHOD_PARAMS),
           "allocation_kwargs": ("allocation", ALLOCATION_PARAMS)}


def option_problems(name: str, options: Any) -> list[str]:
    """Every problem with ``method_kwargs`` or ``allocation_kwargs`` (``name``): tables for
    unknown methods/allocations, parameters a method or allocation does not take (naming
    those it does), and values of the wrong type or range."""
    what, table = _TABLES[name]
    if not isinstance(options, dict):
        return [f"{name} must be a table of tables"]
    p: list[str] = []
    for key, kwargs in options.items():
        if key not in table:
            p.append(f"{name}: " + unknown(what, key, table))
            continue
        if not isinstance(kwargs, dict):
            p.append(f"{name}.{key} must be a table of keyword arguments")
            continue
        allowed = table[key]
        for arg, value in kwargs.items():
            if arg not in allowed:
                msg = (f"{name}.{key}: {what} {key!r} takes no argument {arg!r}; allowed: "
                       f"{', '.join(sorted(allowed)) or 'none'}")
                hint = _elsewhere(name, arg)
                p.append(msg + (f" ({hint})" if hint else did_you_mean(arg, allowed)))
                continue
            try:
                check_param(arg, value)
            except ValueError as e:
                p.append(f"{name}.{key}.{arg}: {e}")
    return p


def _elsewhere(name: str, arg: str) -> str:
    """Where ``arg`` belongs when it is a parameter of the other kind of table."""
    other = "allocation_kwargs" if name == "method_kwargs" else "method_kwargs"
    owners = [k for k, params in _TABLES[other][1].items() if arg in params]
    return f"{arg!r} belongs in {other}.{owners[0]}" if owners else ""
