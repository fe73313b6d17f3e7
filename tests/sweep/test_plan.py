"""A sweep's plan: derived from the config once, before the run directory is touched; and
the typed calibration source the config holds."""

from __future__ import annotations

import json
import pickle

import pytest

from lenskit.pruning.calibration_sources import CalibrationSource
from lenskit.sweep.config import ConfigError, SweepConfig, load_config
from lenskit.sweep.executors import LocalExecutor
from lenskit.sweep.plan import plan_sweep

GRID = {"models": "organism", "methods": "magnitude,wanda", "sparsities": "0.5",
        "scopes": "attn", "tasks": "closed_book_head", "matched": "false"}


def test_the_plan_holds_everything_before_the_run_directory_exists(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, {**GRID, "out_dir": str(out)})
    with plan_sweep(cfg, num_cpus=2) as plan:
        assert not out.exists()  # nothing on disk yet
        assert plan.cells == tuple(plan.config.cells())
        assert [c.method for c in plan.cells] == ["dense", "magnitude", "wanda"]
        assert plan.run_dir == out
        assert plan.run.settings == json.loads(json.dumps(plan.config.to_dict()))
        assert plan.run.settings["num_cpus"] == 2.0  # the override is applied ...
        assert "num_cpus" not in plan.run.history  # ... and changes no result
        assert isinstance(plan.executor, LocalExecutor) and plan.owns_executor
        units = plan.units(plan.cells[1:])
        assert [u.cells for u in units] == [(plan.cells[1],), (plan.cells[2],)]
    assert plan.executor.worker is None  # the plan closed the executor it made


def test_an_executor_passed_in_stays_the_callers(tmp_path):
    cfg = load_config(None, {**GRID, "out_dir": str(tmp_path / "run")})
    mine = LocalExecutor(cfg)
    with plan_sweep(cfg, executor=mine) as plan:
        assert plan.executor is mine and not plan.owns_executor
    assert mine.worker is not None


def test_a_bad_plan_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, {**GRID, "out_dir": str(out), "tasks": "no_such_task"})
    with pytest.raises(ConfigError, match="unknown task 'no_such_task'"):
        plan_sweep(cfg)
    with pytest.raises(ConfigError, match="unknown executor 'nope'"):
        plan_sweep(load_config(None, {**GRID, "out_dir": str(out)}), executor="nope")
    assert not out.exists()


def test_the_config_holds_its_calibration_source_parsed(tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text("some calibration text " * 50)
    cfg = load_config(None, {**GRID, "calibration.source": str(text)})
    src = cfg.calibration.source
    assert isinstance(src, CalibrationSource)
    assert (src.kind, src.where) == ("text", str(text))
    assert src == str(text) and cfg.to_dict()["calibration"]["source"] == str(text)
    assert cfg.with_overrides({"batch_size": 8}).calibration.source.kind == "text"
    cfg.calibration.source = "random"  # set later: parsed as it is set
    assert cfg.calibration.source.kind == "random"
    copy = pickle.loads(pickle.dumps(src))  # a Ray worker gets the parse, not a new one
    text.unlink()
    assert (copy.kind, copy.where) == ("text", str(text))


def test_a_source_that_does_not_parse_stays_as_given_and_is_reported(tmp_path):
    missing = f"c4:{tmp_path / 'gone.json.gz'}"
    cfg = SweepConfig().with_overrides({"calibration.source": missing})  # not validated yet
    assert cfg.calibration.source == missing
    assert not isinstance(cfg.calibration.source, CalibrationSource)
    assert any("no file" in p for p in cfg.problems())
    with pytest.raises(ConfigError, match="no file"):
        load_config(None, {**GRID, "calibration.source": missing})
