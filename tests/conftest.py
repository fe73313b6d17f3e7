"""Shared fixtures: tiny random models of every supported family, built offline."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

from lenskit.models import TINY_FAMILIES, load_model, make_tiny_model  # noqa: E402

# One thread per test process: tiny models gain nothing from more, and `make test` runs two
# processes (pytest -n 2) on the two cores.
torch.set_num_threads(1)

# Property tests draw the same examples on every run (CI must not pass or fail by chance);
# HYPOTHESIS_PROFILE=explore draws fresh ones.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict:
    """family -> local HF directory of a tiny random model (2 layers, d_model 32)."""
    root = tmp_path_factory.mktemp("tiny")
    return {f: make_tiny_model(f, root / f) for f in TINY_FAMILIES}


@pytest.fixture(params=TINY_FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture
def tiny_model(tiny_dirs, family):
    """A freshly loaded bridge of each family (function scope: tests may prune it)."""
    return load_model(tiny_dirs[family])
