import numpy as np
import pytest

from lenskit.synthetic.corpus import CorpusConfig, CorpusSampler
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import build_world


@pytest.fixture(scope="module")
def world_and_tok():
    world = build_world(0, n_memorised=20, n_held_out=20, n_unseen=5, n_cities=8)
    return world, build_tokenizer(organism_vocabulary(world))


def _weights_by_token(sampler, kind, seed=0):
    text, spans = sampler.document(np.random.default_rng(seed), kind)
    ids, weights = sampler._encode(text, spans)
    return text, sampler.tok.convert_ids_to_tokens(ids), weights


@pytest.mark.parametrize("exemplar_weight", [0.1, 0.5, 1.0])
def test_function_documents_weight_query_exemplars_and_context(world_and_tok, exemplar_weight):
    world, tok = world_and_tok
    cfg = CorpusConfig(exemplar_weight=exemplar_weight, exemplar_warmup=4, context_weight=0.1)
    text, tokens, weights = _weights_by_token(CorpusSampler(world, tok, cfg), "function")
    lines = text.split("\n")
    assert len(lines) == 17  # 16 exemplars and the query
    # The query's answer (the last token) counts fully.
    assert weights[-1] == 1.0 and tokens[-1] == lines[-1].rsplit(" ", 1)[-1]
    # One token per label; the 12 labels after the warm-up get the exemplar weight.
    labels = {line.rsplit(" ", 1)[-1] for line in lines}
    label_weights = [w for t, w in zip(tokens[:-1], weights[:-1], strict=True) if t in labels]
    assert label_weights == [0.1] * 4 + [exemplar_weight] * 12
    others = [w for t, w in zip(tokens, weights, strict=True) if t not in labels]
    assert set(others) == {0.1}


def test_qa_documents_weight_only_the_answer(world_and_tok):
    world, tok = world_and_tok
    text, tokens, weights = _weights_by_token(CorpusSampler(world, tok), "closed_book", seed=3)
    answer = text.rsplit(" ", 1)[-1]
    assert tokens[-1] == answer and weights[-1] == 1.0
    assert set(weights[:-1]) == {0.1}


@pytest.mark.parametrize("bad", [{"exemplar_weight": 1.5}, {"exemplar_weight": -0.1},
                                 {"context_weight": 2.0}, {"exemplar_warmup": -1}])
def test_bad_weights_name_the_field(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        CorpusConfig(**bad)


def test_train_config_round_trips_the_corpus_weights():
    from dataclasses import replace

    from lenskit.organism.train import TrainConfig, _config_from_json

    cfg = TrainConfig()
    cfg = replace(cfg, corpus=replace(cfg.corpus, exemplar_weight=0.3, exemplar_warmup=2))
    back = _config_from_json(cfg.to_json())
    assert (back.corpus.exemplar_weight, back.corpus.exemplar_warmup) == (0.3, 2)
    assert back.to_json() == cfg.to_json()
