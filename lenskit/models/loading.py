"""Load hooked models: a TransformerLens 4.x ``TransformerBridge`` over the native HF model.

``load_model(spec)`` accepts a hub name, a local HF directory or ``"organism"``. Next to the
bridge lenskit keeps a plain HF model that shares every parameter tensor with it (no copy):
task evaluation decodes with it (key-value cache, fused attention kernels), while hooks,
caches and attention analysis go through the bridge. Weights are only ever edited in place,
so both always see the same numbers.
"""

from __future__ import annotations

import copy
import hashlib
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from lenskit.models.architectures import ArchitectureSpec, architecture_for
from lenskit.models.sites import Site, SiteSelection, select_sites
from lenskit.models.sites_build import build_sites

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "describe",
    "hf_model",
    "load_model",
    "model_info",
    "organism_path",
    "sites",
]

_REGISTRY: weakref.WeakKeyDictionary[torch.nn.Module, LoadedModel] = weakref.WeakKeyDictionary()
_DATA_DIR = Path(__file__).resolve().parents[2] / "data"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass(eq=False)
class LoadedModel:
    """What lenskit knows about a loaded model.

    Attributes:
        spec: what was passed to :func:`load_model`.
        path: the resolved local directory or hub name.
        arch: the architecture row used to find sites.
        hf: the plain HF model sharing all parameters with the bridge.
        tokenizer: the model's tokenizer (``pad_token`` set if it had none).
        sites: every prunable site, in layer then component order.
        fingerprint: a hash of the weights at load time (identifies the model for masks).
        originals: pristine copies of sites modified so far (for bitwise restore).
    """

    spec: str
    path: str
    arch: ArchitectureSpec
    hf: PreTrainedModel
    tokenizer: Any
    sites: tuple[Site, ...]
    fingerprint: str
    n_layers: int
    originals: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def site_map(self) -> dict[str, Site]:
        return {s.name: s for s in self.sites}

    @property
    def total_params(self) -> int:
        return sum(s.numel for s in self.sites)

    def select(self, selection=None) -> SiteSelection:
        return select_sites(self.sites, selection, self.n_layers)

    def __repr__(self) -> str:
        # the dataclass default would print the whole HF module tree (thousands of chars)
        return f"LoadedModel({self.summary()})"

    def summary(self) -> str:
        """One line: spec, architecture, layers, sites, block weights, vocab, dtype, device."""
        attn = sum(s.numel for s in self.sites if s.family == "attn")
        param = next(iter(self.hf.parameters()), None)
        where = f", {str(param.dtype).removeprefix('torch.')} on {param.device}" if param is not \
            None else ""
        return (f"{self.spec!r}: {self.arch.name}, {self.n_layers} layers, "
                f"{len(self.sites)} sites, {self.total_params:,} block weights (attention "
                f"{attn:,}, FFW {self.total_params - attn:,}), vocab {len(self.tokenizer):,}"
                f"{where}, fingerprint {self.fingerprint[:12]}")


def describe(model) -> str:
    """One line about a model loaded with :func:`load_model`: spec, architecture, layers,
    prunable sites, block-linear weights (attention / FFW), vocabulary, dtype and device.
    (The bridge's own ``repr`` is TransformerLens's module tree, thousands of characters.)"""
    return model_info(model).summary()


def organism_path(name: str = "organism") -> Path:
    """The directory of a shipped organism: ``organism`` or a family member like
    ``organism-d64`` (see ``data/organism/README.md``)."""
    root = Path(os.environ.get("LENSKIT_DATA", _DATA_DIR))
    path = root / "organism" if name == "organism" else root / "organisms" / name
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"the organism {name!r} is not at {path}: expected a HF directory with "
            "config.json (train one with `lenskit organism train`, or set LENSKIT_DATA)"
        )
    return path


def _resolve(spec: str | os.PathLike) -> tuple[str, bool]:
    text = str(spec)
    if text == "organism" or text.startswith("organism-"):
        return str(organism_path(text)), True
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} is a directory but has no config.json; expected a "
                                 "Hugging Face model directory (config + safetensors + tokenizer)")
        return str(path), True
    if path.exists():
        raise ModelLoadError(f"{path} is a file; pass a Hugging Face model directory")
    return text, False


