"""The message rule, enforced: every error a user can cause names the bad value AND says what
is allowed or what to do. Each catalogue case gives both parts as needles; the test asserts
each is in the one-line message (not only that an error is raised). API cases call the
public functions; CLI cases run ``lenskit.cli.main`` in-process and read stderr."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import lenskit
from lenskit.cli import main
from lenskit.models import load_model


@pytest.fixture(scope="module")
def env(tiny_dirs, tmp_path_factory) -> dict:
    """What the cases refer to: a model, a pruning result (intact and truncated), a run
    directory, a foreign directory, a plain file."""
    root = tmp_path_factory.mktemp("messages")
    model = load_model(tiny_dirs["gpt2"])
    result = root / "r.safetensors"
    lenskit.prune(model, "magnitude", 0.5, apply=False).save(result)
    truncated = root / "truncated.safetensors"
    truncated.write_bytes(result.read_bytes()[:500])
    run = root / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"format": "lenskit-run/2"}))
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    a_file = root / "a_file.txt"
    a_file.write_text("text")
    return {"model": model, "MODEL": str(tiny_dirs["gpt2"]), "RESULT": str(result),
            "TRUNCATED": str(truncated), "RUN": str(run), "FOREIGN": str(foreign),
            "FILE": str(a_file), "ROOT": str(root)}


# (id, call(env), value needles, allowed/what-to-do needles)
API_CASES = [
    ("prune sparsity nan",
     lambda e: lenskit.prune(e["model"], "magnitude", math.nan, apply=False),
     ["nan"], ["[0, 1]"]),
    ("prune sparsity 1.5",
     lambda e: lenskit.prune(e["model"], "magnitude", 1.5, apply=False), ["1.5"], ["[0, 1]"]),
    ("prune method", lambda e: lenskit.prune(e["model"], "wandaa", 0.5, apply=False),
     ["'wandaa'"], ["'wanda'", "'sparsegpt'"]),
    ("scope mlp@", lambda e: lenskit.prune(e["model"], "magnitude", 0.5, scope="mlp@",
                                           apply=False),
     ["'mlp@'"], ["'@0-3'", "'@1,4'"]),
    ("scope reversed range", lambda e: lenskit.sites(e["model"], "mlp@1-0"),
     ["'1-0'"], ["from <= to", "'@0-3'"]),
    ("scope family", lambda e: lenskit.sites(e["model"], "ffn"), ["'ffn'"], ["'mlp'", "@layers"]),
    ("empty layers", lambda e: lenskit.sites(e["model"], lenskit.Selection(layers=[])),
     ["layers is empty"], ["at least one layer", "'mlp@0-3'"]),
    ("layer out of range", lambda e: lenskit.sites(e["model"], "mlp@7"),
     ["layer 7"], ["0..1"]),
    ("component", lambda e: lenskit.sites(e["model"], "mlp.gate"), ["'gate'"], ["'in'"]),
    ("structure", lambda e: lenskit.prune(e["model"], "magnitude", 0.5, structure="5:4",
                                          apply=False),
     ["'5:4'"], ["1 <= N <= M"]),
    ("allocation", lambda e: lenskit.prune(e["model"], "magnitude", 0.5, allocation="glob",
                                           apply=False),
     ["'glob'"], ["'uniform'", "'owl'"]),
    ("config sparsity nan", lambda e: lenskit.load_config(None, {"sparsities": "nan"}),
     ["nan"], ["[0, 1]"]),
    ("config method", lambda e: lenskit.load_config(None, {"methods": "wandaa"}),
     ["wandaa"], ["wanda"]),
    ("load_model file", lambda e: load_model(e["FILE"]), ["a_file.txt"],
     ["Hugging Face model directory", ".gguf"]),
    ("load_model missing", lambda e: load_model("/nonexistent/model"),
     ["/nonexistent/model"], ["'organism'"]),
    ("load_model dtype", lambda e: load_model(e["MODEL"], dtype="float8"),
     ["'float8'"], ["bfloat16"]),
    ("load_model device", lambda e: load_model(e["MODEL"], device="tpu"),
     ["'tpu'"], ["cuda:N"]),
    ("thresholds tolerance",
     lambda e: lenskit.compute_thresholds(None, tolerances=[5.0]), ["5.0"], ["(0, 1)"]),
    ("calibration samples",
     lambda e: lenskit.default_calibration(e["model"], n_samples=0), ["0"], ["positive"]),
    ("unknown task", lambda e: lenskit.build_suite(["nope_task"]), ["'nope_task'"],
     ["lenskit tasks"]),
    ("PruneResult directory", lambda e: lenskit.PruneResult.load(e["ROOT"]),
     ["is a directory"], ["PruneResult.save"]),
    ("PruneResult missing", lambda e: lenskit.PruneResult.load(Path(e["ROOT"]) / "x.st"),
     ["x.st"], ["PruneResult.save"]),
    ("PruneResult truncated", lambda e: lenskit.PruneResult.load(e["TRUNCATED"]),
     ["truncated.safetensors"], ["prune again"]),
    ("MaskSet directory", lambda e: lenskit.MaskSet.load(e["ROOT"]),
     ["is a directory"], ["MaskSet.save"]),
    ("MaskSet truncated", lambda e: lenskit.MaskSet.load(e["TRUNCATED"]),
     ["truncated.safetensors"], ["compute the masks again"]),
    ("export a non-result", lambda e: lenskit.export_pruned(e["model"], "x", e["ROOT"]),
     ["str"], ["PruneResult.load"]),
    ("world truncated", lambda e: lenskit.World.load(e["TRUNCATED"]),
     ["truncated.safetensors"], ["lenskit organism train"]),
    ("run dir foreign", lambda e: lenskit.RunStore.open(e["FOREIGN"], {"name": "x"}),
     ["foreign", "notes.txt"], ["choose another --out"]),
    ("merge one run", lambda e: lenskit.merge_runs([e["RUN"]], Path(e["ROOT"]) / "m"),
     ["got 1"], ["at least two"]),
]


@pytest.mark.parametrize(("call", "values", "fixes"), [c[1:] for c in API_CASES],
                         ids=[c[0] for c in API_CASES])
def test_api_message_names_the_value_and_the_fix(call, values, fixes, env):
    with pytest.raises((ValueError, OSError)) as e:
        call(env)
    msg = str(e.value)
    for needle in values:
        assert needle in msg, ("the bad value is not named", needle, msg)
    for needle in fixes:
        assert needle in msg, ("what is allowed / what to do is missing", needle, msg)


SWEEP = ["sweep", "--model", "MODEL", "--methods", "magnitude", "--threads", "1",
         "--no-figures", "--set", "matched=false", "--dry-run"]

# (argv, exit code, value needles, allowed/what-to-do needles)
CLI_CASES = [
    ([*SWEEP, "--sparsities", "nan"], 2, ["nan"], ["[0, 1]"]),
    ([*SWEEP, "--sparsities", "0.5", "--scopes", "mlp@"], 2, ["mlp@"], ["'@0-3'"]),
    ([*SWEEP, "--sparsities", "0.5", "--scopes", "mlp@9"], 2, ["mlp@9"], ["2 layers"]),
    ([*SWEEP, "--sparsities", "0.5", "--methods", "wandaa"], 2, ["wandaa"], ["wanda"]),
    ([*SWEEP, "--sparsities", "0.5", "--model", "FILE"], 2, ["a_file.txt"], [".gguf"]),
    ([*SWEEP, "--sparsities", "0.5", "--dtype", "float8"], 2, ["float8"], ["bfloat16"]),
    ([*SWEEP, "--sparsities", "0.5", "--device", "tpu"], 2, ["tpu"], ["cuda"]),
    ([*SWEEP, "--sparsities", "0.5", "--threads", "0"], 2, ["'0'"], [">= 1", "auto"]),
    (["sites", "MODEL", "--scope", "mlp@1-0"], 2, ["1-0"], ["from <= to"]),
    (["sites", "FILE"], 2, ["a_file.txt"], [".gguf"]),
    (["sites", "/nonexistent/model"], 2, ["/nonexistent/model"], ["'organism'"]),
    (["templates", "--model", "/nonexistent/model", "--task", "closed_book"], 2,
     ["/nonexistent/model"], ["'organism'"]),
    (["export", "RUN", "--model", "MODEL", "--out", "ROOT/out"], 2, ["run"],
     ["not masks", "lenskit export RUN_DIR --cell ID --out DIR"]),
    (["export", "TRUNCATED", "--model", "MODEL", "--out", "ROOT/out"], 1,
     ["truncated.safetensors"], ["prune again"]),
    (["export", "RESULT", "--model", "/nonexistent/model", "--out", "ROOT/out"], 2,
     ["/nonexistent/model"], ["'organism'"]),
    (["export", "ROOT/none.safetensors", "--model", "MODEL", "--out", "ROOT/out"], 1,
     ["none.safetensors"], ["PruneResult.save"]),
    (["thresholds", "/nonexistent/run"], 2, ["/nonexistent/run"], ["lenskit sweep --out"]),
    (["thresholds", "RUN", "--tolerance", "5"], 2, ["'5'"], ["(0, 1)"]),
    (["report", "/nonexistent/run"], 2, ["/nonexistent/run"], ["lenskit sweep --out"]),
    (["figures", "/nonexistent/run"], 2, ["/nonexistent/run"], ["lenskit sweep --out"]),
    (["merge", "RUN", "--out", "ROOT/merged"], 2, ["got 1"], ["at least two"]),
    (["doctor", "FOREIGN"], 1, ["foreign"], ["nothing to repair"]),
    ([*SWEEP[:-1], "--sparsities", "0.5", "--out", "FILE"], 1, ["a_file.txt"],
     ["choose another --out"]),
    ([*SWEEP[:-1], "--sparsities", "0.5", "--out", "FOREIGN"], 1, ["foreign", "notes.txt"],
     ["choose another --out"]),
]


def _fill(argv: list[str], env: dict) -> list[str]:
    keys = sorted((k for k in env if k.isupper()), key=len, reverse=True)
    out = []
    for a in argv:
        for k in keys:
            a = a.replace(k, env[k])
        out.append(a)
    return out


@pytest.mark.parametrize(("argv", "code", "values", "fixes"), CLI_CASES,
                         ids=[" ".join(c[0][:1] + c[0][-3:]) for c in CLI_CASES])
def test_cli_message_names_the_value_and_the_fix(argv, code, values, fixes, env, capsys):
    try:
        got = main(_fill(argv, env))
    except SystemExit as exit_:  # argparse rejects a flag's value with exit 2
        got = exit_.code
    err = capsys.readouterr().err
    assert got == code, err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in values:
        assert needle in lines[0], ("the bad value is not named", needle, err)
    for needle in fixes:
        assert needle in lines[0], ("what is allowed / what to do is missing", needle, err)
    assert not (Path(env["ROOT"]) / "out").exists()
    assert not (Path(env["ROOT"]) / "merged").exists()
