"""The run directory: atomic cell files, resume after SIGKILL, config checks, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from results.frames import synthetic_cell

from lenskit.results import SchemaError
from lenskit.rundir import ConfigMismatchError, RunLockedError, RunStore
from lenskit.rundir.files import atomic_write_bytes
from lenskit.rundir.lock import lock_holder
from lenskit.sweep import default_config

N_CELLS = 12
CONFIG = {"name": "synthetic", "seeds": [0], "sparsities": [0.1, 0.2], "out_dir": "a"}
TESTS_DIR = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from results.frames import synthetic_cell
    from lenskit.rundir import RunStore
    store = RunStore.open({run!r}, {config!r})
    print("opened", flush=True)
    for i in range({n}):
        cell_id, rows, inst = synthetic_cell(i, n_instances={n_inst})
        if store.done(cell_id):
            continue
        time.sleep({sleep})
        store.write_cell(cell_id, rows, instances=inst, seconds=0.1, label=f"cell {{i}}")
    store.close()
""")


def run_all(run_dir: Path, config=CONFIG, n_instances: int = 5000) -> tuple[RunStore, int]:
    """Write every synthetic cell not yet done; return the store and how many it wrote."""
    written = 0
    with RunStore.open(run_dir, config) as store:
        for i in range(N_CELLS):
            cell_id, rows, inst = synthetic_cell(i, n_instances=n_instances)
            if store.done(cell_id):
                continue
            store.write_cell(cell_id, rows, instances=inst, seconds=0.1, label=f"cell {i}")
            written += 1
    return store, written


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    order = [synthetic_cell(i, 1)[0] for i in range(N_CELLS)]
    ref_store, written = run_all(tmp_path / "ref")
    assert written == N_CELLS
    expected = ref_store.results(order)
    expected_inst = ref_store.instances(order)
    assert len(expected) == 2 * N_CELLS and len(expected_inst) == 2 * 5000 * N_CELLS

    run = tmp_path / "killed"
    script = CHILD.format(tests=str(TESTS_DIR), run=str(run), config=CONFIG, n=N_CELLS,
                          sleep=0.3, n_inst=5000)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(RunStore(run).done_ids()) < 4:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        time.sleep(0.13)  # land somewhere inside the next cell's sleep or write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    done_before = RunStore(run).done_ids()
    assert 4 <= len(done_before) < N_CELLS, "the child was not killed mid-sweep"
    assert lock_holder(run) is None  # the kernel released the killed process's lock

    # A reader sees only the finished cells, each complete.
    partial = RunStore(run).results(order)
    assert set(partial["cell_id"]) == done_before
    assert len(partial) == 2 * len(done_before)

    store, written = run_all(run)  # resume: takes over the stale lock
    assert written == N_CELLS - len(done_before)
    pd.testing.assert_frame_equal(store.results(order), expected)
    pd.testing.assert_frame_equal(store.instances(order), expected_inst)
    assert not list(run.rglob(".*.tmp-*")), "temporary files were left behind"
    manifest = store.manifest()
    assert [s["status"] for s in manifest["sessions"]] == ["running", "complete"]
    assert manifest["status"] == "complete" and manifest["finished"]
    assert set(manifest["cells"]) >= set(order) - done_before


def test_partial_files_are_never_read(tmp_path):
    run_all(tmp_path / "r", n_instances=10)
    cells = tmp_path / "r" / "cells"
    one = next(cells.glob("*.parquet"))
    # what a process killed mid-write leaves: a truncated temporary file
    (cells / f".{one.name}.tmp-999-deadbeef").write_bytes(one.read_bytes()[:100])
    (cells / ".0000.parquet.tmp-1-x").write_bytes(b"garbage")
    reader = RunStore(tmp_path / "r")
    assert len(reader.done_ids()) == N_CELLS
    assert len(reader.results()) == 2 * N_CELLS
    with RunStore.open(tmp_path / "r", CONFIG):  # a writer cleans them up
        pass
    assert not list(cells.glob(".*"))


