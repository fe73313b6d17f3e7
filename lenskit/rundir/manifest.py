"""The run manifest's format: file names, the format tag and its checks, reading a
manifest, and the normalised JSON values and timestamps it holds."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lenskit.errors import CorruptFileError, RunDirectoryError, UsageError

__all__ = ["FORMAT", "MANIFEST", "RUN_CONFIG", "ConfigMismatchError", "check_format",
           "normalise", "read_manifest", "utc_now"]

MANIFEST = "manifest.json"
RUN_CONFIG = "run_config.json"
#: Run directory format. 2: cell ids cover the calibration and the task suite, the manifest
#: keeps every config the run has grown through (a run accepts a larger grid), the models'
#: weight fingerprints, and each cell's identity and calibration.
FORMAT = "lenskit-run/2"


class ConfigMismatchError(UsageError):
    """A run directory's results conflict with the config or run being added to it (another
    format, a model whose weights changed, two different results for one cell id)."""


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (the manifest's timestamps)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def normalise(obj: Any) -> Any:
    """``obj`` as it reads back from the manifest's JSON (tuples as lists, other
    non-JSON values as their ``str``)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of ``run_dir``. Raises :class:`CorruptFileError` when it is not valid
    JSON and :class:`RunDirectoryError` when it is not a lenskit manifest."""
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise CorruptFileError(
            f"{path} is damaged (not valid JSON: {err}); run `lenskit doctor {run_dir}` "
            f"to rebuild it from {RUN_CONFIG} and the cell files", path) from err
    if not isinstance(manifest, dict) or not str(manifest.get("format", "")).startswith(
            "lenskit-run/"):
        raise RunDirectoryError(f"{path} is not a lenskit run manifest (no 'format': "
                                f"{FORMAT!r}); choose another --out", path)
    return manifest


def check_format(manifest: Mapping[str, Any], run_dir: Path, done: set[str]) -> None:
    """Raise :class:`ConfigMismatchError` when a manifest is not of :data:`FORMAT` (a run
    directory made by an earlier lenskit, whose cell ids do not cover calibration and tasks,
    so its cells cannot be reused or grown)."""
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise ConfigMismatchError(
            f"run directory {str(run_dir)!r} was made by an earlier lenskit (format {fmt!r}, "
            f"{len(done)} cells done; this lenskit writes {FORMAT!r}, whose cell ids also "
            f"cover the calibration and the task suite). Its cells cannot be resumed or "
            f"grown: run the study again into a new directory, or pass --force to delete "
            f"its results and start again here. Its results stay readable "
            f"(`lenskit thresholds`, RunStore(run_dir).results())")
