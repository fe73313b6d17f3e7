"""The organism family: a tiny family (three widths, one zipf world, one data order) trained
here in a few hundred steps, then resumed, installed, loaded by name and swept as the
default study does."""

import json
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lenskit.errors import UsageError
from lenskit.models import dense_siblings, install_family, load_model, model_info, organism_path
from lenskit.organism.family import (
    FAMILY_CORPUS,
    ICL_CORPUS,
    family_config,
    icl_stage_config,
    member_name,
    train_family,
)
from lenskit.organism.train import TrainConfig, _optimizer, train, train_step
from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import WorldConfig

pytestmark = pytest.mark.xdist_group("organism-family")

BUCKET_TASKS = ("closed_book_head", "closed_book_torso", "closed_book_tail")
WIDTHS = (8, 16, 24)
TINY_WORLD = WorldConfig(n_memorised=24, n_held_out=20, n_unseen=4, n_cities=6,
                         popularity="zipf", zipf_exponent=1.0, name_words=2)
TINY_CORPUS = CorpusConfig(row_tokens=64, mixture=FAMILY_CORPUS.mixture, exemplar_weight=1.0,
                           function_curriculum=(20, 40, 60))
tiny = partial(family_config, steps=200, world=TINY_WORLD, corpus=TINY_CORPUS, batch_size=16,
               warmup=20, eval_every=10**6, checkpoint_every=50)
TINY_ICL_CORPUS = replace(TINY_CORPUS, mixture=ICL_CORPUS.mixture,
                          function_curriculum=(10, 20, 30), curriculum_style="mixed")
tiny2 = partial(icl_stage_config, steps=40, world=TINY_WORLD, corpus=TINY_ICL_CORPUS,
                batch_size=16, eval_every=10**6, checkpoint_every=20)


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    lines: list[str] = []
    members = train_family(root, WIDTHS, config=tiny, stage2=tiny2, log=lines.append)
    return root, members, lines


def _losses(run):
    return [json.loads(line)["loss"] for line in (run / "train_log.jsonl").open()]


def test_members_train_in_order_on_one_world_and_data_order(family):
    root, members, lines = family
    assert list(members) == ["organism-d8", "organism-d16", "organism-d24"]
    # each member's two stages, one member after the other
    assert [line.split(":")[0] for line in lines if "training" in line] == [
        n for m in members for n in (m, f"{m} (icl)")]
    assert all(p == root / n / "icl" / "model" for n, p in members.items())
    worlds = [json.loads((m / "world.json").read_text()) for m in members.values()]
    assert all(w["facts"] == worlds[0]["facts"] for w in worlds)
    # the same batches: the exposure replayed from each member's configs is identical
    assert all(w["exposure"] == worlds[0]["exposure"] for w in worlds)
    # counted once per stage for the family, kept beside the members; a member's world
    # counts both stages
    first = json.loads((root / "exposure.json").read_text())
    second = json.loads((root / "exposure-icl.json").read_text())
    assert first["key"]["steps"] == 200 and second["key"]["steps"] == 40
    assert worlds[0]["exposure"] == {
        e: {r: n + second["exposure"][e][r] for r, n in rels.items()}
        for e, rels in first["exposure"].items()}
    assert worlds[0]["exposure_config"]["steps"] == 240
    meta = json.loads((members["organism-d8"] / "training.json").read_text())
    assert meta["train_config"]["init_from"] == str((root / "organism-d8" / "model").resolve())
    assert meta["first_stage"]["train_config"]["steps"] == 200
    assert meta["first_stage"]["time"]["cpu_s"] > 0
    # the suite of a two-stage member is defined by its first stage's corpus: the same
    # perplexity rows as its first-stage model's
    from lenskit.tasks import organism_suite

    two, one = (organism_suite(p)["perplexity"] for p in
                (members["organism-d8"], root / "organism-d8" / "model"))
    assert [w.tokens for w in two.instances] == [w.tokens for w in one.instances]
    for width, (name, path) in zip(WIDTHS, members.items(), strict=True):
        assert model_info(load_model(path)).hf.config.hidden_size == width
        loss = _losses(root / name)
        assert len(loss) == 200
        assert sum(loss[-20:]) / 20 < 0.8 * sum(loss[:20]) / 20, name


def test_a_second_run_skips_finished_members(family):
    root, members, _ = family
    before = {n: (p / "model.safetensors").stat().st_mtime_ns for n, p in members.items()}
    lines: list[str] = []
    again = train_family(root, WIDTHS, config=tiny, stage2=tiny2, log=lines.append)
    assert again == members
    assert all("finished" in line for line in lines)
    assert before == {n: (p / "model.safetensors").stat().st_mtime_ns for n, p in again.items()}


