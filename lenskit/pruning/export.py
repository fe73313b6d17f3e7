"""Export a pruned model as a plain Hugging Face model directory.

:func:`export_pruned` applies a :class:`~lenskit.pruning.PruneResult` (masks and SparseGPT's
updated weights) to the model, writes the native HF model that shares every parameter with
the bridge (``config.json``, ``model.safetensors``, ``generation_config.json``) and its
tokenizer to a directory, and puts the model back exactly as it was. The directory loads
with ``transformers.AutoModelForCausalLM.from_pretrained(out)``, with or without lenskit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lenskit.errors import UsageError
from lenskit.models.loading import model_info
from lenskit.pruning.result import PruneResult

__all__ = ["export_pruned"]


def export_pruned(model, result: PruneResult, out_dir: str | os.PathLike, *,
                  extra: dict | None = None) -> Path:
    """Write ``model`` with ``result`` applied to ``out_dir`` as a HF model directory.

    The weights are written in the model's dtype as ``model.safetensors`` (sharded by
    transformers above its default shard size); ``lenskit_pruning.json`` next to them
    records the result's config and achieved sparsity (and ``extra``, e.g. the run and cell
    it came from). The model itself is left exactly as
    it was. Raises ``ValueError`` if ``result`` was made for another model or ``out_dir``
    is a non-empty directory.

    Returns:
        ``out_dir`` as a ``Path``.
    """
    if not isinstance(result, PruneResult):
        raise UsageError(f"result must be a PruneResult, got {type(result).__name__}: "
                         "prune with lenskit.prune(..., apply=False), or read a saved one "
                         "with PruneResult.load(path)")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory; choose a new one")
    info = model_info(model)
    with result.applied(model):  # validates first; restores bit for bit on exit
        out.mkdir(parents=True, exist_ok=True)
        info.hf.save_pretrained(out, safe_serialization=True)
        info.tokenizer.save_pretrained(out)
    record = {"source_model": info.spec, "fingerprint": info.fingerprint,
              "achieved_sparsity": result.achieved_sparsity,
              "params_removed": result.params_removed, "config": result.config,
              **(extra or {})}
    (out / "lenskit_pruning.json").write_text(json.dumps(record, indent=2, default=str))
    return out
