"""Preparing a run directory for a writer: creating it, refusing a directory lenskit did
not write or one whose folders link outside it, deleting exactly the files lenskit recorded
(``--force``) and the temporary files of killed writers. The layout itself is described in
:mod:`lenskit.rundir.store`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from lenskit.errors import CorruptFileError, RunDirectoryError
from lenskit.rundir.files import is_temporary
from lenskit.rundir.integrity import QUARANTINE, sha256_file
from lenskit.rundir.lock import LOCK_NAME
from lenskit.rundir.manifest import MANIFEST, RUN_CONFIG

__all__ = ["OWN_DIRS", "check_links", "clean_temporaries", "is_fresh", "make_run_dir",
           "refuse_foreign", "remove_recorded"]

#: The folders lenskit writes into a run directory.
OWN_DIRS = ("cells", "instances", "tables", "figures", QUARANTINE)
#: Every name lenskit itself puts at the top of a run directory.
_OWN_NAMES = (*OWN_DIRS, MANIFEST, RUN_CONFIG, LOCK_NAME, "report.html")


def check_links(run_dir: Path) -> None:
    """Raise :class:`RunDirectoryError` when one of the names lenskit writes in ``run_dir``
    (its folders, manifest, config copy, lock, report) is a link that leads outside it:
    nothing may be written or moved out of a run through a link. Called before anything is
    written (the lock file included)."""
    root = run_dir.resolve()
    for name in _OWN_NAMES:
        p = run_dir / name
        if not p.is_symlink():
            continue
        real = p.resolve()
        if real != root and root not in real.parents:
            kind = "folder" if name in OWN_DIRS else "file"
            raise RunDirectoryError(
                f"refusing to use run directory {str(run_dir)!r}: "
                f"{name}{'/' if name in OWN_DIRS else ''} is a link to {real}, outside the "
                f"run directory, and lenskit never writes or moves files out of a run; "
                f"replace the link with a real {kind} (move its files in) or choose "
                "another --out", p)


def is_fresh(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing but lenskit's lock and temporary files: the state
    a writer killed before its first manifest was complete leaves, a fresh run."""
    return all(p.name == LOCK_NAME or is_temporary(p.name) for p in run_dir.iterdir())


def refuse_foreign(run_dir: Path) -> None:
    """Refuse a non-empty directory without a manifest: lenskit did not write it
    (:class:`RunDirectoryError`; :class:`CorruptFileError` when only the manifest is
    missing, which ``lenskit doctor`` rebuilds). A directory holding only lenskit's lock
    and temporary files is fresh (:func:`is_fresh`), not foreign."""
    if (run_dir / MANIFEST).exists() or not run_dir.is_dir() or is_fresh(run_dir):
        return
    if (run_dir / RUN_CONFIG).exists():
        raise CorruptFileError(f"{run_dir / MANIFEST} is missing; run `lenskit doctor "
                               f"{run_dir}` to rebuild it from {RUN_CONFIG}",
                               run_dir / MANIFEST)
    foreign = sorted(p.name for p in run_dir.iterdir()
                     if p.name != LOCK_NAME and not is_temporary(p.name))
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


def remove_recorded(run_dir: Path, files: Mapping[str, str]) -> list[str]:
    """Delete the files of ``files`` (path relative to ``run_dir`` -> the sha256 lenskit
    recorded when it wrote it) whose bytes are unchanged, then the manifest and config
    copy, and lenskit's folders left empty. Returns one line per file kept: one the user
    changed since lenskit wrote it, or one lenskit did not record (the user's own). The
    lock and the quarantine's evidence stay without a mention."""
    root = run_dir.resolve()
    changed: set[str] = set()
    for rel, digest in sorted(files.items()):
        p = run_dir / rel
        if p.is_symlink() or not p.is_file() or root not in p.resolve().parents:
            continue  # not what lenskit wrote (it never writes links)
        if sha256_file(p) == digest:
            p.unlink()
        else:
            changed.add(rel)
    for name in (MANIFEST, RUN_CONFIG):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    kept: list[str] = []
    for p in sorted(run_dir.iterdir()):
        if p.name in (LOCK_NAME, QUARANTINE) or is_temporary(p.name):
            continue
        inner = (sorted(q for q in p.rglob("*") if not q.is_dir())
                 if p.is_dir() and not p.is_symlink() else [p])
        for q in inner:
            rel = q.relative_to(run_dir).as_posix()
            if not is_temporary(q.name):
                kept.append(f"{rel} (changed since lenskit wrote it)" if rel in changed
                            else f"{rel} (not recorded as written by lenskit)")
        if p.name in OWN_DIRS and p.is_dir() and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.rmdir()  # fails when something is left: it stays
    return kept


def clean_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files that killed writers left (lenskit's own naming only, see
    :func:`lenskit.rundir.files.is_temporary`) in ``run_dir`` and its folders; returns
    them."""
    gone = []
    for d in (run_dir, *(run_dir / n for n in OWN_DIRS)):
        if d.is_dir() and not d.is_symlink():
            for p in sorted(d.iterdir()):
                if is_temporary(p.name) and p.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
                        gone.append(p)
    return gone
