"""Atomic file writing for run directories: a file appears complete under its final name
or not at all.

A writer fills a temporary file in the same directory (a name starting with "." and
holding ".tmp-", so listings that skip hidden files never see it), flushes and fsyncs it,
then renames it over the final name with :func:`os.replace`, which is atomic on POSIX file
systems; the directory is fsynced too so that the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.rundir.integrity import sha256_bytes

__all__ = ["atomic_write_bytes", "write_json", "write_parquet"]


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

    The temporary name starts with "." and contains ".tmp-", so directory listings that
    skip hidden files never see it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
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


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (non-JSON values as their ``str``) atomically."""
    text = json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n"
    return atomic_write_bytes(path, lambda f: f.write(text.encode()))
