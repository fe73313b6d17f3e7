"""Fixtures for the pruning tests: small calibration sets and a llama model."""

from __future__ import annotations

import pytest

from lenskit.pruning import CalibrationData, default_calibration


@pytest.fixture
def cal(tiny_model) -> CalibrationData:
    """8 sequences of 16 tokens: the seeded default (random tokens for tiny models)."""
    return default_calibration(tiny_model, n_samples=8, seq_len=16, seed=0)


@pytest.fixture
def llama(tiny_dirs):
    from lenskit.models import load_model

    return load_model(tiny_dirs["llama"])


@pytest.fixture
def llama_cal(llama) -> CalibrationData:
    return default_calibration(llama, n_samples=8, seq_len=16, seed=0)
