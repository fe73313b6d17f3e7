import numpy as np
import pytest

from lenskit.synthetic.episodes import closed_book, open_book, overriding
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import World, WorldConfig, build_world


def test_world_is_deterministic_per_seed():
    a, b, c = build_world(3), build_world(3), build_world(4)
    assert a.to_json() == b.to_json()
    assert a.to_json() != c.to_json()


def test_name_sets_are_disjoint_and_sized():
    w = build_world(0, n_memorised=50, n_held_out=70, n_unseen=9, n_cities=12)
    sets = [set(w.memorised), set(w.held_out), set(w.unseen), set(w.cities)]
    assert [len(s) for s in sets] == [50, 70, 9, 12]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not sets[i] & sets[j]
    assert set(w.facts) == set(w.memorised)
    assert w.n_facts == 50 * 4
    values = {r.name: set(r.values) for r in w.relations}
    for facts in w.facts.values():
        assert all(v in values[r] for r, v in facts.items())


def test_world_round_trips_through_json(tmp_path):
    w = build_world(1)
    w.save(tmp_path / "world.json")
    assert World.load(tmp_path / "world.json").to_json() == w.to_json()


def test_episodes_state_the_answer_in_context():
    w = build_world(0)
    rng = np.random.default_rng(0)
    e = w.memorised[0]
    cb = closed_book(w, e, "pet")
    assert cb.context is None and cb.answer == w.facts[e]["pet"]
    ob = open_book(w, rng, w.held_out[0], "capital", 3)
    assert ob.answer in ob.context.split(" ") or f"{ob.answer}." in ob.context
    ov = overriding(w, rng, e, "colour", 3)
    assert ov.answer != ov.memorised_answer == w.facts[e]["colour"]
    assert ov.answer in ov.context.replace(".", " ").split()


def test_every_organism_word_is_a_single_known_token():
    w = WorldConfig().build()
    tok = build_tokenizer(organism_vocabulary(w))
    rng = np.random.default_rng(0)
    ep = overriding(w, rng, w.memorised[1], "occupation", 4)
    text = f"{ep.context}\nQ: {ep.question}\nA: {ep.answer}\n-3 4 -> foo\n"
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert ids[0] == tok.bos_token_id
    assert len(tok(" " + ep.answer, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("bad", [{"n_memorised": 0}, {"n_cities": -1}, {"n_unseen": -2}])
def test_bad_world_sizes(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_world(0, **bad)
