"""The package layering (README "Layout") holds: import-linter's contract in pyproject.toml.

Layers, top to bottom: cli | study, organism, plots, analysis, sweep, rundir, results,
pruning | tasks, models, synthetic, names | stats | version, errors; a module may import only
the layers below its own.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from importlinter import configuration
from importlinter.application.use_cases import lint_imports, read_user_options

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def test_imports_flow_one_way(capsys):
    configuration.configure()  # what the lint-imports command does before linting
    options = read_user_options(config_filename=str(PYPROJECT))
    assert any(c["type"] == "layers" and "containers" in c for c in options.contracts_options)
    kept = lint_imports(config_filename=str(PYPROJECT), cache_dir=None, no_logo=True)
    out = capsys.readouterr().out
    assert "Analyzed" in out and "1 kept, 0 broken" in out, out
    assert kept, out


def test_an_upward_import_breaks_the_contract(tmp_path):
    # A copy of the package with one upward import (models -> plots), linted in a fresh
    # process so that the copy, not the installed lenskit, is the package it analyses.
    shutil.copytree(ROOT / "lenskit", tmp_path / "lenskit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    masks = tmp_path / "lenskit" / "models" / "masks.py"
    masks.write_text(masks.read_text() + "\nimport lenskit.plots  # noqa: E402, F401\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "lenskit.models is not allowed to import lenskit.plots" in done.stdout
    assert "lenskit.models.masks -> lenskit.plots" in done.stdout
