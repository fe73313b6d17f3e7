"""The sweep runner end to end on a tiny model: rows, resume after SIGKILL, bad configs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lenskit.rundir.store import RunStore
from lenskit.sweep.config import ConfigError, load_config
from lenskit.sweep.runner import run_sweep

TASKS = "countries_capital_closed_book,countries_capital_open_book"


def tiny_config(model_dir: Path, out: Path):
    return load_config(None, {
        "models": str(model_dir), "methods": "magnitude", "sparsities": "0.3,0.7",
        "scopes": "attn;mlp", "tasks": TASKS, "matched": "false", "out_dir": str(out),
        "batch_size": "32", "calibration.n_samples": "4", "calibration.seq_len": "32",
    })


def test_tiny_sweep_produces_the_expected_rows(tiny_dirs, tmp_path):
    cfg = tiny_config(tiny_dirs["llama"], tmp_path / "run")
    out = run_sweep(cfg, progress=False, echo=lambda _: None)
    df = out.results
    assert out.cells_run == 1 + 2 * 2 and out.cells_skipped == 0
    pruned = df[df["method"] == "magnitude"]
    assert set(pruned["scope"]) == {"attn", "mlp"}
    assert sorted(set(pruned["target_sparsity"])) == [0.3, 0.7]
    assert set(df["task"]) == set(TASKS.split(","))
    em = df[df["metric"] == "em"]
    assert len(em) == 5 * 2  # 5 cells x 2 tasks
    # Achieved sparsity and parameter counts are those of the masks actually applied.
    for _, r in pruned.drop_duplicates("cell_id").iterrows():
        assert r["achieved_sparsity"] == pytest.approx(r["target_sparsity"], abs=0.01)
        assert r["remaining_params"] == r["model_params"] - r["params_removed"]
    dense = df[df["method"] == "dense"]
    assert (dense["baseline"] == dense["value"]).all()
    merged = pruned.merge(dense[["task", "metric", "value"]], on=["task", "metric"],
                          suffixes=("", "_dense"))
    assert (merged["baseline"] == merged["value_dense"]).all()
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert {"torch", "transformers", "transformer-lens", "lenskit"} <= set(manifest["versions"])
    assert manifest["seeds"] == [0] and manifest["config"]["methods"] == ["magnitude"]
    # Running again does nothing and returns the same rows.
    again = run_sweep(cfg, progress=False, echo=lambda _: None)
    assert again.cells_run == 0 and again.cells_skipped == 5
    pd.testing.assert_frame_equal(again.results, df)


def sweep_subprocess(model, run_dir: Path, until_cells: int, *extra: str) -> subprocess.Popen:
    """``lenskit sweep`` of the tiny grid in a subprocess, returned once ``until_cells``
    cells are written (it is still running then: the caller kills or signals it)."""
    args = [sys.executable, "-m", "lenskit", "sweep", "--model", str(model),
            "--methods", "magnitude", "--sparsities", "0.3", "0.7", "--scopes", "attn", "mlp",
            "--tasks", *TASKS.split(","), "--out", str(run_dir), "--no-figures", *extra,
            "--set", "matched=false", "--set", "batch_size=32",
            "--set", "calibration.n_samples=4", "--set", "calibration.seq_len=32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if len(list((run_dir / "cells").glob("*.parquet"))) >= until_cells:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    return proc


def test_killed_sweep_resumes_without_loss_or_duplicates(tiny_dirs, tmp_path):
    model = tiny_dirs["gpt2"]
    ref = run_sweep(tiny_config(tiny_dirs["gpt2"], tmp_path / "ref"), progress=False,
                    echo=lambda _: None).results
    run_dir = tmp_path / "killed"
    proc = sweep_subprocess(model, run_dir, until_cells=2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(RunStore(run_dir).done_ids())
    assert 2 <= done_before < 5
    out = run_sweep(tiny_config(tiny_dirs["gpt2"], run_dir), progress=False,
                    echo=lambda _: None)
    assert out.cells_skipped == done_before and out.cells_run == 5 - done_before
    got = out.results
    assert not got.duplicated(["cell_id", "task", "metric"]).any()
    keys = ["cell_id", "task", "metric"]
    a = ref.sort_values(keys).reset_index(drop=True)
    b = got.sort_values(keys).reset_index(drop=True)
    assert list(a["cell_id"]) == list(b["cell_id"])
    # Same rows; values equal up to float summation order across processes.
    pd.testing.assert_frame_equal(a.drop(columns=["model"]), b.drop(columns=["model"]),
                                  check_exact=False, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"methods": "prune-it"}, "prune-it"),
        ({"sparsities": "0.5,1.5"}, "1.5"),
        ({"scopes": "ffn"}, "ffn"),
        ({"sparsities": "[]"}, "empty"),
        ({"structures": "5:4"}, "5:4"),
    ],
)
def test_bad_configs_fail_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"out_dir": str(tmp_path / "never"), **overrides})
    assert not (tmp_path / "never").exists()


def test_unknown_task_fails_before_pruning(tiny_dirs, tmp_path):
    cfg = load_config(None, {"models": str(tiny_dirs["opt"]), "tasks": "no_such_task",
                             "methods": "magnitude", "sparsities": "0.5", "scopes": "all",
                             "matched": "false", "out_dir": str(tmp_path / "r")})
    with pytest.raises(ConfigError, match="no_such_task"):
        run_sweep(cfg, progress=False, echo=lambda _: None)
    assert not list((tmp_path / "r" / "cells").glob("*.parquet"))
