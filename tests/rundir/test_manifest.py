"""The typed RunManifest: one constructor per origin (new, rebuilt, merged), JSON round
trips, older manifests read back, and only a run's writer changes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from results.frames import synthetic_cell

from lenskit.rundir import RunStore, merge_runs
from lenskit.rundir.doctor import doctor
from lenskit.rundir.environment import environment_info
from lenskit.rundir.manifest import FORMAT, CellRecord, RunManifest, Session

FIXTURE = Path(__file__).parent / "fixtures" / "v2-organism"


def test_new_round_trips_through_json():
    config = {"name": "n", "seeds": (0, 1), "out_dir": "x"}
    m = RunManifest.new(config, {"name": "n", "seeds": [0, 1]}, environment_info())
    assert m.format == FORMAT and m.status == "running" and m.seeds == [0, 1]
    assert m.config["seeds"] == [0, 1]  # normalised as JSON reads it back
    m.sessions.append(Session(start="2026-01-01T00:00:00+00:00", pid=1, extra={"x": 1}))
    m.cells["c"] = CellRecord(label="c", rows=3, sha256="ab")
    m.files["cells/c.parquet"] = "ab"
    data = m.to_json()
    assert json.loads(json.dumps(data)) == data
    back = RunManifest.from_json(data)
    assert back == m and back.sessions[0].extra == {"x": 1}
    assert repr(back) == ("RunManifest('n', lenskit-run/2, running, new: 1 cells, 1 sessions, "
                          "1 files, models [])")


def test_unknown_keys_survive_a_round_trip():
    data = RunManifest.new({"name": "n"}, {}, environment_info()).to_json()
    data["added_by_a_later_lenskit"] = {"k": 1}
    assert RunManifest.from_json(data).to_json()["added_by_a_later_lenskit"] == {"k": 1}


def test_an_old_manifest_reads_back_with_its_files_derived():
    data = json.loads((FIXTURE / "manifest.json").read_text())
    assert "files" not in data
    m = RunManifest.from_json(data)
    assert set(m.cells) == {p.stem for p in (FIXTURE / "cells").glob("*.parquet")}
    for cid, c in m.cells.items():
        assert m.files[f"cells/{cid}.parquet"] == c.sha256
        assert m.files[f"instances/{cid}.parquet"] == c.instances_sha256
    assert m.models["organism"]["fingerprint"] == data["models"]["organism"]["fingerprint"]
    # nothing is lost: what was read is what is written back (plus the files record)
    again = m.to_json()
    assert {k: v for k, v in again.items() if k != "files"} == data


def test_rebuilt_by_doctor(tmp_path):
    run = tmp_path / "r"
    with RunStore.open(run, {"name": "a", "seeds": [0]}) as store:
        cid, rows, inst = synthetic_cell(0, n_instances=5)
        store.write_cell(cid, rows, instances=inst)
    (run / "manifest.json").write_text("{ truncated")
    report = doctor(run)
    assert any("rebuilt" in line for line in report)
    m = RunStore(run).run_manifest()
    assert m.rebuilt_at and m.status == "interrupted" and m.config["name"] == "a"
    assert set(m.cells) == {cid} and m.files[f"cells/{cid}.parquet"] == m.cells[cid].sha256


def test_merged(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for run, cells in ((a, (0, 1)), (b, (1, 2))):
        with RunStore.open(run, {"name": run.name, "seeds": [0]}) as store:
            for i in cells:
                cid, rows, inst = synthetic_cell(i, n_instances=5)
                store.write_cell(cid, rows, instances=inst)
    merged = merge_runs([a, b], tmp_path / "m").run_manifest()
    assert merged.merged_from == [str(a), str(b)] and merged.name == "a + b"
    assert len(merged.cells) == 3 and merged.status == "complete"
    assert {s.extra["run"] for s in merged.sessions} == {str(a), str(b)}
    assert set(merged.files) == {f"{d}/{c}.parquet" for c in merged.cells
                                 for d in ("cells", "instances")}


def test_readers_get_copies_only_writers_change_it(tmp_path):
    run = tmp_path / "r"
    store = RunStore.open(run, {"name": "a"})
    try:
        store.manifest()["status"] = "tampered"  # a copy: no effect
        store.run_manifest().status = "tampered"
        assert store.run_manifest().status == "running"
        assert not hasattr(RunStore(run), "record_device")  # readers cannot write
        store.record_device("m", {"device": "cpu"})
        assert store.run_manifest().devices == {"m": {"device": "cpu"}}
    finally:
        store.close()
    assert RunStore(run).run_manifest().devices == {"m": {"device": "cpu"}}


def test_the_fixture_is_untouched_by_reading(tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(FIXTURE, copy)
    before = {p.name: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    store = RunStore(copy)
    assert len(store.results()) and len(store.instances())
    assert before == {p.name: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
