"""The `lenskit` command end to end on a tiny model: sites, a sweep, thresholds, figures."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from lenskit.cli import main, resolve_threads
from lenskit.results.thresholds import compute_thresholds, format_thresholds, tasks_at_chance
from lenskit.rundir import RunStore


def test_sites_lists_the_selection(tiny_dirs, capsys):
    assert main(["sites", str(tiny_dirs["opt"]), "--scope", "attn@0"]) == 0
    out = capsys.readouterr().out
    for comp in ("q", "k", "v", "o"):
        assert f"0.attn.{comp}" in out
    assert "mlp" not in out.replace("attn", "")


def test_sweep_thresholds_and_figures(tmp_path, capsys):
    # The organism, because figures leave out tasks a (random) dense model does at chance.
    run = tmp_path / "run"
    args = ["sweep", "--model", "organism", "--methods", "magnitude",
            "--sparsities", "0.3", "0.7", "--scopes", "attn", "mlp",
            "--tasks", "closed_book", "open_book",
            "--out", str(run), "--set", "matched=false", "--set", "calibration.n_samples=4",
            "--set", "calibration.seq_len=32", "--threads", "1"]
    assert main([*args, "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "5 cells" in listed and not run.exists()  # a dry run writes nothing

    assert main([*args, "--no-figures"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["sparsities"] == [0.3, 0.7]
    assert len(list((run / "cells").glob("*.parquet"))) == 5

    assert main(["thresholds", str(run)]) == 0
    printed = capsys.readouterr().out
    store = RunStore(run)
    written = store.read_table("thresholds")
    results = store.results()
    # The written table is the thresholds of the stored results (and their instances).
    want = compute_thresholds(results, store.instances(), tolerances=[0.02, 0.05, 0.1])
    key = ["scope", "task", "metric", "tolerance"]
    pd.testing.assert_frame_equal(written.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True))
    # ... and its point thresholds are the first-crossing rule applied by hand to the
    # stored accuracies: the largest level whose leading run of drops stays within 5%.
    em = results[results["metric"] == "em"]
    for task in ("closed_book", "open_book"):
        base = float(em[(em["task"] == task) & (em["method"] == "dense")]["value"].iloc[0])
        for scope in ("attn", "mlp"):
            curve = em[(em["task"] == task) & (em["scope"] == scope)
                       & (em["method"] != "dense")].sort_values("target_sparsity")
            thr, censored = 0.0, True
            for sp, v in zip(curve["target_sparsity"], curve["value"], strict=True):
                if (base - v) / base > 0.05 + 1e-9:
                    censored = False
                    break
                thr = sp
            row = written[(written["task"] == task) & (written["scope"] == scope)
                          & (written["metric"] == "em") & np.isclose(written["tolerance"], 0.05)]
            assert len(row) == 1
            assert row["threshold"].iloc[0] == pytest.approx(thr), (task, scope)
            assert bool(row["censored"].iloc[0]) == censored, (task, scope)
    # What was printed is the table that was written.
    assert format_thresholds(written, tolerance=0.05,
                             at_chance=tasks_at_chance(results)) in printed

    assert main(["figures", str(run), "--out", str(tmp_path / "figs"), "--formats", "svg"]) == 0
    svgs = list((tmp_path / "figs").glob("*.svg"))
    assert svgs and all(p.read_text().lstrip().startswith("<svg") for p in svgs)


@pytest.mark.parametrize("argv, needle", [
    (["sweep", "--methods", "wandaa", "--dry-run"], "wandaa"),
    (["sweep", "--threads", "0", "--dry-run"], "--threads"),
    (["thresholds", "/nonexistent/run"], "/nonexistent/run"),
])
def test_bad_input_exits_2_naming_the_value(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_resolve_threads():
    assert resolve_threads("3") == 3
    assert 1 <= resolve_threads("auto") <= (__import__("os").cpu_count() or 1)
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="--threads"):
            resolve_threads(bad)


@pytest.mark.parametrize("internal", [ValueError("a broken invariant"), KeyError("lost_key")])
def test_an_internal_error_is_reported_as_a_bug_not_as_bad_input(internal, tmp_path, capsys,
                                                                 monkeypatch):
    # Bad input is a UsageError, raised where the input enters; a plain ValueError or
    # KeyError from inside lenskit is a bug: one line, the --debug hint, exit 1 (not 2).
    from results.frames import synthetic_cell

    import lenskit.results.thresholds
    from lenskit.rundir import RunStore

    run = tmp_path / "run"
    with RunStore.open(run, {"name": "bug"}) as store:
        for i in range(3):
            cid, rows, inst = synthetic_cell(i, n_instances=5)
            store.write_cell(cid, rows, instances=inst)
    assert main(["thresholds", str(run)]) == 0  # the run itself is fine
    capsys.readouterr()

    def broken(*args, **kwargs):
        raise internal

    monkeypatch.setattr(lenskit.results.thresholds, "compute_thresholds", broken)
    assert main(["thresholds", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"unexpected {type(internal).__name__}" in err and "--debug" in err, err
    assert "please report" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(type(internal)):
        main(["--debug", "thresholds", str(run)])


def test_bad_input_is_a_usage_error_and_exits_2(tmp_path, capsys):
    from lenskit.errors import UsageError
    from lenskit.sweep.config import load_config

    with pytest.raises(UsageError, match="wandaa"):
        load_config(None, {"methods": "wandaa"})
    assert main(["sweep", "--set", "novalue", "--dry-run"]) == 2
    assert "unexpected" not in capsys.readouterr().err


def test_bad_input_deep_in_the_library_exits_2_not_as_a_bug(tmp_path, capsys):
    # Checks of corpus settings, the statistics' inputs and data files sit deep below the
    # command line; what a flag or a file can reach there is a UsageError (exit 2, no
    # --debug hint), raised before anything is written.
    from results.frames import synthetic_cell

    out = tmp_path / "organism"
    argv = ["organism", "train", "--out", str(out), "--steps", "1", "--eval-every", "0"]
    assert main([*argv, "--exemplar-weight", "1.5"]) == 2  # synthetic.corpus
    err = capsys.readouterr().err
    assert "exemplar_weight must be in [0, 1], got 1.5" in err and "unexpected" not in err
    assert not out.exists()

    run = tmp_path / "run"  # instance weights that sum to 0 reach the bootstrap (stats)
    with RunStore.open(run, {"name": "zero weights"}) as store:
        for i in range(3):
            cid, rows, inst = synthetic_cell(i, n_instances=5)
            store.write_cell(cid, rows, instances=inst.assign(weight=0.0))
    assert main(["thresholds", str(run)]) == 2
    err = capsys.readouterr().err
    assert "weights must be >= 0 and sum to more than zero" in err and "--debug" not in err


def test_public_argument_checks_are_usage_errors(tmp_path):
    from lenskit.errors import UsageError
    from lenskit.models import make_tiny_model
    from lenskit.stats import bootstrap_means
    from lenskit.synthetic.world import WorldConfig

    with pytest.raises(UsageError, match=re.escape("allowed: ('uniform', 'zipf')")):
        WorldConfig(popularity="pareto")
    with pytest.raises(UsageError, match="n_boot must be an int >= 1, got 0"):
        bootstrap_means(np.ones((1, 3)), None, n_boot=0)
    with pytest.raises(UsageError, match="unknown family 'gpt5'"):
        make_tiny_model("gpt5", tmp_path / "m")
