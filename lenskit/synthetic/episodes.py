"""Question-answer episodes drawn from a world: closed-book, open-book and overriding.

Each episode is ``(context, question, answer, memorised_answer)``: ``context`` is ``None`` for
closed-book; ``memorised_answer`` is set for overriding (what the model memorised, which the
passage contradicts). The training corpus and the task suite both draw from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lenskit.synthetic.world import World

__all__ = ["Episode", "closed_book", "open_book", "overriding", "passage"]


@dataclass(frozen=True)
class Episode:
    question: str
    answer: str
    context: str | None = None
    memorised_answer: str | None = None
    entity: str = ""
    relation: str = ""


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def passage(
    world: World,
    rng: np.random.Generator,
    entity: str,
    relation: str,
    value: str,
    n_distractors: int,
    other_facts: dict[str, str] | None = None,
) -> str:
    """A passage stating ``entity``'s ``relation`` is ``value`` among distractor sentences.

    Distractors are, with equal odds, other relations of the same entity (``other_facts``
    when given, else random values) or facts about other held-out names (random values).
    Sentence order and templates are random.
    """
    sentences = [world.statement(entity, relation, value, int(rng.integers(3)))]
    others = [r.name for r in world.relations if r.name != relation]
    for _ in range(n_distractors):
        if rng.random() < 0.5 and others:
            rel = others.pop(int(rng.integers(len(others))))
            v = (other_facts or {}).get(rel) or _pick(rng, world.relation(rel).values)
            sentences.append(world.statement(entity, rel, v, int(rng.integers(3))))
        else:
            e = _pick(rng, world.held_out)
            while e == entity:
                e = _pick(rng, world.held_out)
            rel = _pick(rng, world.relations)
            sentences.append(world.statement(e, rel.name, _pick(rng, rel.values),
                                             int(rng.integers(3))))
    order = rng.permutation(len(sentences))
    return " ".join(sentences[i] for i in order)


def closed_book(world: World, entity: str, relation: str) -> Episode:
    return Episode(world.question(entity, relation), world.facts[entity][relation],
                   entity=entity, relation=relation)


def open_book(
    world: World, rng: np.random.Generator, entity: str, relation: str, n_distractors: int
) -> Episode:
    """A question about a non-memorised ``entity`` whose answer is drawn fresh here."""
    value = _pick(rng, world.relation(relation).values)
    ctx = passage(world, rng, entity, relation, value, n_distractors)
    return Episode(world.question(entity, relation), value, ctx, entity=entity,
                   relation=relation)


def overriding(
    world: World, rng: np.random.Generator, entity: str, relation: str, n_distractors: int
) -> Episode:
    """A memorised ``entity`` whose passage states a different (counterfactual) value."""
    true = world.facts[entity][relation]
    values = [v for v in world.relation(relation).values if v != true]
    value = _pick(rng, values)
    ctx = passage(world, rng, entity, relation, value, n_distractors, world.facts[entity])
    return Episode(world.question(entity, relation), value, ctx, memorised_answer=true,
                   entity=entity, relation=relation)
