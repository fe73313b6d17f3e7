"""Devices and precisions: names, resolution, CPU-held originals, out-of-memory messages,
and device settings in sweeps (config, command line, manifest)."""

from __future__ import annotations

import json

import pytest
import torch
from weight_hashes import weights_hash  # tests/ is on the path

from lenskit.cli import build_parser
from lenskit.cli.sweep import overrides
from lenskit.models import (
    MaskSet,
    OutOfMemoryError,
    apply_masks,
    load_model,
    memory_error,
    model_info,
    oom_hint,
    parse_dtype,
    pruned,
    resolve_device,
    restore,
)
from lenskit.models.devices import device_problems
from lenskit.sweep.config import ConfigError, load_config


def _expected_auto() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def test_device_names_and_resolution():
    assert resolve_device("auto").type == _expected_auto()
    assert resolve_device("cpu") == torch.device("cpu")
    assert device_problems("cuda:1", "bfloat16", "auto") == []
    bad = device_problems("gpu", "fp8", "balanced")
    assert bad == ["unknown device 'gpu'; allowed: auto, cpu, cuda, cuda:N, mps",
                   "unknown dtype 'fp8'; allowed: float32, bfloat16, float16",
                   "unknown device_map 'balanced'; allowed: none, auto"]
    with pytest.raises(ValueError, match="allowed: auto, cpu"):
        resolve_device("cuda0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert parse_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="allowed: float32, bfloat16, float16"):
        parse_dtype("half")


def test_load_in_bfloat16_with_auto_device(tiny_dirs):
    model = load_model(tiny_dirs["llama"], device="auto", dtype="bfloat16")
    info = model_info(model)
    assert info.dtype == "bfloat16" and info.device.startswith(_expected_auto())
    assert all(s.weight().dtype == torch.bfloat16 for s in info.sites)
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        load_model(tiny_dirs["llama"], dtype="int8")


def test_device_map_auto_loads_through_accelerate(tiny_dirs):
    pytest.importorskip("accelerate")
    ref = load_model(tiny_dirs["llama"])
    model = load_model(tiny_dirs["llama"], device="auto", device_map="auto")
    info = model_info(model)
    assert info.device_map == "auto"
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).cpu(), ref(ids))


def test_originals_live_on_cpu_and_restore_is_exact(tiny_model):
    info = model_info(tiny_model)
    h0 = weights_hash(tiny_model)
    gen = torch.Generator().manual_seed(0)
    masks = MaskSet({s.name: torch.rand(s.shape, generator=gen) > 0.5 for s in info.sites},
                    fingerprint=info.fingerprint)
    apply_masks(tiny_model, masks)
    param_storages = {p.untyped_storage().data_ptr() for p in info.hf.parameters()}
    param_storages |= {p.untyped_storage().data_ptr() for p in tiny_model.parameters()}
    assert set(info.originals) == set(masks)
    for orig in info.originals.values():
        assert orig.device.type == "cpu"
        assert orig.untyped_storage().data_ptr() not in param_storages
    with pruned(tiny_model, MaskSet.dense(tiny_model)):  # nested: put back as it was
        pass
    assert weights_hash(tiny_model) != h0
    restore(tiny_model)
    assert weights_hash(tiny_model) == h0 and not info.originals


def test_out_of_memory_says_what_to_lower():
    # A real allocation failure of the CPU allocator (1 PiB), translated.
    with pytest.raises(OutOfMemoryError, match="batch_size") as caught, \
            oom_hint("evaluation", dtype="float32", device="cpu"):
        torch.empty(2**50, dtype=torch.uint8)
    assert "bfloat16" in str(caught.value) and isinstance(caught.value.__cause__, RuntimeError)
    cuda = memory_error(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate "
                                                    "2.00 GiB"), "pruning",
                        dtype=torch.bfloat16, device="cuda:0")
    assert cuda is not None and "calibration.n_samples" in str(cuda)
    assert "on cuda:0" in str(cuda) and "lower precision" not in str(cuda)
    assert "calibration.seq_len" in str(memory_error(MemoryError(), "calibration"))
    assert memory_error(ValueError("bad"), "evaluation") is None
    with pytest.raises(KeyError), oom_hint("evaluation"):  # other errors pass unchanged
        raise KeyError("x")


def test_sweep_device_settings(tmp_path):
    args = build_parser().parse_args(["sweep", "--device", "cuda:1", "--dtype", "bfloat16",
                                      "--device-map", "auto"])
    cfg = load_config(None, overrides(args))
    assert (cfg.device, cfg.dtype, cfg.device_map) == ("cuda:1", "bfloat16", "auto")
    assert load_config(None, {}).device == "auto"  # default
    back = load_config(cfg.save(tmp_path / "c.toml"))
    assert (back.device, back.dtype, back.device_map) == ("cuda:1", "bfloat16", "auto")
    with pytest.raises(ConfigError, match="unknown dtype 'fp16'; allowed: float32, bfloat16"):
        load_config(None, {"dtype": "fp16"})


def test_sweep_records_the_resolved_device(tiny_dirs, tmp_path):
    from lenskit.sweep.runner import run_sweep

    cfg = load_config(None, {
        "models": str(tiny_dirs["gpt2"]), "methods": "magnitude", "sparsities": "0.5",
        "scopes": "attn", "tasks": "countries_capital_closed_book", "matched": "false",
        "out_dir": str(tmp_path / "run"), "dtype": "bfloat16",
    })
    run_sweep(cfg, progress=False, echo=lambda _: None)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["dtype"] == "bfloat16" and manifest["config"]["device"] == "auto"
    rec = manifest["devices"][str(tiny_dirs["gpt2"])]
    assert rec["dtype"] == "bfloat16" and rec["device"].startswith(_expected_auto())
