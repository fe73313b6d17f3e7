import os

import pytest

from lenskit.synthetic.world import World
from lenskit.tasks import (
    countries_suite,
    country_facts,
    country_items,
    default_suite,
    evaluate_suite,
    normalize_answer,
    organism_suite,
)


def test_country_facts_are_clean_with_aliases():
    capitals = {f.country: f for f in country_facts("capital")}
    assert len(capitals) > 200
    assert capitals["France"].value == "Paris"
    assert "Bogota" in capitals["Colombia"].answers  # accent-free alias
    assert "Kiev" in capitals["Ukraine"].answers
    assert not any("," in c or "(" in c for c in capitals)
    regions = {f.country: f.value for f in country_facts("region")}
    assert regions["France"] == "Europe" and regions["Brazil"] == "the Americas"
    with pytest.raises(ValueError, match="unknown country attribute"):
        country_facts("anthem")


def test_countries_suite_variants():
    suite = countries_suite("small", seed=0)
    assert set(suite) == {f"countries_{a}_{k}" for a in ("capital", "region")
                          for k in ("closed_book", "open_book", "overriding")}
    for task in suite.values():
        assert len(task) == 100 and task.source == "countryinfo"
        demos = task.config["demo_ids"]
        assert len(demos) == 3  # three fixed demonstrations, then the query
        # the demonstrations' countries are never asked
        assert not {i.id for i in task} & set(demos)
        common = os.path.commonprefix([i.prompt for i in task])  # noqa: RUF071 (text)
        prefix = common[: common.rindex(".\n") + 2]
        # the same three demonstrations (a passage line and a statement each with passages)
        assert prefix.count(".\n") == (3 if task.kind == "closed_book" else 6)
        for inst in task:
            assert inst.prompt.startswith(prefix)  # the same demonstrations in every prompt
            if task.kind != "closed_book":
                s, e = inst.answer_span
                assert inst.prompt[s:e] == inst.gold
                # the passage is the gold sentence alone (no distractors by default)
                context = inst.prompt.split("\n")[-2]
                assert context.count(".") == 1 + inst.gold.count(".")
    for inst in suite["countries_capital_overriding"]:
        # the passage's capital is another country's; the memorised one is the true capital
        assert normalize_answer(inst.gold) != normalize_answer(inst.memorised_answer)
        assert f"of {inst.meta['country']} is {inst.gold}." in inst.prompt
        # demonstrations state true capitals: no counterfactual demos
        capitals = {f.country: f.value for f in country_facts("capital")}
        for line in inst.prompt.split("\n")[:-1]:
            if line.startswith("The capital of ") and line.endswith("."):
                country, value = line[len("The capital of "):-1].split(" is ", 1)
                assert capitals[country] == value
    full = countries_suite("full", seed=0)
    assert len(full["countries_capital_closed_book"]) == len(country_facts("capital")) - 3
    again = countries_suite("small", seed=0)
    assert [i.prompt for i in again["countries_region_open_book"]] == \
        [i.prompt for i in suite["countries_region_open_book"]]
    distract = countries_suite("small", seed=0, n_distractors=2, template="qa")
    assert distract["countries_capital_open_book"].instances[0].prompt.count("Q: ") == 4
    with pytest.raises(ValueError, match="unknown size"):
        countries_suite("medium")
    with pytest.raises(ValueError, match="kind must be"):
        country_items("capital", "function")


def test_organism_suite_uses_the_world(organism_dir, organism_model):
    world = World.load(organism_dir / "world.json")
    suite = organism_suite(organism_model, size="small", seed=0)
    assert [t.kind for t in suite.values()] == ["closed_book", "open_book", "overriding",
                                               "function", "function", "perplexity"]
    assert all(len(t) == 300 for t in suite.values() if t.kind != "perplexity")
    for inst in suite["closed_book"]:
        e, r = inst.meta["entity"], inst.meta["relation"]
        assert inst.gold == world.facts[e][r] and inst.prompt.startswith("Q: what is the")
    for inst in suite["open_book"]:
        assert inst.meta["entity"] in world.held_out
        s, e = inst.answer_span
        assert inst.prompt[s:e] == inst.gold
    for inst in suite["overriding"]:
        e, r = inst.meta["entity"], inst.meta["relation"]
        assert inst.memorised_answer == world.facts[e][r] != inst.gold
        s, e_ = inst.answer_span
        assert inst.prompt[s:e_] == inst.gold
    ppl = suite["perplexity"]
    assert len(ppl) == 32 and all(w.tokens[0] == 1 and w.score_from == 1 for w in ppl)
    assert "10000000" in ppl.split
    # a directory or the World itself gives the same tasks
    by_dir = organism_suite(organism_dir, size="small", seed=0)
    by_world = organism_suite(world, size="small", seed=0)
    for name, task in suite.items():
        if task.kind != "perplexity":
            assert [i.prompt for i in by_dir[name]] == [i.prompt for i in task]
            assert [i.prompt for i in by_world[name]] == [i.prompt for i in task]
    full = organism_suite(world, size="full", seed=0)
    assert len(full["closed_book"]) == world.n_facts == 4 * len(world.memorised)
    assert len(full["overriding"]) == world.n_facts
    result = evaluate_suite(organism_model, {k: t.subset(8) for k, t in suite.items()})
    assert set(result.rows["task"]) == set(suite)


def test_default_suite_per_model(organism_model, tiny_dirs, tmp_path):
    import json

    from lenskit.models import load_model

    assert set(default_suite(organism_model)) >= {"closed_book", "open_book", "overriding"}
    wq = tmp_path / "wq.jsonl"
    wq.write_text("\n".join(json.dumps({"question": f"q{k}?", "answers": [f"a{k}"]})
                            for k in range(3)))
    suite = default_suite(load_model(tiny_dirs["gpt2"]), size="small", seed=0,
                          datasets=["webquestions"], data_paths={"webquestions": str(wq)})
    assert suite["webquestions"].kind == "closed_book" and len(suite["webquestions"]) == 3
    assert suite["webquestions"].source == str(wq)
    fn = [t for t in suite.values() if t.kind == "function"]
    assert sorted(t.name for t in fn) == ["fn_linear_d4_n32_k2", "fn_mlp_d4_n32_k2",
                                          "fn_tree_d4_n32_k2"]
    # a documented size whose interval tells chance (0.5) from a real ability
    assert all(len(t) == 512 and t.chance == 0.5 for t in fn)
    assert "countries_capital_overriding" in suite and suite["perplexity"].kind == "perplexity"
    with pytest.raises(ValueError, match="unknown dataset"):
        default_suite(organism_model, datasets=["squad"])


def test_organism_suite_rejects_other_models(tiny_model):
    with pytest.raises(ValueError, match=r"world\.json"):
        organism_suite(tiny_model)
