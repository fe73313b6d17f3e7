"""``lenskit trace``: causal tracing from the command line, written to a run directory."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lenskit.analysis import load_traces, validate_maps
from lenskit.cli import main


def test_trace_writes_rows_items_and_record(tiny_dirs, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["trace", str(tiny_dirs["gpt_neox"]), "--out", str(out), "--tasks",
            "countries_capital_closed_book", "--n", "3", "--kinds", "mlp", "attn",
            "--positions", "subject_last", "last", "--n-noise", "2", "--n-bootstrap", "50",
            "--threads", "1", "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "countries_capital_closed_book: 3 prompts" in text and "traces written to" in text
    rows = load_traces(out)
    validate_maps(rows.drop(columns="trace"))
    assert set(rows["trace"]) == {"trace"} and set(rows["task"]) == {
        "countries_capital_closed_book"}
    assert len(rows) == 2 * 2 * 2 * 3  # kinds x positions x layers x metrics
    items = pd.read_parquet(out / "traces" / "trace_items.parquet")
    assert len(items) == 3 * 2 * 2 * 2 and items["instance_id"].nunique() == 3
    record = json.loads((out / "traces" / "trace.json").read_text())
    assert record["corruption"] == "noise" and record["n_noise"] == 2
    assert record["attrs"]["noise_std"] > 0 and "torch" in record["versions"]


@pytest.mark.parametrize("argv, needle", [
    (["--tasks", "no_such_task"], "unknown task"),
    (["--tasks", "perplexity"], "needs QA tasks"),
    (["--positions", "middle"], "unknown positions"),
    (["--n", "0"], "must be an integer >= 1"),
])
def test_bad_trace_input_exits_2(tiny_dirs, tmp_path, argv, needle, capsys):
    try:
        code = main(["trace", str(tiny_dirs["opt"]), "--out", str(tmp_path / "r"),
                     "--threads", "1", "--quiet", *argv])
    except SystemExit as e:  # argparse refuses a bad value itself
        code = e.code
    assert code == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "r" / "traces").exists()
