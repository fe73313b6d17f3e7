"""Config checks added with the config package: pinned cell ids, "did you mean" for typo'd
keys, method/allocation arguments checked against what the pruners take, one parser per
notation, TOML written with tomli-w."""

from __future__ import annotations

import pytest

import lenskit.sweep
from lenskit.models.sites import is_attention_scope, is_ffw_scope, parse_scopes
from lenskit.pruning import Pruner, Structure, default_calibration
from lenskit.pruning.allocation import ALLOCATION_PARAMS
from lenskit.pruning.pruner import METHOD_PARAMS
from lenskit.pruning.structure import parse_sparsities, sparsity_problems
from lenskit.sweep import Cell, ConfigError, SweepConfig, default_config, load_config
from lenskit.sweep import parse_structure as study_parse_structure

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def config_error(**overrides) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(None, overrides)
    return str(e.value)


def test_cell_ids_are_pinned():
    # Pinned since run format 2 (ids cover calibration and tasks): run directories made
    # since then must resume with the same ids on any machine.
    ids = [c.cell_id for c in default_config().cells()]
    assert ids[:3] == ["b49d21eced42", "dbd979003320", "979a24c32d38"]
    assert len(ids) == 75  # 73 of the organism + one dense cell per narrower member (2)
    cell = Cell("a", "sparsegpt", "unstructured", "owl", "attn", 0.5, 0, None,
                (("blocksize", 64), ("percdamp", 0.02)),
                (("owl_lambda", 0.1), ("owl_m", 7.0)),
                (("mode", "sequential"), ("n_samples", 32), ("seq_len", 128),
                 ("source", "default")),
                (("size", "small"), ("tasks", ("default",))))
    assert cell.cell_id == "550c9be90d65"
    cfg = SweepConfig(models=["a"], methods=["sparsegpt"], sparsities=[0.5], scopes=["attn",
                      "mlp"], allocations=["owl"], matched=False,
                      method_kwargs={"sparsegpt": {"blocksize": 64, "percdamp": 0.02}},
                      allocation_kwargs={"owl": {"owl_m": 7.0, "owl_lambda": 0.1}})
    assert cell in cfg.cells()


@pytest.mark.parametrize("overrides, expected", [
    ({"method": "wanda"}, "unknown setting 'method'; allowed: address, allocation_kwargs, "),
    ({"sparsites": "0.5"}, "(did you mean 'sparsities'?)"),
    ({"calibraton.n_samples": "4"}, "(did you mean 'calibration'?)"),
    ({"calibration.samples": "4"}, "unknown calibration setting 'samples'; allowed: "
                                   "n_samples, seq_len, sequential, source (did you mean "
                                   "'n_samples'?)"),
    ({"method_kwrgs.wanda.x": "1"}, "(did you mean 'method_kwargs'?)"),
    ({"method_kwargs.sparsegtp.blocksize": "64"},
     "method_kwargs: unknown method 'sparsegtp'; allowed: random, magnitude, wanda, "
     "sparsegpt (did you mean 'sparsegpt'?)"),
    ({"allocation_kwargs.ow.owl_m": "5"}, "(did you mean 'owl'?)"),
    ({"task_size": "ful"}, "unknown task_size 'ful'; allowed: small, full (did you mean "
                           "'full'?)"),
])
def test_typos_get_did_you_mean(overrides, expected):
    assert expected in config_error(**overrides)


def test_method_arguments_are_checked_against_the_pruner():
    msg = config_error(**{"method_kwargs.wanda.blocksize": "64"})
    assert "method 'wanda' takes no argument 'blocksize'; allowed: none" in msg
    msg = config_error(**{"method_kwargs.sparsegpt.blocksiz": "64"})
    assert ("method 'sparsegpt' takes no argument 'blocksiz'; allowed: blocksize, percdamp "
            "(did you mean 'blocksize'?)") in msg
    msg = config_error(**{"method_kwargs.wanda.owl_m": "5"})
    assert "'owl_m' belongs in allocation_kwargs.owl" in msg
    msg = config_error(**{"method_kwargs.sparsegpt.blocksize": "big"})
    assert "method_kwargs.sparsegpt.blocksize: blocksize must be a positive int, got 'big'" in msg
    msg = config_error(**{"method_kwargs.magnitude.per_row": "1"})
    assert "per_row must be True or False, got 1" in msg


def test_allocation_arguments_are_checked_against_the_allocation():
    msg = config_error(**{"allocation_kwargs.owl.M": "5"})
    assert "allocation 'owl' takes no argument 'M'; allowed: owl_lambda, owl_m" in msg
    msg = config_error(**{"allocation_kwargs.uniform.owl_m": "5"})
    assert "allocation 'uniform' takes no argument 'owl_m'; allowed: none" in msg
    msg = config_error(**{"allocation_kwargs.owl.owl_lambda": "0.9"})
    assert "owl_lambda must be a number in [0, 0.5], got 0.9" in msg
    # every problem at once, before anything loads
    with pytest.raises(ConfigError) as e:
        SweepConfig(method_kwargs={"wanda": {"blocksize": 64}},
                    allocation_kwargs={"owl": {"M": 5, "lam": 0.1}}).validate()
    assert len(e.value.problems) == 3


