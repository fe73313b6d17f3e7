"""Config files: reading TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML) into
plain settings, and writing settings as TOML (with ``tomli-w``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from lenskit.sweep.config.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["read_settings", "to_toml"]

_HEADER = "# lenskit sweep config (read with lenskit.sweep.load_config)\n"


def read_settings(path: str | Path) -> dict[str, Any]:
    """The settings of a config file as a plain dict. Raises :class:`ConfigError` for a
    missing file, an unknown suffix, or text that does not parse."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file {str(path)!r} does not exist"])
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError([f"{path}: not valid TOML: {e}"]) from None
    if suffix in (".yaml", ".yml"):
        try:
            import yaml  # optional dependency: only YAML configs need it
        except ModuleNotFoundError:
            raise ConfigError([f"{path}: reading YAML needs PyYAML (pip install pyyaml); "
                               f"or write the config as TOML"]) from None
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError([f"{path}: not valid YAML: {e}"]) from None
        if not isinstance(data, dict):
            raise ConfigError([f"{path}: the top level must be a mapping of settings"])
        return data
    raise ConfigError([f"config file {str(path)!r} must end in .toml, .yaml or .yml"])


def to_toml(settings: Mapping[str, Any]) -> str:
    """``settings`` (a config's ``to_dict()``) as TOML text, with a header comment. Keys
    whose value is ``None`` are left out (TOML has no null; reading falls back to the
    default)."""
    return _HEADER + tomli_w.dumps(_drop_none(settings))


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _drop_none(v) if isinstance(v, Mapping) else v
            for k, v in d.items() if v is not None}
