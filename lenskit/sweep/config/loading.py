"""Where a sweep config comes from: :func:`default_config` (the default study) and
:func:`load_config` (a file, then overrides, then validation), the one loader the CLI and the
API share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lenskit.models.organisms import dense_siblings
from lenskit.sweep.config.errors import ConfigError
from lenskit.sweep.config.files import read_settings
from lenskit.sweep.config.sweep import SweepConfig

__all__ = ["default_config", "load_config"]

log = logging.getLogger(__name__)

_MATCHED_KEYS = ("matched", "matched_pairs")
# The problem validation reports when the scopes leave the matched comparison nothing to pair.
_NO_PAIR = "matched comparison needs"


def default_config(**overrides: Any) -> SweepConfig:
    """The default study on the organism (the field defaults of :class:`SweepConfig`):
    Wanda and magnitude, sparsities 10%..90%, scopes all/attention/FFW, uniform
    unstructured pruning, the parameter-matched attention-vs-FFW comparison, seed 0, the
    small task suite, and the organism's narrower siblings (the shipped family's other
    members, :func:`~lenskit.models.dense_siblings`) evaluated dense (dropped when
    ``models`` is overridden without ``dense_models``). Keyword arguments override fields
    (same rules as ``with_overrides``)."""
    cfg = _default_base(overrides)
    return cfg.with_overrides(overrides) if overrides else cfg


def _default_base(overrides: Mapping[str, Any] | None) -> SweepConfig:
    """The default study's config before ``overrides``; the organism's sibling is only a
    reference point for the organism, so choosing other models drops it."""
    overrides = overrides or {}
    if "models" in overrides and "dense_models" not in overrides:
        return SweepConfig()
    return SweepConfig(dense_models=dense_siblings())


def _sets_matched(settings: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> bool:
    """Whether the file's settings or the overrides choose the matched comparison."""
    if any(k in overrides for k in _MATCHED_KEYS):
        return True
    if "matched" in str(overrides.get("allocations", "")):
        return True
    return settings is not None and any(k in settings for k in _MATCHED_KEYS)


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None,
                echo: Callable[[str], None] | None = None) -> SweepConfig:
    """Read a sweep config from TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML),
    apply ``overrides`` on top, validate, and return it. ``path=None`` starts from
    :func:`default_config`. Raises :class:`ConfigError` listing every problem.

    The parameter-matched comparison follows what the scopes allow unless the file or
    ``overrides`` set ``matched`` (or ``matched_pairs``): scopes without an attention-only
    and an FFW-only scope turn it off instead of failing, and when it adds cells ``echo``
    (default: this module's logger, at INFO) says how many and how to turn them off. The
    ``lenskit sweep`` command loads its config file with this function too."""
    overrides = dict(overrides or {})
    settings = None if path is None else read_settings(path)

    def build(extra: Mapping[str, Any]) -> SweepConfig:
        cfg = (_default_base(overrides) if settings is None
               else SweepConfig.from_dict(settings))
        changes = {**overrides, **extra}
        return (cfg.with_overrides(changes) if changes else cfg).validate()

    if _sets_matched(settings, overrides):
        return build({})
    try:
        cfg = build({})
    except ConfigError as err:
        if not any(p.startswith(_NO_PAIR) for p in err.problems):
            raise
        return build({"matched": "false"})
    n = sum(c.is_matched for c in cfg.cells())
    if n:
        pairs = ", ".join(f"{t} matched to {r}" for r, t in cfg.matched_pairs_resolved())
        (echo or log.info)(f"matched: {n} parameter-matched cells added ({pairs}); "
                           "--set matched=false turns them off")
    return cfg
