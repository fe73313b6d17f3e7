"""Preparing a run directory for a writer: creating it, refusing a directory lenskit did
not write, deleting only lenskit's own files (``--force``) and the temporary files of
killed writers. The layout itself is described in :mod:`lenskit.rundir.store`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lenskit.errors import CorruptFileError, RunDirectoryError
from lenskit.rundir.lock import LOCK_NAME
from lenskit.rundir.manifest import MANIFEST, RUN_CONFIG

__all__ = ["clean_temporaries", "make_run_dir", "refuse_foreign", "wipe_own_files"]

# Everything lenskit writes into a run directory: --force removes only these.
_OWN_DIRS = {"cells": (".parquet",), "instances": (".parquet",), "tables": (".parquet", ".csv"),
             "figures": (".svg", ".png", ".pdf", ".html", ".json")}
_OWN_FILES = (MANIFEST, RUN_CONFIG, LOCK_NAME, "quarantine")


def refuse_foreign(run_dir: Path) -> None:
    """Refuse a non-empty directory without a manifest: lenskit did not write it
    (:class:`RunDirectoryError`; :class:`CorruptFileError` when only the manifest is
    missing, which ``lenskit doctor`` rebuilds)."""
    if (run_dir / MANIFEST).exists() or not run_dir.is_dir():
        return
    if (run_dir / RUN_CONFIG).exists():
        raise CorruptFileError(f"{run_dir / MANIFEST} is missing; run `lenskit doctor "
                               f"{run_dir}` to rebuild it from {RUN_CONFIG}",
                               run_dir / MANIFEST)
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in _OWN_FILES)
    if foreign:
        raise RunDirectoryError(
            f"{str(run_dir)!r} is not a lenskit run directory (no {MANIFEST}) and is "
            f"not empty: it holds {', '.join(foreign[:5])}"
            + (" ..." if len(foreign) > 5 else "")
            + "; lenskit writes only into a new or empty directory or one of its own "
              "runs (--force included): choose another --out", run_dir)


def make_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` (and its parents); :class:`RunDirectoryError` when it is a file,
    cannot be created or is not writable."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirectoryError(f"run directory {str(run_dir)!r} is a file, not a "
                                "directory; choose another --out", run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunDirectoryError(f"cannot create run directory {str(run_dir)!r}: "
                                f"{err.strerror or err}", run_dir) from err
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise RunDirectoryError(f"run directory {str(run_dir)!r} is not writable; "
                                "fix its permissions or choose another --out", run_dir)


def wipe_own_files(run_dir: Path) -> None:
    """Delete what lenskit wrote in ``run_dir`` (a directory holding its manifest)."""
    # Only what lenskit wrote (see _OWN_DIRS); a folder keeps anything else (and then
    # stays).
    for name, suffixes in _OWN_DIRS.items():
        d = run_dir / name
        if d.is_dir() and not d.is_symlink():
            for p in d.iterdir():
                if p.is_file() and not p.is_symlink() and p.suffix in suffixes:
                    p.unlink()
            with contextlib.suppress(OSError):
                d.rmdir()  # fails when something else is left: it stays
    for name in (MANIFEST, RUN_CONFIG):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()


def clean_temporaries(run_dir: Path) -> None:
    """Delete the temporary files that killed writers left (see :mod:`lenskit.rundir.files`)."""
    for d in (run_dir, run_dir / "cells", run_dir / "instances", run_dir / "tables"):
        if d.is_dir():
            for p in d.glob(".*.tmp-*"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
