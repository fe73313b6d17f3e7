"""Importance scores of the score-based methods (higher = more important), ``[out, in]``."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["magnitude_scores", "random_scores", "wanda_scores"]


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """``|W|`` in float32."""
    return weight.detach().float().abs()


def wanda_scores(weight: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Wanda: ``|W_ij| * ||X_j||_2``, ``norms`` ``[in]`` being each input feature's norm over
    all calibration tokens (the reference's ``sqrt(scaler_row)`` up to a common factor)."""
    return weight.detach().float().abs() * norms.to(weight.device, torch.float32)[None, :]


def random_scores(shape: tuple[int, int], seed: int, name: str) -> torch.Tensor:
    """Seeded uniform scores; the stream depends only on ``(seed, name)``, so a site's scores
    do not depend on which other sites are pruned with it."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.rand(shape, generator=gen)