def test_atomic_write_failure_leaves_old_file(tmp_path):
    path = tmp_path / "x.bin"
    atomic_write_bytes(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half of the new con")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_config_grows_and_force(tmp_path):
    run = tmp_path / "r"
    with RunStore.open(run, CONFIG) as store:
        cid, rows, inst = synthetic_cell(0)
        store.write_cell(cid, rows, instances=inst)
    # another grid is accepted (cells are identified by id); the history keeps both configs
    other = {**CONFIG, "sparsities": [0.1, 0.3], "seeds": [1]}
    with RunStore.open(run, other) as store:
        assert store.done(cid)
        assert store.config() == other
        assert store.manifest()["configs"] == [
            {k: v for k, v in c.items() if k != "out_dir"} for c in (CONFIG, other)]
    assert lock_holder(run) is None
    # out_dir may differ (the run directory was moved or given as another path): no new entry
    with RunStore.open(run, {**CONFIG, "out_dir": "elsewhere"}) as store:
        assert store.done(cid) and len(store.manifest()["configs"]) == 2
    with RunStore.open(run, other, force=True) as store:
        assert not store.done_ids()
        assert store.config()["seeds"] == [1] and len(store.manifest()["configs"]) == 1
    # a SweepConfig is stored as its dict
    cfg = default_config()
    with RunStore.open(tmp_path / "s", cfg) as store:
        assert store.config() == json.loads(json.dumps(cfg.to_dict()))
    # a model whose weights changed is a true conflict
    with RunStore.open(tmp_path / "s", cfg) as store:
        store.record_model("organism", {"fingerprint": "aaaa", "path": "x"})
        store.record_model("organism", {"fingerprint": "aaaa", "path": "y"})
        with pytest.raises(ConfigMismatchError, match=r"'organism' has changed.*aaaa, now bbbb"):
            store.record_model("organism", {"fingerprint": "bbbb"})


def test_lock(tmp_path):
    run = tmp_path / "r"
    store = RunStore.open(run, CONFIG)
    with pytest.raises(RunLockedError, match=str(os.getpid())):
        RunStore.open(run, CONFIG)
    store.close()
    assert lock_holder(run) is None
    # a lock file left by a process that is gone is no lock (the kernel lock died with it)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket
    (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    RunStore.open(run, CONFIG).close()


def test_write_cell_checks(tmp_path):
    with RunStore.open(tmp_path / "r", CONFIG) as store:
        cid, rows, inst = synthetic_cell(1)
        with pytest.raises(ValueError, match="carry cell_id"):
            store.write_cell("abc", rows)
        with pytest.raises(SchemaError, match=r"missing column\(s\) \['value'\]"):
            store.write_cell(cid, rows.drop(columns="value"))
        with pytest.raises(ValueError, match="instances of cell"):
            store.write_cell(cid, rows, instances=inst.assign(cell_id="zzz"))
        with pytest.raises(ValueError, match="bad cell id"):
            store.write_cell("../evil", rows)
        assert not store.done(cid) and not list((tmp_path / "r").rglob("*.parquet"))
        store.write_cell(cid, rows, instances=inst, seconds=1.234, label="one")
        with pytest.raises(ValueError, match="already done"):
            store.write_cell(cid, rows)
        pd.testing.assert_frame_equal(store.read_cell(cid), rows, check_dtype=False)
        timings = store.timings()
        assert timings.loc[0, "seconds"] == 1.234 and timings.loc[0, "label"] == "one"
    assert not hasattr(RunStore(tmp_path / "r"), "write_cell")  # readers cannot write


def test_manifest_and_tables(tmp_path):
    run = tmp_path / "r"
    with RunStore.open(run, CONFIG) as store:
        pass
    m = RunStore(run).manifest()
    assert m["format"] == "lenskit-run/2" and m["config"] == CONFIG and m["seeds"] == [0]
    for pkg in ("lenskit", "torch", "transformers", "transformer-lens", "python"):
        assert m["versions"][pkg], pkg
    git = m["git"]
    assert git is None or (len(git["revision"]) == 40 and isinstance(git["dirty"], bool))
    assert m["host"]["hostname"] and m["sessions"][0]["start"] and m["sessions"][0]["end"]
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    paths = RunStore(run).write_table("thresholds", df)
    assert [p.name for p in paths] == ["thresholds.parquet", "thresholds.csv"]
    pd.testing.assert_frame_equal(RunStore(run).read_table("thresholds"), df)
    assert pd.read_csv(paths[1]).equals(df)
    assert len(store.results()) == 0 and list(store.results().columns)[:2] == ["model",
                                                                             "model_params"]
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunStore(tmp_path / "nothing").manifest()


def test_write_cell_records_what_it_wrote(tmp_path):
    import hashlib

    from lenskit.sweep import Cell

    run = tmp_path / "r"
    cell = Cell(model="organism", method="magnitude", structure="unstructured",
                allocation="uniform", scope="attn", sparsity=0.5, seed=0)
    cid, rows, inst = synthetic_cell(2, n_instances=7)
    with RunStore.open(run, CONFIG) as store:
        store.record_session(executor="local", cores=[0, 1])
        store.record_device("organism", {"device": "cpu", "dtype": "float32"})
        path = store.write_cell(cid, rows, instances=inst, seconds=2.34567, label="two",
                                cell=cell, calibration={"n_samples": 4, "seq_len": 32})
        assert path == run / "cells" / f"{cid}.parquet"
        cid0, rows0, _ = synthetic_cell(0)
        store.write_cell(cid0, rows0)  # no instances, seconds, label or identity
    m = RunStore(run).manifest()
    names = (f"cells/{cid}.parquet", f"instances/{cid}.parquet", f"cells/{cid0}.parquet")
    sha = {p: hashlib.sha256((run / p).read_bytes()).hexdigest() for p in names}
    rec = m["cells"][cid]
    assert rec == {"label": "two", "seconds": 2.346, "rows": len(rows), "instances": len(inst),
                   "finished": rec["finished"], "session": 0,
                   "sha256": sha[f"cells/{cid}.parquet"],
                   "instances_sha256": sha[f"instances/{cid}.parquet"],
                   "cell": json.loads(json.dumps(cell.canonical())),
                   "calibration": {"n_samples": 4, "seq_len": 32}}
    assert rec["finished"] >= m["sessions"][0]["start"]
    assert m["cells"][cid0] == {"label": None, "seconds": None, "rows": len(rows0),
                                "instances": None, "finished": m["cells"][cid0]["finished"],
                                "session": 0, "sha256": sha[f"cells/{cid0}.parquet"],
                                "instances_sha256": None, "cell": None, "calibration": None}
    assert all(m["files"][p] == h for p, h in sha.items())
    assert m["devices"] == {"organism": {"device": "cpu", "dtype": "float32"}}
    s = m["sessions"][0]
    assert (s["executor"], s["cores"], s["status"], s["pid"]) == ("local", [0, 1], "complete",
                                                                   os.getpid())
    assert m["status"] == "complete" and m["finished"] == s["end"]
    with RunStore.open(run, CONFIG) as store:  # a second session: numbered 1
        cid3, rows3, _ = synthetic_cell(3)
        store.write_cell(cid3, rows3)
    assert RunStore(run).manifest()["cells"][cid3]["session"] == 1


def test_sessions_end_with_the_way_they_ended(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt), RunStore.open(run, CONFIG):
        raise KeyboardInterrupt
    m = RunStore(run).manifest()
    assert (m["status"], m["finished"], m["sessions"][0]["status"]) == ("interrupted", None,
                                                                        "interrupted")
    assert m["sessions"][0]["end"]
    with pytest.raises(RuntimeError), RunStore.open(run, CONFIG):
        raise RuntimeError("boom")
    m = RunStore(run).manifest()
    assert (m["status"], m["sessions"][1]["status"]) == ("failed", "failed")
    assert m["sessions"][0]["status"] == "interrupted"  # earlier sessions keep their end
    store = RunStore.open(run, CONFIG)
    assert RunStore(run).manifest()["status"] == "running"
    store.close("interrupted")
    store.close("complete")  # idempotent: the first close counts
    m = RunStore(run).manifest()
    assert m["status"] == "interrupted" and len(m["sessions"]) == 3
    assert lock_holder(run) is None
    with pytest.raises(RuntimeError, match="read-only"):
        store.write_table("t", pd.DataFrame({"a": [1]}))


def test_tables_and_recorded_files_are_hashed_in_the_manifest(tmp_path):
    import hashlib

    run = tmp_path / "r"
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not the run's")
    with RunStore.open(run, CONFIG) as store:
        df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
        paths = store.write_table("scores", df, formats=("csv",))
        assert paths == [run / "tables" / "scores.csv"]
        assert not (run / "tables" / "scores.parquet").exists()
        with pytest.raises(ValueError, match=r"^unknown table format 'xlsx'; allowed: parquet, "
                           r"csv$"):
            store.write_table("scores", df, formats=("parquet", "xlsx"))
        with pytest.raises(ValueError, match="table name"):
            store.write_table("../up", df)
        fig = run / "figures" / "a.svg"
        fig.parent.mkdir()
        fig.write_text("<svg/>")
        store.record_files([fig, outside, run / "figures" / "missing.svg"])
    files = RunStore(run).manifest()["files"]
    assert files["tables/scores.csv"] == hashlib.sha256(b"a,b\n1,x\n2,y\n").hexdigest()
    assert files["figures/a.svg"] == hashlib.sha256(b"<svg/>").hexdigest()
    assert "tables/scores.parquet" not in files and not any("elsewhere" in f for f in files)
    assert not any("missing" in f for f in files)


def test_each_session_records_its_environment_and_the_run_config(tmp_path):
    import hashlib
    import socket

    run = tmp_path / "r"
    for _ in range(2):  # a new run, then a resumed one
        with RunStore.open(run, CONFIG) as store:
            cid, rows, _ = synthetic_cell(len(store.done_ids()))
            store.write_cell(cid, rows)
    m = RunStore(run).manifest()
    assert m["versions"]["lenskit"] and m["host"]["hostname"] == socket.gethostname()
    for s in m["sessions"]:
        assert (s["host"], s["git"], s["versions"]) == (socket.gethostname(), m["git"],
                                                        m["versions"])
    data = (run / "run_config.json").read_bytes()
    assert json.loads(data) == {"format": m["format"], "config": CONFIG}
    assert m["files"]["run_config.json"] == hashlib.sha256(data).hexdigest()


def test_messages_name_the_run_and_the_cell(tmp_path):
    import re

    run = tmp_path / "r"
    with RunStore.open(run, CONFIG) as store:
        cid, rows, _ = synthetic_cell(0)
        store.write_cell(cid, rows)
        with pytest.raises(ValueError, match=re.escape(
                f"cell {cid!r} is already done in {str(run)!r}; a resumed sweep must skip it")):
            store.write_cell(cid, rows)
        with pytest.raises(ValueError, match=re.escape(
                f"rows of cell 'other' carry cell_id {cid!r}")):
            store.write_cell("other", rows)
        with pytest.raises(ValueError, match=re.escape(
                "bad table name '../up': use letters, digits, '.', '_' and '-', not starting "
                "with '.' or '-'")):
            store.write_table("../up", pd.DataFrame({"a": [1]}))
        store.record_model("m", {"fingerprint": "aaaa"})
        with pytest.raises(ConfigMismatchError, match=re.escape(
                f"model 'm' has changed since run directory {str(run)!r} computed its cells "
                "(weights fingerprint aaaa, now bbbb)")):
            store.record_model("m", {"fingerprint": "bbbb"})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["format"] = "lenskit-run/1"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigMismatchError, match=re.escape(
            f"run directory {str(run)!r} was made by an earlier lenskit (format "
            "'lenskit-run/1', 1 cells done;")):
        RunStore.open(run, CONFIG)


def test_close_defaults_to_complete_and_a_repair_writer_records_no_session(tmp_path):
    run = tmp_path / "r"
    store = RunStore.open(run, CONFIG)
    store.close()
    m = RunStore(run).manifest()
    assert m["status"] == "complete" and m["sessions"][0]["status"] == "complete"
    assert m["finished"] == m["sessions"][0]["end"]
    before = (run / "manifest.json").read_bytes()
    repair = RunStore.open_for_repair(run)
    assert repair.manifest()["status"] == "complete"  # it has read the manifest
    repair.close("failed")  # no session of its own: nothing recorded, the lock released
    assert (run / "manifest.json").read_bytes() == before and lock_holder(run) is None
