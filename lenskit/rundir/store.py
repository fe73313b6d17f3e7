"""The run directory: tidy results written cell by cell, atomically, so sweeps resume.

Layout of a run directory::

    RUN_DIR/
      manifest.json            config, versions, git revision, host, sessions, per-cell
                               timings, and every file lenskit wrote here with its sha256
      cells/<cell_id>.parquet  result rows of one finished cell (the schema's columns)
      instances/<cell_id>.parquet   per-instance rows of that cell (optional; bootstrap CIs)
      tables/<name>.parquet|.csv    derived tables (thresholds, summaries)
      figures/                 figures (written by lenskit.plots.make_figures)
      .lock                    OS lock of the sweep writing here (holder's pid inside)
      run_config.json          the config, written once (rebuilds a damaged manifest)
      quarantine/              files found corrupt, moved aside (their cells were recomputed)

A cell file exists if and only if the cell finished: it is written to a temporary file in
the same directory (see :mod:`lenskit.rundir.files`), flushed and fsynced, then renamed
over its final name with :func:`os.replace`, which is atomic on POSIX file systems. A
process killed at any moment leaves either no cell file or a complete one; readers only
ever list final names, and lenskit's stale temporary files are deleted when a writer opens
the run again. A directory holding only the lock and temporary files (a writer killed
while creating the run) is a fresh run.

The manifest (:class:`~lenskit.rundir.manifest.RunManifest`) is rewritten atomically the
same way after each cell; it is informative (timings may miss the cell that was being
written when a process died) while the cell files are the truth about what is done. It
records each file's sha256: a resume re-hashes every cell and instances file and
quarantines (and recomputes) one that changed; readers refuse a changed cell or table,
naming it; ``--force`` deletes exactly the recorded files whose bytes are unchanged.

Reading and writing are separate objects: :class:`RunStore` reads a run (and may add
derived tables and figures, taking the run's lock for that moment); :class:`RunWriter`,
from :meth:`RunStore.open`, holds the lock for a whole session and is the one object that
changes the run's manifest. Nothing is written or moved outside the run directory: every
path is resolved first, and a run whose folders link outside it is refused before anything
is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.errors import CorruptFileError, RunDirectoryError, UsageError
from lenskit.results.schema import (
    INSTANCE_COLUMNS,
    attach_baselines,
    empty_results,
    validate_instances,
    validate_results,
)
from lenskit.rundir.environment import environment_info
from lenskit.rundir.files import atomic_write_bytes, encode_json, write_json, write_parquet
from lenskit.rundir.integrity import (
    check_inside,
    parquet_readable,
    quarantine,
    read_parquet,
    sha256_bytes,
    sha256_file,
)
from lenskit.rundir.lock import RunLock
from lenskit.rundir.manifest import (
    MANIFEST,
    RUN_CONFIG,
    CellRecord,
    ConfigMismatchError,
    RunManifest,
    check_format,
    read_manifest,
    utc_now,
)
from lenskit.rundir.records import DEFAULT_STEADY, CellOutput, RunConfig, json_form
from lenskit.rundir.rundir import (
    check_links,
    clean_temporaries,
    make_run_dir,
    refuse_foreign,
    remove_recorded,
)

__all__ = ["RunStore", "RunWriter", "iter_missing"]

#: Config keys that may change between sessions of one run (they do not change results).
DEFAULT_IGNORED_KEYS: tuple[str, ...] = DEFAULT_STEADY
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise UsageError(f"bad {what} {name!r}: use letters, digits, '.', '_' and '-', "
                         f"not starting with '.' or '-'")
    return name


class RunStore:
    """A run directory, read (see the module docstring for its layout).

    ``RunStore(run_dir)`` reads: :meth:`results`, :meth:`instances`, :meth:`manifest`,
    :meth:`run_manifest`, :meth:`read_table`; it may also add derived tables and figures
    (:meth:`write_table`, :meth:`record_files`). A writer comes from :meth:`open`, which
    creates or resumes a run for a config and holds the run's lock until
    :meth:`RunWriter.close` (or the end of a ``with`` block).
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.cells_dir = self.dir / "cells"
        self.instances_dir = self.dir / "instances"
        self.tables_dir = self.dir / "tables"
        self.figures_dir = self.dir / "figures"
        self._m: RunManifest | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.dir)!r}, {len(self.done_ids())} cells done)"

    # ---- opening a writer ---------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: str | Path, config: Any, *, force: bool = False,
             ignore_keys: Iterable[str] = DEFAULT_IGNORED_KEYS) -> RunWriter:
        """Create or resume a run for ``config`` (a :class:`RunConfig`, a SweepConfig or a
        JSON-able mapping): see :meth:`RunWriter.open`."""
        return RunWriter.open(run_dir, config, force=force, ignore_keys=ignore_keys)

    @classmethod
    def open_for_repair(cls, run_dir: str | Path) -> RunWriter:
        """A writer that starts no session: see :meth:`RunWriter.open_for_repair`."""
        return RunWriter.open_for_repair(run_dir)

    # ---- manifest -----------------------------------------------------------------------

    def _manifest(self) -> RunManifest:
        if self._m is None:
            if not (self.dir / MANIFEST).exists():
                raise FileNotFoundError(f"no {MANIFEST} in {str(self.dir)!r}: not a run "
                                        f"directory (run `lenskit sweep --out {self.dir}`)")
            self._m = read_manifest(self.dir)
        return self._m

    def manifest(self) -> dict[str, Any]:
        """The manifest as a JSON dict (a copy: changing it changes nothing)."""
        return self._manifest().to_json()

    def run_manifest(self) -> RunManifest:
        """The manifest, typed (a copy: changing it changes nothing)."""
        return self._manifest().copy()

    def config(self) -> dict[str, Any]:
        """The stored config (a plain dict; ``SweepConfig.from_dict`` rebuilds it)."""
        return self.manifest()["config"]

    def _hashes(self) -> Mapping[str, str]:
        """Recorded sha256 of each file; none when the manifest cannot be read (the cells
        of a run whose manifest is lost stay readable, unverified)."""
        try:
            return self._manifest().files
        except (OSError, ValueError):
            return {}

    def _read_checked(self, path: Path, what_to_do: str) -> pd.DataFrame:
        """A Parquet file of the run, refused with :class:`CorruptFileError` naming it when
        its bytes differ from the sha256 recorded when lenskit wrote it."""
        want = self._hashes().get(path.relative_to(self.dir).as_posix())
        if want is not None and path.is_file() and sha256_file(path) != want:
            raise CorruptFileError(f"{path} changed since lenskit wrote it (its sha256 differs "
                                   f"from the one in {MANIFEST}); {what_to_do}", path)
        return read_parquet(path)

    # ---- cells --------------------------------------------------------------------------

    def cell_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{_check_name(cell_id, 'cell id')}.parquet"

    def done(self, cell_id: str) -> bool:
        """Whether the cell finished (its result file exists; it is complete by construction)."""
        return self.cell_path(cell_id).is_file()

    def done_ids(self) -> set[str]:
        """Ids of every finished cell."""
        if not self.cells_dir.is_dir():
            return set()
        return {p.stem for p in self.cells_dir.glob("*.parquet")
                if not p.name.startswith(".")}

    def _repair_hint(self) -> str:
        return (f"run `lenskit doctor {self.dir}`: it moves the file to quarantine/ and the "
                "next sweep computes the cell again")

    def read_cell(self, cell_id: str) -> pd.DataFrame:
        """The result rows of one finished cell (checked against its recorded sha256)."""
        path = self.cell_path(cell_id)
        if not path.exists():
            raise KeyError(f"cell {cell_id!r} is not done in {str(self.dir)!r}")
        return self._read_checked(path, self._repair_hint())

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
        cell. A cell file whose bytes changed since lenskit wrote it raises
        :class:`CorruptFileError` naming it.
        """
        done = self.done_ids()
        ids = self._ordered(done & set(order) if only and order is not None else done, order)
        if not ids:
            return empty_results()
        frames = [self._read_checked(self.cell_path(i), self._repair_hint()) for i in ids]
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
            [self._read_checked(self.instances_dir / f"{i}.parquet", self._repair_hint())
             for i in ids], ignore_index=True))

    def timings(self) -> pd.DataFrame:
        """Per-cell wall times recorded in the manifest: cell_id, label, seconds, finished."""
        cells = self._manifest().cells
        return pd.DataFrame(
            [{"cell_id": k, "label": c.label, "seconds": c.seconds, "finished": c.finished}
             for k, c in cells.items()],
            columns=["cell_id", "label", "seconds", "finished"],
        )

    # ---- derived tables and figures ----------------------------------------------------------

    def read_table(self, name: str) -> pd.DataFrame:
        """A derived table written by :meth:`write_table` (checked against its recorded
        sha256)."""
        path = self.tables_dir / f"{_check_name(name, 'table name')}.parquet"
        if not path.exists():
            raise KeyError(f"no table {name!r} in {str(self.tables_dir)!r}")
        return self._read_checked(path, f"write it again (`lenskit thresholds {self.dir}` "
                                        "rewrites the threshold tables)")

    def write_table(self, name: str, df: pd.DataFrame,
                    formats: Sequence[str] = ("parquet", "csv")) -> list[Path]:
        """Write a derived table as ``tables/<name>.parquet`` and ``.csv`` (atomically) and
        record them in the manifest. A reader takes the run's lock for that moment
        (:class:`lenskit.errors.RunLockedError` while a sweep writes the run):
        ``lenskit thresholds RUN_DIR`` writes here after a run."""
        with RunWriter.open_for_repair(self.dir) as writer:
            paths = writer.write_table(name, df, formats)
        self._m = None
        return paths

    def record_files(self, paths: Iterable[str | Path]) -> None:
        """Record files written into the run by others (figures, the report) with their
        sha256, so that ``--force`` may delete them later; paths outside the run are
        ignored. Takes the run's lock for that moment."""
        with RunWriter.open_for_repair(self.dir) as writer:
            writer.record_files(paths)
        self._m = None


