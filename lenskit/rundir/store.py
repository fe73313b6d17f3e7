"""The run directory: tidy results written cell by cell, atomically, so sweeps resume.

Layout of a run directory::

    RUN_DIR/
      manifest.json            config, versions, git revision, host, sessions, per-cell timings
      cells/<cell_id>.parquet  result rows of one finished cell (the schema's columns)
      instances/<cell_id>.parquet   per-instance rows of that cell (optional; bootstrap CIs)
      tables/<name>.parquet|.csv    derived tables (thresholds, summaries)
      figures/                 figures (written by lenskit.plots.make_figures)
      .lock                    OS lock of the sweep writing here (holder's pid inside)
      run_config.json          the config, written once (rebuilds a damaged manifest)
      quarantine/              files found corrupt, moved aside (their cells were recomputed)

A cell file exists if and only if the cell finished: it is written to a temporary file in
the same directory (a name starting with "."), flushed and fsynced, then renamed over its
final name with :func:`os.replace`, which is atomic on POSIX file systems. A process killed
at any moment leaves either no cell file or a complete one; readers only ever list final
names, and stale temporary files are deleted when a writer opens the run again.

The manifest is rewritten atomically the same way after each cell; it is informative
(timings may miss the cell that was being written when a process died) while the cell files
are the truth about what is done. It also records each file's sha256: a resume re-hashes
every cell and instances file and quarantines (and recomputes) one that changed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.errors import RunDirectoryError
from lenskit.results.schema import (
    INSTANCE_COLUMNS,
    empty_results,
    validate_instances,
    validate_results,
)
from lenskit.rundir.environment import environment_info
from lenskit.rundir.files import atomic_write_bytes, write_json, write_parquet
from lenskit.rundir.integrity import check_inside, read_parquet, verify_cells
from lenskit.rundir.lock import RunLock
from lenskit.rundir.manifest import (
    FORMAT,
    MANIFEST,
    RUN_CONFIG,
    ConfigMismatchError,
    check_format,
    normalise,
    read_manifest,
    utc_now,
)
from lenskit.rundir.rundir import (
    clean_temporaries,
    make_run_dir,
    refuse_foreign,
    wipe_own_files,
)

__all__ = ["RunStore", "iter_missing"]

#: Config keys that may change between sessions of one run (they do not change results).
DEFAULT_IGNORED_KEYS: tuple[str, ...] = ("out_dir", "executor", "address", "workers",
                                          "num_cpus", "num_gpus")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def _config_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a SweepConfig or a mapping, got {type(config).__name__}")
    return normalise(dict(config))


class RunStore:
    """A run directory (see the module docstring for its layout).

    ``RunStore(run_dir)`` is a reader: :meth:`results`, :meth:`instances`,
    :meth:`manifest`, :meth:`read_table`, :meth:`write_table`. A writer comes from
    :meth:`open`, which creates or resumes a run for a config and holds the run's lock
    until :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.cells_dir = self.dir / "cells"
        self.instances_dir = self.dir / "instances"
        self.tables_dir = self.dir / "tables"
        self.figures_dir = self.dir / "figures"
        self._manifest: dict[str, Any] | None = None
        self._writer = False
        self._session: int | None = None
        self._lock: RunLock | None = None
        #: What opening this run repaired (one line each: a quarantined file, ...).
        self.repaired: list[str] = []

    def __repr__(self) -> str:
        mode = "writer" if self._writer else "reader"
        return f"RunStore({str(self.dir)!r}, {mode}, {len(self.done_ids())} cells done)"

    # ---- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: str | Path, config: Any, *, force: bool = False,
             ignore_keys: Iterable[str] = DEFAULT_IGNORED_KEYS) -> RunStore:
        """Create a run for ``config`` (a SweepConfig or a JSON-able mapping) or resume it.

        A run grows: cells are identified by id (which covers everything that changes a
        result), so ``config`` may differ from the stored one (more sparsities, scopes,
        methods, tasks, another calibration): finished cells are reused by id and the
        manifest keeps every config the run has seen (``configs``; ``config`` is the latest).
        A run directory of an older format raises :class:`ConfigMismatchError` saying so.
        With ``force=True`` an existing run's files that lenskit wrote (cells, instances,
        tables, figures, manifest) are deleted first and the run starts afresh; anything else
        stays. A non-empty directory without a manifest is refused
        (:class:`RunDirectoryError`), with or without ``force``. Raises
        :class:`RunLockedError` when a live process holds the run's lock, and
        :class:`CorruptFileError` for a damaged manifest. Corrupt cell files are
        quarantined; :attr:`repaired` says which. ``ignore_keys`` are left out of the config
        history (they do not change results).
        """
        store = cls(run_dir)
        config = _config_dict(config)
        make_run_dir(store.dir)
        refuse_foreign(store.dir)  # before the lock file is created in it
        store._lock = RunLock(store.dir).acquire()
        store._writer = True
        try:
            store._start(config, force=force, ignore_keys=tuple(ignore_keys))
            store.repaired = store.verify()
        except BaseException:
            store._unlock()
            raise
        return store

    @classmethod
    def open_for_repair(cls, run_dir: str | Path) -> RunStore:
        """A writer over an existing run directory that starts no session (for
        :func:`lenskit.rundir.doctor.doctor`): it holds the lock, may rewrite the manifest
        (:meth:`save_manifest`) and :meth:`verify` the cells. Close it with
        :meth:`release`."""
        store = cls(run_dir)
        if not store.dir.is_dir():
            raise RunDirectoryError(f"{str(store.dir)!r} is not a directory", store.dir)
        store._lock = RunLock(store.dir).acquire()
        store._writer = True
        return store

    def release(self) -> None:
        """Release the lock without recording a session end (see :meth:`open_for_repair`)."""
        self._unlock()

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest (writers only; atomically)."""
        self._require_writer()
        self._manifest = manifest
        self._save_manifest()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._writer = False

    def _start(self, config: dict[str, Any], *, force: bool, ignore_keys: tuple[str, ...]
               ) -> None:
        path = self.dir / MANIFEST
        manifest = None
        if path.exists():
            manifest = read_manifest(self.dir)
            if force:
                wipe_own_files(self.dir)
                manifest = None
            else:
                check_format(manifest, self.dir, self.done_ids())
        else:
            refuse_foreign(self.dir)
        clean_temporaries(self.dir)
        env = environment_info()
        session = {"start": utc_now(), "end": None, "status": "running", "pid": os.getpid(),
                   "host": env["host"]["hostname"], "git": env["git"],
                   "versions": env["versions"]}
        history = {k: v for k, v in config.items() if k not in ignore_keys}
        if manifest is None:
            manifest = {
                "format": FORMAT,
                "name": config.get("name"),
                "config": config,
                "configs": [history],
                "created": session["start"],
                "finished": None,
                "status": "running",
                "seeds": config.get("seeds"),
                **env,
                "sessions": [],
                "models": {},
                "cells": {},
            }
        else:
            # the latest session's environment is the one that wrote the newest cells
            manifest.update(env)
            manifest["config"] = config
            if history not in manifest.setdefault("configs", []):
                manifest["configs"].append(history)  # the run grew (or changed) its grid
            manifest["status"] = "running"
            manifest["finished"] = None
        manifest["sessions"].append(session)
        self._session = len(manifest["sessions"]) - 1
        self._manifest = manifest
        self._save_manifest()
        # The latest config, apart from the manifest, so that `lenskit doctor` can rebuild a
        # damaged manifest.
        write_json(self.dir / RUN_CONFIG, {"format": FORMAT, "config": config})

    def verify(self) -> list[str]:
        """Re-hash every finished cell's files against the manifest; quarantine a cell whose
        file changed (or, with no hash recorded, does not parse) so that it is computed
        again, and record the hashes of intact unrecorded ones. Returns one line per
        repair. Writers only (opening a run calls it)."""
        self._require_writer()
        files = {}
        for cid in sorted(self.done_ids()):
            inst = self.instances_dir / f"{cid}.parquet"
            files[cid] = [("sha256", self.cell_path(cid))] + (
                [("instances_sha256", inst)] if inst.exists() else [])
        report, changed = verify_cells(self.dir, self.manifest()["cells"], files)
        if changed:
            self._save_manifest()
        return report

    def close(self, status: str = "complete") -> None:
        """End this writing session: record its end time and ``status`` ("complete",
        "interrupted", "failed"), and release the lock. Idempotent."""
        if not self._writer:
            return
        try:
            m = self.manifest()
            m["sessions"][self._session].update(end=utc_now(), status=status)
            m["status"] = status
            if status == "complete":
                m["finished"] = m["sessions"][self._session]["end"]
            self._save_manifest()
        finally:
            self._unlock()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        status = ("complete" if exc_type is None else
                  "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")
        self.close(status)

    # ---- manifest -----------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """The manifest (a dict; a writer's in-memory copy, else read from disk)."""
        if self._manifest is None:
            path = self.dir / MANIFEST
            if not path.exists():
                raise FileNotFoundError(f"no {MANIFEST} in {str(self.dir)!r}: not a run "
                                        f"directory (run `lenskit sweep --out {self.dir}`)")
            self._manifest = read_manifest(self.dir)
        return self._manifest

    def config(self) -> dict[str, Any]:
        """The stored config (a plain dict; ``SweepConfig.from_dict`` rebuilds it)."""
        return self.manifest()["config"]

    def record_session(self, **info: Any) -> None:
        """Add JSON-able facts about this writing session to the manifest (e.g. the
        executor and its cluster's resources) and save it."""
        self._require_writer()
        self.manifest()["sessions"][self._session].update(normalise(info))
        self._save_manifest()

    def _save_manifest(self) -> None:
        write_json(self.dir / MANIFEST, self._manifest)

    def _require_writer(self) -> None:
        if not self._writer:
            raise RuntimeError("this RunStore is read-only; get a writer with "
                               "RunStore.open(run_dir, config)")

    # ---- cells --------------------------------------------------------------------------

    @staticmethod
    def _check_name(name: str, what: str) -> str:
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise ValueError(f"bad {what} {name!r}: use letters, digits, '.', '_' and '-', "
                             f"not starting with '.' or '-'")
        return name

    def cell_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{self._check_name(cell_id, 'cell id')}.parquet"

    def done(self, cell_id: str) -> bool:
        """Whether the cell finished (its result file exists; it is complete by construction)."""
        return self.cell_path(cell_id).is_file()

    def done_ids(self) -> set[str]:
        """Ids of every finished cell."""
        if not self.cells_dir.is_dir():
            return set()
        return {p.stem for p in self.cells_dir.glob("*.parquet")
                if not p.name.startswith(".")}

    def record_model(self, spec: str, details: Mapping[str, Any]) -> None:
        """Record a model of the run (``details["fingerprint"]``: a hash of its weights, plus
        where it came from). Raises :class:`ConfigMismatchError` when the run already holds
        cells of ``spec`` computed with other weights (e.g. a retrained organism): their
        results cannot be mixed with new ones."""
        self._require_writer()
        models = self.manifest().setdefault("models", {})
        old = models.get(spec)
        new = normalise(dict(details))
        if old is not None and old.get("fingerprint") != new.get("fingerprint"):
            raise ConfigMismatchError(
                f"model {spec!r} has changed since run directory {str(self.dir)!r} computed "
                f"its cells (weights fingerprint {old.get('fingerprint')}, now "
                f"{new.get('fingerprint')}): its finished cells would mix two models. Use "
                f"another output directory, or pass --force to delete its results")
        if old != new:  # every cell reports its model: save only what is new
            models[spec] = new
            self._save_manifest()

    def write_cell(self, cell_id: str, rows: pd.DataFrame, *,
                   instances: pd.DataFrame | None = None, seconds: float | None = None,
                   label: str | None = None, overwrite: bool = False, cell: Any = None,
                   calibration: Mapping[str, Any] | None = None) -> Path:
        """Record a finished cell: its result rows (validated against the schema, every row
        with this ``cell_id``) and, optionally, its per-instance rows. Instances are
        written first and the result file last, so a cell counts as done only when both
        are on disk. ``seconds``, ``label``, ``cell`` (its identity,
        ``Cell.canonical()``) and ``calibration`` (``CalibrationData.to_json()``) go to the
        manifest. Raises ValueError when
        the cell is already done (unless ``overwrite``) or the rows are invalid; nothing is
        written then."""
        self._require_writer()
        path = self.cell_path(cell_id)
        if path.exists() and not overwrite:
            raise ValueError(f"cell {cell_id!r} is already done in {str(self.dir)!r}; "
                             f"a resumed sweep must skip it (check store.done(cell_id))")
        rows = _of_cell(validate_results(rows), cell_id, "rows")
        inst = None if instances is None else \
            _of_cell(validate_instances(instances), cell_id, "instances")
        inst_hash = None
        if inst is not None:
            inst_hash = write_parquet(self.instances_dir / f"{cell_id}.parquet", inst)
        cell_hash = write_parquet(path, rows)
        self.manifest()["cells"][cell_id] = {
            "label": label, "seconds": None if seconds is None else round(float(seconds), 3),
            "rows": len(rows), "instances": None if inst is None else len(inst),
            "finished": utc_now(), "session": self._session,
            "sha256": cell_hash, "instances_sha256": inst_hash,
            "cell": None if cell is None else normalise(cell.canonical()),
            "calibration": None if calibration is None else normalise(dict(calibration)),
        }
        self._save_manifest()
        return path

    def read_cell(self, cell_id: str) -> pd.DataFrame:
        """The result rows of one finished cell."""
        path = self.cell_path(cell_id)
        if not path.exists():
            raise KeyError(f"cell {cell_id!r} is not done in {str(self.dir)!r}")
        return read_parquet(path)

    def _ordered(self, ids: Iterable[str], order: Sequence[str] | None) -> list[str]:
        ids = set(ids)
        if order is None:
            return sorted(ids)
        first = [i for i in dict.fromkeys(order) if i in ids]
        return first + sorted(ids - set(first))

    def results(self, order: Sequence[str] | None = None, *, only: bool = False
                ) -> pd.DataFrame:
        """Every finished cell's rows, concatenated and validated.

        Cells come in ``order`` (e.g. ``[c.cell_id for c in config.cells()]``; cells not in
        it follow, sorted, unless ``only``) or sorted by id; rows keep their order within a
        cell.
        """
        done = self.done_ids()
        ids = self._ordered(done & set(order) if only and order is not None else done, order)
        if not ids:
            return empty_results()
        frames = [read_parquet(self.cell_path(i)) for i in ids]
        frames = [f for f in frames if len(f)] or frames[:1]
        return validate_results(pd.concat(frames, ignore_index=True))

    def instances(self, order: Sequence[str] | None = None, *, only: bool = False
                  ) -> pd.DataFrame:
        """Per-instance rows of every finished cell that has them (empty frame if none);
        ``order`` and ``only`` as in :meth:`results`."""
        done = self.done_ids()
        if only and order is not None:
            done &= set(order)
        have = set()
        if self.instances_dir.is_dir():
            have = {p.stem for p in self.instances_dir.glob("*.parquet")
                    if not p.name.startswith(".")}
        ids = self._ordered(done & have, order)
        if not ids:
            return pd.DataFrame({c: pd.Series(dtype=d) for c, d in INSTANCE_COLUMNS.items()})
        return validate_instances(pd.concat(
            [read_parquet(self.instances_dir / f"{i}.parquet") for i in ids],
            ignore_index=True))

    # ---- derived tables -----------------------------------------------------------------

    def write_table(self, name: str, df: pd.DataFrame,
                    formats: Sequence[str] = ("parquet", "csv")) -> list[Path]:
        """Write a derived table as ``tables/<name>.parquet`` and ``.csv`` (atomically).
        Allowed for readers too: ``lenskit thresholds RUN_DIR`` writes here after a run."""
        self._check_name(name, "table name")
        paths = []
        for fmt in formats:
            path = check_inside(self.dir, self.tables_dir / f"{name}.{fmt}")
            if fmt == "parquet":
                write_parquet(path, df)
                paths.append(path)
            elif fmt == "csv":
                paths.append(atomic_write_bytes(
                    path, lambda f: f.write(df.to_csv(index=False).encode())))
            else:
                raise ValueError(f"unknown table format {fmt!r}; allowed: parquet, csv")
        return paths

    def read_table(self, name: str) -> pd.DataFrame:
        """A derived table written by :meth:`write_table`."""
        path = self.tables_dir / f"{self._check_name(name, 'table name')}.parquet"
        if not path.exists():
            raise KeyError(f"no table {name!r} in {str(self.tables_dir)!r}")
        return pd.read_parquet(path)

    def timings(self) -> pd.DataFrame:
        """Per-cell wall times recorded in the manifest: cell_id, label, seconds, finished."""
        cells = self.manifest().get("cells", {})
        return pd.DataFrame(
            [{"cell_id": k, **{f: v.get(f) for f in ("label", "seconds", "finished")}}
             for k, v in cells.items()],
            columns=["cell_id", "label", "seconds", "finished"],
        )



def iter_missing(store: RunStore, cells: Iterable[Any]) -> Iterator[Any]:
    """The cells (objects with a ``cell_id``) that ``store`` has not finished, in order."""
    done = store.done_ids()
    for c in cells:
        if c.cell_id not in done:
            yield c


def _of_cell(df: pd.DataFrame, cell_id: str, what: str) -> pd.DataFrame:
    """``df`` when every row carries ``cell_id``; else ValueError naming the stray id."""
    wrong = df["cell_id"] != cell_id
    if wrong.any():
        raise ValueError(f"{what} of cell {cell_id!r} carry cell_id "
                         f"{df.loc[wrong, 'cell_id'].iloc[0]!r}")
    return df
