"""Corrupted files: cell files, the manifest and mask files are detected, named, and the run
repaired (quarantine + recompute, `lenskit doctor`), never silently used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from results.frames import synthetic_cell
from sweep.test_runner import tiny_config

from lenskit.cli import main
from lenskit.errors import CorruptFileError
from lenskit.models import MaskSet
from lenskit.rundir import RunStore
from lenskit.rundir.doctor import doctor
from lenskit.rundir.manifest import MANIFEST
from lenskit.sweep.runner import run_sweep

N = 6
CONFIG = {"name": "integrity", "seeds": [0]}


def fill(run: Path) -> tuple[RunStore, int]:
    """Write every synthetic cell not yet done (a resume); return the store and how many."""
    written = 0
    with RunStore.open(run, CONFIG) as store:
        for i in range(N):
            cid, rows, inst = synthetic_cell(i, n_instances=50)
            if not store.done(cid):
                store.write_cell(cid, rows, instances=inst)
                written += 1
    return store, written


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


ORDER = [synthetic_cell(i, 1)[0] for i in range(N)]


@pytest.mark.parametrize("damage", ["truncate", "tamper", "empty", "instances"])
def test_resume_quarantines_and_recomputes_a_damaged_cell(damage, tmp_path):
    ref, _ = fill(tmp_path / "ref")
    run = tmp_path / "run"
    fill(run)
    victim = ORDER[3]
    cell = run / "cells" / f"{victim}.parquet"
    if damage == "truncate":
        truncate(cell)
    elif damage == "tamper":  # a valid Parquet file with other numbers: only the hash knows
        df = pd.read_parquet(cell)
        df.assign(value=df["value"] + 0.25).to_parquet(cell, index=False)
    elif damage == "empty":
        cell.write_bytes(b"")
    else:
        truncate(run / "instances" / f"{victim}.parquet", 0.3)
    store, written = fill(run)
    assert written == 1
    assert len(store.repaired) == 1 and victim in store.repaired[0]
    moved = list((run / "quarantine").iterdir())
    assert len(moved) == 2 and all(victim in p.name for p in moved)  # cell and instances
    pd.testing.assert_frame_equal(RunStore(run).results(ORDER), ref.results(ORDER))
    pd.testing.assert_frame_equal(RunStore(run).instances(ORDER), ref.instances(ORDER))
    assert fill(run)[0].repaired == []  # healthy now


def test_a_cell_whose_hash_was_never_recorded_is_checked_by_parsing(tmp_path):
    # What a kill between the cell file's rename and the manifest's rewrite leaves.
    run = tmp_path / "r"
    fill(run)
    m = json.loads((run / MANIFEST).read_text())
    intact, broken = ORDER[1], ORDER[2]
    for cid in (intact, broken):
        del m["cells"][cid]
    (run / MANIFEST).write_text(json.dumps(m))
    truncate(run / "cells" / f"{broken}.parquet")
    store, written = fill(run)
    assert written == 1 and len(store.repaired) == 1 and broken in store.repaired[0]
    cells = RunStore(run).manifest()["cells"]
    assert len(cells[intact]["sha256"]) == 64 and len(cells[broken]["sha256"]) == 64


def test_reading_a_damaged_cell_names_it(tmp_path, capsys):
    run = tmp_path / "r"
    fill(run)
    bad = run / "cells" / f"{ORDER[2]}.parquet"
    truncate(bad)
    with pytest.raises(CorruptFileError, match=ORDER[2]) as e:
        RunStore(run).results()
    assert "lenskit doctor" in str(e.value)
    # the message names the file, the parser's error type and the repair command
    from lenskit.rundir.integrity import read_parquet

    with pytest.raises(CorruptFileError) as e:
        read_parquet(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad} is damaged (") and "NoneType" not in msg
    assert msg.split("(", 1)[1].split(":", 1)[0] in ("ArrowInvalid", "OSError", "ValueError")
    assert msg.endswith(f"repair the run with `lenskit doctor {run}`")
    assert Path(e.value.path) == bad
    assert main(["thresholds", str(run)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "lenskit doctor" in err and "Traceback" not in err


def test_truncated_manifest_is_named_and_doctor_rebuilds_it(tmp_path, capsys):
    run = tmp_path / "r"
    ref, _ = fill(run)
    expected = ref.results(ORDER)
    truncate(run / MANIFEST, 0.4)
    with pytest.raises(CorruptFileError) as e:
        RunStore.open(run, CONFIG)
    assert str(run / MANIFEST) in str(e.value) and "lenskit doctor" in str(e.value)
    assert main(["thresholds", str(run)]) == 1
    err = capsys.readouterr().err
    assert "manifest.json" in err and "doctor" in err and "Traceback" not in err
    assert main(["doctor", str(run)]) == 0
    out = capsys.readouterr().out
    assert "manifest.json was damaged" in out and "quarantine" in out
    store, written = fill(run)  # resumes: every cell is still there and verified
    assert written == 0 and store.repaired == []
    pd.testing.assert_frame_equal(RunStore(run).results(ORDER), expected)
    assert main(["doctor", str(run)]) == 0
    assert "healthy" in capsys.readouterr().out


def test_doctor_repairs_and_reports(tmp_path):
    run = tmp_path / "r"
    fill(run)
    # a killed sweep: status left "running", a temporary file, a damaged cell
    m = json.loads((run / MANIFEST).read_text())
    m["status"] = m["sessions"][-1]["status"] = "running"
    (run / MANIFEST).write_text(json.dumps(m))
    (run / "cells" / ".x.parquet.tmp-1-abc").write_bytes(b"half")
    truncate(run / "cells" / f"{ORDER[4]}.parquet")
    report = doctor(run)
    text = "\n".join(report)
    assert "temporary" in text and "'interrupted'" in text and ORDER[4] in text
    assert len(report) == 3
    assert ORDER[4] not in RunStore(run).done_ids()
    assert RunStore(run).manifest()["status"] == "interrupted"
    assert doctor(run) == []
    _, written = fill(run)
    assert written == 1


def test_doctor_refuses_a_running_sweep(tmp_path):
    run = tmp_path / "r"
    fill(run)
    with RunStore.open(run, CONFIG), pytest.raises(OSError, match="in use by"):
        doctor(run)


def test_sweep_recomputes_a_truncated_cell(tiny_dirs, tmp_path):
    cfg = tiny_config(tiny_dirs["llama"], tmp_path / "run")
    first = run_sweep(cfg, progress=False, echo=lambda _: None).results
    victim = sorted((tmp_path / "run" / "cells").glob("*.parquet"))[1]
    truncate(victim)
    lines: list[str] = []
    again = run_sweep(cfg, progress=False, echo=lines.append)
    assert again.cells_run == 1 and again.cells_skipped == 4
    assert any(ln.startswith("repaired:") and victim.stem in ln for ln in lines)
    keys = ["cell_id", "task", "metric"]
    pd.testing.assert_frame_equal(
        first.sort_values(keys).reset_index(drop=True),
        again.results.sort_values(keys).reset_index(drop=True),
        check_exact=False, rtol=1e-6, atol=1e-9)


# ---- mask files --------------------------------------------------------------------------

def random_masks(packed: bool, tmp_path: Path) -> tuple[MaskSet, Path]:
    g = torch.Generator().manual_seed(0)
    masks = MaskSet({f"blocks.{i}.mlp.in": torch.rand(160, 200, generator=g) > 0.5
                     for i in range(2)}, model="m", meta={"method": "test"})
    path = tmp_path / "masks.safetensors"
    masks.save(path, packed=packed)
    return masks, path


@pytest.mark.parametrize("packed", [True, False])
def test_mask_file_round_trip_and_flipped_bytes(packed, tmp_path):
    masks, path = random_masks(packed, tmp_path)
    back = MaskSet.load(path)
    assert all(torch.equal(back[k], masks[k]) for k in masks)
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    rng = np.random.default_rng(0)
    for i in rng.choice(np.arange(header, len(data)), size=1000, replace=False):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"masks\.safetensors") as e:
        MaskSet.load(path)
    assert "checksum" in str(e.value)


@pytest.mark.parametrize("keep", [0.0, 0.05, 0.5, 0.99])
def test_truncated_mask_file_is_named(keep, tmp_path):
    _, path = random_masks(True, tmp_path)
    truncate(path, keep)
    with pytest.raises(CorruptFileError, match=r"masks\.safetensors"):
        MaskSet.load(path)


def test_missing_manifest_is_rebuilt_by_doctor(tmp_path):
    run = tmp_path / "r"
    ref, _ = fill(run)
    (run / MANIFEST).unlink()
    with pytest.raises(CorruptFileError, match="lenskit doctor"):
        RunStore.open(run, CONFIG)
    assert any("missing" in line for line in doctor(run))
    _, written = fill(run)
    assert written == 0
    pd.testing.assert_frame_equal(RunStore(run).results(ORDER), ref.results(ORDER))


def test_verify_cells_by_hand(tmp_path):
    """RunWriter.verify against hashes computed here with hashlib: a changed byte in a file
    with a recorded hash quarantines every file of its cell; a missing hash is recorded when
    the file parses, and the cell is quarantined when it does not."""
    import hashlib

    from lenskit.rundir.environment import environment_info
    from lenskit.rundir.files import write_json
    from lenskit.rundir.integrity import sha256_file
    from lenskit.rundir.manifest import MANIFEST, CellRecord, RunManifest
    from lenskit.rundir.store import RunWriter

    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    (run / "instances").mkdir()
    entries = {}
    for cid in ("a", "b", "c", "d"):
        paths = []
        for folder, key in (("cells", "sha256"), ("instances", "instances_sha256")):
            p = run / folder / f"{cid}.parquet"
            pd.DataFrame({"x": [1.0, 2.0], "cell": cid}).to_parquet(p, index=False)
            paths.append((key, p))
        entries[cid] = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in paths}
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 9000)  # > 1 MiB: read in several chunks
    assert sha256_file(big) == hashlib.sha256(big.read_bytes()).hexdigest()

    # b: one flipped byte in its instances file (hash recorded)
    inst_b = run / "instances" / "b.parquet"
    data = bytearray(inst_b.read_bytes())
    data[len(data) // 2] ^= 0xFF
    inst_b.write_bytes(bytes(data))
    # c: no recorded hash, intact; d: no recorded hash, unreadable
    del entries["c"]["sha256"]
    entries["d"] = {}
    (run / "cells" / "d.parquet").write_bytes(b"PAR1 not parquet")
    before_a = dict(entries["a"])
    m = RunManifest.new({"name": "by-hand"}, {}, environment_info())
    for cid, e in entries.items():
        m.cells[cid] = CellRecord(**e)
    write_json(run / MANIFEST, m.to_json())

    writer = RunWriter.open_for_repair(run)
    try:
        report = writer.verify()
        again = writer.verify()
    finally:
        writer.release()
    cells = RunWriter(run).run_manifest().cells
    assert set(cells) == {"a", "c"}
    assert (cells["a"].sha256, cells["a"].instances_sha256) == (before_a["sha256"],
                                                                before_a["instances_sha256"])
    assert cells["c"].sha256 == hashlib.sha256(
        (run / "cells" / "c.parquet").read_bytes()).hexdigest()
    assert len(report) == 2
    assert report[0].startswith("cell b: instances/b.parquet is corrupt; moved to ")
    assert report[1].startswith("cell d: cells/d.parquet is corrupt; moved to ")
    assert report[0].endswith("; it will be computed again")
    moved = sorted(p.name for p in (run / "quarantine").iterdir())
    import re

    assert all(re.fullmatch(r"\w+__\w\.parquet\.\d{8}T\d{12}", m) for m in moved), moved
    assert [m.split(".parquet.")[0] for m in moved] == ["cells__b", "cells__d", "instances__b",
                                                        "instances__d"]
    assert not (run / "cells" / "b.parquet").exists()
    assert (run / "cells" / "a.parquet").exists() and (run / "cells" / "c.parquet").exists()
    # all intact and recorded: nothing to do
    assert again == []


def test_check_inside_refuses_links_out_of_the_run(tmp_path):
    from lenskit.errors import RunDirectoryError
    from lenskit.rundir.integrity import check_inside

    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    assert check_inside(run, run / "tables" / "t.csv") == run / "tables" / "t.csv"
    assert check_inside(run, run) == run
    (run / "out").symlink_to(tmp_path)
    with pytest.raises(RunDirectoryError, match="outside the run directory") as err:
        check_inside(run, run / "out" / "t.csv")
    assert err.value.path == str(run / "out" / "t.csv")
    with pytest.raises(RunDirectoryError, match="refusing to write"):
        check_inside(run, tmp_path / "runner")  # a sibling whose name starts like it


def test_verify_cells_reports_each_change_alone(tmp_path):
    import re

    from lenskit.rundir.environment import environment_info
    from lenskit.rundir.files import write_json
    from lenskit.rundir.integrity import sha256_file
    from lenskit.rundir.manifest import MANIFEST, CellRecord, RunManifest
    from lenskit.rundir.store import RunWriter

    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    cell = run / "cells" / "a.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(cell, index=False)

    def verify(record: CellRecord) -> tuple[list[str], dict]:
        m = RunManifest.new({"name": "alone"}, {}, environment_info())
        m.cells["a"] = record
        write_json(run / MANIFEST, m.to_json())
        writer = RunWriter.open_for_repair(run)
        try:
            return writer.verify(), RunWriter(run).run_manifest().cells
        finally:
            writer.release()

    # an intact file without a recorded hash: recorded, nothing reported
    report, cells = verify(CellRecord())
    assert report == [] and cells["a"].sha256 == sha256_file(cell)
    # a file whose hash differs: quarantined, reported with where it went, its entry dropped
    report, cells = verify(CellRecord(sha256="0" * 64))
    assert cells == {}
    assert len(report) == 1 and re.fullmatch(
        r"cell a: cells/a\.parquet is corrupt; moved to quarantine/cells__a\.parquet\.\d{8}T\d{12}; "
        r"it will be computed again", report[0]), report


def test_quarantine_stamps_utc_whatever_the_local_zone(tmp_path, monkeypatch):
    import datetime as dt
    import time

    from lenskit.rundir.integrity import quarantine

    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    (run / "cells" / "c.parquet").write_bytes(b"x")
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        dest = quarantine(run, run / "cells" / "c.parquet")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    stamp = dt.datetime.strptime(dest.name.rsplit(".", 1)[1], "%Y%m%dT%H%M%S%f")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((now - stamp).total_seconds()) < 60  # UTC, not Tokyo's 9 hours ahead
