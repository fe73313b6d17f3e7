"""Calibration data for the data-aware methods: :class:`CalibrationConfig`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CalibrationConfig", "calibration_problems"]


@dataclass
class CalibrationConfig:
    """Calibration data for the data-aware methods (Wanda, SparseGPT, OWL).

    Attributes:
        n_samples: number of sequences.
        seq_len: tokens per sequence (never taken from the model's max_position_embeddings).
        source: "default" (the organism's corpus, or seeded random tokens for other models
            when offline), a path to a text file, or a dataset name the pruner knows.
        sequential: True = block-by-block calibration where pruned outputs feed the next
            block (the references' behaviour); False = one dense pass, whose statistics
            are reused across every sparsity level.
    """

    n_samples: int = 32
    seq_len: int = 128
    source: str = "default"
    sequential: bool = False

    @property
    def mode(self) -> str:
        """The calibration mode name of ``lenskit.pruning`` ("sequential" or "dense")."""
        return "sequential" if self.sequential else "dense"


def calibration_problems(c: CalibrationConfig) -> list[str]:
    """Every problem with a calibration config."""
    p: list[str] = []
    if isinstance(c.n_samples, bool) or not isinstance(c.n_samples, int) or c.n_samples < 1:
        p.append(f"calibration.n_samples {c.n_samples!r} must be a positive integer")
    if isinstance(c.seq_len, bool) or not isinstance(c.seq_len, int) or c.seq_len < 2:
        p.append(f"calibration.seq_len {c.seq_len!r} must be an integer >= 2")
    if not isinstance(c.source, str) or not c.source.strip():
        p.append("calibration.source must be a non-empty string ('default', a text "
                 "file, or a dataset name)")
    if not isinstance(c.sequential, bool):
        p.append(f"calibration.sequential {c.sequential!r} must be true or false")
    return p
