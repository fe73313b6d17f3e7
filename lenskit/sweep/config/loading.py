"""Where a sweep config comes from: :func:`default_config` (the default study) and
:func:`load_config` (a file, then overrides, then validation)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lenskit.sweep.config.files import read_settings
from lenskit.sweep.config.models import DEFAULT_DENSE_MODELS
from lenskit.sweep.config.sweep import SweepConfig

__all__ = ["default_config", "load_config"]


def default_config(**overrides: Any) -> SweepConfig:
    """The default study on the organism (the field defaults of :class:`SweepConfig`):
    Wanda and magnitude, sparsities 10%..90%, scopes all/attention/FFW, uniform
    unstructured pruning, the parameter-matched attention-vs-FFW comparison, seed 0, the
    small task suite, and the organism's narrower sibling ``organism-d64`` evaluated dense
    (dropped when ``models`` is overridden without ``dense_models``). Keyword arguments
    override fields (same rules as ``with_overrides``)."""
    cfg = _default_base(overrides)
    return cfg.with_overrides(overrides) if overrides else cfg


def _default_base(overrides: Mapping[str, Any] | None) -> SweepConfig:
    """The default study's config before ``overrides``; the organism's sibling is only a
    reference point for the organism, so choosing other models drops it."""
    overrides = overrides or {}
    if "models" in overrides and "dense_models" not in overrides:
        return SweepConfig()
    return SweepConfig(dense_models=list(DEFAULT_DENSE_MODELS))


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> SweepConfig:
    """Read a sweep config from TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML),
    apply ``overrides`` on top, validate, and return it. ``path=None`` starts from
    :func:`default_config`. Raises :class:`ConfigError` listing every problem."""
    cfg = (_default_base(overrides) if path is None
           else SweepConfig.from_dict(read_settings(path)))
    if overrides:
        cfg = cfg.with_overrides(overrides)
    return cfg.validate()
