"""Where causal traces live in a run directory: ``RUN_DIR/traces/``.

A trace is written by ``lenskit trace ... --out RUN_DIR`` (or :func:`save_traces`) as three
files beside the sweep's own (which it never touches):

- ``traces/trace_rows.parquet``: the map rows (:func:`~lenskit.analysis.trace_rows`);
- ``traces/trace_items.parquet``: the per-prompt probabilities
  (:func:`~lenskit.analysis.trace_items`), from which rows and agreements can be recomputed;
- ``traces/trace.json``: how they were made (model, tasks, sites, corruption, noise std,
  seed, versions).

Several traces of one run (other tasks, another corruption) go to other names with
``name=``: ``traces/<name>_rows.parquet`` etc.; :func:`load_traces` reads them all. The
HTML report (``lenskit report RUN_DIR``) shows the traces when the folder exists.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import pandas as pd

from lenskit.errors import UsageError
from lenskit.version import __version__

__all__ = ["TRACES_DIR", "load_traces", "save_traces"]

#: The run directory's sub-folder of traces.
TRACES_DIR = "traces"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _versions() -> dict[str, str]:
    import torch
    import transformer_lens

    return {"lenskit": __version__, "torch": torch.__version__,
            "transformer_lens": getattr(transformer_lens, "__version__", "?"),
            "python": platform.python_version()}


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)  # a reader never sees half a file


def save_traces(run_dir: str | os.PathLike, rows: pd.DataFrame, items: pd.DataFrame, *,
                config: dict[str, Any] | None = None, name: str = "trace") -> Path:
    """Write a trace's rows, items and record to ``RUN_DIR/traces/``; returns the folder.

    ``name`` (letters, digits, ``_.-``) tells several traces of one run apart."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"trace name must be letters, digits, '_', '.', '-'; got {name!r}")
    folder = Path(run_dir) / TRACES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    items = items.copy()
    attrs = dict(items.attrs)
    items.attrs = {}
    _write(items, folder / f"{name}_items.parquet")
    _write(rows, folder / f"{name}_rows.parquet")
    record = {"name": name, **(config or {}), "attrs": attrs, "versions": _versions()}
    tmp = folder / f"{name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, folder / f"{name}.json")
    return folder


def load_traces(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """Every trace's rows of the run (``None`` when it has no ``traces/`` folder or no
    trace in it), with a ``trace`` column naming the trace."""
    folder = Path(run_dir) / TRACES_DIR
    if not folder.is_dir():
        return None
    parts = [pd.read_parquet(p).assign(trace=p.name[:-len("_rows.parquet")])
             for p in sorted(folder.glob("*_rows.parquet"))]
    return pd.concat(parts, ignore_index=True) if parts else None
