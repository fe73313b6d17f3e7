"""Pattern metrics gathered inside an evaluation equal those of a separate pass."""

import pandas as pd
import pytest
import torch

from lenskit.analysis import AttentionProbe, attention_metrics
from lenskit.models import load_model, model_info
from lenskit.tasks import countries_suite, evaluate


@pytest.fixture(scope="module")
def open_book():
    return countries_suite(size="small", seed=0)["countries_capital_open_book"].subset(12, seed=0)


def test_probe_during_evaluation_matches_attention_metrics(tiny_dirs, family, open_book):
    model = load_model(tiny_dirs[family])
    plain = evaluate(model, open_book, batch_size=5)
    probe = AttentionProbe(model, open_book)
    probed = evaluate(model, open_book, batch_size=5, probe=probe)
    # The evaluation itself is unchanged by observing it (eager vs fused attention).
    assert list(probed.rows["prediction"]) == list(plain.rows["prediction"])
    pd.testing.assert_series_equal(probed.rows["logprob"], plain.rows["logprob"],
                                   rtol=1e-4, atol=1e-4)
    got = probe.frame()
    assert set(got["task"]) == {open_book.name} and (got["model"] == "model").all()
    ref = attention_metrics(model, open_book, batch_size=4, reference=None)
    keys = ["layer", "head", "metric", "queries"]
    merged = got.merge(ref, on=keys, suffixes=("", "_ref"))
    assert len(merged) == len(ref) == len(got)
    assert {"entropy", "sink", "span_mass"} <= set(merged["metric"])
    torch.testing.assert_close(torch.tensor(merged["value"].to_numpy()),
                               torch.tensor(merged["value_ref"].to_numpy()), rtol=1e-4, atol=1e-5)
    assert (merged["n"] == merged["n_ref"]).all()
    # The plain HF model is back on its fused attention.
    assert model_info(model).hf.config._attn_implementation == "sdpa"


def test_probe_rejects_other_backends_and_tasks(tiny_dirs, open_book):
    model = load_model(tiny_dirs["llama"])
    with pytest.raises(ValueError, match="backend='hf'"):
        evaluate(model, open_book, backend="bridge", probe=AttentionProbe(model, open_book))
    other = countries_suite(size="small", seed=0)["countries_capital_closed_book"].subset(5)
    with pytest.raises(ValueError, match="prompt lengths differ"):
        evaluate(model, other, probe=AttentionProbe(model, open_book))
