"""How a sweep runs: where it writes and how large its evaluation batches are."""

from __future__ import annotations

from typing import Any

__all__ = ["execution_problems"]


def execution_problems(batch_size: Any, out_dir: Any) -> list[str]:
    """Every problem with the ``batch_size`` and ``out_dir`` settings."""
    p: list[str] = []
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        p.append(f"batch_size {batch_size!r} must be a positive integer")
    if not isinstance(out_dir, str) or not out_dir.strip():
        p.append("out_dir must be a non-empty path")
    return p
