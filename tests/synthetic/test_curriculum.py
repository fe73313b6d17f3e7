"""The function-learning curriculum of the organism's corpus: repeat -> lookup -> near."""

import numpy as np
import pytest

from lenskit.synthetic.corpus import (
    DEFAULT_FUNCTION_SPECS,
    CorpusConfig,
    CorpusSampler,
    corpus_config_from_json,
    curriculum_prompt,
)
from lenskit.synthetic.functions import sample_function_instances
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import WorldConfig

SPEC = DEFAULT_FUNCTION_SPECS[0]  # linear D=1, N=16, labels after the inputs


def parse(prompt: str, answer: str):
    lines = prompt.split("\n")
    ex = [(int(line.split()[0]), line.split()[1]) for line in lines[:-1]]
    return ex, int(lines[-1]), answer


@pytest.mark.parametrize("seed", range(5))
def test_curriculum_prompts_are_lookups_or_nearest_neighbours(seed):
    inst = sample_function_instances(SPEC, 1, seed=seed)[0]
    rng = np.random.default_rng(seed)
    ex, q, a = parse(*curriculum_prompt(SPEC, inst, "repeat", rng))
    assert len(ex) == 32 and sorted(ex[:16]) == sorted(ex[16:]) and ex[:16] == [
        (int(x[0]), SPEC.labels[y]) for x, y in zip(inst.exemplars_x, inst.exemplars_y,
                                                     strict=True)]
    assert (q, a) in ex
    ex, q, a = parse(*curriculum_prompt(SPEC, inst, "lookup", rng))
    assert len(ex) == 16 and (q, a) in ex
    ex, q, a = parse(*curriculum_prompt(SPEC, inst, "near", rng))
    dist = [abs(x - q) for x, _ in ex]
    assert min(dist) <= 1 and a == ex[int(np.argmin(dist))][1]
    with pytest.raises(ValueError, match="curriculum mode"):
        curriculum_prompt(SPEC, inst, "fresh", rng)


def test_corpus_follows_the_curriculum_by_step_and_is_unchanged_after_it():
    world = WorldConfig(n_memorised=12, n_held_out=20, n_unseen=4, n_cities=6).build()
    tok = build_tokenizer(organism_vocabulary(world))
    plain = CorpusSampler(world, tok, CorpusConfig(), seed=0)
    cur = CorpusSampler(world, tok, CorpusConfig(function_curriculum=(10, 20, 30)), seed=0)

    def doc(sampler, step, k):
        return sampler.document(np.random.default_rng(k), "function", step)

    for k in range(6):
        text, spans = doc(cur, 5, k)
        assert text.count("\n") == 32  # 16 exemplars listed twice, then the query line
        answer = text.rsplit(" ", 1)[1]
        assert spans[0][2] == 1.0 and text[spans[0][0]:spans[0][1]] == answer
        assert doc(cur, 35, k) == doc(plain, 35, k) == doc(plain, 5, k)
        assert doc(cur, 15, k)[0].count("\n") == 16
    with pytest.raises(ValueError, match="function_curriculum"):
        CorpusConfig(function_curriculum=(5, 3, 9))
    assert corpus_config_from_json(
        {"function_curriculum": [1, 2, 3]}).function_curriculum == (1, 2, 3)


def test_mixed_curriculum_short_prompts_early_and_lookups_kept_after_it():
    """The "mixed" style: stage by stage the prompt lengths, dimensions and modes that
    mixed_curriculum's docstring promises, checked on the documents the corpus writes."""
    world = WorldConfig(n_memorised=12, n_held_out=20, n_unseen=4, n_cities=6).build()
    tok = build_tokenizer(organism_vocabulary(world))
    cfg = CorpusConfig(function_curriculum=(10, 20, 30), curriculum_style="mixed")
    sampler = CorpusSampler(world, tok, cfg, seed=0)
    for step in (5, 15, 25, 35):
        counts = {"repeat": 0, "exact": 0, "off": 0, "d2": 0}
        for k in range(300):
            text, spans = sampler.document(np.random.default_rng(k), "function", step)
            # The answer is the last token and carries full weight.
            assert text[spans[0][0]:spans[0][1]] == text.rsplit(" ", 1)[1] and spans[0][2] == 1
            rows = [line.split() for line in text.split("\n")]
            *ex, (q, a) = [(tuple(int(v) for v in r[:-1]), r[-1]) for r in rows]
            n, dims = len(ex), len(q)
            twice = n % 2 == 0 and ex[: n // 2] != [] and sorted(ex[: n // 2]) == sorted(
                ex[n // 2:]) and n <= 16
            dist = [sum((x - y) ** 2 for x, y in zip(e, q, strict=True)) for e, _ in ex]
            nearest = ex[int(np.argmin(dist))][1]
            counts["repeat"] += twice and step < 20
            counts["exact"] += min(dist) == 0
            counts["off"] += min(dist) > 0
            counts["d2"] += dims == 2
            if step < 10:  # repeat: 4-8 exemplars listed twice, the query one of them
                assert twice and 8 <= n <= 16 and (q, a) in ex and dims == 1
            elif step < 20:  # 70% lookup (4-8 exemplars), 30% repeat
                assert (q, a) in ex and dims == 1 and (4 <= n <= 8 or twice)
            elif step < 30:  # 70% near, 30% lookup: labelled as the nearest exemplar
                assert 6 <= n <= 12 and dims == 1 and min(dist) <= 1 and a == nearest
            else:  # the task on every spec, all exemplars
                assert n == 16
        if step < 10:
            assert counts["repeat"] == 300
        elif step < 20:
            assert 50 < counts["repeat"] < 130  # ~30% (a lookup prompt is never doubled)
        elif step < 30:
            # near queries (one in three steps by 0, others often land on an exemplar) and lookups
            assert counts["off"] > 50 and counts["exact"] > 150
        else:
            assert 100 < counts["d2"] < 200 and counts["off"] > 100 and counts["exact"] > 45
    with pytest.raises(ValueError, match="curriculum_style 'staged'"):
        CorpusConfig(curriculum_style="staged")
    assert corpus_config_from_json(
        {"curriculum_style": "mixed"}).curriculum_style == "mixed"
