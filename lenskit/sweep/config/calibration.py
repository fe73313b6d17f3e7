"""Calibration data for the data-aware methods: :class:`CalibrationConfig`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from lenskit.errors import UsageError
from lenskit.pruning.calibration_sources import CalibrationSource

__all__ = ["CALIBRATED_METHODS", "CalibrationConfig", "calibration_problems"]

#: Methods whose scores come from calibration activations (allocation "owl" also uses them).
CALIBRATED_METHODS = ("wanda", "sparsegpt")


@dataclass
class CalibrationConfig:
    """Calibration data for the data-aware methods (Wanda, SparseGPT, OWL).

    Attributes:
        n_samples: number of sequences.
        seq_len: tokens per sequence (never taken from the model's max_position_embeddings).
        source: "default" (the organism's corpus for an organism, else the English text
            shipped with lenskit), "random" (seeded random tokens), "c4:PATH" (a local C4
            shard), "wikitext2:PATH", a text file, or a dataset name (online); see
            :mod:`lenskit.pruning.calibration_sources`.
        sequential: True (the default, as the references) = block-by-block calibration where
            pruned outputs feed the next block; False = one dense pass whose statistics are
            reused across every sparsity level (faster, differs from the references).

    A valid ``source`` is parsed as it is set (loading, overrides, assignment): it is then
    a :class:`~lenskit.pruning.calibration_sources.CalibrationSource`, the same string that
    also knows its kind and file, so nothing downstream parses it again. An invalid one stays
    as given, and :func:`calibration_problems` says why.
    """

    n_samples: int = 32
    seq_len: int = 128
    source: str = "default"
    sequential: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "source" and isinstance(value, str):
            with contextlib.suppress(UsageError):
                value = CalibrationSource.of(value)
        object.__setattr__(self, name, value)

    @property
    def mode(self) -> str:
        """The calibration mode name of ``lenskit.pruning`` ("sequential" or "dense")."""
        return "sequential" if self.sequential else "dense"

    def cell_mode(self, method: str, allocation: str) -> str:
        """The mode a cell of ``method`` and ``allocation`` runs in: :attr:`mode`, except
        Wanda with allocation "global", which ranks every block at once and so is defined on
        dense statistics only."""
        return "dense" if (method == "wanda" and allocation == "global") else self.mode

    def key(self, method: str, allocation: str) -> tuple[tuple[str, Any], ...]:
        """The calibration part of a cell's identity: empty when the cell uses no calibration
        data (its results do not depend on it), else sorted (key, value) pairs."""
        if method not in CALIBRATED_METHODS and allocation != "owl":
            return ()
        return (("mode", self.cell_mode(method, allocation)), ("n_samples", self.n_samples),
                ("seq_len", self.seq_len), ("source", CalibrationSource.of(self.source).fingerprint()))


def calibration_problems(c: CalibrationConfig) -> list[str]:
    """Every problem with a calibration config."""
    p: list[str] = []
    if isinstance(c.n_samples, bool) or not isinstance(c.n_samples, int) or c.n_samples < 1:
        p.append(f"calibration.n_samples {c.n_samples!r} must be a positive integer")
    if isinstance(c.seq_len, bool) or not isinstance(c.seq_len, int) or c.seq_len < 2:
        p.append(f"calibration.seq_len {c.seq_len!r} must be an integer >= 2")
    if not isinstance(c.source, str) or not c.source.strip():
        p.append("calibration.source must be a non-empty string ('default', 'random', "
                 "'c4:PATH', 'wikitext2:PATH', a text file, or a dataset name)")
    elif not isinstance(c.source, CalibrationSource):  # set, but it did not parse: say why
        try:
            CalibrationSource.parse(c.source)
        except UsageError as err:
            p.append(str(err))
    if not isinstance(c.sequential, bool):
        p.append(f"calibration.sequential {c.sequential!r} must be true or false")
    return p
