"""Sparsity structures: unstructured, or N:M (N weights pruned in every M consecutive inputs).

Convention: ``"N:M"`` names how many weights are PRUNED in each group of M consecutive
input columns of an output row, as the SparseGPT and Wanda code does (``prune_n``,
``prune_m``). For the common 2:4 and 4:8 patterns this equals the hardware convention
(N kept of M); for others (1:4 here prunes one weight in four) it does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["UNSTRUCTURED", "Structure", "parse_structure"]

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
        raise ValueError(f"structure must be 'unstructured' or 'N:M' (e.g. '2:4'), got {spec!r}")
    if spec.strip().lower() == "unstructured":
        return UNSTRUCTURED
    match = _NM.match(spec)
    if not match:
        raise ValueError(f"unknown structure {spec!r}; allowed: 'unstructured' or 'N:M' with "
                         "1 <= N <= M, N pruned of every M consecutive inputs (e.g. '2:4', '4:8')")
    n, m = int(match.group(1)), int(match.group(2))
    if not 1 <= n <= m:
        raise ValueError(f"bad structure {spec!r}: N:M needs 1 <= N <= M (N pruned of every M "
                         f"consecutive inputs), got N={n}, M={m}")
    return Structure(n, m)


def n_to_prune(sparsity: float, n: int) -> int:
    """How many of ``n`` weights a sparsity prunes: ``floor(sparsity * n)``.

    The product is taken exactly on the decimal the float prints as, so ``0.29 * 100`` gives
    29 (plain float arithmetic gives 28.999... and would floor to 28).
    """
    return min(n, max(0, int(Fraction(repr(float(sparsity))) * n)))