def _fingerprint(sites: tuple[Site, ...]) -> str:
    """Hash of site shapes and a strided sample of every site's weights."""
    h = hashlib.sha256()
    for s in sites:
        w = s.bindings[0].view().reshape(-1)
        step = max(1, w.numel() // 4096)
        h.update(f"{s.name}:{s.shape}".encode())
        h.update(w[::step].detach().to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_model(
    spec: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    tokenizer: Any = None,
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    trust_remote_code: bool = False,
):
    """Load a model as a TransformerLens ``TransformerBridge`` (raw HF numerics, eval mode).

    Args:
        spec: a hub name (``"EleutherAI/pythia-70m"``, ``"gpt2"``...), a local HF directory,
            or ``"organism"`` (the small model shipped in ``data/organism``).
        device, dtype: where and in which precision to hold the weights.
        tokenizer: a tokenizer to use instead of the model's own.
        attn_implementation: attention kernel of the plain HF model used for decoding (the
            bridge always uses eager attention so that patterns can be hooked).
        revision: a hub revision (branch, tag or commit).

    Returns:
        The bridge. ``lenskit.model_info(bridge)`` gives the sites, tokenizer and the plain
        HF model that shares its parameters.

    Raises:
        ModelLoadError: the spec names nothing loadable, or the hub cannot be reached.
        ValueError: the architecture is not supported.
    """
    from transformer_lens.model_bridge import TransformerBridge

    path, local = _resolve(spec)
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if local:
        kwargs["local_files_only"] = True
    try:
        hf = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, attn_implementation=attn_implementation, **kwargs
        )
        tok = tokenizer or AutoTokenizer.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        if local:
            raise ModelLoadError(f"could not load the model in {path}: {err}") from err
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise ModelLoadError(
            f"could not load {path!r} from the Hugging Face hub"
            + (" (HF_HUB_OFFLINE=1 is set and it is not in the local cache)" if offline else "")
            + f": {err}\nTo work offline, pass a local directory holding config.json, "
            "safetensors weights and the tokenizer (e.g. saved with save_pretrained), or "
            "download once and set HF_HUB_OFFLINE=1 to use the cache; 'organism' is shipped "
            "with lenskit."
        ) from err
    arch = architecture_for(hf.config.model_type)
    if tok.pad_token is None:
        # Right padding with explicit lengths: the pad id is never read as content.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    hf = hf.to(device).eval()
    # The plain model shares every Parameter object with `hf`; the bridge then wraps `hf`
    # in place (its modules get replaced), while `plain` keeps the native module tree.
    plain = copy.deepcopy(hf, {id(p): p for p in hf.parameters()})
    bridge = TransformerBridge.boot_transformers(
        path, hf_model=hf, tokenizer=tok, device=device, dtype=dtype
    )
    bridge.eval()
    site_list = build_sites(arch, plain, bridge)
    info = LoadedModel(
        spec=str(spec),
        path=path,
        arch=arch,
        hf=plain,
        tokenizer=tok,
        sites=site_list,
        fingerprint=_fingerprint(site_list),
        n_layers=len(bridge.blocks),
    )
    _REGISTRY[bridge] = info
    return bridge


def model_info(model) -> LoadedModel:
    """lenskit's record of a model returned by :func:`load_model`."""
    try:
        return _REGISTRY[model]
    except (KeyError, TypeError):
        raise ValueError(
            f"{type(model).__name__} was not loaded with lenskit.load_model; load it with "
            "lenskit.load_model(name_or_dir) so that its sites are known"
        ) from None


def sites(model, selection=None) -> SiteSelection:
    """The model's sites, optionally restricted by a selection or scope string."""
    return model_info(model).select(selection)


def hf_model(model) -> PreTrainedModel:
    """The plain HF model that shares every parameter with the bridge."""
    return model_info(model).hf
