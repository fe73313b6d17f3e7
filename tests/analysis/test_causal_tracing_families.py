"""Causal tracing on every family of the model matrix (tests/models/test_families.py): the
bridge's hook names are uniform across architectures, so every supported family traces, and
both ends of a trace are exact on each (restoring the residual stream at every position
gives the clean run, restoring nothing gives the corrupted one)."""

from __future__ import annotations

import numpy as np
import pytest

from lenskit.analysis import TraceSite, trace_items, trace_sites
from lenskit.models import load_model, make_tiny_model, model_info
from lenskit.models.families import families_tested

from .maps_helpers import single_thread, small_suite  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("family", families_tested())
def test_every_supported_family_traces_with_exact_ends(family, tmp_path):
    model = load_model(make_tiny_model(family, tmp_path / family))
    n = model_info(model).n_layers
    suite = {"closed_book": small_suite(3)["closed_book"]}
    sites = [*trace_sites(model, kinds=("attn", "mlp"), positions=("subject",)),
             TraceSite("resid", n - 1, (n - 1,), "all"), TraceSite("resid", 0, (), "last")]
    items = trace_items(model, suite, sites=sites, n_noise=1, batch_size=8, progress=False)
    assert len(items) == 3 * (2 * n + 2)
    values = items[["p_clean", "p_corrupted", "p_restored"]].to_numpy()
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()
    full = items[items["scope"] == f"resid@{n - 1}[pos=all]"]
    np.testing.assert_allclose(full["p_restored"], full["p_clean"], rtol=1e-4, atol=1e-8)
    nothing = items[items["scope"] == "resid@none[pos=last]"]
    np.testing.assert_allclose(nothing["p_restored"], nothing["p_corrupted"], rtol=1e-6)
    # the corruption moved something: the subject's noise changes the answer's probability
    assert not np.allclose(nothing["p_corrupted"], nothing["p_clean"], rtol=1e-6)
