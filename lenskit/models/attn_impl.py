"""Loading the plain HF model with errors that name their real cause.

Some models refuse an attention implementation (Gemma-2 and BLOOM, for instance, refuse
``"sdpa"``, PyTorch's ``scaled_dot_product_attention``): such a model is loaded again with
``"eager"``, which every HF model accepts, and the reason is recorded. The other failures
are told apart, so that a message says what is wrong: the config (an unknown
``model_type``), the weight files (truncated or damaged), or building the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from lenskit.models.load_error import ModelLoadError
from lenskit.models.offline import offline_setting

__all__ = ["AttentionRefused", "load_hf_model", "refused_attention"]

# Phrases of transformers' errors for an attention implementation a model does not support.
_REFUSALS = ("does not support an attention implementation", "attn_implementation",
             "attention implementation")
# Phrases of safetensors' and torch's errors for a weight file that cannot be read.
_DAMAGE = ("deserializ", "incomplete metadata", "metadataincompletebuffer", "header too",
           "invalid header", "unexpected end", "eof", "truncat", "headertoolarge",
           "safetensorerror", "invalid load key", "corrupt")


class AttentionRefused(ValueError):
    """The model refused every attention implementation tried (the message names them)."""


def refused_attention(err: BaseException) -> bool:
    """True when ``err`` is transformers refusing the requested attention implementation."""
    text = str(err).lower()
    return isinstance(err, (ValueError, NotImplementedError)) and any(
        p in text for p in _REFUSALS)


def _damaged(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(p in text for p in _DAMAGE)


def _error(message: str, path: str | None, err: BaseException):
    return ModelLoadError(f"{message}: {type(err).__name__}: {err}", path)


def load_hf_model(path: str, local: bool, dtype: torch.dtype, attn_implementation: str,
                  kwargs: dict[str, Any]) -> tuple[PreTrainedModel, str, str | None]:
    """The plain HF causal LM at ``path``; returns ``(model, attention implementation
    used, why the requested one was not used or None)``.

    Raises :class:`lenskit.models.ModelLoadError` (an ``OSError``) naming the cause: an
    unreadable or unknown config, damaged weight files, the hub unreachable, or a model that
    refuses both ``attn_implementation`` and ``"eager"``.
    """
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
    except Exception as err:
        if not local:
            raise _hub_error(path, err) from err
        import transformers

        if (isinstance(err, (KeyError, ValueError)) and "model_type" in str(err)) \
                or "does not recognize this architecture" in str(err):
            raise _error(f"the config.json in {path} names model_type {_model_type(path)!r}, "
                         f"which transformers {transformers.__version__} does not know",
                         path, err) from err
        raise _error(f"could not read the config.json in {path}", path, err) from err
    fallback: str | None = None
    tried = [attn_implementation]
    while True:
        try:
            hf = AutoModelForCausalLM.from_pretrained(
                path, config=config, dtype=dtype, attn_implementation=tried[-1], **kwargs)
            return hf, tried[-1], fallback
        except Exception as err:
            if refused_attention(err):
                if tried[-1] != "eager":
                    fallback = (f"{type(config).__name__.removesuffix('Config')} refuses "
                                f"attn_implementation={tried[-1]!r} ({err}); loaded with "
                                "'eager'")
                    tried.append("eager")
                    continue
                raise AttentionRefused(
                    f"the model in {path} refuses the attention implementations {tried}: "
                    f"{err}") from err
            if not local:
                if not isinstance(err, (OSError, ValueError)):
                    raise
                raise _hub_error(path, err) from err
            weights = sorted(p.name for p in Path(path).glob("*.safetensors"))
            if not weights and not any(Path(path).glob("*.bin")):
                raise _error(f"no weight files (*.safetensors) in {path}", path, err) from err
            if _damaged(err):
                raise _error(f"the weights in {path} cannot be read ({', '.join(weights)}: "
                             "a truncated or damaged file)", path, err) from err
            raise _error(f"could not build the {type(config).__name__.removesuffix('Config')} "
                         f"model in {path}", path, err) from err


def _model_type(path: str) -> str | None:
    import json

    try:
        return json.loads((Path(path) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _hub_error(path: str, err: BaseException):
    setting = offline_setting()
    return ModelLoadError(
        f"could not load {path!r} from the Hugging Face hub"
        + (f" ({setting} is set and it is not in the local cache)" if setting else "")
        + f" ({type(err).__name__}); to work offline, pass a local directory holding "
        "config.json, safetensors weights and the tokenizer (e.g. saved with save_pretrained), "
        "or download once and set HF_HUB_OFFLINE=1 to use the cache; 'organism' is shipped "
        "with lenskit.")

