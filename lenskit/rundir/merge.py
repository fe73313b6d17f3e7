"""Merge run directories of the same models into one: :func:`merge_runs`.

Cells are identified by id (which covers model, method and its arguments, structure,
allocation, scope, level, calibration, task suite and seed), so two runs of one model, e.g. a
random-token run and a text-calibrated run, or two halves of a grid computed on two machines,
combine into one directory whose results hold both. A cell present in both runs must have the
same rows (identical dense rows are one cell); different rows under one id, or one model
name with two different weight fingerprints, are conflicts and raise
:class:`~lenskit.rundir.store.ConfigMismatchError` before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lenskit.errors import CorruptFileError, UsageError
from lenskit.results.schema import DENSE
from lenskit.rundir.files import atomic_write_bytes, is_temporary, write_json
from lenskit.rundir.integrity import check_inside, sha256_bytes
from lenskit.rundir.lock import RunLock
from lenskit.rundir.manifest import MANIFEST, ConfigMismatchError, RunManifest, check_format
from lenskit.rundir.rundir import check_links, clean_temporaries, is_fresh
from lenskit.rundir.store import RunStore

__all__ = ["merge_runs"]

#: Columns of a cell's rows that must agree for two copies of one cell to be the same result.
_COMPARED = ("task", "metric", "value", "n", "params_removed", "model_params")


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    key = ["task", "metric"]
    if len(a) != len(b):
        return False
    a = a[list(_COMPARED)].sort_values(key).reset_index(drop=True)
    b = b[list(_COMPARED)].sort_values(key).reset_index(drop=True)
    if not a[key].equals(b[key]):
        return False
    for col in ("value", "n", "params_removed", "model_params"):
        x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
        if not np.allclose(x, y, rtol=1e-9, atol=0.0, equal_nan=True):
            return False
    return True


def _describe(rows: pd.DataFrame) -> str:
    r = rows.iloc[0]
    what = "dense rows" if r["method"] == DENSE else f"rows of {r['method']} {r['scope']}"
    return f"{what} for model {r['model']!r} seed {int(r['seed'])}"


def _merge_can_write(out: Path) -> bool:
    """Whether ``out`` is empty, or holds only what a merge killed before writing its
    manifest leaves (the lock, temporary files, cell and instances files): running the
    merge again then completes it."""
    if is_fresh(out):
        return True
    if (out / MANIFEST).exists():
        return False
    for p in out.iterdir():
        if p.name in ("cells", "instances") and p.is_dir() and not p.is_symlink():
            if any(not (q.suffix == ".parquet" or is_temporary(q.name)) or not q.is_file()
                   for q in p.iterdir()):
                return False
        elif p.name != ".lock" and not is_temporary(p.name):
            return False
    return True


def merge_runs(runs: Sequence[str | Path], out: str | Path) -> RunStore:
    """Merge run directories ``runs`` into a new run directory ``out`` (which must not exist
    or be empty) and return a reader of it.

    Every cell of every run is copied (result rows and instances, checked against the
    hashes their runs recorded); the manifest (:meth:`RunManifest.merged`) records the
    union of the runs' configs (``configs``), models, cell entries and sessions, the copied
    files with their hashes, and ``merged_from``. Raises :class:`ConfigMismatchError` when
    a run is of an older format, when two runs record different weights for one model, or
    when two runs hold different rows under one cell id (e.g. "different dense rows for
    cell ... in A and B"); :class:`CorruptFileError` when a cell file changed since its run
    wrote it; ValueError when ``out`` is not empty or fewer than two runs are given.
    Nothing is written then. A merge killed before it wrote its manifest is completed by
    running it again into the same ``out``.
    """
    if len(runs) < 2:
        raise UsageError(f"merge needs at least two run directories, got {len(runs)}: pass "
                         "two or more")
    out = Path(out)
    if out.exists() and (not out.is_dir() or not _merge_can_write(out)):
        raise UsageError(f"merge output {str(out)!r} exists and is not empty; choose a new "
                         f"directory")
    stores = [RunStore(r) for r in runs]
    manifests: list[RunManifest] = []
    for st in stores:
        m = st.run_manifest()
        check_format(m, st.dir, st.done_ids())
        manifests.append(m)
    models: dict[str, Any] = {}
    for st, m in zip(stores, manifests, strict=True):
        for spec, details in m.models.items():
            have = models.get(spec)
            if have is not None and have[1].get("fingerprint") != details.get("fingerprint"):
                raise ConfigMismatchError(
                    f"model {spec!r} has weights fingerprint {have[1].get('fingerprint')} in "
                    f"{str(have[0])!r} but {details.get('fingerprint')} in {str(st.dir)!r}: "
                    f"runs of different models cannot be merged")
            models.setdefault(spec, (st.dir, details))
    owner: dict[str, RunStore] = {}
    for st in stores:
        for cid in sorted(st.done_ids()):
            first = owner.get(cid)
            if first is None:
                owner[cid] = st
                continue
            a, b = first.read_cell(cid), st.read_cell(cid)
            if not _same_rows(a, b):
                raise ConfigMismatchError(
                    f"different {_describe(a)} under cell id {cid!r} in {str(first.dir)!r} "
                    f"and {str(st.dir)!r}: the runs disagree about one cell (another version "
                    f"of the model or of lenskit?); merge runs whose shared cells agree")
    copies: dict[str, bytes] = {}
    for cid, st in owner.items():
        recorded = st.run_manifest().files
        for rel in (f"instances/{cid}.parquet", f"cells/{cid}.parquet"):
            src = st.dir / rel
            if not src.is_file():
                continue
            data = src.read_bytes()
            if rel in recorded and sha256_bytes(data) != recorded[rel]:
                raise CorruptFileError(
                    f"{src} changed since lenskit wrote it (its sha256 differs from the one "
                    f"in {MANIFEST}); run `lenskit doctor {st.dir}` and resume that run "
                    "before merging it", src)
            copies[rel] = data
    # Checks passed: write (instances before cells, the manifest last).
    out.mkdir(parents=True, exist_ok=True)
    check_links(out)
    with RunLock(out):
        clean_temporaries(out)
        files = {}
        for rel, data in sorted(copies.items(), key=lambda kv: not kv[0].startswith("inst")):
            atomic_write_bytes(check_inside(out, out / rel), lambda f, d=data: f.write(d))
            files[rel] = sha256_bytes(data)
        manifest = RunManifest.merged([(st.dir, m) for st, m in zip(stores, manifests,
                                                                     strict=True)],
                                      owner, files)
        write_json(check_inside(out, out / MANIFEST), manifest.to_json())
    return RunStore(out)
