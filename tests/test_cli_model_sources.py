"""Every CLI command that takes a model accepts what ``load_model`` accepts: the organism by
name, a local Hugging Face directory and a ``.gguf`` file (``sites``, ``templates``,
``export`` and ``sweep``, each on each source)."""

from __future__ import annotations

import json

import pytest

from lenskit.cli import main
from lenskit.models import load_model, model_info
from lenskit.pruning import prune

pytest.importorskip("gguf")
from gguf_files import write_tiny_gguf  # tests/ is on the path

SOURCES = ["organism", "hf_dir", "gguf"]
TASK = "countries_capital_closed_book:n=4,shots=0"


@pytest.fixture(scope="module")
def specs(tiny_dirs, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("sources")
    write_tiny_gguf(root / "tiny.gguf")
    return {"organism": "organism", "hf_dir": str(tiny_dirs["llama"]),
            "gguf": str(root / "tiny.gguf")}


@pytest.fixture(autouse=True)
def _gguf_cache(tmp_path_factory, monkeypatch):
    # converted GGUF files are cached; keep the cache inside the test's temporary tree
    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.mark.parametrize("source", SOURCES)
def test_sites(source, specs, capsys):
    assert main(["sites", specs[source], "--scope", "mlp"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    n_layers = model_info(load_model(specs[source])).n_layers
    assert f"{n_layers} layers" in out and "blocks.0.mlp" in out and "attn" not in out


@pytest.mark.parametrize("source", SOURCES)
def test_templates(source, specs, capsys):
    code = main(["templates", "--model", specs[source], "--task", TASK, "--templates", "qa",
                 "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert "countries_capital_closed_book | qa | 4 |" in capsys.readouterr().out


@pytest.mark.parametrize("source", SOURCES)
def test_export(source, specs, tmp_path, capsys):
    model = load_model(specs[source])
    result = prune(model, "magnitude", 0.5, scope="mlp", apply=False)
    path = result.save(tmp_path / "r.safetensors")
    out = tmp_path / "out"
    code = main(["export", str(path), "--model", specs[source], "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "lenskit_pruning.json").read_text())
    assert record["params_removed"] == result.params_removed > 0
    assert record["fingerprint"] == model_info(model).fingerprint


@pytest.mark.parametrize("source", SOURCES)
def test_sweep(source, specs, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["sweep", "--model", specs[source], "--methods", "magnitude",
                 "--sparsities", "0.5", "--scopes", "mlp", "--tasks", TASK.split(":")[0],
                 "--out", str(run), "--no-figures", "--threads", "1",
                 "--set", "matched=false", "--set", "calibration.n_samples=2",
                 "--set", "calibration.seq_len=16", "--set", "suite=" + TASK]
                if source != "organism" else
                ["sweep", "--model", specs[source], "--methods", "magnitude",
                 "--sparsities", "0.5", "--scopes", "mlp", "--tasks", "closed_book_head",
                 "--out", str(run), "--no-figures", "--threads", "1",
                 "--set", "matched=false", "--set", "calibration.n_samples=2",
                 "--set", "calibration.seq_len=16"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(list((run / "cells").glob("*.parquet"))) == 2
    assert manifest["models"][specs[source]]["source"]["format"] == (
        "gguf" if source == "gguf" else "hf")
