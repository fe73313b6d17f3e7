"""A zipf-popularity organism end to end: exposure in world.json, closed-book tasks per
popularity bucket, per-bucket sweep rows and thresholds, the card's bucket table, the CLI."""

import json

import pandas as pd
import pytest

from lenskit.models import load_model
from lenskit.organism.card import bucket_rows, render_card, target_rows
from lenskit.organism.train import ModelConfig, TrainConfig, train
from lenskit.results import compute_thresholds
from lenskit.sweep import load_config
from lenskit.sweep.runner import run_sweep
from lenskit.synthetic.corpus import CorpusConfig, exposure_counts
from lenskit.synthetic.world import World, WorldConfig
from lenskit.tasks import evaluate_suite, organism_suite

BUCKET_TASKS = ["closed_book_head", "closed_book_torso", "closed_book_tail"]


def zipf_config(steps: int) -> TrainConfig:
    return TrainConfig(
        steps=steps, batch_size=8, lr=1e-2, warmup=2, checkpoint_every=5, eval_every=10**6,
        world=WorldConfig(n_memorised=24, n_held_out=20, n_unseen=4, n_cities=6,
                          popularity="zipf", zipf_exponent=1.0, name_words=2),
        model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ffn=64),
        corpus=CorpusConfig(row_tokens=64, function_curriculum=(2, 3, 4)),
    )


@pytest.fixture(scope="module")
def zipf_organism(tmp_path_factory):
    root = tmp_path_factory.mktemp("zipf")
    cfg = zipf_config(6)
    return train(root / "run", cfg, progress=False), root, cfg


def test_trained_world_records_buckets_and_exact_exposure(zipf_organism):
    model_dir, _, cfg = zipf_organism
    raw = json.loads((model_dir / "world.json").read_text())
    assert raw["buckets"][raw["memorised"][0]] == "head"
    assert raw["buckets"][raw["memorised"][-1]] == "tail"
    assert raw["exposure_config"]["steps"] == 6 and raw["exposure_config"]["batch_size"] == 8
    world = cfg.world.build()
    assert raw["exposure"] == exposure_counts(world, cfg.corpus, 6, 8, seed=cfg.seed)
    assert sum(sum(c.values()) for c in raw["exposure"].values()) > 0
    # The recorded config rebuilds the same world (the trainer's reproduction path).
    recorded = json.loads((model_dir / "training.json").read_text())["train_config"]["world"]
    assert WorldConfig(**recorded).build().facts == World.load(model_dir / "world.json").facts


def test_suite_has_one_closed_book_task_per_bucket(zipf_organism):
    model_dir, _, _ = zipf_organism
    tasks = organism_suite(model_dir, size="small", seed=0)
    assert "closed_book" not in tasks
    assert [t for t in tasks if t.startswith("closed_book")] == BUCKET_TASKS
    world = World.load(model_dir / "world.json")
    for name in BUCKET_TASKS:
        bucket = name.removeprefix("closed_book_")
        items = tasks[name].instances
        assert len(items) == 4 * 8  # 8 entities per tercile, 4 relations
        assert all(it.meta["bucket"] == bucket for it in items)
        assert all(world.bucket(it.meta["entity"]) == bucket for it in items)
        assert all(it.meta["exposure"] == world.exposure[it.meta["entity"]][it.meta["relation"]]
                   for it in items)


