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

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lenskit.results.schema import DENSE
from lenskit.rundir.files import write_json
from lenskit.rundir.manifest import FORMAT, MANIFEST, ConfigMismatchError, check_format, utc_now
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


def merge_runs(runs: Sequence[str | Path], out: str | Path) -> RunStore:
    """Merge run directories ``runs`` into a new run directory ``out`` (which must not exist
    or be empty) and return a reader of it.

    Every cell of every run is copied (result rows and instances); the manifest records the
    union of the runs' configs (``configs``), models, cell entries and sessions, and
    ``merged_from``. Raises :class:`ConfigMismatchError` when a run is of an older format,
    when two runs record different weights for one model, or when two runs hold different
    rows under one cell id (e.g. "different dense rows for cell ... in A and B"); ValueError
    when ``out`` is not empty or fewer than two runs are given. Nothing is written then.
    """
    if len(runs) < 2:
        raise ValueError(f"merge needs at least two run directories, got {len(runs)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"merge output {str(out)!r} exists and is not empty; choose a new "
                         f"directory")
    stores = [RunStore(r) for r in runs]
    manifests = []
    for st in stores:
        m = st.manifest()
        check_format(m, st.dir, st.done_ids())
        manifests.append(m)
    models: dict[str, Any] = {}
    for st, m in zip(stores, manifests, strict=True):
        for spec, details in m.get("models", {}).items():
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
    # Checks passed: write.
    out.mkdir(parents=True, exist_ok=True)
    merged = RunStore(out)
    for cid, st in owner.items():
        inst = st.instances_dir / f"{cid}.parquet"
        if inst.is_file():
            merged.instances_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(inst, merged.instances_dir / inst.name)
        merged.cells_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(st.cell_path(cid), merged.cell_path(cid))
    configs: list[Any] = []
    for m in manifests:
        for c in m.get("configs", [m.get("config")]):
            if c not in configs:
                configs.append(c)
    cells: dict[str, Any] = {}
    for m in reversed(manifests):  # the first run's entry wins for shared cells
        cells.update(m.get("cells", {}))
    manifest = {
        "format": FORMAT,
        "name": " + ".join(str(m.get("name")) for m in manifests),
        "config": manifests[0].get("config"),
        "configs": configs,
        "created": utc_now(),
        "finished": utc_now(),
        "status": "complete",
        "merged_from": [str(st.dir) for st in stores],
        "seeds": sorted({s for m in manifests for s in (m.get("seeds") or [])}),
        "sessions": [dict(s, run=str(st.dir)) for st, m in zip(stores, manifests, strict=True)
                     for s in m.get("sessions", [])],
        "models": {spec: d for spec, (_, d) in models.items()},
        "cells": {cid: e for cid, e in cells.items() if cid in owner},
    }
    write_json(out / MANIFEST, manifest)
    return RunStore(out)
