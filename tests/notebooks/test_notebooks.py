"""Every notebook runs top to bottom, headless, on the shipped organism, and its committed
outputs (kept so that the notebooks read online, charts as PNG) are current: re-executing
gives outputs of the same structure, cell by cell.

To refresh the committed outputs after editing a notebook, execute them in place:
``make notebooks``.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def structure(nb) -> list[list[tuple]]:
    """Per code cell, its outputs as (type, stream name or sorted MIME types): what must
    not change between runs (numbers and images may, within the same kinds; stderr, which
    holds only progress bars, is left out)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kinds: list[tuple] = []
        for o in cell.outputs:
            if o.output_type == "stream":
                # stderr holds progress bars, split into as many outputs as timing makes;
                # consecutive stdout outputs are one print stream
                if o.name == "stdout" and kinds[-1:] != [("stream", "stdout")]:
                    kinds.append(("stream", "stdout"))
            elif o.output_type in ("display_data", "execute_result"):
                kinds.append((o.output_type, tuple(sorted(o.data))))
            else:
                kinds.append((o.output_type, o.get("ename", "")))
        out.append(kinds)
    return out


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_cleanly(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), \
        f"{path.name} is committed unexecuted; execute it in place (see the module docstring)"
    kinds = [k for cell in structure(nb) for k in cell]
    # no tracebacks and no warnings in what readers see (stderr holds only the HF
    # weight-loading bars)
    assert not [k for k in kinds if k[0] == "error"]
    stderr = "".join(o.text for c in code for o in c.outputs
                     if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr and "warn(" not in stderr, stderr[:500]
    # charts are stored as images, readable without JavaScript
    assert any("image/png" in k[1] for k in kinds if k[0] == "display_data"
               or k[0] == "execute_result")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LENSKIT_RUN_DIR", str(tmp_path / "no-run"))  # 04 runs a small sweep
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    committed = nbformat.read(path, as_version=4)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert structure(nb) == structure(committed), \
        f"{path.name}'s committed outputs are stale; re-execute it (see the module docstring)"