def test_an_interrupted_member_resumes_to_the_same_weights(family, tmp_path):
    _, members, _ = family
    assert train(tmp_path / "organism-d8", tiny(8), progress=False, stop_after=70) is None
    resumed = train_family(tmp_path, (8,), config=tiny, stage2=None,
                           log=lambda _: None)["organism-d8"]
    a = load_file(members["organism-d8"].parent.parent / "model" / "model.safetensors")
    b = load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_started_with_another_recipe_is_refused(tmp_path):
    train(tmp_path / "organism-d8", tiny(8, steps=50), progress=False, stop_after=1)
    with pytest.raises(ValueError, match=r"another config \(differs in \['steps'\]\)"):
        train_family(tmp_path, (8,), config=tiny, stage2=None, log=lambda _: None)


def test_a_run_recorded_by_an_earlier_version_resumes(tmp_path):
    """The family started in the background recorded ``"compile": false`` (a setting this
    version no longer has): resuming and exporting it must still work."""
    from lenskit.organism.train import export_checkpoint

    run = tmp_path / "organism-d8"
    train(run, tiny(8, steps=60), progress=False, stop_after=50)
    recorded = json.loads((run / "train_config.json").read_text())
    (run / "train_config.json").write_text(json.dumps({**recorded, "compile": False}))
    assert (export_checkpoint(run, tmp_path / "at-50") / "config.json").is_file()
    done = train_family(tmp_path, (8,), config=partial(tiny, steps=60), stage2=None,
                        log=lambda _: None)
    assert len(_losses(run)) == 60 and (done["organism-d8"] / "world.json").is_file()


def test_checkpoint_model_is_the_exported_checkpoint_without_writing(tmp_path):
    from lenskit.organism.train import checkpoint_model, export_checkpoint

    run = tmp_path / "organism-d8"
    train(run, tiny(8, steps=60), progress=False, stop_after=30)
    files = sorted(p.relative_to(run) for p in run.rglob("*"))
    model, tok, cfg, step = checkpoint_model(run)
    assert step == 30 and cfg.model.d_model == 8 and not model.training
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == files  # wrote nothing
    exported = load_file(export_checkpoint(run, tmp_path / "at-30") / "model.safetensors")
    mine = model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in exported.items())
    ids = torch.tensor([[tok.bos_token_id, *tok("capital", add_special_tokens=False)["input_ids"]]])
    assert torch.isfinite(model(ids).logits).all()
    with pytest.raises(UsageError, match="holds no checkpoint"):
        checkpoint_model(tmp_path)


