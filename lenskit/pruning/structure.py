"""Sparsity structures: unstructured, or N:M (N weights pruned in every M consecutive inputs).

Convention: ``"N:M"`` names how many weights are PRUNED in each group of M consecutive
input columns of an output row, as the SparseGPT and Wanda code does (``prune_n``,
``prune_m``). For the common 2:4 and 4:8 patterns this equals the hardware convention
(N kept of M); for others (1:4 here prunes one weight in four) it does not.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from lenskit.errors import UsageError

__all__ = ["UNSTRUCTURED", "Structure", "parse_sparsities", "parse_structure",
           "sparsity_problems"]

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Structure:
    """A sparsity structure: ``n == m == 0`` means unstructured; otherwise N:M."""

    n: int = 0
    m: int = 0

    @property
    def unstructured(self) -> bool:
        return self.m == 0

    @property
    def sparsity(self) -> float | None:
        """The sparsity an N:M pattern implies (``n / m``); ``None`` for unstructured."""
        return None if self.unstructured else self.n / self.m

    def __str__(self) -> str:
        return "unstructured" if self.unstructured else f"{self.n}:{self.m}"


UNSTRUCTURED = Structure()


def parse_structure(spec: str | Structure) -> Structure:
    """``"unstructured"`` or ``"N:M"`` (1 <= N <= M; N pruned of every M inputs per row).

    Raises ``ValueError`` naming the bad value, e.g. for ``"5:4"`` or ``"2-4"``.
    """
    if isinstance(spec, Structure):
        if spec.unstructured:
            return spec
        return parse_structure(f"{spec.n}:{spec.m}")
    if not isinstance(spec, str):
        raise UsageError(f"structure must be 'unstructured' or 'N:M' (e.g. '2:4'), got {spec!r}")
    if spec.strip().lower() == "unstructured":
        return UNSTRUCTURED
    match = _NM.match(spec)
    if not match:
        raise UsageError(f"unknown structure {spec!r}; allowed: 'unstructured' or 'N:M' with "
                         "1 <= N <= M, N pruned of every M consecutive inputs (e.g. '2:4', '4:8')")
    n, m = int(match.group(1)), int(match.group(2))
    if not 1 <= n <= m:
        raise UsageError(f"bad structure {spec!r}: N:M needs 1 <= N <= M (N pruned of every M "
                         f"consecutive inputs), got N={n}, M={m}")
    return Structure(n, m)


def n_to_prune(sparsity: float, n: int) -> int:
    """How many of ``n`` weights a sparsity prunes: ``floor(sparsity * n)``.

    The product is taken exactly on the decimal the float prints as, so ``0.29 * 100`` gives
    29 (plain float arithmetic gives 28.999... and would floor to 28).
    """
    return min(n, max(0, int(Fraction(repr(float(sparsity))) * n)))


def parse_sparsities(raw: str | float | Iterable[Any]) -> list[float]:
    """The sparsity-list notation as floats, in the order given (ranges are not checked
    here: see :func:`sparsity_problems`).

    Accepts ``"0.1,0.5"`` (or ``;``-separated), a TOML/JSON list ``"[0.1, 0.5]"``, one number,
    or a sequence of numbers and numeric strings. Raises ``ValueError`` naming the first
    value that is not a number (booleans included).
    """
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            items: Iterable[Any] = json.loads(text)
        else:
            sep = ";" if ";" in text else ","
            items = [t.strip() for t in text.split(sep) if t.strip()]
    elif isinstance(raw, Iterable):
        items = raw
    else:
        items = [raw]
    out: list[float] = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise UsageError(f"expected numbers (fractions in [0, 1]), got {v!r}")
        try:
            out.append(float(v))
        except ValueError:
            raise UsageError(f"expected numbers (fractions in [0, 1]), got {v!r}") from None
    return out


def sparsity_problems(values: Iterable[Any], name: str = "sparsities",
                      digits: int | None = None) -> list[str]:
    """Every problem with a list of sparsities, as sentences (empty when fine): values that
    are not numbers or NaN, outside [0, 1], or repeated (compared after rounding to
    ``digits`` decimals when given)."""
    problems: list[str] = []
    seen: set[float] = set()
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(s):
            problems.append(f"sparsity {s!r} is not a number: give fractions of the scope "
                            "in [0, 1], e.g. 0.5 for half its weights")
            continue
        if not 0 <= s <= 1:
            problems.append(f"sparsity {s!r} outside [0, 1] (a fraction of the scope, not a "
                            f"percentage)")
        key = float(s) if digits is None else round(float(s), digits)
        if key in seen:
            problems.append(f"duplicate sparsity {s!r} in {name}")
        seen.add(key)
    return problems
