"""Where a run was computed: versions of lenskit and its main dependencies, Python, host
and the git revision of the lenskit source tree (recorded in each run's manifest)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment_info"]

_VERSION_PACKAGES = ("lenskit", "torch", "transformers", "transformer-lens", "numpy",
                     "pandas", "pyarrow", "altair", "vl-convert-python")


def _git_info() -> dict[str, Any] | None:
    """Revision of the lenskit source tree (None when lenskit is not a git checkout)."""
    src = Path(__file__).resolve().parents[2]
    if not (src / ".git").exists():
        return None
    try:
        rev = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(src), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"revision": rev, "dirty": bool(status.strip())}


def environment_info() -> dict[str, Any]:
    """Versions of lenskit and its main dependencies, Python, host and git revision."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in _VERSION_PACKAGES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "versions": versions,
        "git": _git_info(),
        "host": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "python_executable": sys.executable,
        },
    }
