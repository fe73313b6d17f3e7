"""Config errors and the sentences they are made of: unknown names with a "did you mean"."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from lenskit.errors import UsageError

__all__ = ["ConfigError", "check_list", "did_you_mean", "unknown"]


class ConfigError(UsageError):
    """A sweep configuration is invalid; the message lists every problem found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "invalid sweep config" + (f" ({len(problems)} problems)" if len(problems) > 1
                                         else "")
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in self.problems))

    def __reduce__(self):
        # Rebuilt from its problems when it crosses processes (e.g. from a Ray worker).
        return type(self), (self.problems,)


def did_you_mean(name: Any, allowed: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the allowed name closest to ``name`` (difflib, case
    ignored), or ``""`` when none is close."""
    allowed = [str(a) for a in allowed]
    by_lower = {a.lower(): a for a in allowed}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def unknown(what: str, name: Any, allowed: Iterable[str]) -> str:
    """``"unknown WHAT 'name'; allowed: a, b (did you mean 'a'?)"``."""
    allowed = [str(a) for a in allowed]
    return (f"unknown {what} {name!r}; allowed: {', '.join(allowed) or 'none'}"
            + did_you_mean(name, allowed))


def check_list(problems: list[str], name: str, values: Any,
               allowed: Sequence[str] | None = None, what: str | None = None) -> list:
    """Append to ``problems`` what is wrong with the list setting ``name`` (not a list,
    empty, duplicates, values not in ``allowed``); return its distinct values in order
    (empty when it is not a non-empty list)."""
    what = what or name[:-1]
    if not isinstance(values, list):
        problems.append(f"{name} must be a list, got {values!r}")
        return []
    if not values:
        problems.append(f"{name} is empty; give at least one {what}"
                        + (f" (allowed: {', '.join(allowed)})" if allowed else ""))
        return []
    seen = set()
    for v in values:
        if v in seen:
            problems.append(f"duplicate {what} {v!r} in {name}")
        seen.add(v)
    if allowed is not None:
        problems.extend(unknown(what, v, allowed) for v in dict.fromkeys(values)
                        if v not in allowed)
    return list(dict.fromkeys(values))
