"""Atomic file writing for run directories: a file appears complete under its final name
or not at all.

A writer fills a temporary file in the same directory, named
``.<final name>.tmp-<pid>-<random hex>`` (hidden, so listings that skip hidden files never
see one; :func:`is_temporary` recognises that naming, so that a resume or
``lenskit doctor`` deletes lenskit's own temporaries and nothing else), flushes and fsyncs
it, then renames it over the final name with :func:`os.replace`, which is atomic on POSIX
file systems; the directory is fsynced too so that the rename itself is durable.

Test hook: ``LENSKIT_KILL_AT=KIND:N`` (KIND one of ``manifest``, ``run_config``, ``cell``,
``instances``, ``table``) makes the process kill itself (SIGKILL) when its N-th temporary
file of that kind is complete and not yet renamed: the crash-consistency tests use it to
interrupt a sweep exactly at each write point.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.rundir.integrity import sha256_bytes

__all__ = ["KILL_AT", "atomic_write_bytes", "encode_json", "is_temporary", "write_json",
           "write_parquet"]

#: The environment variable of the test hook (see the module docstring).
KILL_AT = "LENSKIT_KILL_AT"
_TEMPORARY = re.compile(r"^\..+\.tmp-\d+-[0-9A-Za-z]+$")
_written: dict[str, int] = {}


def is_temporary(name: str) -> bool:
    """Whether a file name is one of lenskit's temporary files (see the module docstring)."""
    return bool(_TEMPORARY.match(name))


def _kind(path: Path) -> str:
    if path.name in ("manifest.json", "run_config.json"):
        return path.stem
    return {"cells": "cell", "instances": "instances", "tables": "table"}.get(
        path.parent.name, "other")


def _die_here_if_asked(path: Path) -> None:
    spec = os.environ.get(KILL_AT)
    if not spec:
        return
    kind, _, n = spec.partition(":")
    if _kind(path) != kind:
        return
    _written[kind] = _written.get(kind, 0) + 1
    if _written[kind] == int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable (the directory entry), not only the file's bytes.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, writer) -> Path:
    """Write a file atomically: ``writer(fileobj)`` fills a temporary file in the same
    directory, which is flushed, fsynced and renamed over ``path``. Returns ``path``.
    Callers inside a run directory check first that ``path`` lies inside it
    (:func:`lenskit.rundir.integrity.check_inside`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        _die_here_if_asked(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def write_parquet(path: Path, df: pd.DataFrame) -> str:
    """Write ``df`` as Parquet atomically; return the sha256 of the bytes written."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    data = buf.getvalue()
    atomic_write_bytes(path, lambda f: f.write(data))
    return sha256_bytes(data)


def encode_json(obj: Any) -> bytes:
    """``obj`` as the indented JSON lenskit writes (non-JSON values as their ``str``)."""
    return (json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n").encode()


def write_json(path: Path, obj: Any) -> str:
    """Write ``obj`` as indented JSON atomically; return the sha256 of the bytes written."""
    data = encode_json(obj)
    atomic_write_bytes(path, lambda f: f.write(data))
    return sha256_bytes(data)