def test_sweep_reports_rows_thresholds_and_card_per_bucket(zipf_organism):
    model_dir, root, _ = zipf_organism
    model = load_model(model_dir)
    dense = evaluate_suite(model, organism_suite(model, size="small", seed=0),
                           batch_size=64).summary(n_bootstrap=20)
    cfg = load_config(None, {"models": str(model_dir), "methods": "magnitude",
                             "sparsities": "0.5", "scopes": "all", "matched": "false",
                             "out_dir": str(root / "sweep")})
    out = run_sweep(cfg, progress=False, echo=lambda _: None)
    em = out.results[out.results["metric"] == "em"]
    for name in BUCKET_TASKS:
        rows = em[em["task"] == name]
        assert set(rows["method"]) == {"dense", "magnitude"}
        assert set(rows["category"]) == {"fact_recall"}
    thresholds = compute_thresholds(out.results)
    assert set(BUCKET_TASKS) <= set(thresholds["task"])
    world = World.load(model_dir / "world.json")
    table = bucket_rows(world, dense)
    assert [r["bucket"] for r in table] == ["head", "torso", "tail"]
    head = float(dense[(dense.task == "closed_book_head") & (dense.metric == "em")].value.iloc[0])
    assert table[0]["closed-book EM"] == f"{100 * head:.1f}%"
    card = render_card(model_dir, dense, out.results, thresholds)
    assert "Popularity: zipf" in card and "| bucket | entities | facts |" in card
    assert "--popularity zipf --n-entities 24 --n-held-out 20 --n-cities 6 --name-words 2" in card
    assert "--function-curriculum 2,3,4" in card and "exemplars repeated until step 2" in card
    # a popularity world's target is that recall follows popularity, not that every fact
    # is held: the measured row lists the buckets' recall, checked against their order
    vals = [float(dense[(dense.task == t) & (dense.metric == "em")].value.iloc[0])
            for t in BUCKET_TASKS]
    rows = {r["target"]: r for r in target_rows(dense)}
    row = rows["closed-book recall follows popularity (near capacity)"]
    assert row["measured"] == " > ".join(f"{100 * v:.1f}%" for v in vals)
    assert row["met"] == ("yes" if vals[0] > vals[1] > vals[2] else "**no**")
    assert "closed-book fact recall" not in rows


def test_uniform_world_keeps_one_closed_book_task_and_no_bucket_table():
    world = WorldConfig(n_memorised=12, n_held_out=20, n_unseen=4, n_cities=6).build()
    tasks = organism_suite(world, size="small", seed=0)
    assert [t for t in tasks if t.startswith("closed_book")] == ["closed_book"]
    assert "bucket" not in tasks["closed_book"].instances[0].meta
    assert bucket_rows(world, pd.DataFrame({"task": [], "metric": [], "value": []})) == []


def test_cli_trains_a_zipf_world(tmp_path):
    from lenskit.cli import main

    rc = main(["organism", "train", "--out", str(tmp_path), "--steps", "2", "--d-model", "16",
               "--layers", "1", "--eval-every", "0", "--popularity", "zipf",
               "--zipf-exponent", "1.5", "--n-entities", "9", "--n-held-out", "10",
               "--n-cities", "5", "--name-words", "2", "--function-curriculum", "1,1,2"])
    assert rc == 0
    recorded = json.loads((tmp_path / "train_config.json").read_text())
    assert recorded["corpus"]["function_curriculum"] == [1, 1, 2]
    world = json.loads((tmp_path / "train_config.json").read_text())["world"]
    assert world == {"seed": 0, "n_memorised": 9, "n_held_out": 10, "n_unseen": 50,
                     "n_cities": 5, "popularity": "zipf", "zipf_exponent": 1.5,
                     "name_words": 2}
    saved = World.load(tmp_path / "model" / "world.json")
    assert saved.popularity is not None and saved.exposure is not None

@pytest.mark.parametrize(("flag", "value"), [("--function-curriculum", "5,2,9"),
                                             ("--function-curriculum", "1,2"),
                                             ("--zipf-exponent", "0"),
                                             ("--popularity", "pareto"),
                                             ("--name-words", "3"), ("--n-entities", "0")])
def test_cli_refuses_bad_world_and_curriculum_flags(flag, value, tmp_path, capsys):
    from lenskit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["organism", "train", "--out", str(tmp_path / "x"), flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_worker_processes_give_the_same_training_and_exposure(tmp_path):
    cfg = zipf_config(4)
    a = train(tmp_path / "a", cfg, progress=False)
    assert train(tmp_path / "b", cfg, progress=False, workers=2, stop_after=2) is None
    b = train(tmp_path / "b", cfg, progress=False, workers=2)  # resumed
    loss = [[json.loads(line)["loss"] for line in (d.parent / "train_log.jsonl").open()]
            for d in (a, b)]
    assert loss[0] == loss[1] and len(loss[0]) == 4
    assert (a / "world.json").read_text() == (b / "world.json").read_text()
