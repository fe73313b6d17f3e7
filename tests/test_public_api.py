import subprocess
import sys

import lenskit


def test_every_public_name_resolves():
    missing = [name for name in lenskit.__all__ if getattr(lenskit, name, None) is None]
    assert not missing


def test_unknown_name_is_an_attribute_error():
    try:
        lenskit.no_such_thing  # noqa: B018
    except AttributeError as e:
        assert "no_such_thing" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_lazy():
    code = "import sys, lenskit; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_reprs_are_short_and_informative(tmp_path):
    import pandas as pd

    from lenskit.models import describe, load_model, make_tiny_model, model_info
    from lenskit.pruning import Pruner
    from lenskit.sweep.runner import SweepOutcome

    model = load_model(make_tiny_model("gpt2", tmp_path / "tiny"))
    info = model_info(model)
    text = describe(model)
    # the bridge's own repr (TransformerLens's module tree) is left alone; ours is one line
    assert len(repr(model)) > 2000 and "\n" not in text and len(text) < 300
    assert f"{info.total_params:,} block weights" in text and "2 layers" in text
    assert repr(info) == f"LoadedModel({text})"
    pruner = Pruner(model, "magnitude", scope="attn")
    r = repr(pruner)
    attn = sum(s.numel for s in info.select("attn"))
    assert r.startswith("Pruner('magnitude'") and " at 0x" not in r and len(r) < 300
    assert f"scope 'attn' ({len(info.select('attn'))} sites, {attn:,} weights)" in r
    outcome = SweepOutcome(tmp_path, pd.DataFrame({"a": range(7)}), pd.DataFrame(),
                           pd.DataFrame(), cells_run=3, cells_skipped=1, seconds=2.5)
    assert repr(outcome) == (f"SweepOutcome({str(tmp_path)!r}: 3 cells run, 1 skipped "
                             "(already done) in 2.5 s; 7 result rows, 0 thresholds, "
                             "0 instance rows)")


def test_lenskit_study_still_imports_under_its_old_names():
    # lenskit.study was split into results, rundir and sweep; code written against it keeps
    # working: its names, and its modules under their old paths (the new modules themselves).
    import importlib

    import lenskit.results
    import lenskit.rundir
    import lenskit.study as study
    import lenskit.sweep

    old_names = ["CATEGORIES", "CELL_KEYS", "DEFAULT_SPARSITIES", "DENSE", "INSTANCE_COLUMNS",
                 "KINDS", "KIND_CATEGORY", "MEASUREMENT_KEYS", "RESULT_COLUMNS",
                 "STUDY_THRESHOLDS", "STUDY_TOLERANCE", "TOLERANCES", "CalibrationConfig",
                 "Cell", "ConfigError", "ConfigMismatchError", "RunLockedError", "RunStore",
                 "SchemaError", "SweepConfig", "SweepOutcome", "attach_baselines",
                 "chance_level", "compare_to_study", "compute_thresholds", "default_config",
                 "empty_results", "environment_info", "finish_run", "format_study_comparison",
                 "format_thresholds", "higher_is_better", "instance_rows",
                 "instances_from_eval", "is_attention_scope", "is_ffw_scope", "iter_missing",
                 "known_allocations", "known_methods", "load_config", "merge_runs",
                 "model_label", "parse_structure", "primary_metric", "relative_drop",
                 "run_sweep", "study_comparison", "tasks_at_chance", "threshold_from_curve",
                 "validate_instances", "validate_results"]
    assert sorted(study.__all__) == sorted(old_names)
    assert study.RunStore is lenskit.rundir.RunStore is lenskit.RunStore
    assert study.compute_thresholds is lenskit.results.compute_thresholds
    assert study.run_sweep is lenskit.sweep.run_sweep
    moved = {"schema": "results", "thresholds": "results", "comparison": "results",
             "store": "rundir", "manifest": "rundir", "merge": "rundir", "doctor": "rundir",
             "lock": "rundir", "files": "rundir", "integrity": "rundir", "rundir": "rundir",
             "environment": "rundir", "config": "sweep", "config.grid": "sweep",
             "runner": "sweep", "preflight": "sweep", "executors": "sweep",
             "executors.work": "sweep"}
    for old, package in moved.items():
        new = importlib.import_module(f"lenskit.{package}.{old}")
        assert importlib.import_module(f"lenskit.study.{old}") is new, old
    from lenskit.study.config.grid import SPARSITY_DIGITS

    from lenskit.sweep.config.grid import SPARSITY_DIGITS as new_digits
    assert new_digits == SPARSITY_DIGITS
