"""Helpers for the pruning tests: bitwise weight hashes, and an independent way to get a
site's calibration inputs (TransformerLens hooks on the bridge, not the HF pre-hooks that
lenskit.pruning uses)."""

from __future__ import annotations

import hashlib

import torch
from weight_hashes import weights_hash  # noqa: F401 (re-exported; tests/ is on the path)

from lenskit.models import model_info


def site_hashes(model) -> dict[str, str]:
    return {s.name: hashlib.sha256(s.weight().numpy().tobytes()).hexdigest()
            for s in model_info(model).sites}


def site_inputs(model, tokens: torch.Tensor, sites) -> dict[str, torch.Tensor]:
    """Each site's input on ``tokens`` as ``[n_tokens, in_features]`` (float64), via the
    bridge's TransformerLens hooks ``site.input_hook`` (one forward pass)."""
    hooks = {s.input_hook for s in sites}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in hooks)
    # o's input is hook_z-shaped [batch, pos, head, d_head]: heads flatten into in_features
    return {s.name: cache[s.input_hook].reshape(-1, s.shape[1]).detach().double()
            for s in sites}
