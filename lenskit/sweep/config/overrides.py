"""Settings as typed in a file or on a command line (``--set key=value``), converted to the
values of a sweep config's fields.

Keys are field names, dotted for nested ones ("calibration.n_samples",
"method_kwargs.sparsegpt.blocksize"). Values may be typed or strings as typed on a command
line: lists as "a,b,c" (scopes, whose selections contain commas, as "all;attn.q,k@0-3") or a
TOML/JSON list "[0.1, 0.5]"; booleans as true/false/yes/no/1/0. An unknown key is reported
with the closest known one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lenskit.models.sites import parse_scopes
from lenskit.pruning.structure import parse_sparsities
from lenskit.sweep.config.errors import ConfigError, did_you_mean, unknown
from lenskit.sweep.config.tasks import suite_specs

__all__ = ["CALIBRATION_TYPES", "FIELD_TYPES", "apply_overrides", "flatten"]

#: The kind of value of every field of :class:`SweepConfig` (checked against its fields).
FIELD_TYPES: dict[str, str] = {
    "name": "str", "models": "list[str]", "dense_models": "list[str]", "methods": "list[str]",
    "sparsities": "sparsities", "scopes": "scopes", "structures": "list[str]",
    "allocations": "list[str]", "matched": "bool", "matched_pairs": "pairs",
    "tasks": "list[str]", "task_size": "str", "seeds": "list[int]",
    "calibration": "calibration", "batch_size": "int", "out_dir": "str",
    "method_kwargs": "kwargs", "allocation_kwargs": "kwargs",
    "device": "str", "dtype": "str", "device_map": "str", "suite": "specs",
    "executor": "str", "address": "str?", "workers": "int?", "num_cpus": "float",
    "num_gpus": "float",
}
#: The kind of value of every field of :class:`CalibrationConfig`.
CALIBRATION_TYPES = {"n_samples": "int", "seq_len": "int", "source": "str", "sequential": "bool"}
_TABLES = ("calibration", "method_kwargs", "allocation_kwargs")


def flatten(d: Mapping[str, Any]) -> dict[str, Any]:
    """Parsed TOML/YAML -> override keys: ``calibration`` becomes ``calibration.KEY``
    entries, ``method_kwargs``/``allocation_kwargs`` become one ``method_kwargs.NAME``
    entry per table; every other key is kept as it is."""
    if not isinstance(d, Mapping):
        raise ConfigError([f"config must be a mapping of settings, got {type(d).__name__}"])
    out: dict[str, Any] = {}
    for key, v in d.items():
        if isinstance(v, Mapping) and key in _TABLES:
            for k2, v2 in v.items():
                out[f"{key}.{k2}"] = v2
            if not v and key != "calibration":
                out[key] = {}
        else:
            out[key] = v
    return out


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a config's ``to_dict()``, changed in place and returned) with ``overrides``
    applied. Raises :class:`ConfigError` listing every unknown key and every value that
    cannot be converted."""
    problems: list[str] = []
    for key, raw in flatten(overrides).items():
        parts = key.split(".")
        top = parts[0]
        if top not in FIELD_TYPES:
            problems.append(f"unknown setting {key!r}; allowed: {', '.join(sorted(FIELD_TYPES))}"
                            + did_you_mean(top, FIELD_TYPES))
            continue
        kind = FIELD_TYPES[top]
        try:
            if top == "calibration":
                if len(parts) == 1:
                    if not isinstance(raw, Mapping):
                        raise ValueError("must be a table of calibration settings")
                    for k, v in raw.items():
                        data["calibration"][k] = _convert_calibration(k, v)
                elif len(parts) == 2:
                    data["calibration"][parts[1]] = _convert_calibration(parts[1], raw)
                else:
                    raise ValueError("too many dots")
            elif kind == "kwargs":
                _set_kwargs(data, parts, raw)
            elif len(parts) != 1:
                raise ValueError(f"{top!r} has no sub-settings")
            else:
                data[top] = _convert(kind, raw)
        except _Unknown as e:
            problems.append(str(e))
        except (ValueError, TypeError, json.JSONDecodeError) as e:
            problems.append(f"bad value {raw!r} for {key!r}: {e}")
    if problems:
        raise ConfigError(problems)
    return data


class _Unknown(ValueError):
    """An unknown nested key (reported as it is, not as a bad value)."""


def _set_kwargs(data: dict[str, Any], parts: list[str], raw: Any) -> None:
    top = parts[0]
    if len(parts) == 1:
        if isinstance(raw, str):
            raw = json.loads(raw)
        if not isinstance(raw, Mapping) or not all(isinstance(v, Mapping) for v in raw.values()):
            raise ValueError("must map a name to a table of arguments")
        data[top] = {str(k): dict(v) for k, v in raw.items()}
    elif len(parts) == 2:
        if isinstance(raw, str):
            raw = json.loads(raw)
        if not isinstance(raw, Mapping):
            raise ValueError("must be a table of keyword arguments")
        data[top][parts[1]] = dict(raw)
    elif len(parts) == 3:
        data[top].setdefault(parts[1], {})[parts[2]] = _scalar(raw)
    else:
        raise ValueError(f"use '{top}.NAME.ARGUMENT'")


def _convert_calibration(key: str, raw: Any) -> Any:
    if key not in CALIBRATION_TYPES:
        raise _Unknown(unknown("calibration setting", key, sorted(CALIBRATION_TYPES)))
    return _convert(CALIBRATION_TYPES[key], raw)


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(raw, str) and raw.strip().lower() in ("false", "no", "0", "off"):
        return False
    raise ValueError("expected true or false")


def _number(raw: Any, typ: type) -> Any:
    if isinstance(raw, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(raw, str):
        raw = raw.strip()
        return float(raw) if typ is float else int(raw)
    if typ is int:
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {raw!r}")
        return raw
    if not isinstance(raw, (int, float)):
        raise ValueError(f"expected a number, got {raw!r}")
    return float(raw)


def _list(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            return json.loads(text)
        sep = ";" if ";" in text else ","
        return [t.strip() for t in text.split(sep) if t.strip()]
    return list(raw) if isinstance(raw, (list, tuple)) else [raw]


def _convert(kind: str, raw: Any) -> Any:
    if kind.endswith("?"):  # optional: None stays None (it means "unset")
        if raw is None:
            return None
        kind = kind[:-1]
    if kind == "float":
        return _number(raw, float)
    if kind == "str":
        if not isinstance(raw, str):
            raise ValueError("expected a string")
        return raw
    if kind == "bool":
        return _parse_bool(raw)
    if kind == "int":
        return _number(raw, int)
    if kind == "sparsities":
        return parse_sparsities(raw)
    if kind == "scopes":
        return parse_scopes(raw if isinstance(raw, (str, list, tuple)) else [raw])
    if kind == "pairs":
        if isinstance(raw, str):
            text = raw.strip()
            raw = (json.loads(text) if text.startswith("[")
                   else [p.split(":") for p in text.split(";") if p.strip()])
        if not isinstance(raw, (list, tuple)):
            raise ValueError("expected a list of [reference, target] scope pairs")
        return [list(p) if isinstance(p, (list, tuple)) else p for p in raw]
    if kind == "specs":
        return suite_specs(raw)
    if kind == "list[int]":
        return [_number(v, int) for v in _list(raw)]
    if kind == "list[str]":
        values = _list(raw)
        for v in values:
            if not isinstance(v, str):
                raise ValueError(f"expected strings, got {v!r}")
        return [v.strip() for v in values]
    raise AssertionError(kind)


def _scalar(raw: Any) -> Any:
    """A kwargs value typed on a command line: number, bool or string."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        return text
