"""Each sweep setting is declared once (lenskit.sweep.settings): the config's fields, the
conversions of file and --set values, the tables of a config file, the ``lenskit sweep``
options and the settings a run may change between sessions all come from that table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from lenskit.cli import build_parser
from lenskit.cli.sweep import overrides
from lenskit.rundir.store import DEFAULT_IGNORED_KEYS
from lenskit.sweep import CalibrationConfig, SweepConfig
from lenskit.sweep.config.overrides import CALIBRATION_TYPES, FIELD_TYPES
from lenskit.sweep.settings import (
    CALIBRATION_SETTINGS,
    SETTINGS,
    setting_kinds,
    steady_settings,
    sweep_flags,
)


def test_the_dataclasses_hold_exactly_the_declared_settings():
    assert [f.name for f in dataclasses.fields(SweepConfig)] == [s.name for s in SETTINGS]
    assert [f.name for f in dataclasses.fields(CalibrationConfig)] == \
        [s.name for s in CALIBRATION_SETTINGS]
    assert setting_kinds(SETTINGS) == FIELD_TYPES
    assert setting_kinds(CALIBRATION_SETTINGS) == CALIBRATION_TYPES


def test_settings_that_do_not_change_results_are_the_ones_a_run_may_change():
    assert set(steady_settings()) == set(DEFAULT_IGNORED_KEYS)


def test_every_sweep_option_sets_its_declared_setting():
    argv = ["sweep", "--model", "organism", "--model", "organism-d64",
            "--methods", "magnitude", "wanda", "--sparsities", "0.5", "0.25",
            "--scopes", "attn.q,k@0-1", "mlp", "--suite", "fn_linear", "perplexity",
            "--tasks", "fn_linear", "--task-size", "full", "--seeds", "3", "4",
            "--out", "runs/x", "--device", "cpu", "--dtype", "bfloat16",
            "--device-map", "auto", "--executor", "ray", "--address", "auto",
            "--workers", "2"]
    got = overrides(build_parser().parse_args(argv))
    assert set(got) == {s.name for s in sweep_flags()}
    cfg = SweepConfig().with_overrides(got)
    assert cfg.models == ["organism", "organism-d64"]
    assert cfg.methods == ["magnitude", "wanda"] and cfg.sparsities == [0.5, 0.25]
    assert cfg.scopes == ["attn.q,k@0-1", "mlp"]  # a scope's comma survives the join
    assert [s if isinstance(s, str) else s["task"] for s in cfg.suite] == \
        ["fn_linear", "perplexity"]
    assert (cfg.tasks, cfg.task_size, cfg.seeds, cfg.out_dir) == \
        (["fn_linear"], "full", [3, 4], "runs/x")
    assert (cfg.device, cfg.dtype, cfg.device_map) == ("cpu", "bfloat16", "auto")
    assert (cfg.executor, cfg.address, cfg.workers) == ("ray", "auto", 2)


def test_the_parser_is_built_without_torch():
    code = ("import sys; from lenskit.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False"]
