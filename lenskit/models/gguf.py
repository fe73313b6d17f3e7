"""GGUF files (llama.cpp's format, often quantised) as lenskit models.

:func:`lenskit.load_model` accepts a path to a ``.gguf`` file: transformers reads it (the
optional ``gguf`` package, ``pip install 'lenskit[gguf]'``) and dequantises every tensor to
float; the result is saved once as a plain Hugging Face directory in a cache
(``$LENSKIT_CACHE/gguf/<sha256 of the file>``, default ``~/.cache/lenskit``) and loaded from
there like any local model. :func:`gguf_source` describes the file for the model's record
(``model_info(model).source``): the weights of a quantised file are the dequantised values,
not the original float checkpoint's, and results should say so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lenskit.models.packages import is_package_spec, local_spec, package_file

__all__ = ["FLOAT_TYPES", "GGUFError", "gguf_cache_dir", "gguf_n_layers", "gguf_source",
           "gguf_to_hf_dir", "is_gguf"]

#: GGML tensor types that hold plain floats (anything else is quantised).
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})
_DONE = ".lenskit-complete"


class GGUFError(RuntimeError):
    """A GGUF file could not be read or converted; the message says why and what to do."""


def is_gguf(spec: Any) -> bool:
    """Whether ``spec`` names an existing ``.gguf`` file (a path, or a
    ``package:NAME/PATH`` spec of a file an installed package ships, see
    :mod:`lenskit.models.packages`)."""
    text = str(spec)
    if not text.lower().endswith(".gguf"):
        return False
    if is_package_spec(text):
        try:
            package_file(text)
        except (FileNotFoundError, ValueError):
            return False
        return True
    return Path(text).expanduser().is_file()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reader(path: Path):
    try:
        import gguf  # optional dependency: only GGUF loading needs it
    except ImportError:
        raise GGUFError(f"loading {path} needs the 'gguf' package: pip install "
                        f"'lenskit[gguf]' (or pip install gguf)") from None
    try:
        return gguf, gguf.GGUFReader(str(path))
    except Exception as err:  # a truncated or foreign file: one clear message
        raise GGUFError(f"{path} is not a readable GGUF file: {err}") from err


def gguf_source(path: str | os.PathLike, sha256: str | None = None) -> dict[str, Any]:
    """What a GGUF file is, for the model's record: ``format`` "gguf", ``file``, ``sha256``,
    ``architecture``, ``tensor_types`` (GGML type name -> tensor count), ``quantised`` (any
    tensor not stored as plain floats) and ``quantisation`` (the most common non-float type,
    e.g. "Q4_1"; None when unquantised)."""
    path = Path(local_spec(path)).expanduser()
    _, reader = _reader(path)
    types = Counter(t.tensor_type.name for t in reader.tensors)
    quant = Counter({k: v for k, v in types.items() if k not in FLOAT_TYPES})
    arch_field = reader.fields.get("general.architecture")
    arch = None
    if arch_field is not None:
        arch = bytes(arch_field.parts[arch_field.data[0]]).decode()
    return {"format": "gguf", "file": str(path.resolve()), "sha256": sha256 or _sha256(path),
            "architecture": arch, "tensor_types": dict(sorted(types.items())),
            "quantised": bool(quant),
            "quantisation": quant.most_common(1)[0][0] if quant else None}


def gguf_n_layers(path: str | os.PathLike) -> int:
    """The number of transformer blocks a GGUF file declares (``{architecture}.block_count``),
    read from its header without loading any tensor; :class:`GGUFError` if it has none."""
    path = Path(local_spec(path)).expanduser()
    _, reader = _reader(path)
    arch_field = reader.fields.get("general.architecture")
    arch = bytes(arch_field.parts[arch_field.data[0]]).decode() if arch_field else None
    field = reader.fields.get(f"{arch}.block_count") if arch else None
    if field is None:
        raise GGUFError(f"{path} declares no block count ({arch}.block_count)")
    return int(field.parts[field.data[0]][0])


def gguf_cache_dir() -> Path:
    """Where converted GGUF files are kept: ``$LENSKIT_CACHE/gguf`` (default
    ``~/.cache/lenskit/gguf``)."""
    root = os.environ.get("LENSKIT_CACHE") or Path.home() / ".cache" / "lenskit"
    return Path(root) / "gguf"


def gguf_to_hf_dir(path: str | os.PathLike, cache: str | os.PathLike | None = None
                   ) -> tuple[Path, dict[str, Any]]:
    """Convert a GGUF file to a Hugging Face directory (float32 weights, tokenizer) once, and
    return ``(directory, gguf_source(path))``. The directory is keyed by the file's sha256,
    written to a temporary name and renamed when complete, so an interrupted conversion is
    redone. Raises :class:`GGUFError` when the file cannot be read or converted."""
    path = Path(local_spec(path)).expanduser().resolve()
    sha = _sha256(path)
    source = gguf_source(path, sha)
    root = Path(cache) if cache is not None else gguf_cache_dir()
    out = root / sha[:16]
    if (out / _DONE).is_file():
        return out, source
    tmp = root / f".{sha[:16]}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        tmp.mkdir(parents=True)
        # transformers marks a GGUF-loaded model as quantised and refuses save_pretrained;
        # its tensors are plain float32 by now, so save them and a config without the mark.
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        type(model.config).from_dict(config).save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"))  # drops tied duplicates
        tok.save_pretrained(tmp)
        (tmp / _DONE).write_text(str(path) + "\n")
        if out.exists():
            shutil.rmtree(out)  # an incomplete conversion left by a killed process
        os.replace(tmp, out)
    except GGUFError:
        raise
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise GGUFError(f"could not convert the GGUF file {path} to a Hugging Face model "
                        f"({source['architecture']!r}, tensor types "
                        f"{source['tensor_types']}): {err}") from err
    return out, source