def test_every_argument_the_config_allows_builds_a_pruner(tiny_dirs):
    # The config's allowed arguments are the pruner's own tables: a valid config's cells
    # always construct.
    model = lenskit.load_model(tiny_dirs["llama"])
    cal = default_calibration(model, n_samples=2, seq_len=8, seed=0)
    for method, params in METHOD_PARAMS.items():
        for alloc, alloc_params in ALLOCATION_PARAMS.items():
            if (method, alloc) == ("sparsegpt", "global") or (alloc == "global" and params.get(
                    "per_row")):
                continue
            cfg = SweepConfig(methods=[method], allocations=["uniform", alloc]
                              if alloc == "matched" else [alloc],
                              method_kwargs={method: dict(params)},
                              allocation_kwargs={alloc: dict(alloc_params)})
            cell = next(c for c in cfg.cells() if c.allocation == alloc and not c.is_dense)
            Pruner(model, cell.method, scope=cell.scope, allocation=cell.allocation,
                   calibration=cal, **cell.kwargs, **cell.alloc_kwargs)


def test_one_structure_parser():
    assert study_parse_structure("2:4") == lenskit.parse_structure("2:4") == Structure(2, 4)
    assert type(study_parse_structure("2:4")) is Structure
    assert study_parse_structure("unstructured").unstructured
    with pytest.raises(ValueError, match="'5:4'"):
        study_parse_structure("5:4")


def test_one_scope_and_sparsity_parser():
    assert parse_scopes("all;attn.q,k@0-3; mlp") == ["all", "attn.q,k@0-3", "mlp"]
    assert parse_scopes('["attn", "mlp.in"]') == ["attn", "mlp.in"]
    with pytest.raises(ValueError, match="bad scope 'ffn'"):
        parse_scopes("attn;ffn")
    assert is_attention_scope("attn.q,k@0-3") and is_attention_scope("q,v")
    assert not is_attention_scope("all") and is_ffw_scope("mlp.in@0-1")
    assert lenskit.sweep.is_attention_scope is is_attention_scope
    assert parse_sparsities("0.1, 0.5") == [0.1, 0.5] == parse_sparsities("[0.1, 0.5]")
    assert parse_sparsities(0.5) == [0.5] and parse_sparsities(["0.2", 1]) == [0.2, 1.0]
    with pytest.raises(ValueError, match="got 'a'"):
        parse_sparsities("0.1,a")
    with pytest.raises(ValueError, match="got True"):
        parse_sparsities([True])
    assert sparsity_problems([0.5, 50, 0.5000001], digits=6) == [
        "sparsity 50 outside [0, 1] (a fraction of the scope, not a percentage)",
        "duplicate sparsity 0.5000001 in sparsities"]
    assert "bad value '0.1,a' for 'sparsities'" in config_error(sparsities="0.1,a")


def test_toml_is_written_by_tomli_w_and_reads_back(tmp_path):
    cfg = SweepConfig(name='quote " and \\ back', models=["organism"], sparsities=[0.1, 1 / 3],
                      scopes=["all", "attn.q,k@0-1", "mlp"], seeds=[0, 2],
                      method_kwargs={"sparsegpt": {"blocksize": 64}, "magnitude": {}},
                      allocation_kwargs={"owl": {"owl_m": 4.0, "owl_lambda": 0.1}})
    text = cfg.to_toml()
    assert text.startswith("# lenskit sweep config")
    # TOML has no null: unset optional settings (None) are left out and read back as unset
    assert tomllib.loads(text) == {k: v for k, v in cfg.to_dict().items() if v is not None}
    back = load_config(cfg.save(tmp_path / "c.toml"))
    assert back == SweepConfig.from_dict(cfg.to_dict())
    assert back.to_dict() == cfg.to_dict()
    assert [c.cell_id for c in back.cells()] == [c.cell_id for c in cfg.cells()]


# ----------------------------------------------------------------------------- suite specs


def test_suite_specs_parse_from_command_line_and_tables():

    cfg = load_config(None, {"suite": "fn_linear:d=2,n=40;countries_capital_closed_book:n=20"})
    assert cfg.suite == ["fn_linear:d=2,n=40", "countries_capital_closed_book:n=20"]
    cfg2 = SweepConfig.from_dict({"suite": {"fn_linear": {"d": 2, "n": 40}}})
    assert cfg2.suite == [{"task": "fn_linear", "d": 2, "n": 40}]
    assert SweepConfig.from_dict(cfg.to_dict()).suite == cfg.suite


@pytest.mark.parametrize(("spec", "needle"), [
    ("trivia_qa", "triviaqa"),               # unknown task: did you mean
    ("fn_linear:dd=2", "'d'"),               # unknown parameter: did you mean
    ("fn_linear:d=two", "two"),              # bad value named
])
def test_bad_suite_specs_fail_at_validation(spec, needle):

    with pytest.raises(ConfigError) as e:
        load_config(None, {"suite": spec})
    assert needle in str(e.value)


def test_sweep_evaluates_the_named_suite(tiny_dirs, tmp_path):
    from lenskit.sweep import run_sweep

    cfg = load_config(None, {
        "models": str(tiny_dirs["llama"]), "methods": "magnitude", "sparsities": "0.5",
        "scopes": "all", "matched": "false", "out_dir": str(tmp_path / "run"),
        "suite": "fn_linear:d=1,n=8,exemplars=4;countries_capital_closed_book:n=6,shots=1",
        "calibration.n_samples": "2", "calibration.seq_len": "8"})
    out = run_sweep(cfg, progress=False, echo=lambda _: None)
    n = out.results.groupby("task")["n"].first()
    assert set(n.index) == {"fn_linear_d1_n4_k2", "countries_capital_closed_book"}
    assert n["fn_linear_d1_n4_k2"] == 8 and n["countries_capital_closed_book"] == 6
