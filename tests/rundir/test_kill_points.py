"""A sweep killed at each of its write points (the first manifest, a cell file, an instances
file, a manifest update) resumes, with no manual step, to the results of an uninterrupted
run, value for value; ``lenskit doctor`` repairs each of those states too (the run's
config copy and a derived table are write points as well).

The child kills itself (SIGKILL) exactly at the write point: ``LENSKIT_KILL_AT=KIND:N``
makes lenskit's atomic writer die after the N-th temporary file of that kind is complete
and before it is renamed into place (see :mod:`lenskit.rundir.files`), so the test is
deterministic and leaves the worst state a kill can: a finished temporary file, never
renamed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lenskit import RunStore
from lenskit.cli import main
from lenskit.rundir.doctor import doctor
from lenskit.rundir.integrity import sha256_file

# The smallest organism grid: the dense cell and one pruned cell, one task.
ARGS = ["sweep", "--model", "organism", "--methods", "magnitude", "--sparsities", "0.5",
        "--scopes", "attn", "--tasks", "closed_book_head", "--no-figures", "--threads", "1",
        "--set", "matched=false", "--set", "calibration.n_samples=2",
        "--set", "calibration.seq_len=16"]

# Write points of a fresh run, in order: manifest 1 (created), run_config, manifest 2
# (executor recorded), manifest 3 (model recorded), instances 1 and cell 1 (dense),
# manifest 4 (dense cell recorded), instances 2, cell 2, manifest 5, manifest 6 (executor's
# counters), table 1 (thresholds.parquet), ...
POINTS = {
    "first manifest": "manifest:1",
    "config copy": "run_config:1",
    "an instances file": "instances:1",
    "a cell": "cell:2",
    "a manifest update": "manifest:4",
    "a table": "table:1",
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "run"
    assert main([*ARGS, "--out", str(run)]) == 0
    return run


def _killed(run: Path, point: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LENSKIT_KILL_AT": point, "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "lenskit", *ARGS, "--out", str(run)],
                          env=env, capture_output=True, text=True, timeout=300)


def _assert_same_results(run: Path, ref: Path) -> None:
    got, want = RunStore(run), RunStore(ref)
    assert got.done_ids() == want.done_ids()
    pd.testing.assert_frame_equal(got.results(), want.results(), check_exact=True)
    pd.testing.assert_frame_equal(got.instances(), want.instances(), check_exact=True)
    for name in ("thresholds", "study_comparison"):
        pd.testing.assert_frame_equal(got.read_table(name), want.read_table(name),
                                      check_exact=True)


def _assert_consistent(run: Path) -> None:
    """No temporary file left; the manifest says complete and records every file it
    names with the hash of its bytes, and every finished cell."""
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]
    store = RunStore(run)
    manifest = store.run_manifest()
    assert manifest.status == "complete"
    assert set(manifest.cells) == store.done_ids()
    for rel, digest in manifest.files.items():
        assert sha256_file(run / rel) == digest, rel
    on_disk = {str(p.relative_to(run)) for d in ("cells", "instances", "tables")
               for p in (run / d).glob("*") if p.is_file()}
    assert on_disk <= set(manifest.files)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS.values()), ids=list(POINTS))
def test_a_kill_at_each_write_point_resumes_to_the_same_results(point, reference, tmp_path,
                                                                capsys):
    run = tmp_path / "run"
    proc = _killed(run, point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [p for p in run.rglob("*") if ".tmp-" in p.name], "no write was interrupted"
    # lenskit doctor repairs the state the kill left (on a copy; the original resumes as is)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    report = doctor(copy)
    assert any("temporary" in line for line in report), report
    assert not [p for p in copy.rglob("*") if ".tmp-" in p.name]
    assert doctor(copy) == []  # repaired: a second pass finds nothing
    done = RunStore(copy).done_ids()
    with RunStore.open(copy, RunStore(reference).config()) as store:  # opens clean
        assert store.repaired == [] and store.done_ids() == done
    for cid in done:  # what survived the kill is the uninterrupted run's, value for value
        pd.testing.assert_frame_equal(RunStore(copy).read_cell(cid),
                                      RunStore(reference).read_cell(cid), check_exact=True)
    # the same command again resumes, with no manual step
    assert main([*ARGS, "--out", str(run)]) == 0, capsys.readouterr().err
    _assert_same_results(run, reference)
    _assert_consistent(run)


@pytest.mark.parametrize("point", ["instances:2", "cell:2", "manifest:1"])
def test_a_merge_killed_midway_completes_when_run_again(point, tmp_path, capsys):
    from results.frames import synthetic_cell

    runs = [tmp_path / "a", tmp_path / "b"]
    for run, cells in zip(runs, ((0, 1, 2), (2, 3)), strict=True):
        with RunStore.open(run, {"name": run.name}) as store:
            for i in cells:
                cid, rows, inst = synthetic_cell(i, n_instances=5)
                store.write_cell(cid, rows, instances=inst)
    assert main(["merge", *map(str, runs), "--out", str(tmp_path / "ref")]) == 0
    out = tmp_path / "out"
    env = {**os.environ, "LENSKIT_KILL_AT": point}
    proc = subprocess.run([sys.executable, "-m", "lenskit", "merge", *map(str, runs),
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (out / "manifest.json").exists()
    with pytest.raises(OSError, match="merge again"):
        doctor(out)
    assert main(["merge", *map(str, runs), "--out", str(out)]) == 0, capsys.readouterr().err
    got, want = RunStore(out), RunStore(tmp_path / "ref")
    pd.testing.assert_frame_equal(got.results(), want.results(), check_exact=True)
    pd.testing.assert_frame_equal(got.instances(), want.instances(), check_exact=True)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert set(got.run_manifest().files) == {str(p.relative_to(out)) for d in
                                             ("cells", "instances")
                                             for p in (out / d).iterdir()}
