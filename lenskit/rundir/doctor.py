"""``lenskit doctor RUN_DIR``: check a run directory and repair what can be repaired.

It repairs every state a killed writer can leave, and damage found since (each repair
reported in one line): lenskit's temporary files are deleted; a directory holding only the
lock and temporary files (a sweep killed while creating the run) is left empty, a fresh
run; a damaged or missing manifest is moved to ``quarantine/`` and rebuilt from
``run_config.json`` and the cell files; a missing or half-written ``run_config.json`` is
written again from the manifest; cell or instances files whose content no longer matches
their recorded sha256 (or that do not parse) are quarantined, so that the next resume
computes those cells again, and intact cell files the manifest does not list yet are
recorded; instances files without their cell file are quarantined; a manifest left
"running" by a process that died is marked "interrupted"; records of cells and files that
are gone are dropped. (A merge killed before its manifest is completed by running the merge
again, which doctor says.) It never deletes a result (corrupt files are moved aside, not
removed), and it refuses a run whose folders link outside it: nothing is moved out of the
run directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from lenskit.errors import CorruptFileError, RunDirectoryError
from lenskit.rundir.environment import environment_info
from lenskit.rundir.lock import RunLock
from lenskit.rundir.manifest import MANIFEST, RUN_CONFIG, RunManifest, read_manifest
from lenskit.rundir.rundir import check_links, clean_temporaries, is_fresh
from lenskit.rundir.store import RunWriter

__all__ = ["doctor"]


def _rebuilt_manifest(run: Path) -> RunManifest:
    try:
        saved = json.loads((run / RUN_CONFIG).read_text())
        config = saved["config"]
        if not isinstance(config, dict):
            raise TypeError("config is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CorruptFileError(
            f"{run / MANIFEST} is damaged and {run / RUN_CONFIG} cannot be read "
            f"({type(err).__name__}), so the run's config is lost; start the sweep again in "
            "a new directory (its cell files can still be read with lenskit.rundir.RunStore)",
            run / MANIFEST) from err
    return RunManifest.rebuilt(config, environment_info())


def _deleted(run: Path, gone: list[Path]) -> list[str]:
    return [f"deleted the temporary file {p.relative_to(run)} of a killed writer"
            for p in gone]


def doctor(run_dir: str | Path) -> list[str]:
    """Check and repair ``run_dir``; return one line per repair (empty: it was healthy).

    Raises :class:`RunDirectoryError` when ``run_dir`` is not a lenskit run directory or
    one of its folders links outside it, :class:`lenskit.errors.RunLockedError` while a
    sweep holds it, and :class:`CorruptFileError` when its config is lost (manifest and
    run_config.json both unreadable)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise RunDirectoryError(f"{str(run)!r} is not a directory; pass a run directory "
                                "(the --out of a sweep)", run)
    check_links(run)
    if not (run / MANIFEST).exists() and not (run / RUN_CONFIG).exists():
        if not any(run.iterdir()):
            return []  # an empty directory: nothing to repair (and nothing written)
        if (run / "cells").is_dir() or (run / "instances").is_dir():
            raise RunDirectoryError(
                f"{str(run)!r} holds cell or instances files but no {MANIFEST} or "
                f"{RUN_CONFIG}: a `lenskit merge` killed before it finished? Run the same "
                "merge again (it completes into this directory); doctor has nothing to "
                "rebuild it from", run)
        if not is_fresh(run):
            raise RunDirectoryError(f"{str(run)!r} is not a lenskit run directory (no "
                                    f"{MANIFEST} or {RUN_CONFIG}); nothing to repair", run)
        with RunLock(run):
            report = _deleted(run, clean_temporaries(run))
        if report:
            report.append(f"no {MANIFEST} was ever completed (a sweep was killed while "
                          "creating the run): the directory is a fresh run again; run the "
                          "sweep to start it")
        return report
    report: list[str] = []
    with RunWriter.open_for_repair(run) as store:
        report += _deleted(run, clean_temporaries(run))
        try:
            read_manifest(run)
        except (CorruptFileError, RunDirectoryError, FileNotFoundError) as err:
            why = type(err).__name__ if not isinstance(err, RunDirectoryError) else \
                "not a lenskit manifest"
            report.append(store.replace_manifest(_rebuilt_manifest(run), why))
        report += store.mark_interrupted()
        report += store.verify()
        report += store.quarantine_orphans()
        report += store.forget_missing()
        report += store.restore_run_config()
    return report
