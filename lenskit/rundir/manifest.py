"""The run manifest: its file names and format tag, the typed :class:`RunManifest` (with
its sessions and cell records), reading it, and the normalised JSON values and timestamps
it holds.

A manifest is built in one place per origin (:meth:`RunManifest.new` when a sweep starts a
run, :meth:`RunManifest.rebuilt` when ``lenskit doctor`` replaces a damaged one,
:meth:`RunManifest.merged` for :func:`lenskit.rundir.merge_runs`) and changed only by the
writer of its run (:class:`lenskit.rundir.store.RunWriter`); readers get copies.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from lenskit.errors import CorruptFileError, RunDirectoryError, UsageError
from lenskit.rundir.records import json_form

__all__ = ["FORMAT", "MANIFEST", "RUN_CONFIG", "CellRecord", "ConfigMismatchError",
           "RunManifest", "Session", "check_format", "normalise", "read_manifest", "utc_now"]

MANIFEST = "manifest.json"
RUN_CONFIG = "run_config.json"
#: Run directory format. 2: cell ids cover the calibration and the task suite, the manifest
#: keeps every config the run has grown through (a run accepts a larger grid), the models'
#: weight fingerprints, and each cell's identity and calibration. Manifests written since
#: also list every file of the run with its sha256 (``files``); older ones of format 2
#: read back with that list derived from their cells' hashes.
FORMAT = "lenskit-run/2"


class ConfigMismatchError(UsageError):
    """A run directory's results conflict with the config or run being added to it (another
    format, a model whose weights changed, two different results for one cell id)."""


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (the manifest's timestamps)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


#: ``obj`` as it reads back from the manifest's JSON (tuples as lists, other non-JSON
#: values as their ``str``).
normalise = json_form


def read_manifest(run_dir: Path) -> RunManifest:
    """The manifest of ``run_dir``. Raises :class:`CorruptFileError` when it is not valid
    JSON and :class:`RunDirectoryError` when it is not a lenskit manifest."""
    path = Path(run_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptFileError(
            f"{path} is damaged (not valid JSON: {err}); run `lenskit doctor {run_dir}` "
            f"to rebuild it from {RUN_CONFIG} and the cell files", path) from err
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith(
            "lenskit-run/"):
        raise RunDirectoryError(f"{path} is not a lenskit run manifest (no 'format': "
                                f"{FORMAT!r}); choose another --out", path)
    try:
        return RunManifest.from_json(data)
    except (TypeError, ValueError, AttributeError) as err:
        raise CorruptFileError(
            f"{path} is damaged (malformed entries: {err}); run `lenskit doctor {run_dir}` "
            f"to rebuild it from {RUN_CONFIG} and the cell files", path) from err


def check_format(manifest: RunManifest, run_dir: Path, done: set[str]) -> None:
    """Raise :class:`ConfigMismatchError` when a manifest is not of :data:`FORMAT` (a run
    directory made by an earlier lenskit, whose cell ids do not cover calibration and tasks,
    so its cells cannot be reused or grown)."""
    fmt = manifest.format
    if fmt != FORMAT:
        raise ConfigMismatchError(
            f"run directory {str(run_dir)!r} was made by an earlier lenskit (format {fmt!r}, "
            f"{len(done)} cells done; this lenskit writes {FORMAT!r}, whose cell ids also "
            f"cover the calibration and the task suite). Its cells cannot be resumed or "
            f"grown: run the study again into a new directory, or pass --force to delete "
            f"its results and start again here. Its results stay readable "
            f"(`lenskit thresholds`, RunStore(run_dir).results())")

# ---- the typed manifest -------------------------------------------------------------------


@dataclass
class Session:
    """One process's writing session of a run (a sweep, or a source run's session in a
    merged run): when, where, which versions, how it ended, and what it recorded about
    itself (``extra``: the executor, the source run of a merged session...)."""

    start: str
    end: str | None = None
    status: str = "running"
    pid: int | None = None
    host: str | None = None
    git: dict[str, Any] | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _FIELDS: ClassVar[tuple[str, ...]] = ("start", "end", "status", "pid", "host", "git",
                                          "versions")

    def to_json(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in self._FIELDS}, **self.extra}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Session:
        return cls(**{k: d.get(k) for k in cls._FIELDS if k in d},
                   extra={k: v for k, v in d.items() if k not in cls._FIELDS})


@dataclass
class CellRecord:
    """A finished cell: its label, wall time (s), row counts, finishing time and session,
    the sha256 of its result (and instances) file, its identity and calibration."""

    label: str | None = None
    seconds: float | None = None
    rows: int | None = None
    instances: int | None = None
    finished: str | None = None
    session: int | None = None
    sha256: str | None = None
    instances_sha256: str | None = None
    cell: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CellRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class RunManifest:
    """The manifest of a run directory, typed.

    Built in one place per origin: :meth:`new` (a sweep starts a run), :meth:`rebuilt`
    (``lenskit doctor`` replaces a damaged one), :meth:`merged` (:func:`merge_runs`); read
    back with :meth:`from_json` (any ``lenskit-run/`` format, older ones included) and
    written with :meth:`to_json`. Only a run's writer (:class:`RunWriter`) changes one,
    through its ``record_*`` methods.

    ``files`` maps every file lenskit wrote into the run (path relative to the run
    directory, "/"-separated) to the sha256 of its bytes: ``--force`` deletes exactly
    these, and only while their content is unchanged. Keys this lenskit does not know are
    kept in ``extra`` and written back.
    """

    format: str
    config: dict[str, Any]
    name: str | None = None
    configs: list[dict[str, Any]] = field(default_factory=list)
    created: str | None = None
    finished: str | None = None
    status: str = "running"
    seeds: list[Any] | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] | None = None
    host: dict[str, Any] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, Any] = field(default_factory=dict)
    cells: dict[str, CellRecord] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    merged_from: list[str] | None = None
    rebuilt_at: str | None = None  # JSON key "rebuilt"
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- one constructor per origin -------------------------------------------------

    @classmethod
    def new(cls, config: Mapping[str, Any], history: Mapping[str, Any],
            env: Mapping[str, Any]) -> RunManifest:
        """The manifest of a run a sweep starts: ``config`` (normalised), ``history`` (the
        config without the keys that do not change results) and ``env``
        (:func:`environment_info`)."""
        config = normalise(dict(config))
        return cls(format=FORMAT, name=config.get("name"), config=config,
                   configs=[normalise(dict(history))], created=utc_now(),
                   seeds=config.get("seeds"), **_env(env))

    @classmethod
    def rebuilt(cls, config: Mapping[str, Any], env: Mapping[str, Any]) -> RunManifest:
        """A manifest rebuilt by ``lenskit doctor`` from ``run_config.json`` (the cells are
        recorded afterwards, from their files)."""
        config = normalise(dict(config))
        now = utc_now()
        return cls(format=FORMAT, name=config.get("name"), config=config, configs=[],
                   created=now, status="interrupted", seeds=config.get("seeds"),
                   rebuilt_at=now, **_env(env))

    @classmethod
    def merged(cls, runs: Sequence[tuple[str, RunManifest]], cells: Iterable[str],
               files: Mapping[str, str]) -> RunManifest:
        """The manifest of a run merged from ``runs`` ((directory, manifest) pairs, the
        first run's entry winning for shared cells), holding ``cells`` (ids) and the
        copied ``files``. Model records must already agree (see :func:`merge_runs`)."""
        manifests = [m for _, m in runs]
        configs: list[dict[str, Any]] = []
        for m in manifests:
            for c in m.configs or [m.config]:
                if c not in configs:
                    configs.append(c)
        keep = set(cells)
        entries: dict[str, CellRecord] = {}
        for m in reversed(manifests):
            entries.update({k: v for k, v in m.cells.items() if k in keep})
        models: dict[str, dict[str, Any]] = {}
        devices: dict[str, Any] = {}
        for m in reversed(manifests):
            models.update(m.models)
            devices.update(m.devices)
        now = utc_now()
        first = manifests[0]
        return cls(
            format=FORMAT, name=" + ".join(str(m.name) for m in manifests),
            config=first.config, configs=configs, created=now, finished=now,
            status="complete",
            seeds=sorted({s for m in manifests for s in (m.seeds or [])}),
            versions=first.versions, git=first.git, host=first.host,
            sessions=[Session.from_json({**s.to_json(), "run": str(d)})
                      for d, m in runs for s in m.sessions],
            models=models, devices=devices, cells=entries, files=dict(files),
            merged_from=[str(d) for d, _ in runs])

    # ---- sessions -------------------------------------------------------------------

    def begin_session(self, config: Mapping[str, Any], history: Mapping[str, Any],
                      env: Mapping[str, Any]) -> int:
        """Start a writing session under ``config`` (its JSON form) in environment ``env``
        (:func:`environment_info`): the run's config becomes ``config``, ``history`` (the
        settings that change results) joins ``configs`` when the run has not seen it, the
        run's environment becomes the session's (the latest session wrote the newest
        cells) and its status "running". Returns the session's index."""
        env = _env(env)
        self.versions, self.git, self.host = env["versions"], env["git"], env["host"]
        self.config = normalise(dict(config))
        history = normalise(dict(history))
        if history not in self.configs:
            self.configs.append(history)  # the run grew (or changed) its grid
        self.status, self.finished = "running", None
        self.sessions.append(Session(start=utc_now(), pid=os.getpid(),
                                     host=self.host.get("hostname"), git=env["git"],
                                     versions=dict(self.versions)))
        return len(self.sessions) - 1

    # ---- JSON -----------------------------------------------------------------------

    _PLAIN: ClassVar[tuple[str, ...]] = (
        "format", "name", "config", "configs", "created", "finished", "status", "seeds",
        "versions", "git", "host", "models", "devices", "files", "merged_from", "rebuilt")
    #: JSON keys whose attribute has another name (``rebuilt`` is the constructor).
    _ATTR: ClassVar[dict[str, str]] = {"rebuilt": "rebuilt_at"}

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json`` (a fresh, JSON-able dict)."""
        out: dict[str, Any] = {}
        for k in self._PLAIN:
            v = getattr(self, self._ATTR.get(k, k))
            if v is not None or k not in ("merged_from", "rebuilt"):
                out[k] = v
        out["sessions"] = [s.to_json() for s in self.sessions]
        out["cells"] = {k: c.to_json() for k, c in self.cells.items()}
        out.update(self.extra)
        return normalise(out)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunManifest:
        """A manifest from its JSON form, of this format or an older ``lenskit-run/`` one
        (without a ``files`` record: it is derived from the cells' hashes)."""
        known = set(cls._PLAIN) | {"sessions", "cells"}
        plain = {cls._ATTR.get(k, k): data[k] for k in cls._PLAIN if data.get(k) is not None}
        plain.setdefault("format", "")
        plain.setdefault("config", {})
        m = cls(**plain,
                sessions=[Session.from_json(s) for s in data.get("sessions") or []],
                cells={k: CellRecord.from_json(v or {})
                       for k, v in (data.get("cells") or {}).items()},
                extra={k: v for k, v in data.items() if k not in known})
        if "files" not in data:  # written before files were recorded
            for cid, c in m.cells.items():
                if c.sha256:
                    m.files[f"cells/{cid}.parquet"] = c.sha256
                if c.instances_sha256:
                    m.files[f"instances/{cid}.parquet"] = c.instances_sha256
        return m

    def __repr__(self) -> str:
        # the dataclass default prints every config and cell record
        origin = ("merged" if self.merged_from else "rebuilt" if self.rebuilt_at else "new")
        return (f"RunManifest({self.name!r}, {self.format}, {self.status}, {origin}: "
                f"{len(self.cells)} cells, {len(self.sessions)} sessions, "
                f"{len(self.files)} files, models {sorted(self.models)})")

    def copy(self) -> RunManifest:
        """An independent copy (readers get copies: they cannot change a writer's)."""
        return RunManifest.from_json(self.to_json())


def _env(env: Mapping[str, Any]) -> dict[str, Any]:
    return {"versions": normalise(env.get("versions") or {}),
            "git": normalise(env.get("git")), "host": normalise(env.get("host") or {})}