class RunWriter(RunStore):
    """The one writer of a run directory: it holds the run's lock and owns its manifest,
    which changes only through its methods (``record_*``, :meth:`write_cell`,
    :meth:`write_table`, :meth:`verify`, :meth:`close` and the repairs that
    :func:`lenskit.rundir.doctor.doctor` asks for)."""

    def __init__(self, run_dir: str | Path):
        super().__init__(run_dir)
        self._session: int | None = None
        self._lock: RunLock | None = None
        self._dense_rows: dict[str, pd.DataFrame] = {}  # baselines of this session's cells
        #: What opening this run repaired (one line each: a quarantined file, ...).
        self.repaired: list[str] = []
        #: With ``force``: the files kept because lenskit did not record them or they
        #: changed since (one line each, naming the file).
        self.kept: list[str] = []

    # ---- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: str | Path, config: Any, *, force: bool = False,
             ignore_keys: Iterable[str] = DEFAULT_IGNORED_KEYS) -> RunWriter:
        """Create a run for ``config`` (a :class:`~lenskit.rundir.records.RunConfig`, or a
        SweepConfig or a JSON-able mapping, made into one with ``ignore_keys``) or resume it.

        A run grows: cells are identified by id (which covers everything that changes a
        result), so ``config`` may differ from the stored one (more sparsities, scopes,
        methods, tasks, another calibration): finished cells are reused by id and the
        manifest keeps every config the run has seen (``configs``; ``config`` is the latest).
        A run directory of an older format raises :class:`ConfigMismatchError` saying so.
        With ``force=True`` the files the manifest records as written by lenskit are
        deleted first, when their bytes are unchanged, and the run starts afresh; every
        other file stays and is named in :attr:`kept`. A non-empty directory without a
        manifest is refused (:class:`RunDirectoryError`), with or without ``force``, unless
        it holds only lenskit's lock and temporary files (a fresh run). A run whose folders
        link outside it is refused before anything is written. Raises
        :class:`RunLockedError` when a live process holds the run's lock, and
        :class:`CorruptFileError` for a damaged manifest. Corrupt cell files are
        quarantined; :attr:`repaired` says which. ``ignore_keys`` are left out of the config
        history (they do not change results).
        """
        store = cls(run_dir)
        run = RunConfig.of(config, ignore_keys)
        make_run_dir(store.dir)
        check_links(store.dir)  # before anything is written, the lock file included
        refuse_foreign(store.dir)  # before the lock file is created in it
        store._lock = RunLock(store.dir).acquire()
        try:
            store._start(run, force=force)
            store.repaired = store.verify()
        except BaseException:
            store._unlock()
            raise
        return store

    @classmethod
    def open_for_repair(cls, run_dir: str | Path) -> RunWriter:
        """A writer over an existing run directory that starts no session (for
        :func:`lenskit.rundir.doctor.doctor`, and for readers adding tables or figures): it
        holds the lock until :meth:`release` (or the end of a ``with`` block)."""
        store = cls(run_dir)
        if not store.dir.is_dir():
            raise RunDirectoryError(f"{str(store.dir)!r} is not a directory", store.dir)
        check_links(store.dir)
        store._lock = RunLock(store.dir).acquire()
        return store

    def release(self) -> None:
        """Release the lock without recording a session end (see :meth:`open_for_repair`)."""
        self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _start(self, run: RunConfig, *, force: bool) -> None:
        old = None
        if (self.dir / MANIFEST).exists():
            old = read_manifest(self.dir)
            if force:
                self.kept = remove_recorded(self.dir, old.files)
                old = None
            else:
                check_format(old, self.dir, self.done_ids())
        else:
            refuse_foreign(self.dir)
        clean_temporaries(self.dir)
        env = environment_info()
        m = RunManifest.new(run.settings, run.history, env) if old is None else old
        self._session = m.begin_session(run.settings, run.history, env)
        self._m = m
        # The latest config, apart from the manifest, so that `lenskit doctor` can rebuild a
        # damaged manifest. Its hash is recorded before it is written: a kill in between
        # leaves a manifest that a resume completes (run_config.json is written again).
        data = encode_json({"format": m.format, "config": m.config})
        m.files[RUN_CONFIG] = sha256_bytes(data)
        self._save()
        atomic_write_bytes(self._inside(self.dir / RUN_CONFIG), lambda f: f.write(data))

    def close(self, status: str = "complete") -> None:
        """End this writing session: record its end time and ``status`` ("complete",
        "interrupted", "failed"), and release the lock. Idempotent."""
        if self._lock is None:
            return
        try:
            if self._session is not None and self._m is not None:
                s = self._m.sessions[self._session]
                s.end, s.status = utc_now(), status
                self._m.status = status
                if status == "complete":
                    self._m.finished = s.end
                self._save()
        finally:
            self._unlock()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._session is None:
            self.release()
            return
        status = ("complete" if exc_type is None else
                  "interrupted" if issubclass(exc_type, KeyboardInterrupt) else "failed")
        self.close(status)

    # ---- writing ------------------------------------------------------------------------

    def _require_lock(self) -> None:
        if self._lock is None:
            raise RuntimeError("this RunStore is read-only (or closed); get a writer with "
                               "RunStore.open(run_dir, config)")

    def _inside(self, path: Path) -> Path:
        return check_inside(self.dir, path)

    def _save(self) -> None:
        write_json(self._inside(self.dir / MANIFEST), self._m.to_json())

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.dir).as_posix()

    def record_session(self, **info: Any) -> None:
        """Add JSON-able facts about this writing session to the manifest (e.g. the
        executor and its cluster's resources) and save it."""
        self._require_lock()
        self._manifest().sessions[self._session].extra.update(json_form(info))
        self._save()

    def record_model(self, spec: str, details: Mapping[str, Any]) -> None:
        """Record a model of the run (``details["fingerprint"]``: a hash of its weights, plus
        where it came from). Raises :class:`ConfigMismatchError` when the run already holds
        cells of ``spec`` computed with other weights (e.g. a retrained organism): their
        results cannot be mixed with new ones."""
        self._require_lock()
        models = self._manifest().models
        old = models.get(spec)
        new = json_form(dict(details))
        if old is not None and old.get("fingerprint") != new.get("fingerprint"):
            raise ConfigMismatchError(
                f"model {spec!r} has changed since run directory {str(self.dir)!r} computed "
                f"its cells (weights fingerprint {old.get('fingerprint')}, now "
                f"{new.get('fingerprint')}): its finished cells would mix two models. Use "
                f"another output directory, or pass --force to delete its results")
        if old != new:  # every cell reports its model: save only what is new
            models[spec] = new
            self._save()

    def record_device(self, model: str, device: Mapping[str, Any]) -> None:
        """Record where ``model`` ran (device, dtype, device map); saved with the next
        cell (no write of its own)."""
        self._require_lock()
        self._manifest().devices[model] = json_form(dict(device))

    def record_files(self, paths: Iterable[str | Path]) -> None:
        """Record files written into the run by others (figures, the report) with their
        sha256; paths outside the run are ignored."""
        self._require_lock()
        root = self.dir.resolve()
        files = self._manifest().files
        for p in map(Path, paths):
            real = p.resolve()
            if root in real.parents and real.is_file():
                files[real.relative_to(root).as_posix()] = sha256_file(real)
        self._save()

    def write_outputs(self, outputs: Iterable[CellOutput],
                      on_written: Callable[[CellOutput], None] | None = None) -> None:
        """Record each evaluated cell of ``outputs`` (:meth:`write_output`) as it comes, in
        any order: a cell that comes before its dense cell (another worker is still
        evaluating it) waits in memory until the dense cell is written. ``on_written`` is
        called after each write. Raises RuntimeError when ``outputs`` ends with cells
        still waiting for a dense cell that never came."""
        waiting: dict[str, list[CellOutput]] = {}
        for out in outputs:
            ready = [out] if out.is_dense or self.done(out.dense_id) else []
            if not ready:
                waiting.setdefault(out.dense_id, []).append(out)
            if out.is_dense:
                ready += waiting.pop(out.cell_id, [])
            for o in ready:
                self.write_output(o)
                if on_written is not None:
                    on_written(o)
        if waiting:  # whoever computed the cells lost a dense cell: a bug
            raise RuntimeError(f"cells finished without their dense baseline: "
                               f"{sorted(waiting)}")

    def write_output(self, out: CellOutput) -> Path:
        """Record one evaluated cell: its rows with their dense baselines attached (from
        its own rows for a dense cell, else from its dense cell, which must be done), where
        its model ran and which weights it was (see :meth:`record_model`), and the cell
        itself (:meth:`write_cell`)."""
        self._require_lock()
        # Other weights first: a retrained model's rows may not even match the stored dense
        # cell's tasks, and the changed model is what the user must be told about.
        if out.weights is not None:  # refuses a model whose weights changed during the run
            self.record_model(out.model, out.weights)
        if out.is_dense:
            rows = self._dense_rows[out.cell_id] = attach_baselines(out.rows, out.rows)
        else:
            if out.dense_id not in self._dense_rows:
                self._dense_rows[out.dense_id] = self.read_cell(out.dense_id)
            rows = attach_baselines(out.rows, self._dense_rows[out.dense_id])
        if out.device is not None:  # saved with the cell below
            self._manifest().devices[out.model] = out.device
        return self._write_cell(out.cell_id, rows, out.instances, overwrite=False,
                                label=out.label, seconds=out.seconds, identity=out.identity,
                                calibration=out.calibration)

    def write_cell(self, cell_id: str, rows: pd.DataFrame, *,
                   instances: pd.DataFrame | None = None, seconds: float | None = None,
                   label: str | None = None, overwrite: bool = False, cell: Any = None,
                   calibration: Mapping[str, Any] | None = None) -> Path:
        """Record a finished cell: its result rows (validated against the schema, every row
        with this ``cell_id``, baselines attached already) and, optionally, its
        per-instance rows. Instances are written first and the result file last, so a cell
        counts as done only when both are on disk. ``seconds``, ``label``, ``cell`` (its
        identity: a mapping, or an object with ``canonical()`` such as a sweep's ``Cell``)
        and ``calibration`` (``CalibrationData.to_json()``) go to the manifest. Raises
        ValueError when the cell is already done (unless ``overwrite``) or the rows are
        invalid; nothing is written then."""
        self._require_lock()
        identity = cell.canonical() if hasattr(cell, "canonical") else cell
        return self._write_cell(
            cell_id, rows, instances, overwrite=overwrite, label=label, seconds=seconds,
            identity=None if identity is None else json_form(dict(identity)),
            calibration=None if calibration is None else json_form(dict(calibration)))

    def _write_cell(self, cell_id: str, rows: pd.DataFrame, instances: pd.DataFrame | None,
                    *, overwrite: bool, label: str | None, seconds: float | None,
                    identity: dict[str, Any] | None, calibration: dict[str, Any] | None
                    ) -> Path:
        path = self._inside(self.cell_path(cell_id))
        if path.exists() and not overwrite:
            raise UsageError(f"cell {cell_id!r} is already done in {str(self.dir)!r}; "
                             f"a resumed sweep must skip it (check store.done(cell_id))")
        rows = _of_cell(validate_results(rows), cell_id, "rows")
        inst = None if instances is None else \
            _of_cell(validate_instances(instances), cell_id, "instances")
        m = self._manifest()
        inst_hash = None
        if inst is not None:
            inst_path = self._inside(self.instances_dir / f"{cell_id}.parquet")
            inst_hash = write_parquet(inst_path, inst)
            m.files[self._rel(inst_path)] = inst_hash
        cell_hash = write_parquet(path, rows)
        m.files[self._rel(path)] = cell_hash
        m.cells[cell_id] = CellRecord(
            label=label, seconds=None if seconds is None else round(float(seconds), 3),
            rows=len(rows), instances=None if inst is None else len(inst),
            finished=utc_now(), session=self._session, sha256=cell_hash,
            instances_sha256=inst_hash, cell=identity, calibration=calibration)
        self._save()
        return path

    def write_table(self, name: str, df: pd.DataFrame,
                    formats: Sequence[str] = ("parquet", "csv")) -> list[Path]:
        """Write a derived table as ``tables/<name>.parquet`` and ``.csv`` (atomically) and
        record their hashes."""
        self._require_lock()
        _check_name(name, "table name")
        bad = [f for f in formats if f not in ("parquet", "csv")]
        if bad:
            raise UsageError(f"unknown table format {bad[0]!r}; allowed: parquet, csv")
        files = self._manifest().files
        paths = []
        for fmt in formats:
            path = self._inside(self.tables_dir / f"{name}.{fmt}")
            if fmt == "parquet":
                files[self._rel(path)] = write_parquet(path, df)
            else:
                data = df.to_csv(index=False).encode()
                atomic_write_bytes(path, lambda f, data=data: f.write(data))
                files[self._rel(path)] = sha256_bytes(data)
            paths.append(path)
        self._save()
        return paths

    # ---- checks and repairs -------------------------------------------------------------

    def verify(self) -> list[str]:
        """Re-hash every finished cell's files against the manifest; quarantine a cell whose
        file changed (or, with no hash recorded, does not parse) so that it is computed
        again, and record the hashes of intact unrecorded ones (a writer killed between a
        cell file and the manifest update). Returns one line per repair."""
        self._require_lock()
        m = self._manifest()
        report: list[str] = []
        changed = False
        for cid in sorted(self.done_ids()):
            entry = m.cells.get(cid) or CellRecord()
            inst = self.instances_dir / f"{cid}.parquet"
            files = [("sha256", self.cell_path(cid))] + (
                [("instances_sha256", inst)] if inst.exists() else [])
            bad = next((p for key, p in files
                        if not (sha256_file(p) == getattr(entry, key) if getattr(entry, key)
                                else parquet_readable(p))), None)
            if bad is None:
                if any(not getattr(entry, key) for key, _ in files):
                    for key, p in files:
                        setattr(entry, key, sha256_file(p))
                    m.cells[cid] = entry
                    changed = True
                for key, p in files:
                    if m.files.get(self._rel(p)) != getattr(entry, key):
                        m.files[self._rel(p)] = getattr(entry, key)
                        changed = True
                continue
            moved = [self._quarantine(p) for _, p in files]
            m.cells.pop(cid, None)
            changed = True
            report.append(f"cell {cid}: {self._rel(bad)} is corrupt; moved to "
                          f"{', '.join(self._rel(x) for x in moved)}; "
                          "it will be computed again")
        if changed:
            self._save()
        return report

    def _quarantine(self, path: Path) -> Path:
        self._manifest().files.pop(self._rel(path), None)
        return quarantine(self.dir, path)

    def replace_manifest(self, manifest: RunManifest, why: str) -> str:
        """Replace a damaged or missing manifest with ``manifest`` (built by
        :meth:`RunManifest.rebuilt`); the damaged file goes to quarantine/. Returns the
        line that says so."""
        self._require_lock()
        path = self.dir / MANIFEST
        self._m = manifest
        if path.exists():
            moved = quarantine(self.dir, path)
            line = (f"{MANIFEST} was damaged ({why}): moved to {self._rel(moved)}; rebuilt "
                    f"from {RUN_CONFIG} and the cell files")
        else:
            line = f"{MANIFEST} was missing: rebuilt from {RUN_CONFIG} and the cell files"
        self._save()
        return line

    def mark_interrupted(self) -> list[str]:
        """A manifest left "running" by a process that died (the caller holds the lock, so
        none runs): mark it and its running sessions "interrupted"."""
        self._require_lock()
        m = self._manifest()
        if m.status != "running":
            return []
        m.status = "interrupted"
        for s in m.sessions:
            if s.status == "running":
                s.status, s.end = "interrupted", s.end or utc_now()
        self._save()
        return ["the manifest said 'running' but no process holds the run: marked "
                "'interrupted'"]

    def forget_missing(self) -> list[str]:
        """Drop the records of cells and files that are gone; returns what was dropped."""
        self._require_lock()
        m = self._manifest()
        gone = sorted(set(m.cells) - self.done_ids())
        for cid in gone:
            m.cells.pop(cid)
        lost = sorted(rel for rel in m.files if not (self.dir / rel).is_file())
        for rel in lost:
            m.files.pop(rel)
        report = []
        if gone:
            report.append(f"dropped {len(gone)} manifest entr{'y' if len(gone) == 1 else 'ies'}"
                          f" of cells with no file ({', '.join(gone[:3])}"
                          f"{' ...' if len(gone) > 3 else ''})")
        if lost:
            report.append(f"forgot {len(lost)} recorded file(s) that are gone "
                          f"({', '.join(lost[:3])}{' ...' if len(lost) > 3 else ''})")
        if gone or lost:
            self._save()
        return report

    def quarantine_orphans(self) -> list[str]:
        """Move aside instances files whose cell has no result file (a writer killed
        between the two; the cell is computed again)."""
        self._require_lock()
        if not self.instances_dir.is_dir():
            return []
        done = self.done_ids()
        report = []
        for p in sorted(self.instances_dir.glob("*.parquet")):
            if p.stem not in done and not p.name.startswith("."):
                moved = self._quarantine(p)
                report.append(f"{self._rel(p)} has no cell file (a writer was killed "
                              f"between the two): moved to {self._rel(moved)}")
        if report:
            self._save()
        return report

    def restore_run_config(self) -> list[str]:
        """Write ``run_config.json`` again from the manifest when it is missing or differs
        from what was recorded."""
        self._require_lock()
        m = self._manifest()
        path = self.dir / RUN_CONFIG
        want = m.files.get(RUN_CONFIG)
        if path.is_file() and (want is None or sha256_file(path) == want):
            return []
        data = encode_json({"format": m.format, "config": m.config})
        atomic_write_bytes(self._inside(path), lambda f: f.write(data))
        m.files[RUN_CONFIG] = sha256_bytes(data)
        self._save()
        return [f"{RUN_CONFIG} was missing or incomplete: written again from the manifest"]


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
        raise UsageError(f"{what} of cell {cell_id!r} carry cell_id "
                         f"{df.loc[wrong, 'cell_id'].iloc[0]!r}")
    return df
