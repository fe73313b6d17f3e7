"""Low-precision models: statistics, Hessians and SparseGPT stay float32 (as in the
references), so bfloat16 weights get masks computed from float32 statistics."""

from __future__ import annotations

import torch

from lenskit.models import load_model, model_info
from lenskit.pruning import default_calibration, prune
from lenskit.pruning.statistics import BlockWalker


def _module_inputs(info, tokens, path) -> torch.Tensor:
    """The bfloat16 inputs of one HF module over a full forward pass, ``[tokens, d_in]``."""
    caps = []
    h = info.hf.get_submodule(path).register_forward_pre_hook(
        lambda _m, args: caps.append(args[0].detach()))
    try:
        with torch.no_grad():
            info.hf(input_ids=tokens, use_cache=False)
    finally:
        h.remove()
    x = torch.cat([c.reshape(-1, c.shape[-1]) for c in caps])
    assert x.dtype == torch.bfloat16
    return x


def test_bfloat16_statistics_are_float32(tiny_dirs):
    model = load_model(tiny_dirs["llama"], dtype="bfloat16")
    info = model_info(model)
    cal = default_calibration(model, n_samples=8, seq_len=16, seed=0)
    q = info.site_map["blocks.1.attn.q"]
    gate = info.site_map["blocks.1.mlp.gate"]
    got = {}
    BlockWalker(info, cal.tokens, batch_size=3).walk(
        {1: {q.input_group: (q, "hessian"), gate.input_group: (gate, "norms")}},
        lambda _layer, stats: got.update(stats))
    hess, norms = got[q.input_group].hessian(), got[gate.input_group].norms()
    assert hess.dtype == torch.float32 and norms.dtype == torch.float32

    x = _module_inputs(info, cal.tokens, q.hf_path).double()
    ref = 2.0 / cal.n_samples * x.t() @ x
    err = ((hess.double() - ref).abs().max() / ref.abs().max()).item()
    # bfloat16 arithmetic would be off by ~1e-3 of the scale; float32 sums by ~1e-7
    xb = x.to(torch.bfloat16)
    err_bf16 = (((2.0 / cal.n_samples * xb.t() @ xb).double() - ref).abs().max()
                / ref.abs().max()).item()
    assert err < 1e-5 < err_bf16

    xg = _module_inputs(info, cal.tokens, gate.hf_path).double()
    torch.testing.assert_close(norms.double(), xg.square().sum(0).sqrt(), rtol=1e-5, atol=0)


def test_bfloat16_wanda_masks_come_from_float32_norms(tiny_dirs):
    model = load_model(tiny_dirs["llama"], dtype="bfloat16")
    info = model_info(model)
    cal = default_calibration(model, n_samples=8, seq_len=16, seed=0)
    site = info.site_map["blocks.0.mlp.gate"]
    w = site.weight()
    result = prune(model, "wanda", 0.5, scope="mlp.gate@0", calibration=cal, apply=False)
    x = _module_inputs(info, cal.tokens, site.hf_path).double()
    scores = w.double().abs() * x.square().sum(0).sqrt()[None, :]
    # The expected mask by plain torch: per output row, the cols // 2 lowest scores (a stable
    # sort: ties to the lower index) are pruned.
    order = torch.argsort(scores.float(), dim=1, stable=True)[:, : w.shape[1] // 2]
    expected = torch.ones(w.shape, dtype=torch.bool).scatter_(1, order, False)
    assert int((~expected).sum()) == w.numel() // 2
    assert torch.equal(result.masks[site.name], expected)
    # SparseGPT on bfloat16 weights: float32 arithmetic, weights handed back in bfloat16
    sg = prune(model, "sparsegpt", 0.5, scope="mlp.gate@0", calibration=cal, apply=False)
    assert sg.weights[site.name].dtype == torch.bfloat16
    assert sg.achieved_sparsity == 0.5
