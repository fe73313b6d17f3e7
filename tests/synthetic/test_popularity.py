"""Zipf popularity worlds: buckets, popularity-weighted documents and exact exposure counts."""

import json

import numpy as np
import pytest

from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler, exposure_counts
from lenskit.synthetic.tokenizer import build_tokenizer, count_tokens, organism_vocabulary
from lenskit.synthetic.world import BUCKETS, World, WorldConfig

ZIPF = WorldConfig(n_memorised=30, n_held_out=20, n_unseen=4, n_cities=8,
                   popularity="zipf", zipf_exponent=1.2, name_words=2)


def test_default_world_has_no_popularity_and_an_unchanged_file():
    w = WorldConfig().build()
    assert w.popularity is None and w.buckets is None and w.bucket(w.memorised[0]) is None
    assert set(w.to_json()) == {"seed", "memorised", "held_out", "unseen", "cities", "facts",
                                "relations"}


def test_zipf_world_ranks_entities_into_buckets_and_round_trips(tmp_path):
    w = ZIPF.build()
    p = np.array([w.popularity[e] for e in w.memorised])
    assert p.sum() == pytest.approx(1.0)
    assert np.all(np.diff(p) < 0)  # memorised is in popularity order
    assert p[0] / p[1] == pytest.approx(2 ** 1.2)
    buckets = [w.bucket(e) for e in w.memorised]
    assert buckets == ["head"] * 10 + ["torso"] * 10 + ["tail"] * 10
    assert all(len(e.split()) == 2 for e in w.memorised + w.held_out + w.unseen)
    assert len(set(w.memorised + w.held_out + w.unseen)) == 54
    w.save(tmp_path / "world.json")
    back = World.load(tmp_path / "world.json")
    assert back.to_json() == w.to_json() and back.buckets == w.buckets
    with pytest.raises(KeyError, match="not a memorised entity"):
        w.bucket(w.held_out[0])


def test_two_word_names_tokenize_into_known_words():
    w = ZIPF.build()
    tok = build_tokenizer(organism_vocabulary(w))
    text = w.statement(w.memorised[3], "pet", w.facts[w.memorised[3]]["pet"], 1)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and len(ids) == count_tokens(text)
    # 54 names from two pools of 2 * sqrt(54) words: far fewer words than names.
    assert len({x for e in w.memorised + w.held_out + w.unseen for x in e.split()}) <= 30


@pytest.mark.parametrize("bad", [{"popularity": "pareto"}, {"zipf_exponent": 0.0},
                                 {"name_words": 3}])
def test_bad_popularity_options_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        WorldConfig(**bad)


def test_count_tokens_matches_the_tokenizer_on_corpus_documents():
    w = ZIPF.build()
    tok = build_tokenizer(organism_vocabulary(w))
    sampler = CorpusSampler(w, tok, CorpusConfig(), seed=1)
    rng = np.random.default_rng(0)
    for kind in ("statements", "closed_book", "open_book", "overriding", "function") * 4:
        text, _ = sampler.document(rng, kind)
        assert count_tokens(text) == len(tok(text, add_special_tokens=False)["input_ids"])


def test_row_facts_replays_the_rows_documents():
    w = ZIPF.build()
    tok = build_tokenizer(organism_vocabulary(w))
    cfg = CorpusConfig(row_tokens=96)
    sampler = CorpusSampler(w, tok, cfg, seed=3)
    blind = CorpusSampler(w, None, cfg, seed=3)
    n_facts = 0
    for i in range(24):
        ids = sampler.row_ids(5, i)
        facts, length = blind._replay(5, i)
        assert length == len(ids)  # the blind replay packs exactly the row's documents
        words = set(tok.convert_ids_to_tokens(ids))
        for e, r in facts:  # every counted fact's entity and value are in the row
            assert set(e.split()) <= words and w.facts[e][r] in words
        n_facts += len(facts)
    assert n_facts > 24


def test_popular_entities_fill_more_documents_and_exposure_is_exact():
    w = ZIPF.build()
    cfg = CorpusConfig(row_tokens=96)
    counts = exposure_counts(w, cfg, steps=6, batch=8, seed=2)
    assert set(counts) == set(w.memorised)
    assert all(set(c) == set(w.facts[e]) for e, c in counts.items())
    per_bucket = {b: sum(sum(counts[e].values()) for e in w.memorised if w.bucket(e) == b)
                  for b in BUCKETS}
    assert per_bucket["head"] > per_bucket["torso"] > per_bucket["tail"]
    # Additive over steps, and exactly what the blind replay of each row finds.
    first = exposure_counts(w, cfg, steps=3, batch=8, seed=2)
    rest = exposure_counts(w, cfg, steps=6, batch=8, seed=2, start=3)
    assert all(first[e][r] + rest[e][r] == counts[e][r] for e in counts for r in counts[e])
    blind = CorpusSampler(w, None, cfg, seed=2)
    total = sum(len(blind.row_facts(s, i)) for s in range(6) for i in range(8))
    assert total == sum(sum(c.values()) for c in counts.values())
    with pytest.raises(ValueError, match="batch"):
        exposure_counts(w, cfg, steps=2, batch=0)
    json.dumps(counts)  # JSON-able as it goes into world.json
