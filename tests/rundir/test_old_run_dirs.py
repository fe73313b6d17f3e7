"""A run directory written by lenskit before the typed manifest (the fixture, written by
main at 0607e46 on today's shipped organism) still resumes, reports and merges."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lenskit.cli import main
from lenskit.models import load_model, model_info
from lenskit.rundir import ConfigMismatchError, RunStore, merge_runs

FIXTURE = Path(__file__).parent / "fixtures" / "v2-organism"
# The command that wrote the fixture (tests/rundir/fixtures/README.md), minus --out.
ARGS = ["sweep", "--model", "organism", "--methods", "magnitude", "--sparsities", "0.3",
        "0.6", "--scopes", "attn", "--seeds", "0", "--no-figures", "--threads", "1",
        "--set", "matched=false", "--tasks", "open_book", "overriding", "fn_linear_d1_n16_k2",
        "--set", "calibration.n_samples=4", "--set", "calibration.seq_len=32"]


@pytest.fixture
def old(tmp_path) -> Path:
    run = tmp_path / "old"
    shutil.copytree(FIXTURE, run)
    return run


def _cell_at(run: Path, sparsity: float) -> str:
    """The id of the run's magnitude cell at ``sparsity`` (read from its rows)."""
    rows = RunStore(run).results()
    (cell,) = set(rows.loc[rows["target_sparsity"] == sparsity, "cell_id"])
    return str(cell)


def _organism_unchanged() -> bool:
    stored = json.loads((FIXTURE / "manifest.json").read_text())["models"]["organism"]
    return model_info(load_model("organism")).fingerprint == stored["fingerprint"]


def test_it_resumes_reusing_every_cell(old, capsys):
    before = RunStore(old).results()
    assert main([*ARGS, "--out", str(old)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "3 of 3 cells already done" in out and "0 cells run, 3 reused" in out
    store = RunStore(old)
    pd.testing.assert_frame_equal(store.results(), before, check_exact=True)
    m = store.run_manifest()
    assert len(m.sessions) == 2 and m.status == "complete"
    assert "tables/thresholds.parquet" in m.files  # recorded from now on


def test_it_grows_and_recomputes_a_lost_cell(old, capsys):
    if not _organism_unchanged():
        with pytest.raises(ConfigMismatchError, match="has changed since"):
            main(["--debug", *ARGS, "--sparsities", "0.9", "--out", str(old)])
        pytest.skip("the shipped organism was retrained after the fixture was written: "
                    "regenerate it (tests/rundir/fixtures/README.md)")
    lost = _cell_at(old, 0.3)
    want = RunStore(old).read_cell(lost)
    (old / "cells" / f"{lost}.parquet").unlink()  # a cell lost
    assert main([*ARGS[:6], "0.3", "0.6", "0.9", *ARGS[8:], "--out", str(old)]) == 0
    store = RunStore(old)
    assert len(store.done_ids()) == 4
    got = store.read_cell(lost)
    # columns added since the fixture was written (e.g. each task's chance level) are new;
    # every column the old run wrote must come back with the same values
    assert set(want.columns) <= set(got.columns)
    # to float rounding: evaluation batches prompts differently since that lenskit, which
    # moves log-probabilities in their last digits (predictions and accuracies are equal)
    pd.testing.assert_frame_equal(got[list(want.columns)], want, check_exact=False, rtol=1e-5,
                                  atol=1e-6)


@pytest.mark.parametrize("command", [["thresholds"], ["report"],
                                     ["figures", "--formats", "svg"], ["doctor"]])
def test_it_reports(old, command, capsys):
    assert main([command[0], str(old), *command[1:]]) == 0, capsys.readouterr().err


def test_it_merges(old, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(FIXTURE, other)
    (other / "cells" / f"{_cell_at(other, 0.3)}.parquet").unlink()
    merged = merge_runs([old, other], tmp_path / "merged")
    assert merged.done_ids() == RunStore(old).done_ids()
    pd.testing.assert_frame_equal(merged.results(), RunStore(old).results(),
                                  check_exact=True)
    assert main(["thresholds", str(tmp_path / "merged")]) == 0
