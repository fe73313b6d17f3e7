"""A plain (non-editable) install carries the shipped organisms."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_the_organism(tmp_path):
    # Build from a copy: the build must not leave build/ or egg-info in the checkout.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("lenskit", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(src)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("lenskit-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LENSKIT_DATA")}
    env["PYTHONPATH"] = str(site)
    code = ("import lenskit, lenskit.models as m; p = m.organism_path('organism'); "
            "d = m.organism_path('organism-d64'); "
            "print(lenskit.__file__); print(p); print((p / 'model.safetensors').is_file(), "
            "(d / 'model.safetensors').is_file()); print(' '.join(m.shipped_organisms()))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=tmp_path, env=env).stdout.split("\n")
    assert out[0].startswith(str(site))  # the installed copy, not the checkout
    assert Path(out[1]).is_relative_to(site)
    assert out[2] == "True True"
    # every member of the checkout's family, narrowest first, as the checkout lists them
    from lenskit.models import shipped_organisms

    assert out[3].split() == list(shipped_organisms(ROOT / "data"))