def test_bad_widths_are_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        train_family(tmp_path, (8, 12), config=tiny)
    with pytest.raises(ValueError, match="distinct"):
        train_family(tmp_path, (8, 8), config=tiny)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def installed(family, tmp_path_factory):
    """The tiny family installed as the shipped organisms (``LENSKIT_DATA``), and the default
    study run on it (magnitude, 50%, scope all)."""
    from lenskit.sweep import load_config
    from lenskit.sweep.runner import run_sweep

    _, members, _ = family
    data = tmp_path_factory.mktemp("data")
    installed = install_family(dict(zip(WIDTHS, members.values(), strict=True)), data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LENSKIT_DATA", str(data))
        cfg = load_config(None, {"methods": "magnitude", "sparsities": "0.5", "scopes": "all",
                                 "matched": "false", "out_dir": str(data / "sweep")})
        out = run_sweep(cfg, progress=False, echo=lambda _: None)
        yield data, installed, cfg, out


def test_install_refuses_a_member_of_another_width(family, tmp_path):
    _, members, _ = family
    with pytest.raises(ValueError, match="width 16, given as 8"):
        install_family({8: members["organism-d16"]}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_installed_family_loads_by_name(installed, monkeypatch):
    data, names, _, _ = installed
    assert sorted(names) == ["organism", "organism-d16", "organism-d8"]
    monkeypatch.setenv("LENSKIT_DATA", str(data))
    assert organism_path() == data / "organism"
    assert organism_path("organism-d24") == organism_path()  # the widest by both names
    assert model_info(load_model("organism-d8")).hf.config.hidden_size == 8
    assert model_info(load_model("organism")).hf.config.hidden_size == 24
    assert dense_siblings() == ["organism-d8", "organism-d16"]


def test_default_study_prunes_the_widest_beside_its_dense_siblings(installed):
    from lenskit.plots.figures import fig_dense_scaling
    from lenskit.results import compute_thresholds

    _, _, cfg, out = installed
    assert cfg.models == ["organism"] and cfg.dense_models == ["organism-d8", "organism-d16"]
    res = out.results
    assert set(res[res["method"] == "dense"]["model"]) == {"organism", "organism-d8",
                                                           "organism-d16"}
    assert set(res[res["method"] == "magnitude"]["model"]) == {"organism"}
    assert set(BUCKET_TASKS) <= set(compute_thresholds(res)["task"])
    # 60 steps leave the tiny members at chance on every task, and figures leave such tasks
    # out; without recorded chance levels the figure's layout is what is checked here
    spec = fig_dense_scaling(res.assign(chance=float("nan"))).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert {r["model"] for r in rows if r["series"] == "dense"} == {
        "organism", "organism-d8", "organism-d16"}


def test_closed_book_over_all_buckets_pools_their_instances(installed):
    """The sweep reports closed_book (all facts) beside the buckets: per cell and metric its
    value is the mean over the buckets' instance rows together, recomputed here with pandas,
    its n their sum and its instance ids theirs, prefixed; thresholds include it; figure 1's
    fact-recall mean uses it and not the buckets (the same instances twice)."""
    from lenskit.plots.charts import prepare_results
    from lenskit.results import compute_thresholds

    _, _, _, out = installed
    res, inst = out.results, out.instances
    pooled = res[res["task"] == "closed_book"]
    assert len(pooled) and set(pooled["cell_id"]) == set(res["cell_id"])
    buckets = inst[inst["task"].isin(BUCKET_TASKS)]
    for (cell, metric), rows in buckets.groupby(["cell_id", "metric"]):
        want = np.average(rows["value"], weights=rows["weight"])
        got = pooled[(pooled["cell_id"] == cell) & (pooled["metric"] == metric)]
        assert len(got) == 1 and got["value"].iloc[0] == pytest.approx(want, rel=1e-9)
        assert got["n"].iloc[0] == len(rows)
        mine = inst[(inst["cell_id"] == cell) & (inst["metric"] == metric)
                    & (inst["task"] == "closed_book")]
        assert sorted(mine["instance_id"]) == sorted(rows["task"] + "/" + rows["instance_id"])
    assert "closed_book" in set(compute_thresholds(res)["task"])
    drawn = set(prepare_results(res.assign(chance=float("nan")), ["fact_recall"])["task"])
    assert drawn == {"closed_book"}


def test_pooling_refuses_what_it_cannot_pool(installed):
    from lenskit.models import load_model
    from lenskit.tasks import evaluate_suite, organism_suite

    data, *_ = installed
    model = load_model(data / "organisms" / "organism-d8")
    suite = organism_suite(model, "small", seed=0)
    small = {k: replace(v, instances=v.instances[:5]) for k, v in suite.items()
             if k in (*BUCKET_TASKS, "open_book")}
    result = evaluate_suite(model, small, n_bootstrap=0)
    assert result.meta["tasks"]["closed_book"]["pooled_from"] == list(BUCKET_TASKS)
    with pytest.raises(ValueError, match="a task of that name is present"):
        result.pooled("closed_book", BUCKET_TASKS)
    with pytest.raises(ValueError, match=r"missing \['closed_book_x'\]"):
        result.pooled("cb", ["closed_book_head", "closed_book_x"])
    with pytest.raises(ValueError, match="different kinds"):
        result.pooled("mixed", ["closed_book_head", "open_book"])


def test_recall_by_exposure_counts_every_closed_book_instance(installed, monkeypatch):
    from lenskit.analysis.exposure import recall_by_exposure, results_exposure
    from lenskit.synthetic.world import World

    data, _, _, out = installed
    monkeypatch.setenv("LENSKIT_DATA", str(data))
    exposure = results_exposure(out.results)
    world = World.load(data / "organism" / "world.json")
    assert len(exposure) == world.n_facts
    assert exposure[f"cb-{world.memorised[0]}-capital"] == world.exposure[
        world.memorised[0]]["capital"]
    table = recall_by_exposure(out.results, out.instances, exposure, bins=(0, 5, 20))
    # each fact once: the buckets' rows (the pooled closed_book repeats them)
    inst = out.instances[out.instances["task"].isin(BUCKET_TASKS)
                         & (out.instances["metric"] == "em")]
    for cell, rows in table.groupby("model"):
        ids = out.results[out.results["model"] == cell]["cell_id"].unique()
        mine = inst[inst["cell_id"].isin(ids)]
        assert rows["n"].sum() == len(mine)
        # recomputed by hand: the share correct among facts stated 20 times or more
        many = mine[mine["instance_id"].map(exposure) >= 20]
        top = rows[rows["exposure_bin"] == "≥20"]
        if len(many):
            assert top["value"].iloc[0] == pytest.approx(many["value"].mean())
            assert top["ci_low"].iloc[0] <= top["value"].iloc[0] <= top["ci_high"].iloc[0]
    assert set(table["exposure_bin"]) <= {"0-4", "5-19", "≥20"}
    with pytest.raises(ValueError, match="increasing left edges starting at 0"):
        recall_by_exposure(out.results, out.instances, exposure, bins=(1, 5))


def test_figures_and_report_show_recall_by_bucket_and_exposure(installed, monkeypatch):
    from lenskit.plots import make_figures, report_html

    data, _, _, out = installed
    monkeypatch.setenv("LENSKIT_DATA", str(data))
    paths = make_figures(out.results, data / "figs", instances=out.instances,
                         formats=("svg",))
    names = {p.name for p in paths}
    assert {"fig5_recall_by_bucket.svg", "fig6_recall_by_exposure.svg"} <= names
    svg = (data / "figs" / "fig5_recall_by_bucket.svg").read_text()
    assert "closed_book_tail" in svg and "open_book" in svg
    captions = (data / "figs" / "README.md").read_text()
    assert "## fig6_recall_by_exposure" in captions
    page = report_html(out.results, instances=out.instances)
    assert "data-name='fig5_recall_by_bucket'" in page
    assert "data-name='fig6_recall_by_exposure'" in page


def test_cli_trains_and_resumes_the_family(tmp_path, capsys):
    from lenskit.cli import main

    argv = ["organism", "family", "--root", str(tmp_path), "--widths", "8", "16", "--steps",
            "2", "--icl-steps", "3", "--eval-every", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "organism-d8: training" in out and "family complete" in out
    for w in (8, 16):
        cfg = json.loads((tmp_path / member_name(w) / "train_config.json").read_text())
        assert cfg["world"]["n_memorised"] == 2500 and cfg["world"]["popularity"] == "zipf"
        assert cfg["model"]["d_model"] == w and cfg["steps"] == 2
        icl = json.loads((tmp_path / member_name(w) / "icl" / "train_config.json").read_text())
        assert icl["steps"] == 3 and icl["corpus"]["curriculum_style"] == "mixed"
    assert main(argv) == 0
    assert "organism-d16 (icl): finished" in capsys.readouterr().out
    # the card of a member names the family command that reproduces it
    from lenskit.organism.card import _cost, _reproduce

    meta = json.loads((tmp_path / "organism-d16" / "icl" / "model" / "training.json").read_text())
    first = meta["first_stage"]
    assert _reproduce(first["train_config"], "", 1.0, "model", meta["train_config"]).startswith(
        "`lenskit organism family --steps 2 --icl-steps 3 --root runs`")
    assert _reproduce(first["train_config"], "", 1.0, "model").startswith(
        "`lenskit organism family --steps 2 --icl-steps 0 --root runs`")
    log = [json.loads(line)
           for line in (tmp_path / "organism-d16" / "icl" / "train_log.jsonl").open()]
    cost = _cost(log, first)
    total = (log[-1]["cpu_s"] + first["time"]["cpu_s"]) / 3600
    assert f"{total:.2f} core-hours of CPU time" in cost and "first stage" in cost
    other = {**first["train_config"], "lr": 0.01}
    assert _reproduce(other, " --d-model 16", 1.0, "x").startswith("`lenskit organism train")
    assert main([*argv[:5], "12"]) == 2
    assert "multiple of 8" in capsys.readouterr().err


def test_bfloat16_autocast_steps_like_float32():
    world = TINY_WORLD.build()
    tok = build_tokenizer(organism_vocabulary(world))
    batches = [CorpusSampler(world, tok, TINY_CORPUS).batch(s, 16) for s in range(60)]
    curves = {}
    for dtype in ("float32", "bfloat16"):
        cfg = replace(tiny(16, dtype=dtype, steps=60), lr=1e-2, warmup=5)
        torch.manual_seed(0)
        from transformers import LlamaForCausalLM

        model = LlamaForCausalLM(cfg.model.hf_config(tok))
        opt = _optimizer(model, cfg)
        curves[dtype] = [float(train_step(model, opt, b, cfg, s)[0])
                         for s, b in enumerate(batches)]
        assert all(p.dtype == torch.float32 for p in model.parameters())
    f32, b16 = curves["float32"], curves["bfloat16"]
    assert f32[0] != b16[0] and abs(f32[0] - b16[0]) < 0.02 * f32[0]
    assert sum(b16[-5:]) < 0.8 * sum(b16[:5])
    assert abs(sum(f32[-5:]) - sum(b16[-5:])) < 0.05 * sum(f32[-5:])


def test_train_config_refuses_an_unknown_dtype():
    with pytest.raises(ValueError, match=r"unknown training dtype 'float16'; allowed: "
                                         r"\('float32', 'bfloat16'\)"):
        TrainConfig(dtype="float16")
