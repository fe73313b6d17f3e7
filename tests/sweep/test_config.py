"""Sweep configs: validation lists every problem, TOML round trip, ordered deterministic cells."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lenskit.results import validate_results
from lenskit.sweep import Cell, ConfigError, SweepConfig, default_config, load_config, model_label

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def problems_of(**kw) -> list[str]:
    with pytest.raises(ConfigError) as e:
        SweepConfig(**kw).validate()
    return e.value.problems


def test_default_config_is_valid_and_sized():
    cfg = default_config()
    cfg.validate()
    cells = cfg.cells()
    # 1 dense + 2 methods x 9 sparsities x 3 scopes + 2 methods x 9 matched + 2 siblings
    assert len(cells) == 1 + 54 + 18 + 2
    assert cfg.models == ["organism"] and cfg.methods == ["wanda", "magnitude"]
    # the family's dense narrower members, narrowest first
    assert cfg.dense_models == ["organism-d64", "organism-d72"]
    assert load_config(None).dense_models == ["organism-d64", "organism-d72"]


def test_other_models_drop_the_organisms_sibling():
    assert default_config(models=["gpt2"]).dense_models == []
    assert load_config(None, {"models": "gpt2"}).dense_models == []
    assert load_config(None, {"models": "gpt2", "dense_models": "organism-d64"}
                       ).dense_models == ["organism-d64"]


@pytest.mark.parametrize("kw, expected", [
    ({"methods": ["wandaa"]}, "unknown method 'wandaa'; allowed: random, magnitude, wanda, "
                              "sparsegpt"),
    ({"methods": []}, "methods is empty"),
    ({"methods": ["dense"]}, "method 'dense' is implicit"),
    ({"methods": ["wanda", "wanda"]}, "duplicate method 'wanda'"),
    ({"allocations": ["uniformm"]}, "unknown allocation 'uniformm'; allowed: uniform, global, "
                                    "owl"),
    ({"allocations": ["matched"]}, "allocations lists only 'matched'"),
    ({"structures": ["2-4"]}, "unknown structure '2-4'"),
    ({"structures": ["4:2"]}, "N:M needs 1 <= N <= M"),
    ({"structures": ["0:4"]}, "N:M needs 1 <= N <= M"),
    ({"structures": []}, "structures is empty"),
    ({"sparsities": []}, "sparsities is empty"),
    ({"sparsities": [0.5, 50]}, "sparsity 50 outside [0, 1] (a fraction of the scope"),
    ({"sparsities": [-0.1]}, "sparsity -0.1 outside [0, 1]"),
    ({"sparsities": [0.5, 0.5]}, "duplicate sparsity 0.5"),
    ({"sparsities": [float("nan")]}, "sparsity nan is not a number"),
    ({"scopes": ["attn", "mlp", "ffn"]}, "bad scope 'ffn'"),
    ({"scopes": ["attn", "mlp", "mlp@x"]}, "bad layers 'x' in scope 'mlp@x'"),
    ({"scopes": []}, "scopes is empty"),
    ({"scopes": ["all", "attn"]}, "matched comparison needs an attention-only scope and an "
                                  "FFW-only scope"),
    ({"matched_pairs": [["attn", "all"]]}, "must pair an attention-only scope with an "
                                           "FFW-only scope"),
    ({"matched_pairs": [["attn", "mlp.in"]]}, "scope(s) ['mlp.in'] not in scopes"),
    ({"structures": ["2:4"]}, "matched comparison needs structure 'unstructured'"),
    ({"structures": ["unstructured", "2:4"], "allocations": ["uniform", "owl"]},
     "structure '2:4' cannot use allocation 'owl'"),
    ({"structures": ["2:4"], "allocations": ["global"], "matched": False},
     "structure '2:4' cannot use allocation 'global'"),
    ({"methods": ["sparsegpt"], "allocations": ["global"]},
     "method 'sparsegpt' cannot use allocation 'global'"),
    ({"tasks": []}, "tasks is empty"),
    ({"tasks": ["default", "x"]}, "'default' already means the whole default suite"),
    ({"task_size": "medium"}, "unknown task_size 'medium'; allowed: small, full"),
    ({"seeds": []}, "seeds is empty"),
    ({"seeds": [0, -1]}, "seed -1 must be a non-negative integer"),
    ({"batch_size": 0}, "batch_size 0 must be a positive integer"),
    ({"models": []}, "models is empty"),
    ({"models": [""]}, "model spec '' must be a non-empty string"),
    ({"out_dir": ""}, "out_dir must be a non-empty path"),
    ({"method_kwargs": {"sparsegtp": {"blocksize": 64}}},
     "method_kwargs: unknown method 'sparsegtp'; allowed: random, magnitude, wanda, sparsegpt "
     "(did you mean 'sparsegpt'?)"),
])
def test_each_problem_is_reported(kw, expected):
    assert any(expected in p for p in problems_of(**kw)), problems_of(**kw)


def test_every_problem_in_one_error():
    with pytest.raises(ConfigError) as e:
        SweepConfig(methods=["wandaa", "sparsegpt"], sparsities=[1.5, 0.2],
                    scopes=["attn", "mlpp"], allocations=["uniform", "global"],
                    tasks=[], seeds=[-1]).validate()
    msg = str(e.value)
    assert msg.startswith("invalid sweep config (")
    for part in ("'wandaa'", "1.5", "'mlpp'", "'sparsegpt' cannot use allocation 'global'",
                 "tasks is empty", "seed -1", "no FFW-only scope"):
        assert part in msg, part
    assert len(e.value.problems) >= 7


def test_cells_are_validated_first():
    with pytest.raises(ConfigError):
        SweepConfig(methods=["nope"]).cells()


def test_custom_scopes_and_matched_pairs():
    cfg = SweepConfig(scopes=["attn.q,k@0-1", "mlp@0-1", "all"], sparsities=[0.2, 0.4],
                      methods=["magnitude"])
    cells = cfg.cells()
    assert cfg.matched_pairs_resolved() == [("attn.q,k@0-1", "mlp@0-1")]
    matched = [c for c in cells if c.is_matched]
    assert [(c.scope, c.match_scope, c.sparsity) for c in matched] == [
        ("mlp@0-1", "attn.q,k@0-1", 0.2), ("mlp@0-1", "attn.q,k@0-1", 0.4)]
    assert all(c.allocation == "matched" for c in matched)
    counts = {"all": 1000, "attn.q,k@0-1": 100, "mlp@0-1": 400}
    # 40% of 100 = 40 weights = 10% of the 400 FFW weights
    assert matched[1].resolve_sparsity(counts) == pytest.approx(0.1)
    assert matched[1].params_to_remove(counts) == 40
    cfg.check_model("organism", counts)
    # reversed pair: 40% of 400 = 160 > 100 weights
    rev = SweepConfig(scopes=["attn", "mlp"], matched_pairs=[["mlp", "attn"]],
                      sparsities=[0.2, 0.4], methods=["magnitude"])
    with pytest.raises(ConfigError, match="needs 160% of 'attn'"):
        rev.check_model("organism", {"all": 1000, "attn": 100, "mlp": 400})
    with pytest.raises(ConfigError, match="scope 'attn' selects no weights"):
        rev.check_model("organism", {"all": 1000, "attn": 0, "mlp": 400})


def test_cells_order_and_ids():
    cfg = SweepConfig(models=["a", "b"], seeds=[0, 1], methods=["wanda", "magnitude"],
                      sparsities=[0.5, 0.25], scopes=["attn", "mlp"],
                      structures=["unstructured", "2:4"])
    cells = cfg.cells()
    again = SweepConfig.from_dict(cfg.to_dict()).cells()
    assert cells == again and [c.cell_id for c in cells] == [c.cell_id for c in again]
    assert len({c.cell_id for c in cells}) == len(cells)
    # per model: dense cells (one per seed) first, then that model's pruned cells
    a = [c for c in cells if c.model == "a"]
    assert cells[:len(a)] == a
    assert [(c.method, c.seed) for c in a[:2]] == [("dense", 0), ("dense", 1)]
    assert not any(c.is_dense for c in a[2:])
    per_model = 2 + 2 * 2 * (2 * 2 + 2 + 2)  # dense + seeds x methods x (plain + N:M + matched)
    assert len(cells) == 2 * per_model
    # sparsity is innermost, in the order given; N:M cells sit at N/M
    first = a[2:4]
    assert [(c.method, c.scope, c.sparsity) for c in first] == [
        ("wanda", "attn", 0.5), ("wanda", "attn", 0.25)]
    nm = [c for c in a if c.structure == "2:4"]
    assert {c.sparsity for c in nm} == {0.5} and len(nm) == 2 * 2 * 2
    # ids are stable: a known cell has a known id
    tasks = (("size", "small"), ("tasks", ("default",)))
    dense = Cell("organism", "dense", "unstructured", "uniform", "all", 0.0, 0, tasks=tasks)
    assert dense.cell_id == default_config().cells()[0].cell_id
    assert all(c.dense() == dense for c in default_config().cells() if c.model == "organism")
    assert [c.dense().seed for c in cells if c.model == "b"][-1] == 1
    assert dense.cell_id == Cell("organism", "dense", "unstructured", "uniform", "all",
                                 0.0, 0, tasks=tasks).cell_id
    assert dense.cell_id != Cell("organism", "dense", "unstructured", "uniform", "all",
                                 0.0, 1, tasks=tasks).cell_id
    # method kwargs are part of the cell (and its id)
    kw = SweepConfig(method_kwargs={"magnitude": {"per_row": False}}).cells()
    plain = SweepConfig().cells()
    assert [c.kwargs for c in kw[1:3]] == [{}, {}]  # wanda's cells keep no arguments
    mag = next(i for i, c in enumerate(kw) if c.method == "magnitude")
    assert kw[mag].kwargs == {"per_row": False} and kw[mag].cell_id != plain[mag].cell_id


def test_toml_round_trip(tmp_path):
    cfg = SweepConfig(name="rt", models=["organism", "EleutherAI/pythia-70m"],
                      methods=["sparsegpt", "wanda"], sparsities=[0.1, 0.35],
                      scopes=["all", "attn.q,k@0-3", "mlp"], structures=["unstructured", "2:4"],
                      seeds=[0, 3], tasks=["default"], task_size="full", batch_size=8,
                      matched_pairs=[["attn.q,k@0-3", "mlp"]], out_dir="runs/rt",
                      method_kwargs={"sparsegpt": {"blocksize": 64, "percdamp": 0.02}},
                      matched=True,
                      allocation_kwargs={"owl": {"owl_m": 5, "owl_lambda": 0.08}})
    cfg.calibration.n_samples = 16
    cfg.calibration.sequential = True
    path = cfg.save(tmp_path / "c.toml")
    back = load_config(path)
    assert back == cfg
    assert back.to_toml() == cfg.to_toml()
    assert [c.cell_id for c in back.cells()] == [c.cell_id for c in cfg.cells()]


def test_yaml_and_overrides(tmp_path):
    pytest.importorskip("yaml")
    p = tmp_path / "c.yaml"
    p.write_text("methods: [magnitude]\nsparsities: [0.5]\ncalibration:\n  n_samples: 4\n")
    cfg = load_config(p, overrides={"scopes": "all;attn.q,k@0-1;mlp", "seeds": "0,1",
                                    "matched": "false", "calibration.seq_len": "64",
                                    "method_kwargs.magnitude.per_row": "true",
                                    "sparsities": "[0.2, 0.6]"})
    assert cfg.methods == ["magnitude"] and cfg.sparsities == [0.2, 0.6]
    assert cfg.scopes == ["all", "attn.q,k@0-1", "mlp"] and cfg.seeds == [0, 1]
    assert cfg.matched is False and cfg.calibration.n_samples == 4
    assert cfg.calibration.seq_len == 64 and cfg.method_kwargs == {"magnitude": {"per_row": True}}


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("methods = [wanda\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"must end in \.toml, \.yaml or \.yml"):
        load_config(tmp_path / "c.json")
    typo = tmp_path / "typo.toml"
    typo.write_text('method = ["wanda"]\nsparsities = "a,b"\n[calibration]\nsamples = 3\n')
    with pytest.raises(ConfigError) as e:
        load_config(typo)
    msg = str(e.value)
    assert "unknown setting 'method'" in msg and "'methods'" in msg
    assert "bad value 'a,b' for 'sparsities'" in msg
    assert "unknown calibration setting 'samples'" in msg
    with pytest.raises(ConfigError, match="invalid sweep config"):
        load_config(overrides={"sparsities": [2.0]})


@pytest.mark.parametrize("name", ["sweep_default.toml", "sweep_pythia.toml"])
def test_example_configs_load(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.cells()
    if name == "sweep_default.toml":
        assert cfg == default_config()


def test_cell_rows_follow_the_schema():
    cfg = SweepConfig(sparsities=[0.4], methods=["wanda"])
    dense, plain = cfg.cells()[0], cfg.cells()[2]
    matched = next(c for c in cfg.cells() if c.is_matched)
    counts = {"all": 1000, "attn": 250, "mlp": 750}
    meas = pd.DataFrame({"task": ["t", "t"], "kind": ["closed_book"] * 2,
                         "category": ["fact_recall"] * 2, "metric": ["em", "logprob"],
                         "value": [0.5, -2.0], "n": [10, 10], "ci_low": [0.4, -2.2],
                         "ci_high": [0.6, -1.8]})
    rows = pd.concat([dense.to_rows(meas, scope_params=counts, params_removed=0),
                      plain.to_rows(meas.drop(columns=["ci_low", "ci_high"]),
                                    scope_params=counts, params_removed=100),
                      matched.to_rows(meas, scope_params=counts, params_removed=100)])
    rows = validate_results(rows)
    assert plain.scope == "attn" and matched.scope == "mlp"
    assert list(rows["target_sparsity"]) == pytest.approx([0, 0, 0.4, 0.4, 100 / 750,
                                                           100 / 750])
    assert list(rows["remaining_params"]) == [1000, 1000, 900, 900, 900, 900]
    assert rows["ci_low"].isna().sum() == 2
    with pytest.raises(ValueError, match="outside"):
        plain.to_rows(meas, scope_params=counts, params_removed=251)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['n'\]"):
        plain.to_rows(meas.drop(columns="n"), scope_params=counts, params_removed=1)


def test_model_label(tmp_path):
    assert model_label("organism") == "organism"
    assert model_label("EleutherAI/pythia-70m") == "EleutherAI/pythia-70m"
    d = tmp_path / "my-model"
    d.mkdir()
    assert model_label(str(d)) == "my-model"
    assert model_label(str(d) + "/") == "my-model"


def test_dense_models_add_only_dense_cells():
    from lenskit.sweep.config import load_config

    cfg = load_config(None, {"dense_models": "organism-d64,organism-d72", "methods": "wanda",
                             "sparsities": "0.5", "scopes": "all", "matched": "false"})
    cells = cfg.cells()
    extra = [c for c in cells if c.model != "organism"]
    assert [c.model for c in extra] == ["organism-d64", "organism-d72"]
    assert all(c.is_dense for c in extra)
    assert len(cells) == 2 + 1 + 1  # organism dense + wanda@50% + two dense references
    with pytest.raises(ConfigError, match="also in models"):
        load_config(None, {"dense_models": "organism"})


def test_the_cli_and_the_api_load_a_config_file_the_same_way(tmp_path, capsys, caplog):
    import logging

    from lenskit.cli import main

    base = ('models = ["organism"]\nmethods = ["magnitude"]\nsparsities = [0.5]\n'
            f'out_dir = "{tmp_path / "run"}"\n')
    path = tmp_path / "sweep.toml"
    # scopes without an FFW-only scope: the matched comparison is turned off, both ways
    path.write_text(base + 'scopes = ["all", "attn"]\n')
    cfg = load_config(path)
    assert not cfg.matched and not any(c.is_matched for c in cfg.cells())
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{len(cfg.cells())} cells" in out and all(c.cell_id in out for c in cfg.cells())
    # scopes that allow it: the same matched cells, announced on stdout or in the log
    path.write_text(base + 'scopes = ["attn", "mlp"]\n')
    with caplog.at_level(logging.INFO, logger="lenskit.sweep.config.loading"):
        cfg = load_config(path)
    n = sum(c.is_matched for c in cfg.cells())
    assert n and f"{n} parameter-matched cells added" in caplog.text
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{n} parameter-matched cells added" in out and f"{len(cfg.cells())} cells" in out
    # a file that asks for the comparison where the scopes cannot pair: an error, both ways
    path.write_text(base + 'scopes = ["all"]\nmatched = true\n')
    with pytest.raises(ConfigError, match="matched comparison needs"):
        load_config(path)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "matched comparison needs" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
