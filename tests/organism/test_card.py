"""The model card is rendered from measured numbers: a briefly trained tiny organism, its
dense scores and a small real pruning sweep."""

import pandas as pd
import pytest

from lenskit.models import load_model
from lenskit.organism.card import render_card, target_rows
from lenskit.organism.train import ModelConfig, TrainConfig, train
from lenskit.results import compute_thresholds
from lenskit.sweep import load_config
from lenskit.sweep.runner import run_sweep
from lenskit.synthetic.corpus import CorpusConfig
from lenskit.synthetic.world import WorldConfig
from lenskit.tasks import evaluate_suite, organism_suite


@pytest.fixture(scope="module")
def tiny_organism(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    cfg = TrainConfig(
        steps=6, batch_size=8, lr=1e-2, warmup=2, checkpoint_every=5, eval_every=10**6,
        world=WorldConfig(n_memorised=12, n_held_out=20, n_unseen=4, n_cities=6),
        model=ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, d_ffn=64),
        corpus=CorpusConfig(row_tokens=64),
    )
    return train(root / "run", cfg, progress=False), root


def test_card_reports_measured_scores_and_targets(tiny_organism):
    model_dir, root = tiny_organism
    model = load_model(model_dir)
    dense = evaluate_suite(model, organism_suite(model, size="small", seed=0),
                           batch_size=64).summary(n_bootstrap=50)
    cfg = load_config(None, {"models": str(model_dir), "methods": "magnitude",
                             "sparsities": "0.5", "scopes": "all;attn;mlp", "matched": "false",
                             "out_dir": str(root / "sweep")})
    out = run_sweep(cfg, progress=False, echo=lambda _: None)
    thresholds = compute_thresholds(out.results)
    card = render_card(model_dir, dense, out.results, thresholds)

    closed = float(dense[(dense.task == "closed_book") & (dense.metric == "em")].value.iloc[0])
    assert f"{100 * closed:.1f}%" in card
    assert "--d-model 32" in card and "| target | required | measured | met |" in card
    assert "**magnitude, attn**" in card and "**magnitude, mlp**" in card
    # Six steps of training cannot recall facts: the card says the target is missed.
    rows = {r["target"]: r for r in target_rows(dense)}
    assert rows["closed-book fact recall"]["met"] == "**no**"


def test_target_rows_take_the_best_function_task():
    dense = pd.DataFrame({
        "task": ["closed_book", "open_book", "overriding", "fn_a", "fn_b"],
        "metric": ["em"] * 5, "value": [0.95, 0.91, 0.80, 0.55, 0.75]})
    rows = {r["target"]: (r["measured"], r["met"]) for r in target_rows(dense)}
    assert rows["closed-book fact recall"] == ("95.0%", "yes")
    assert rows["overriding QA: follows the context"] == ("80.0%", "**no**")
    assert rows["in-context function learning (best task, K=2)"] == ("75.0%", "yes")
    below = dense.assign(value=[0.95, 0.91, 0.80, 0.55, 0.749])
    rows = {r["target"]: r["met"] for r in target_rows(below)}
    assert rows["in-context function learning (best task, K=2)"] == "**no**"
    # a popularity world: recall must fall from head to tail
    for vals, met in (([0.8, 0.3, 0.1], "yes"), ([0.8, 0.3, 0.3], "**no**")):
        buckets = pd.DataFrame({"task": ["closed_book_head", "closed_book_torso",
                                         "closed_book_tail", "closed_book"],
                                "metric": ["em"] * 4, "value": [*vals, sum(vals) / 3]})
        rows = {r["target"]: r for r in target_rows(pd.concat([buckets, dense[1:]]))}
        row = rows["closed-book recall follows popularity (near capacity)"]
        assert row["met"] == met and "closed-book fact recall" not in rows


def test_nearest_neighbour_baseline_reads_the_prompts():
    from lenskit.organism.card import nearest_neighbour_accuracy
    from lenskit.synthetic.functions import FunctionSpec

    easy = FunctionSpec(kind="linear", n_dims=1, n_exemplars=16, value_range=9, margin=1.0)
    hard = FunctionSpec(kind="linear", n_dims=4, n_exemplars=4, value_range=9, margin=0.0)
    assert nearest_neighbour_accuracy(easy, n=300) > 0.95
    assert 0.4 < nearest_neighbour_accuracy(hard, n=300) < nearest_neighbour_accuracy(easy, n=300)
