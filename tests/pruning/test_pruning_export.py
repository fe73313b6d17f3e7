"""Saving pruning results, and exporting pruned models as plain HF directories."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM
from weight_hashes import weights_hash  # tests/ is on the path

from lenskit.cli import main
from lenskit.models import load_model, model_info
from lenskit.pruning import PruneResult, default_calibration, export_pruned, prune


@pytest.mark.parametrize("fam", ["gpt2", "llama"])  # gpt2: fused Conv1D c_attn
@pytest.mark.parametrize("method", ["sparsegpt", "wanda"])
def test_export_round_trips_logits(tiny_dirs, tmp_path, fam, method):
    model = load_model(tiny_dirs[fam])
    cal = default_calibration(model, n_samples=4, seq_len=16, seed=0)
    dense = weights_hash(model)
    result = prune(model, method, 0.5, calibration=cal, apply=False)
    saved = result.save(tmp_path / "r.safetensors")
    back = PruneResult.load(saved, model)
    assert back.config == result.config and back.target == result.target
    for name, m in result.masks.items():
        assert torch.equal(back.masks[name], m)
    assert (back.weights is None) == (result.weights is None)
    for name, w in (result.weights or {}).items():
        assert torch.equal(back.weights[name], w)

    out = export_pruned(model, back, tmp_path / "out")
    assert weights_hash(model) == dense  # the model is put back exactly
    ids = cal.tokens[:2]
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad(), result.applied(model):
        hf_logits = model_info(model).hf(input_ids=ids).logits
        bridge_logits = model(ids)
        ex_logits = exported(input_ids=ids).logits
    assert torch.equal(ex_logits, hf_logits)
    torch.testing.assert_close(ex_logits, bridge_logits, rtol=1e-4, atol=1e-4)
    # the pruning really is in the exported weights
    assert not torch.equal(ex_logits, model_info(model).hf(input_ids=ids).logits)


def test_load_refuses_another_model(tiny_dirs, tmp_path):
    gpt2, llama = load_model(tiny_dirs["gpt2"]), load_model(tiny_dirs["llama"])
    path = prune(gpt2, "magnitude", 0.3, apply=False).save(tmp_path / "r.safetensors")
    with pytest.raises(ValueError, match="made for another model"):
        PruneResult.load(path, llama)
    with pytest.raises(ValueError, match="not a lenskit pruning result"):
        model_info(gpt2).hf.save_pretrained(tmp_path / "hf")
        PruneResult.load(tmp_path / "hf" / "model.safetensors")


def test_export_command(tiny_dirs, tmp_path):
    model = load_model(tiny_dirs["llama"])
    result = prune(model, "magnitude", 0.4, apply=False)
    path = result.save(tmp_path / "r.safetensors")
    assert main(["export", str(path), "--model", str(tiny_dirs["llama"]),
                 "--out", str(tmp_path / "out")]) == 0
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    zeros = sum(int((p == 0).sum()) for n, p in exported.named_parameters()
                if "layers" in n and n.endswith("proj.weight"))
    assert zeros == result.params_removed
    assert main(["export", str(path), "--model", str(tiny_dirs["llama"]),
                 "--out", str(tmp_path / "out")]) == 2  # not an empty directory
