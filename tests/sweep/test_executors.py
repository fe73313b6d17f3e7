"""The ray executor on a real local Ray cluster (2 CPUs): the same rows as the local
executor, a killed worker's unit re-run, a killed driver resumed; bad settings rejected."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from lenskit.rundir.store import RunStore
from lenskit.sweep.config import ConfigError, load_config
from lenskit.sweep.executors import LocalExecutor, RayExecutor, make_executor, plan_units
from lenskit.sweep.runner import run_sweep

ray = pytest.importorskip("ray")
# One Ray cluster for the module: under `pytest -n 2 --dist loadgroup` its tests share a process.
pytestmark = pytest.mark.xdist_group("ray")

# 6 cells in 4 work units of two models: the organism dense, magnitude on attn (2 levels),
# magnitude on mlp (2 levels), and its narrowest sibling organism-d64 dense.
GRID = {"models": "organism", "dense_models": "organism-d64", "methods": "magnitude",
        "sparsities": "0.3,0.7",
        "scopes": "attn;mlp", "tasks": "closed_book_head", "matched": "false",
        "calibration.n_samples": "4", "calibration.seq_len": "32"}
# Half a logical CPU per worker: the module's warm workers (2) and those of the driver run
# as a subprocess (2) fit the 2-CPU cluster together; each worker still runs 1 torch thread.
RAY = {"executor": "ray", "workers": "2", "num_cpus": "0.5"}
N_CELLS = 6
KEYS = ["cell_id", "task", "metric"]


def config(out: Path, **extra):
    return load_config(None, {**GRID, "out_dir": str(out), **extra})


def quiet(_: str) -> None:
    pass


def sort_rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(KEYS).reset_index(drop=True)


def wait_for_cells(run_dir: Path, n: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list((run_dir / "cells").glob("*.parquet"))) >= n:
            return
        time.sleep(0.02)
    raise TimeoutError(f"{n} cells not written in {run_dir} within {timeout} s")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("local") / "run"
    return run_sweep(config(out), progress=False, echo=quiet).results


@pytest.fixture(scope="module")
def warm(cluster, tmp_path_factory):
    """One executor for the module: its workers keep the organism loaded between sweeps."""
    ex = make_executor(config(tmp_path_factory.mktemp("unused"), **RAY))
    assert isinstance(ex, RayExecutor)
    yield ex
    ex.close()


def test_ray_rows_equal_local_rows(warm, local_rows, tmp_path):
    loads = warm.model_loads()
    out = run_sweep(config(tmp_path / "ray", **RAY), executor=warm, progress=False, echo=quiet)
    assert out.cells_run == N_CELLS
    # a model loads once per worker holding it (2 workers, 2 models, one of them 1 cell)
    assert warm.model_loads() - loads <= 3
    got = out.results
    assert not got.duplicated(KEYS).any()
    # Exactly equal: the same units, the same computation, one thread everywhere, and every
    # baseline taken from the one dense cell the driver stored.
    pd.testing.assert_frame_equal(sort_rows(got), sort_rows(local_rows), check_exact=True)
    session = json.loads((tmp_path / "ray" / "manifest.json").read_text())["sessions"][-1]
    info = session["executor"]
    assert info["executor"] == "ray" and info["workers"] == 2
    assert info["cluster_resources"]["CPU"] == 2.0
    # Resuming the finished run with the local executor reuses every cell.
    again = run_sweep(config(tmp_path / "ray"), progress=False, echo=quiet)
    assert again.cells_run == 0 and again.cells_skipped == N_CELLS


def test_killed_worker_unit_is_rerun(warm, local_rows, tmp_path):
    run_dir = tmp_path / "killed-worker"
    killed = []

    def kill_a_busy_worker():
        wait_for_cells(run_dir, 1)
        while not killed:
            busy = [(a, u) for a, u in warm.busy() if not u.cells[0].is_dense]
            if busy:
                ray.kill(busy[0][0], no_restart=True)
                killed.append(busy[0][1])
            time.sleep(0.01)

    requeued = warm.requeued
    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    out = run_sweep(config(run_dir, **RAY), executor=warm, progress=False, echo=quiet)
    killer.join(timeout=10)
    assert killed, "no worker was busy with a pruner group after the first cell"
    assert warm.requeued == requeued + 1
    session = json.loads((run_dir / "manifest.json").read_text())["sessions"][-1]
    assert session["executor"]["units_requeued"] == warm.requeued
    assert out.cells_run == N_CELLS
    assert not out.results.duplicated(KEYS).any()
    pd.testing.assert_frame_equal(sort_rows(out.results), sort_rows(local_rows),
                                  check_exact=True)


def test_killed_driver_resumes(cluster, warm, local_rows, tmp_path):
    run_dir = tmp_path / "killed-driver"
    args = [sys.executable, "-m", "lenskit", "sweep", "--model", "organism",
            "--methods", "magnitude", "--sparsities", "0.3", "0.7", "--scopes", "attn", "mlp",
            "--tasks", "closed_book_head", "--out", str(run_dir), "--no-figures",
            "--threads", "1",
            "--executor", "ray", "--address", cluster, "--workers", "1",
            "--set", "num_cpus=0.5", "--set", "matched=false",
            "--set", "dense_models=organism-d64",
            "--set", "calibration.n_samples=4", "--set", "calibration.seq_len=32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_cells(run_dir, 1)
    finally:
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert alive, proc.stderr.read().decode()[-2000:]
    done_before = len(RunStore(run_dir).done_ids())
    assert 1 <= done_before < N_CELLS
    out = run_sweep(config(run_dir, **RAY), executor=warm, progress=False, echo=quiet)
    assert out.cells_skipped == done_before and out.cells_run == N_CELLS - done_before
    assert not out.results.duplicated(KEYS).any()
    pd.testing.assert_frame_equal(sort_rows(out.results), sort_rows(local_rows),
                                  check_exact=True)
    sessions = json.loads((run_dir / "manifest.json").read_text())["sessions"]
    assert [s["status"] for s in sessions] == ["running", "complete"]


def test_an_error_in_a_worker_reaches_the_driver_as_itself(warm, tmp_path):
    cfg = config(tmp_path / "bad-task", tasks="no_such_task", **RAY)
    with pytest.raises(ConfigError, match="no_such_task"):
        run_sweep(cfg, executor=warm, progress=False, echo=quiet)
    assert not list((tmp_path / "bad-task" / "cells").glob("*.parquet"))


def test_units_are_pruner_groups(tmp_path):
    cfg = config(tmp_path / "r")
    cells = cfg.cells()
    units = plan_units(cfg, cells)
    assert [len(u.cells) for u in units] == [1, 2, 2, 1]
    assert [u.model for u in units] == ["organism"] * 3 + ["organism-d64"]
    assert [c for u in units for c in u.cells] == cells
    assert {(c.scope, c.method) for c in units[1].cells} == {("attn", "magnitude")}
    assert isinstance(make_executor(config(tmp_path / "r")), LocalExecutor)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"executor": "spark"}, "spark"),
    ({"executor": "ray", "workers": "0"}, "workers 0"),
    ({"executor": "ray", "num_cpus": "-1"}, "num_cpus -1"),
    ({"workers": "3"}, "needs executor 'ray'"),
    ({"address": "auto"}, "needs executor 'ray'"),
])
def test_bad_executor_settings_fail_before_any_work(tmp_path, overrides, message):
    cfg = config(tmp_path / "never", **overrides)
    with pytest.raises(ConfigError, match=message):
        run_sweep(cfg, progress=False, echo=quiet)
    assert not (tmp_path / "never").exists()


def test_missing_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when not installed
    with pytest.raises(ImportError, match=r"pip install 'lenskit\[ray\]'"):
        make_executor(config(tmp_path / "r", executor="ray"))
