"""The `lenskit` command end to end on a tiny model: sites, a sweep, thresholds, figures."""

import json
import re
import xml.etree.ElementTree as ET

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
    # The organism, because figures leave out tasks a (random) dense model does at chance;
    # its head facts (the popular third of its world) are the fact-recall task it knows best.
    run = tmp_path / "run"
    args = ["sweep", "--model", "organism", "--methods", "magnitude",
            "--sparsities", "0.3", "0.7", "--scopes", "attn", "mlp",
            "--tasks", "closed_book_head", "open_book",
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
    for task in ("closed_book_head", "open_book"):
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
    figs = tmp_path / "figs"
    # a zipf organism adds recall per popularity bucket and by exposure (tests/organism)
    assert sorted(p.name for p in figs.glob("*.svg")) == [
        "fig1_sparsity_curves.svg", "fig2_attention_vs_ffw.svg", "fig5_recall_by_bucket.svg",
        "fig6_recall_by_exposure.svg"]
    assert "closed_book_head" in (figs / "fig5_recall_by_bucket.svg").read_text()
    check_plotted_values(run, figs)


# The study's ability of each task: what the figures call the curve of a task.
ABILITY = {"closed_book_head": "fact recall", "open_book": "in-context learning"}
PART = {"attn": "attention", "mlp": "FFW"}


def svg_marks(path, role):
    """The fields of every mark of ``role`` in an SVG written by vega: each mark's ARIA label
    ("field: value; field: value"), which vega writes from the data the mark was drawn from."""
    marks = []
    for el in ET.parse(path).iter():
        if el.get("aria-roledescription") == role:
            marks.append(dict(f.split(": ", 1) for f in el.get("aria-label").split("; ")))
    return marks


def number(text: str) -> float:
    """A number as vega prints it: "96.666700%" -> 0.966667, "176,940" -> 176940."""
    text = text.replace(",", "")
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def same_marks(got: list[tuple], want: list[tuple]) -> None:
    """The same multiset of marks: labels and integers equal, numbers to vega's 6 digits."""
    def key(t):
        return tuple(round(v, 3) if isinstance(v, float) else v for v in t)

    assert len(got) == len(want), (sorted(got, key=key), sorted(want, key=key))
    for g, w in zip(sorted(got, key=key), sorted(want, key=key), strict=True):
        assert len(g) == len(w), (g, w)
        for a, b in zip(g, w, strict=True):
            assert a == (pytest.approx(b, abs=2e-6) if isinstance(b, float) else b), (g, w)


def check_plotted_values(run, figs):
    """The points and error bars of the CLI's figures are the stored accuracies relative to
    the dense model's, computed here from the cells' parquet files with pandas alone."""
    cells = pd.concat([pd.read_parquet(p) for p in sorted((run / "cells").glob("*.parquet"))])
    em = cells[cells["metric"] == "em"]
    dense = em[em["method"] == "dense"].set_index("task")["value"]
    pruned = em[em["method"] != "dense"]
    # one task per ability, so each plotted mean is that task's accuracy
    assert sorted(pruned["task"].unique()) == sorted(ABILITY)
    rows = [(r.scope, r.task, round(r.target_sparsity * 100), int(r.params_removed),
             r.value / dense[r.task], r.ci_low / dense[r.task], r.ci_high / dense[r.task])
            for r in pruned.itertuples()]
    assert len(rows) == 8 and min(r[4] for r in rows) < 0.97  # the curves do fall
    y = "accuracy relative to dense (%)"  # y of a point; the lower end of an error bar

    # fig1: the first scope given (attn), x the target sparsity (%), one curve per ability
    fig1 = figs / "fig1_sparsity_curves.svg"
    x1 = "sparsity (% of the scope's weights pruned)"
    same_marks([(p["ability"], p["tasks"], round(number(p[x1]) * 100), number(p[y]))
                for p in svg_marks(fig1, "point")],
               [(ABILITY[t], t, sp, rel) for s, t, sp, _, rel, _, _ in rows if s == "attn"]
               + [(a, "dense", 0, 1.0) for a in ABILITY.values()])
    same_marks([(b["ability"], round(number(b[x1]) * 100), number(b[y]), number(b["ci_high"]))
                for b in svg_marks(fig1, "rule mark") if "ci_high" in b],
               [(ABILITY[t], sp, lo, hi) for s, t, sp, _, _, lo, hi in rows if s == "attn"]
               + [(a, 0, 1.0, 1.0) for a in ABILITY.values()])

    # fig2: attention-only against FFW-only pruning, by sparsity of the part (top row) and
    # by weights removed (bottom row), one column per ability
    fig2 = figs / "fig2_attention_vs_ffw.svg"
    x2, n2 = "sparsity of the pruned part (%)", "weights removed (count)"

    def x(mark):
        return (("sparsity", round(number(mark[x2]) * 100)) if x2 in mark
                else ("removed", int(number(mark[n2]))))

    # the dense point opens each curve: at 0 on both rows, once per ability
    dense_marks = [(part, a, 0) for part in PART.values() for a in ("sparsity", "removed")
                   for _ in ABILITY]
    same_marks([(p["pruned part"], p["tasks"], *x(p), number(p[y]))
                for p in svg_marks(fig2, "point")],
               [m for s, t, sp, removed, rel, _, _ in rows
                for m in ((PART[s], t, "sparsity", sp, rel), (PART[s], t, "removed", removed, rel))]
               + [(p, "dense", a, v, 1.0) for p, a, v in dense_marks])
    same_marks([(b["pruned part"], *x(b), number(b[y]), number(b["ci_high"]))
                for b in svg_marks(fig2, "rule mark") if "ci_high" in b],
               [m for s, _, sp, removed, _, lo, hi in rows
                for m in ((PART[s], "sparsity", sp, lo, hi), (PART[s], "removed", removed, lo, hi))]
               + [(p, a, v, 1.0, 1.0) for p, a, v in dense_marks])


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
