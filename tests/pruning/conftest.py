"""Fixtures for the pruning tests: small calibration sets and a llama model."""

from __future__ import annotations

import pytest

from lenskit.pruning import CalibrationData, calibration_from_source


@pytest.fixture
def cal(tiny_model) -> CalibrationData:
    """8 sequences of 16 seeded random tokens (tiny models' word-level vocabulary covers
    little of the shipped English text, which is the default for non-organism models)."""
    return calibration_from_source(tiny_model, "random", n_samples=8, seq_len=16, seed=0)


@pytest.fixture
def llama(tiny_dirs):
    from lenskit.models import load_model

    return load_model(tiny_dirs["llama"])


@pytest.fixture
def llama_cal(llama) -> CalibrationData:
    return calibration_from_source(llama, "random", n_samples=8, seq_len=16, seed=0)
