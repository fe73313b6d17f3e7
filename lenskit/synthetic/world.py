"""The organism's synthetic world: invented entities with facts to memorise or read.

A world is fully determined by its seed and sizes. It holds three disjoint sets of names:

- ``memorised``: entities whose facts (one value per relation) are stated in the training
  corpus and must be recalled closed-book;
- ``held_out``: entities that only ever appear in passages with freshly drawn values, so the
  model can answer questions about them only by reading the passage (open-book);
- ``unseen``: names in the vocabulary that never occur in training (a harder open-book probe).

Values come from small fixed sets per relation (invented city names, common colour, job and
animal words). Every sentence is built from templates here so the training corpus and the
task suite see identical strings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["RELATIONS", "Relation", "World", "WorldConfig", "build_world"]


@dataclass(frozen=True)
class Relation:
    """A relation: its question, the statement templates that express it, its value set."""

    name: str
    question: str  # contains {e}
    statements: tuple[str, ...]  # each contains {e} and {v}; {v} always after {e}
    values: tuple[str, ...]


_COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white",
            "grey", "brown", "pink", "silver")
_JOBS = ("baker", "farmer", "doctor", "teacher", "painter", "sailor", "miner", "judge",
         "singer", "pilot", "tailor", "potter", "weaver", "hunter", "fisher", "smith",
         "nurse", "poet", "guard", "cook", "monk", "clerk", "mason", "brewer", "archer",
         "dancer", "scribe", "healer", "trader", "herder")
_PETS = ("cat", "dog", "owl", "fox", "rabbit", "horse", "goat", "parrot", "turtle", "lizard",
         "snake", "frog", "hawk", "mouse", "ferret", "crow", "pig", "duck", "goose", "bee")

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p",
           "r", "s", "st", "t", "th", "v", "z", "sh", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
_CODAS = ("", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "st")


def _invent_names(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """``n`` distinct capitalised pseudo-words of 2-3 syllables not in ``taken``."""
    out: list[str] = []
    while len(out) < n:
        n_syl = int(rng.integers(2, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
            for _ in range(n_syl)
        ) + _CODAS[rng.integers(len(_CODAS))]
        word = word.capitalize()
        if word.lower() in taken or not 4 <= len(word) <= 11:
            continue
        taken.add(word.lower())
        out.append(word)
    return out


def _relations(cities: tuple[str, ...]) -> tuple[Relation, ...]:
    return (
        Relation(
            "capital",
            "what is the capital of {e}?",
            ("The capital of {e} is {v}.", "{e} has its capital in {v}.",
             "In {e} the capital city is {v}."),
            cities,
        ),
        Relation(
            "colour",
            "what is the colour of {e}?",
            ("The colour of {e} is {v}.", "{e} is painted {v}.",
             "The flag of {e} is {v}."),
            _COLOURS,
        ),
        Relation(
            "occupation",
            "what is the occupation of {e}?",
            ("The occupation of {e} is {v}.", "{e} works as a {v}.",
             "By trade {e} is a {v}."),
            _JOBS,
        ),
        Relation(
            "pet",
            "what is the pet of {e}?",
            ("The pet of {e} is a {v}.", "{e} keeps a {v} as a pet.",
             "At home {e} has a {v}."),
            _PETS,
        ),
    )


RELATIONS: tuple[str, ...] = ("capital", "colour", "occupation", "pet")


@dataclass
class World:
    """A seeded world. ``facts[entity][relation] = value`` for memorised entities only."""

    seed: int
    memorised: list[str]
    held_out: list[str]
    unseen: list[str]
    cities: list[str]
    facts: dict[str, dict[str, str]]
    relations: tuple[Relation, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.relations:
            self.relations = _relations(tuple(self.cities))
        self._by_name = {r.name: r for r in self.relations}

    def relation(self, name: str) -> Relation:
        if name not in self._by_name:
            raise KeyError(f"unknown relation {name!r}; allowed: {sorted(self._by_name)}")
        return self._by_name[name]

    @property
    def n_facts(self) -> int:
        return sum(len(v) for v in self.facts.values())

    def question(self, entity: str, relation: str) -> str:
        return self.relation(relation).question.format(e=entity)

    def statement(self, entity: str, relation: str, value: str, template: int = 0) -> str:
        rel = self.relation(relation)
        text = rel.statements[template % len(rel.statements)].format(e=entity, v=value)
        if value[:1].lower() in "aeiou":  # "keeps an owl", not "keeps a owl"
            text = text.replace(f" a {value}", f" an {value}")
        return text

    def words(self) -> list[str]:
        """Every word a world sentence can contain (for the tokenizer's vocabulary)."""
        words: set[str] = set(self.memorised) | set(self.held_out) | set(self.unseen) | {"an"}
        for rel in self.relations:
            words |= set(rel.values)
            for text in (rel.question, *rel.statements):
                words |= set(
                    text.replace("{e}", " ").replace("{v}", " ").replace("?", " ")
                    .replace(".", " ").split()
                )
        return sorted(words)

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "memorised": self.memorised,
            "held_out": self.held_out,
            "unseen": self.unseen,
            "cities": self.cities,
            "facts": self.facts,
            "relations": [asdict(r) for r in self.relations],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> World:
        data = json.loads(Path(path).read_text())
        rels = tuple(
            Relation(r["name"], r["question"], tuple(r["statements"]), tuple(r["values"]))
            for r in data["relations"]
        )
        return cls(
            seed=data["seed"],
            memorised=data["memorised"],
            held_out=data["held_out"],
            unseen=data["unseen"],
            cities=data["cities"],
            facts=data["facts"],
            relations=rels,
        )


def build_world(
    seed: int = 0,
    n_memorised: int = 150,
    n_held_out: int = 400,
    n_unseen: int = 50,
    n_cities: int = 40,
) -> World:
    """Build the world for ``seed``: names, cities and one value per (memorised, relation).

    Sizes: ``n_memorised * 4`` facts to memorise; ``n_held_out`` names for open-book
    passages; ``n_unseen`` names that never appear in training.
    """
    for name, v in (("n_memorised", n_memorised), ("n_held_out", n_held_out),
                    ("n_cities", n_cities)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if n_unseen < 0:
        raise ValueError(f"n_unseen must be >= 0, got {n_unseen}")
    rng = np.random.default_rng(seed)
    taken = {w.lower() for w in _COLOURS + _JOBS + _PETS}
    cities = _invent_names(rng, n_cities, taken)
    names = _invent_names(rng, n_memorised + n_held_out + n_unseen, taken)
    memorised = names[:n_memorised]
    held_out = names[n_memorised : n_memorised + n_held_out]
    unseen = names[n_memorised + n_held_out :]
    relations = _relations(tuple(cities))
    facts = {
        e: {r.name: r.values[int(rng.integers(len(r.values)))] for r in relations}
        for e in memorised
    }
    return World(seed, memorised, held_out, unseen, cities, facts, relations)


@dataclass(frozen=True)
class WorldConfig:
    """The organism world's size and seed (what :func:`build_world` takes)."""

    seed: int = 0
    n_memorised: int = 120
    n_held_out: int = 400
    n_unseen: int = 50
    n_cities: int = 40

    def build(self) -> World:
        return build_world(**asdict(self))
