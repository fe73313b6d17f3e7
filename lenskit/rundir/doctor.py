"""``lenskit doctor RUN_DIR``: check a run directory and repair what can be repaired.

Repairs (each reported in one line): a damaged or missing manifest is moved to
``quarantine/`` and rebuilt from ``run_config.json`` and the cell files; cell or instances
files whose content no longer matches their recorded sha256 (or that do not parse) are
quarantined, so that the next resume computes those cells again; leftover temporary files
of killed writers are deleted; a manifest left "running" by a process that died is marked
"interrupted"; manifest entries of cells whose files are gone are dropped. It never deletes
a result: corrupt files are moved aside, not removed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
from pathlib import Path

from lenskit.errors import CorruptFileError, RunDirectoryError
from lenskit.rundir.environment import environment_info
from lenskit.rundir.integrity import quarantine
from lenskit.rundir.manifest import FORMAT, MANIFEST, RUN_CONFIG
from lenskit.rundir.store import RunStore

__all__ = ["doctor"]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _rebuilt_manifest(run: Path) -> dict:
    try:
        saved = json.loads((run / RUN_CONFIG).read_text())
        config = saved["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CorruptFileError(
            f"{run / MANIFEST} is damaged and {run / RUN_CONFIG} cannot be read "
            f"({type(err).__name__}), so the run's config is lost; start the sweep again in "
            "a new directory (its cell files can still be read with lenskit.rundir.RunStore)",
            run / MANIFEST) from err
    return {"format": FORMAT, "name": config.get("name"), "config": config,
            "created": _now(), "finished": None, "status": "interrupted",
            "seeds": config.get("seeds"), **environment_info(), "sessions": [], "cells": {},
            "rebuilt": _now()}


def doctor(run_dir: str | Path) -> list[str]:
    """Check and repair ``run_dir``; return one line per repair (empty: it was healthy).

    Raises :class:`RunDirectoryError` when ``run_dir`` is not a lenskit run directory,
    :class:`lenskit.errors.RunLockedError` while a sweep holds it, and
    :class:`CorruptFileError` when its config is lost (manifest and run_config.json both
    unreadable)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunDirectoryError(f"{str(run)!r} is not a directory", run)
    if not (run / MANIFEST).exists() and not (run / RUN_CONFIG).exists():
        raise RunDirectoryError(f"{str(run)!r} is not a lenskit run directory (no {MANIFEST} "
                                f"or {RUN_CONFIG}); nothing to repair", run)
    report: list[str] = []
    store = RunStore.open_for_repair(run)
    try:
        for p in sorted(run.rglob(".*.tmp-*")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                report.append(f"deleted the temporary file {p.relative_to(run)} of a "
                              "killed writer")
        try:
            manifest = store.manifest()
        except (CorruptFileError, RunDirectoryError, FileNotFoundError):
            manifest = _rebuilt_manifest(run)
            if (run / MANIFEST).exists():
                moved = quarantine(run, run / MANIFEST)
                report.append(f"{MANIFEST} was damaged: moved to {moved.relative_to(run)}; "
                              f"rebuilt from {RUN_CONFIG} and the cell files")
            else:
                report.append(f"{MANIFEST} was missing: rebuilt from {RUN_CONFIG}")
            store.save_manifest(manifest)
        if manifest.get("status") == "running":
            # We hold the lock, so the process that wrote "running" is gone.
            manifest["status"] = "interrupted"
            for s in manifest.get("sessions", []):
                if s.get("status") == "running":
                    s.update(status="interrupted", end=s.get("end") or _now())
            report.append("the manifest said 'running' but no process holds the run: "
                          "marked 'interrupted'")
            store.save_manifest(manifest)
        report.extend(store.verify())
        done = store.done_ids()
        gone = sorted(set(manifest.get("cells", {})) - done)
        for cid in gone:
            manifest["cells"].pop(cid)
        if gone:
            report.append(f"dropped {len(gone)} manifest entr{'y' if len(gone) == 1 else 'ies'} "
                          f"of cells with no file ({', '.join(gone[:3])}"
                          f"{' ...' if len(gone) > 3 else ''})")
        store.save_manifest(manifest)
        for name in ("tables", "figures", "cells", "instances"):
            d = run / name
            if d.is_symlink():
                report.append(f"warning: {name}/ is a symlink to {d.resolve()}; lenskit will "
                              "refuse to write through it (replace it with a folder)")
    finally:
        store.release()
    return report
