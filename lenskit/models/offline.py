"""The one offline switch: whether lenskit may reach the Hugging Face hub.

Model loading, preflight checks, calibration from hub datasets and the task loaders all ask
:func:`offline`, so they agree. Any of :data:`OFFLINE_VARIABLES` set to ``1``, ``true``,
``yes`` or ``on`` (any case, surrounding spaces ignored) means offline, as it does for
``huggingface_hub``, ``transformers`` and ``datasets``; any other value (``0``, ``false``,
empty, unset) means online.
"""

from __future__ import annotations

import os

__all__ = ["OFFLINE_VALUES", "OFFLINE_VARIABLES", "offline", "offline_setting"]

#: Environment variables that switch the Hugging Face libraries (and lenskit) offline.
OFFLINE_VARIABLES: tuple[str, ...] = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                      "TRANSFORMERS_OFFLINE")
#: The values (compared lower-cased, stripped) that mean "offline".
OFFLINE_VALUES: frozenset[str] = frozenset({"1", "true", "yes", "on"})


def offline_setting() -> str | None:
    """The first of :data:`OFFLINE_VARIABLES` that switches lenskit offline, as
    ``"NAME=value"`` (for messages), or None when lenskit may go online."""
    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().lower() in OFFLINE_VALUES:
            return f"{name}={value}"
    return None


def offline() -> bool:
    """True when lenskit must not reach the Hugging Face hub (see the module docstring)."""
    return offline_setting() is not None
