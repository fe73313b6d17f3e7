"""The bad-input catalogue: every mistake a user can make gets one clear error naming the
value, the right exit code from the CLI, and nothing written to disk or changed in weights.

CLI cases run ``lenskit.cli.main`` in-process (fast); a few run the real command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from results.frames import synthetic_cell

from lenskit.cli import main
from lenskit.errors import (
    CorruptFileError,
    LenskitError,
    RunDirectoryError,
    RunLockedError,
    UsageError,
)
from lenskit.models import ModelLoadError, load_model, model_info
from lenskit.models.sites import Selection
from lenskit.results.thresholds import compute_thresholds
from lenskit.rundir import ConfigMismatchError, RunStore
from lenskit.sweep import ConfigError, load_config
from lenskit.sweep.preflight import load_sweep_config, preflight

TASK = "countries_capital_closed_book"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to show nothing changed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit code and stderr of ``lenskit ARGV`` run in-process (argparse exits included)."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse rejects a flag's value with exit 2
        code = e.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_dirs) -> dict[str, str]:
    """Named paths the catalogue refers to: a model, broken models, files, folders."""
    root = tmp_path_factory.mktemp("places")
    no_config = root / "no_config"
    no_config.mkdir()
    (no_config / "weights.bin").write_bytes(b"x")
    a_file = root / "a_file.txt"
    a_file.write_text("calibration text " * 20)
    truncated = root / "truncated"
    truncated.mkdir()
    for p in Path(tiny_dirs["gpt2"]).iterdir():
        data = p.read_bytes()
        (truncated / p.name).write_bytes(data[: len(data) // 3] if p.suffix == ".safetensors"
                                         else data)
    bad_toml = root / "bad.toml"
    bad_toml.write_text("methods = [wanda\n")
    return {"MODEL": str(tiny_dirs["gpt2"]), "NO_CONFIG": str(no_config), "FILE": str(a_file),
            "TRUNCATED": str(truncated), "ROOT": str(root), "BAD_TOML": str(bad_toml)}


def fill(argv: list[str], places: dict[str, str]) -> list[str]:
    out = []
    for a in argv:
        for k, v in places.items():
            a = a.replace(k, v)
        out.append(a)
    return out


SWEEP = ["sweep", "--model", "MODEL", "--methods", "magnitude", "--sparsities", "0.5",
         "--threads", "1", "--no-figures"]

# (argv, exit code, needles in the message). Sweeps run with and without --dry-run.
SWEEP_CASES = [
    (["--scopes", "mlp@9"], 2, ["mlp@9", "2 layers"]),
    (["--scopes", "attn@0-5"], 2, ["attn@0-5", "[2, 3, 4, 5]"]),
    (["--scopes", "attn@x"], 2, ["attn@x", "@0-3"]),
    (["--scopes", "ffn"], 2, ["ffn"]),
    (["--tasks", "closed_bok"], 2, ["closed_bok", TASK]),
    (["--tasks", TASK, "nope"], 2, ["'nope'"]),
    (["--model", "/nonexistent/model"], 2, ["/nonexistent/model", "no such directory"]),
    (["--model", "./missing-model-dir"], 2, ["missing-model-dir", "no such directory"]),
    (["--model", "NO_CONFIG"], 2, ["no_config", "config.json"]),
    (["--model", "FILE"], 2, ["a_file.txt", "is a file"]),
    (["--model", "organism-d999"], 2, ["organism-d999"]),
    (["--model", "someone/not-cached-model"], 2, ["someone/not-cached-model", "HF_HUB_OFFLINE"]),
    (["--set", "calibration.source=/nonexistent/calib.txt"], 2, ["calib.txt", "no such file"]),
    (["--set", "calibration.source=calib.txt"], 2, ["calib.txt", "no such file"]),
    (["--set", "calibration.source=some_hub_dataset"], 2, ["some_hub_dataset",
                                                            "HF_HUB_OFFLINE"]),
    (["--set", "calibration.source=ROOT"], 2, ["directory"]),
    (["--methods", "wandaa"], 2, ["wandaa"]),
    (["--sparsities", "1.5"], 2, ["1.5"]),
    (["--sparsities", "-0.1"], 2, ["-0.1"]),
    (["--sparsities", "half"], 2, ["half"]),
    (["--seeds", "x"], 2, ["'x'"]),
    (["--threads", "0"], 2, ["--threads"]),
    (["--threads", "two"], 2, ["two"]),
    (["--set", "novalue"], 2, ["KEY=VALUE", "novalue"]),
    (["--set", "no_such_setting=1"], 2, ["no_such_setting"]),
    (["--set", "structures=5:4"], 2, ["5:4"]),
    (["--set", "batch_size=0"], 2, ["batch_size"]),
    (["--task-size", "huge"], 2, ["huge"]),
    (["--set", "matched=true", "--scopes", "all"], 2, ["matched", "attention-only"]),
]


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize(("extra", "code", "needles"), SWEEP_CASES,
                         ids=[" ".join(c[0]) for c in SWEEP_CASES])
def test_sweep_bad_input(extra, code, needles, dry, places, tmp_path, capsys):
    out = tmp_path / "run"
    argv = fill([*SWEEP, *extra, "--out", str(out), *(["--dry-run"] if dry else [])], places)
    before = snapshot(Path(places["ROOT"]))
    got, err = cli(argv, capsys)
    assert got == code, err
    line = [ln for ln in err.splitlines() if "error" in ln]
    assert line, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err
    assert not out.exists(), "a bad command created the run directory"
    assert snapshot(Path(places["ROOT"])) == before


def test_config_file_errors(places, tmp_path, capsys):
    for path, needle in ((str(tmp_path / "none.toml"), "does not exist"),
                         (places["BAD_TOML"], "not valid TOML"),
                         (places["FILE"], ".toml")):
        code, err = cli(["sweep", path, "--dry-run"], capsys)
        assert code == 2 and needle in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "code", "needles"), [
    (["organism", "train", "--d-model", "-4"], 2, ["--d-model", "-4", ">= 1"]),
    (["organism", "train", "--d-model", "0"], 2, ["--d-model", "'0'"]),
    (["organism", "train", "--steps", "0"], 2, ["--steps"]),
    (["organism", "train", "--layers", "x"], 2, ["--layers", "'x'"]),
    (["organism", "train", "--eval-every", "-1"], 2, ["--eval-every"]),
    (["organism", "train", "--d-ffn", "0"], 2, ["--d-ffn"]),
    (["organism", "train", "--threads", "0"], 2, ["--threads"]),
    (["sites", "/nonexistent/model"], 2, ["/nonexistent/model", "no such directory"]),
    (["sites", "NO_CONFIG"], 2, ["config.json"]),
    (["sites", "MODEL", "--scope", "mlp@9"], 2, ["9"]),
    (["sites", "MODEL", "--scope", "bogus"], 2, ["bogus"]),
    (["sites", "TRUNCATED"], 1, ["model.safetensors", "truncated"]),
    (["thresholds", "/nonexistent/run"], 2, ["/nonexistent/run", "lenskit sweep --out"]),
    (["thresholds", "ROOT"], 2, ["no manifest.json"]),
    (["thresholds", "ROOT", "--tolerance", "5"], 2, ["(0, 1)", "'5'"]),
    (["thresholds", "ROOT", "--tolerance", "0"], 2, ["(0, 1)"]),
    (["thresholds", "ROOT", "--tolerance", "-0.1"], 2, ["-0.1"]),
    (["thresholds", "ROOT", "--tolerance", "abc"], 2, ["abc"]),
    (["figures", "/nonexistent/run"], 2, ["/nonexistent/run"]),
    (["doctor", "/nonexistent/run"], 1, ["/nonexistent/run"]),
    (["doctor", "ROOT"], 1, ["not a lenskit run directory"]),
])
def test_other_commands_bad_input(argv, code, needles, places, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # organism train must not create runs/ here on failure
    before = snapshot(Path(places["ROOT"]))
    got, err = cli(fill(argv, places), capsys)
    assert got == code, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert "Traceback" not in err
    assert snapshot(Path(places["ROOT"])) == before
    assert not list(tmp_path.iterdir())


def dense_only_run(root: Path) -> Path:
    """A run directory holding only a dense cell (no pruned one)."""
    run = root / "dense_only"
    with RunStore.open(run, {"name": "dense"}) as store:
        cid, rows, inst = synthetic_cell(0, n_instances=5)  # cell 0 is the dense model
        store.write_cell(cid, rows, instances=inst)
    return run


@pytest.mark.parametrize("command", ["thresholds", "figures"])
def test_run_without_pruned_cells_is_an_error(command, tmp_path, capsys):
    run = dense_only_run(tmp_path)
    before = snapshot(run)
    code, err = cli([command, str(run)], capsys)
    assert code == 1 and "no pruned cells" in err and "lenskit sweep --out" in err
    assert snapshot(run) == before


def test_out_is_a_file(places, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("mine")
    code, err = cli(fill([*SWEEP, "--scopes", "attn", "--out", str(target)], places), capsys)
    assert code == 1 and "is a file" in err and str(target) in err
    assert target.read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_run_directory(places, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = cli(fill([*SWEEP, "--scopes", "attn", "--out", str(ro)], places), capsys)
    finally:
        ro.chmod(0o755)
    assert code == 1 and "not writable" in err and not list(ro.iterdir())


def test_locked_run_directory(places, tmp_path, capsys):
    run = tmp_path / "locked"
    holder = RunStore.open(run, {"name": "other"})
    try:
        before = snapshot(run)
        code, err = cli(fill([*SWEEP, "--scopes", "attn", "--out", str(run)], places), capsys)
        assert code == 1 and "in use by process" in err and str(os.getpid()) in err
        assert snapshot(run) == before
    finally:
        holder.close()


def test_debug_shows_the_traceback(places, tmp_path):
    with pytest.raises(ConfigError, match="mlp@9"):
        main(fill(["--debug", *SWEEP, "--scopes", "mlp@9", "--dry-run"], places))


# ---- API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1.5, "1", [0, 1.0], True, [True], object()])
def test_selection_rejects_non_integer_layers(layers):
    with pytest.raises(ValueError, match="layers must be"):
        Selection(layers=layers)


@pytest.mark.parametrize(("spec", "needle"), [
    ("/nonexistent/model", "no such directory"),
    ("./missing-model", "no such directory"),
    ("~/missing/model/dir", "no such directory"),
    ("NO_CONFIG", "config.json"),
    ("FILE", "is a file"),
    ("organism-d999", "organism-d999"),
    ("TRUNCATED", "model.safetensors"),
    ("someone/not-cached-model", "HF_HUB_OFFLINE"),
])
def test_load_model_errors_name_the_problem(spec, needle, places):
    with pytest.raises(ModelLoadError) as e:
        load_model(fill([spec], places)[0])
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, LenskitError) and isinstance(e.value, OSError)


@pytest.mark.parametrize("tolerances", [[5.0], [0.0], [1.0], [-0.1], [0.05, 2.0], []])
def test_thresholds_tolerances_must_be_fractions(tolerances):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        compute_thresholds(synthetic_cell(0, 1)[1], tolerances=tolerances)


def test_preflight_checks_before_anything_exists(places, tmp_path):
    cfg = load_config(None, {"models": places["MODEL"], "scopes": "attn@7",
                             "matched": "false", "out_dir": str(tmp_path / "r")})
    with pytest.raises(ConfigError, match="attn@7"):
        preflight(cfg)
    assert not (tmp_path / "r").exists()


def test_matched_defaults_to_what_the_scopes_allow(places):
    lines: list[str] = []
    cfg = load_sweep_config(None, {"models": places["MODEL"], "scopes": "all"}, lines.append)
    assert not cfg.matched and not any(c.is_matched for c in cfg.cells()) and not lines
    cfg = load_sweep_config(None, {"models": places["MODEL"], "scopes": "attn;mlp"},
                            lines.append)
    n = sum(c.is_matched for c in cfg.cells())
    assert n > 0 and len(lines) == 1 and f"{n} parameter-matched" in lines[0]
    assert "matched=false" in lines[0]
    with pytest.raises(ConfigError, match="attention-only"):  # asked for: still an error
        load_sweep_config(None, {"models": places["MODEL"], "scopes": "all",
                                 "matched": "true"})


def test_force_refuses_a_foreign_directory(tmp_path):
    foreign = tmp_path / "mine"
    (foreign / "figures").mkdir(parents=True)
    (foreign / "tables").mkdir()
    (foreign / "figures" / "plot.png").write_bytes(b"png")
    (foreign / "tables" / "t.csv").write_text("a\n1\n")
    (foreign / "notes.txt").write_text("mine")
    before = snapshot(foreign)
    for force in (False, True):
        with pytest.raises(RunDirectoryError, match="not a lenskit run directory") as e:
            RunStore.open(foreign, {"name": "x"}, force=force)
        assert "notes.txt" in str(e.value)
    assert snapshot(foreign) == before


def test_force_keeps_what_lenskit_did_not_write(tmp_path):
    run = tmp_path / "r"
    with RunStore.open(run, {"name": "a"}) as store:
        cid, rows, inst = synthetic_cell(0, n_instances=5)
        store.write_cell(cid, rows, instances=inst)
    (run / "figures").mkdir()
    (run / "figures" / "fig.svg").write_text("<svg/>")
    (run / "figures" / "my_notes.txt").write_text("mine")
    (run / "README.txt").write_text("mine too")
    with RunStore.open(run, {"name": "b"}) as store:  # a run grows: nothing is deleted
        assert store.done(cid)
    with RunStore.open(run, {"name": "b"}, force=True) as store:
        assert not store.done_ids()
    assert (run / "figures" / "my_notes.txt").read_text() == "mine"
    assert (run / "README.txt").read_text() == "mine too"
    assert not (run / "figures" / "fig.svg").exists()


def test_cli_force_on_a_foreign_directory(places, tmp_path, capsys):
    foreign = tmp_path / "P"
    (foreign / "figures").mkdir(parents=True)
    (foreign / "figures" / "keep.png").write_bytes(b"png")
    before = snapshot(foreign)
    code, err = cli(fill([*SWEEP, "--scopes", "attn", "--out", str(foreign), "--force"],
                         places), capsys)
    assert code == 1 and "not a lenskit run directory" in err and "--out" in err
    assert snapshot(foreign) == before


def test_symlinked_tables_are_not_written_through(tmp_path, capsys):
    run = tmp_path / "r"
    with RunStore.open(run, {"name": "a"}) as store:
        for i in range(3):
            cid, rows, inst = synthetic_cell(i, n_instances=5)
            store.write_cell(cid, rows, instances=inst)
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "tables").symlink_to(outside)
    (run / "figures").symlink_to(outside)
    for argv in (["thresholds", str(run)], ["figures", str(run), "--formats", "svg"]):
        code, err = cli(argv, capsys)
        assert code == 1 and "outside the run directory" in err, err
    with pytest.raises(RunDirectoryError, match="outside"):
        RunStore(run).write_table("x", synthetic_cell(0, 1)[1])
    assert not list(outside.iterdir())


def test_weights_untouched_by_rejected_masks(tiny_dirs, tmp_path):
    from lenskit.models import MaskSet, apply_masks

    model = load_model(tiny_dirs["gpt2"])
    info = model_info(model)
    before = {s.name: s.weight().clone() for s in info.sites}
    masks = {s.name: torch.zeros(s.shape, dtype=torch.bool) for s in info.sites}
    first = info.sites[0]
    masks[first.name] = torch.zeros((first.shape[0] + 1, first.shape[1]), dtype=torch.bool)
    with pytest.raises(ValueError):
        apply_masks(model, MaskSet(masks))
    for s in info.sites:
        assert torch.equal(s.weight(), before[s.name])


def test_error_hierarchy():
    assert issubclass(ConfigError, UsageError) and issubclass(UsageError, ValueError)
    assert issubclass(ConfigMismatchError, UsageError)
    for cls in (RunLockedError, CorruptFileError, ModelLoadError):
        assert issubclass(cls, RunDirectoryError) and issubclass(cls, OSError)
    assert issubclass(RunDirectoryError, LenskitError)
    e = CorruptFileError("f.parquet is damaged", "f.parquet")
    assert str(e) == "f.parquet is damaged" and e.path == "f.parquet"


@pytest.mark.parametrize(("argv", "code", "needle"), [
    (["organism", "train", "--d-model", "-4"], 2, "--d-model"),
    (["sweep", "--model", "/nonexistent/m", "--dry-run"], 2, "no such directory"),
    (["thresholds", "/nonexistent/run", "--tolerance", "0.5"], 2, "/nonexistent/run"),
])
def test_real_command_one_line_error(argv, code, needle, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "lenskit", *argv], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, proc.stderr
    assert not list(tmp_path.iterdir())
    json.dumps(proc.stderr)  # printable
