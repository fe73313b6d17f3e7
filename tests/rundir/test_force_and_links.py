"""``--force`` deletes exactly the files lenskit recorded (a file the user added or changed
is kept and named), and nothing is written or moved outside the run directory through a
link: a run whose folders link outside is refused before anything is written, by sweeps,
readers that write tables, and ``lenskit doctor``."""

from __future__ import annotations

from pathlib import Path

import pytest
from results.frames import synthetic_cell

from lenskit.cli import main
from lenskit.errors import RunDirectoryError
from lenskit.rundir import RunStore
from lenskit.rundir.doctor import doctor
from lenskit.rundir.integrity import sha256_file


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def small_run(run: Path, n: int = 3) -> list[str]:
    ids = []
    with RunStore.open(run, {"name": "a"}) as store:
        for i in range(n):
            cid, rows, inst = synthetic_cell(i, n_instances=5)
            store.write_cell(cid, rows, instances=inst)
            ids.append(cid)
        store.write_table("summary", rows)
    return ids


def test_the_manifest_records_every_file_with_its_hash(tmp_path):
    run = tmp_path / "r"
    ids = small_run(run)
    files = RunStore(run).run_manifest().files
    want = {f"cells/{c}.parquet" for c in ids} | {f"instances/{c}.parquet" for c in ids} | {
        "tables/summary.parquet", "tables/summary.csv", "run_config.json"}
    assert set(files) == want
    for rel, digest in files.items():
        assert sha256_file(run / rel) == digest


def test_readers_record_the_tables_and_figures_they_write(tmp_path, capsys):
    run = tmp_path / "r"
    small_run(run)
    assert main(["thresholds", str(run)]) == 0
    assert main(["figures", str(run), "--formats", "svg"]) == 0
    files = RunStore(run).run_manifest().files
    written = {str(p.relative_to(run)) for d in ("tables", "figures")
               for p in (run / d).iterdir()}
    assert written and written <= set(files)
    for rel in written:
        assert files[rel] == sha256_file(run / rel)


def test_force_deletes_exactly_what_lenskit_recorded(tmp_path):
    run = tmp_path / "r"
    ids = small_run(run)
    (run / "figures").mkdir()
    (run / "figures" / "my_paper_fig.pdf").write_bytes(b"%PDF mine")
    (run / "notes.txt").write_text("mine")
    (run / "cells" / "README.txt").write_text("my notes on these cells")
    changed = run / "tables" / "summary.csv"
    changed.write_text(changed.read_text() + "my edit\n")
    with RunStore.open(run, {"name": "b"}, force=True) as store:
        assert not store.done_ids()
        kept = "\n".join(store.kept)
    for rel in ("figures/my_paper_fig.pdf", "notes.txt", "cells/README.txt",
                "tables/summary.csv"):
        assert (run / rel).exists(), rel
        assert rel in kept, (rel, kept)
    assert "changed since lenskit wrote it" in kept
    assert not (run / "cells" / f"{ids[0]}.parquet").exists()
    assert not (run / "tables" / "summary.parquet").exists()
    assert not (run / "instances").exists()  # emptied, so removed


def test_force_from_the_cli_names_the_kept_files(tmp_path, tiny_dirs, capsys):
    run = tmp_path / "r"
    argv = ["sweep", "--model", str(tiny_dirs["gpt2"]), "--methods", "magnitude",
            "--sparsities", "0.5", "--scopes", "attn", "--tasks",
            "countries_capital_closed_book", "--threads", "1", "--set", "matched=false",
            "--set", "calibration.n_samples=2", "--set", "calibration.seq_len=16",
            "--set", "batch_size=32", "--no-figures", "--out", str(run)]
    assert main(argv) == 0
    assert main(["report", str(run)]) == 0  # lenskit's report.html, recorded
    assert "report.html" in RunStore(run).run_manifest().files
    (run / "figures").mkdir(exist_ok=True)
    mine = run / "figures" / "my_paper_fig.pdf"
    mine.write_bytes(b"%PDF mine")
    capsys.readouterr()
    assert main([*argv, "--force"]) == 0
    out = capsys.readouterr().out
    assert mine.read_bytes() == b"%PDF mine"
    assert "figures/my_paper_fig.pdf" in out and "kept" in out
    assert not (run / "report.html").exists()
    assert "report.html" not in RunStore(run).run_manifest().files


# ---- links --------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["cells", "instances", "tables", "quarantine"])
def test_a_folder_linked_outside_is_refused_before_anything_is_written(tmp_path, folder):
    run = tmp_path / "r"
    small_run(run, n=1)
    outside = tmp_path / "outside"
    if (run / folder).exists():
        (run / folder).rename(outside)
    else:
        outside.mkdir()
    (run / folder).symlink_to(outside)
    before, before_out = snapshot(run), snapshot(outside)
    with pytest.raises(RunDirectoryError) as e:
        RunStore.open(run, {"name": "a"})
    msg = str(e.value)
    assert f"{folder}/" in msg and str(outside) in msg and "outside the run directory" in msg
    assert "replace the link" in msg
    assert snapshot(run) == before and snapshot(outside) == before_out
    with pytest.raises(RunDirectoryError, match="outside the run directory"):
        doctor(run)
    assert snapshot(run) == before and snapshot(outside) == before_out


def test_a_sweep_into_a_run_with_linked_cells_writes_nothing_outside(tmp_path, tiny_dirs,
                                                                     capsys):
    run = tmp_path / "r"
    outside = tmp_path / "outside"
    outside.mkdir()
    run.mkdir()
    (run / "cells").symlink_to(outside)
    code = main(["sweep", "--model", str(tiny_dirs["gpt2"]), "--methods", "magnitude",
                 "--sparsities", "0.5", "--scopes", "attn", "--threads", "1", "--no-figures",
                 "--set", "matched=false", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 1 and "cells/" in err and "outside the run directory" in err, err
    assert not list(outside.iterdir())
    assert sorted(p.name for p in run.iterdir()) == ["cells"]


def test_a_linked_lock_or_manifest_is_refused(tmp_path):
    run = tmp_path / "r"
    small_run(run, n=1)
    outside = tmp_path / "elsewhere.json"
    (run / "run_config.json").rename(outside)
    (run / "run_config.json").symlink_to(outside)
    before = outside.read_bytes()
    with pytest.raises(RunDirectoryError, match=r"run_config\.json"):
        RunStore.open(run, {"name": "b"})
    assert outside.read_bytes() == before


def test_a_linked_run_directory_itself_is_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    small_run(link, n=1)
    assert len(RunStore(real).done_ids()) == 1


@pytest.mark.parametrize("command", [["report"], ["figures", "--formats", "svg"],
                                     ["thresholds"]])
def test_readers_do_not_write_through_a_link(command, tmp_path, capsys):
    run = tmp_path / "r"
    small_run(run)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("mine")
    (run / "report.html").symlink_to(outside / "report.html")
    before, before_out = snapshot(run), snapshot(outside)
    code = main([command[0], str(run), *command[1:]])
    err = capsys.readouterr().err
    assert code == 1 and "report.html is a link" in err and "outside the run" in err, err
    assert snapshot(run) == before and snapshot(outside) == before_out
