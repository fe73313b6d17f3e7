"""One offline switch: model loading, preflight, calibration from hub datasets and the task
loaders agree on every value of every offline variable.

The Hugging Face libraries read these variables once, on import, and this test session
imports them offline (tests/conftest.py); so where lenskit decides "online" below, the
library call it makes fails at once instead of reaching the network, and the message tells
which way lenskit decided.
"""

import pytest

from lenskit.models import ModelLoadError, load_model
from lenskit.models.offline import OFFLINE_VARIABLES, offline, offline_setting
from lenskit.pruning import CalibrationData
from lenskit.sweep import ConfigError, load_config
from lenskit.sweep.preflight import preflight
from lenskit.tasks import load_webquestions
from lenskit.tasks.loaders import DatasetUnavailableError

OFFLINE = ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " true "]
ONLINE = ["0", "false", "False", "no", "off", "", "2", "offline"]


def decisions() -> dict[str, bool]:
    """Whether each caller treated the hub as out of reach (from what it reported)."""
    import datasets  # noqa: F401 (imported here, offline, before any caller imports it)

    out = {"offline()": offline()}
    try:
        load_model("lenskit-test/no-such-model-anywhere")
    except ModelLoadError as err:
        out["load_model"] = "is set and it is not in the local cache" in str(err)
    cfg = load_config(None, {"models": "organism", "methods": "magnitude", "sparsities": "0.5",
                             "scopes": "attn", "matched": "false", "tasks": "default",
                             "calibration.source": "lenskit-test/some_dataset"})
    try:
        preflight(cfg)
        out["preflight"] = False
    except ConfigError as err:
        out["preflight"] = "cannot be fetched as a hub dataset" in str(err)
    try:
        CalibrationData.from_hf_dataset("lenskit-test/some_dataset", tokenizer=None)
    except Exception as err:  # offline: RuntimeError; online: the library's own failure
        out["calibration"] = "cannot load the dataset" in str(err) and "is set" in str(err)
    try:
        load_webquestions()
    except DatasetUnavailableError as err:
        out["task loaders"] = "is not available offline" in str(err)
    return out


@pytest.mark.parametrize("variable", OFFLINE_VARIABLES)
@pytest.mark.parametrize("value", OFFLINE + ONLINE)
def test_every_caller_agrees_on_every_value(variable, value, monkeypatch):
    for v in OFFLINE_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(variable, value)
    got = decisions()
    assert len(got) == 5, got
    assert set(got.values()) == {value in OFFLINE}, got
    assert (offline_setting() == f"{variable}={value}") is (value in OFFLINE)


def test_unset_is_online_and_the_first_true_variable_is_named(monkeypatch):
    for v in OFFLINE_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    assert not offline() and offline_setting() is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "yes")
    assert offline() and offline_setting() == "TRANSFORMERS_OFFLINE=yes"
