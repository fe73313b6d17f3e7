"""Integrity of a run directory's files: content hashes, read checks and quarantine.

Every cell file (and instances file) is hashed (sha256 of its bytes) when written; the
hash goes into the manifest. A resume re-hashes the files: one whose hash differs, or that
has no recorded hash and does not parse, is moved aside into ``RUN_DIR/quarantine/`` (never
deleted: it is evidence) and its cell is computed again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.errors import CorruptFileError, RunDirectoryError

__all__ = ["QUARANTINE", "check_inside", "parquet_readable", "quarantine", "read_parquet",
           "sha256_bytes", "sha256_file", "verify_cells"]

QUARANTINE = "quarantine"


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parquet_readable(path: str | Path) -> bool:
    """Whether a Parquet file parses completely (footer, schema and every row group)."""
    import pyarrow.parquet as pq

    try:
        pq.read_table(path)
    except Exception:  # pyarrow raises several types (ArrowInvalid, OSError...) for bad files
        return False
    return True


def quarantine(run_dir: str | Path, path: str | Path) -> Path:
    """Move ``path`` (inside ``run_dir``) to ``run_dir/quarantine/`` under a name that keeps
    its folder and a UTC timestamp (``cells__<id>.parquet.<time>``); returns the new path."""
    run_dir, path = Path(run_dir), Path(path)
    dest_dir = run_dir / QUARANTINE
    dest_dir.mkdir(exist_ok=True)
    rel = path.relative_to(run_dir)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    dest = dest_dir / f"{'__'.join(rel.parts)}.{stamp}"
    os.replace(path, dest)
    return dest


def read_parquet(path: str | Path) -> pd.DataFrame:
    """A Parquet file of a run directory (``RUN_DIR/<folder>/<name>.parquet``); a damaged
    one raises :class:`CorruptFileError` naming it and the command that repairs the run."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        if not Path(path).exists():
            raise
        run = Path(path).parent.parent
        raise CorruptFileError(f"{path} is damaged ({type(err).__name__}: {err}); "
                               f"repair the run with `lenskit doctor {run}`", path) from err


def check_inside(run_dir: str | Path, path: str | Path) -> Path:
    """``path`` if, with symlinks resolved, it lies inside ``run_dir``; else raise
    :class:`RunDirectoryError` (nothing is ever written outside a run through a link)."""
    root, path = Path(run_dir).resolve(), Path(path)
    real = path.resolve()
    if real != root and root not in real.parents:
        raise RunDirectoryError(f"refusing to write {path}: it resolves to {real}, outside the "
                                f"run directory {root} (a symlink?)", path)
    return path


def verify_cells(run_dir: str | Path, entries: dict[str, dict[str, Any]],
                 files: dict[str, Sequence[tuple[str, Path]]]) -> tuple[list[str], bool]:
    """Check each cell's files (``files``: cell id -> [(manifest key, path)]) against the
    hashes in ``entries`` (the manifest's "cells", updated in place).

    A file whose hash differs, or that has no recorded hash and does not parse, gets its
    cell's files quarantined and its entry dropped (so the cell is computed again); intact
    files without a recorded hash (a writer killed before the manifest recorded them) get
    it recorded. Returns one line per quarantined cell and whether ``entries`` changed.
    """
    run_dir = Path(run_dir)
    report: list[str] = []
    changed = False
    for cid, cell_files in files.items():
        entry = entries.get(cid) or {}
        bad = next((p for key, p in cell_files
                    if not (sha256_file(p) == entry[key] if entry.get(key)
                            else parquet_readable(p))), None)
        if bad is None:
            if any(not entry.get(k) for k, _ in cell_files):
                entries[cid] = {**entry, **{k: sha256_file(p) for k, p in cell_files}}
                changed = True
            continue
        moved = [quarantine(run_dir, p) for _, p in cell_files]
        entries.pop(cid, None)
        changed = True
        report.append(f"cell {cid}: {bad.relative_to(run_dir)} is corrupt; moved to "
                      f"{', '.join(str(m.relative_to(run_dir)) for m in moved)}; "
                      "it will be computed again")
    return report, changed
