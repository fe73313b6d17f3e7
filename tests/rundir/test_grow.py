"""Runs that grow: a larger grid computes only its new cells; calibration and tasks are part of
a cell's identity and recorded in its rows; merging runs; conflicts; old-format runs."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from lenskit.rundir import ConfigMismatchError, RunStore, merge_runs
from lenskit.rundir.lock import lock_holder
from lenskit.sweep.config import load_config
from lenskit.sweep.runner import run_sweep

TASKS = "countries_capital_closed_book,countries_capital_open_book"


def config(model_dir, out, **over):
    base = {"models": str(model_dir), "methods": "wanda", "sparsities": "0.3",
            "scopes": "attn", "tasks": TASKS, "matched": "false", "out_dir": str(out),
            "batch_size": "32", "calibration.n_samples": "4", "calibration.seq_len": "32"}
    return load_config(None, {**base, **over})


def quiet(cfg, **kw):
    return run_sweep(cfg, progress=False, echo=lambda _: None, **kw)


def cell_bytes(run):
    return {p.name: p.read_bytes() for p in (run / "cells").glob("*.parquet")}


def test_a_larger_grid_computes_only_its_new_cells(tiny_dirs, tmp_path):
    run = tmp_path / "run"
    small = config(tiny_dirs["llama"], run)
    first = quiet(small)
    assert first.cells_run == 2  # dense + wanda attn@30%
    before = cell_bytes(run)
    big = config(tiny_dirs["llama"], run, methods="wanda,magnitude", sparsities="0.3,0.6",
                 scopes="attn;mlp")
    grown = quiet(big)  # no force: the run grows
    assert grown.cells_skipped == 2 and grown.cells_run == len(big.cells()) - 2 == 7
    after = cell_bytes(run)
    assert {k: after[k] for k in before} == before  # finished cells were not rewritten
    assert set(grown.results["cell_id"]) == {c.cell_id for c in big.cells()}
    m = RunStore(run).manifest()
    assert m["config"]["methods"] == ["wanda", "magnitude"] and len(m["configs"]) == 2
    # every row records its calibration and task suite; the manifest its cell and tokens
    df = grown.results
    wanda = df[df["method"] == "wanda"]
    assert wanda["calibration"].str.startswith(
        "mode=sequential;n_samples=4;seq_len=32;source=default;tokens=").all()
    assert (df.loc[df["method"] != "wanda", "calibration"] == "none").all()
    assert (df["tasks"] == f"size=small;tasks={TASKS}").all()
    entry = m["cells"][wanda["cell_id"].iloc[0]]
    assert entry["calibration"]["description"].startswith("default text")
    assert entry["cell"]["calibration"][0] == ["mode", "sequential"]
    # the small grid again: nothing to do, and its thresholds cover its own cells only
    again = quiet(small)
    assert again.cells_run == 0 and set(again.results["cell_id"]) == {
        c.cell_id for c in small.cells()}


def test_calibration_and_tasks_are_part_of_the_identity(tiny_dirs, tmp_path):
    run = tmp_path / "run"
    text = config(tiny_dirs["llama"], run, methods="wanda,magnitude")
    quiet(text)
    rand = config(tiny_dirs["llama"], run, methods="wanda,magnitude",
                  **{"calibration.source": "random"})
    out = quiet(rand)
    # only the calibrated cell is new: dense and magnitude do not depend on calibration
    assert out.cells_run == 1 and out.cells_skipped == 2
    both = RunStore(run).results()
    w = both[both["method"] == "wanda"]
    assert sorted(w["calibration"].str.extract(r"source=(\w+)")[0].unique()) == [
        "default", "random"]
    assert w["cell_id"].nunique() == 2
    dense_mode = config(tiny_dirs["llama"], run, **{"calibration.sequential": "false"})
    assert dense_mode.cells()[1].cell_id not in {c.cell_id for c in text.cells()}
    one_task = config(tiny_dirs["llama"], run, tasks="countries_capital_closed_book")
    assert not {c.cell_id for c in one_task.cells()} & {c.cell_id for c in text.cells()}


def test_merge_runs(tiny_dirs, tmp_path):
    a = quiet(config(tiny_dirs["llama"], tmp_path / "a"))
    b = quiet(config(tiny_dirs["llama"], tmp_path / "b", methods="magnitude", scopes="mlp"))
    out = tmp_path / "c"
    proc = subprocess.run([sys.executable, "-m", "lenskit.cli", "merge", str(tmp_path / "a"),
                           str(tmp_path / "b"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    merged = RunStore(out)
    ids = set(a.results["cell_id"]) | set(b.results["cell_id"])
    assert merged.done_ids() == ids and len(ids) == 3  # one dense cell, shared
    res = merged.results()
    assert (res["method"] == "dense").sum() == (a.results["method"] == "dense").sum()
    pd.testing.assert_frame_equal(
        res[res["method"] == "wanda"].reset_index(drop=True),
        a.results[a.results["method"] == "wanda"].reset_index(drop=True))
    m = merged.manifest()
    assert m["merged_from"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert len(m["configs"]) == 2 and set(m["cells"]) == ids
    assert len(merged.instances()) == len(a.instances) + len(
        b.instances[~b.instances["cell_id"].isin(a.instances["cell_id"])])
    with pytest.raises(ValueError, match="not empty"):
        merge_runs([tmp_path / "a", tmp_path / "b"], out)
    # different dense rows under one id: a clear error, nothing written
    dense_id = a.results.loc[a.results["method"] == "dense", "cell_id"].iloc[0]
    path = tmp_path / "b" / "cells" / f"{dense_id}.parquet"
    rows = pd.read_parquet(path)
    rows.loc[0, "value"] += 0.25
    rows.to_parquet(path, index=False)
    with pytest.raises(ConfigMismatchError, match=f"different dense rows .* {dense_id!r}"):
        merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "d")
    assert not (tmp_path / "d").exists()
    # two models under one name
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    spec = next(iter(man["models"]))
    man["models"][spec]["fingerprint"] = "0" * 16
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ConfigMismatchError, match="cannot be merged"):
        merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "e")


def test_a_run_of_the_old_format_asks_for_a_rerun(tiny_dirs, tmp_path):
    run = tmp_path / "old"
    cfg = config(tiny_dirs["llama"], run)
    quiet(cfg)
    man = json.loads((run / "manifest.json").read_text())
    man["format"] = "lenskit-run/1"
    (run / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ConfigMismatchError) as e:
        quiet(cfg)
    msg = str(e.value)
    assert "earlier lenskit" in msg and "'lenskit-run/1'" in msg and "--force" in msg
    assert "new directory" in msg and "2 cells done" in msg
    assert lock_holder(run) is None  # the lock was released (its file may stay)
    assert len(RunStore(run).results())  # still readable
    with pytest.raises(ConfigMismatchError, match="earlier lenskit"):
        merge_runs([run, run], tmp_path / "m")
    out = quiet(cfg, force=True)
    assert out.cells_run == 2 and RunStore(run).manifest()["format"] == "lenskit-run/2"
