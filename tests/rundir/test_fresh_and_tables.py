"""A directory holding only lenskit's lock and temporary files counts as a fresh run (the
state a kill during the first manifest write leaves); stale temporaries of lenskit's own
naming are removed on open, others are not; a run's tables and cells are checked against
their recorded hashes when read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from results.frames import synthetic_cell

from lenskit.cli import main
from lenskit.errors import CorruptFileError, RunDirectoryError
from lenskit.rundir import RunStore
from lenskit.rundir.doctor import doctor


def _killed_before_the_first_manifest(run: Path) -> None:
    run.mkdir(parents=True)
    (run / ".lock").write_text('{"pid": 99999999, "host": "gone"}')
    (run / ".manifest.json.tmp-4242-0a1b2c3d").write_text('{"format": "lenskit-run/2", "con')


def test_lock_and_temporaries_only_is_a_fresh_run(tmp_path):
    run = tmp_path / "r"
    _killed_before_the_first_manifest(run)
    with RunStore.open(run, {"name": "a"}) as store:
        assert not store.done_ids()
    assert sorted(p.name for p in run.iterdir()) == [".lock", "manifest.json",
                                                     "run_config.json"]


def test_doctor_on_that_state_empties_it(tmp_path, capsys):
    run = tmp_path / "r"
    _killed_before_the_first_manifest(run)
    assert main(["doctor", str(run)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "temporary" in out and "fresh" in out
    assert [p.name for p in run.iterdir()] == [".lock"]
    assert doctor(run) == []


def test_stale_temporaries_are_removed_on_open_but_not_other_files(tmp_path):
    run = tmp_path / "r"
    with RunStore.open(run, {"name": "a"}) as store:
        cid, rows, inst = synthetic_cell(0, n_instances=5)
        store.write_cell(cid, rows, instances=inst)
    stale = [run / ".manifest.json.tmp-1-deadbeef", run / "cells" / f".{cid}.parquet.tmp-2-0123abcd",
             run / "instances" / ".x.parquet.tmp-3-89abcdef", run / "tables" / ".t.csv.tmp-4-00000000"]
    (run / "tables").mkdir()
    for p in stale:
        p.write_bytes(b"half")
    mine = run / ".my.tmp-notes"  # not lenskit's naming: kept
    mine.write_text("mine")
    with RunStore.open(run, {"name": "a"}) as store:
        assert store.done(cid)
    assert not any(p.exists() for p in stale)
    assert mine.read_text() == "mine"


def test_a_foreign_directory_is_still_refused(tmp_path):
    run = tmp_path / "r"
    _killed_before_the_first_manifest(run)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match=r"notes\.txt"):
        RunStore.open(run, {"name": "a"})


def test_a_changed_table_is_named_on_reading(tmp_path, capsys):
    run = tmp_path / "r"
    with RunStore.open(run, {"name": "a"}) as store:
        cid, rows, inst = synthetic_cell(0, n_instances=5)
        store.write_cell(cid, rows, instances=inst)
        store.write_table("summary", rows)
    path = run / "tables" / "summary.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError) as e:
        RunStore(run).read_table("summary")
    assert str(path) in str(e.value) and "lenskit thresholds" in str(e.value)


def test_a_changed_cell_is_named_on_reading(tmp_path, capsys):
    run = tmp_path / "r"
    with RunStore.open(run, {"name": "a"}) as store:
        for i in range(3):
            cid, rows, inst = synthetic_cell(i, n_instances=5)
            store.write_cell(cid, rows, instances=inst)
    path = run / "cells" / f"{cid}.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptFileError) as e:
        RunStore(run).results()
    assert str(path) in str(e.value) and f"lenskit doctor {run}" in str(e.value)
    code = main(["thresholds", str(run)])
    err = capsys.readouterr().err
    assert code == 1 and str(path) in err and "lenskit doctor" in err
