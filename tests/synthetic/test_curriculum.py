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
