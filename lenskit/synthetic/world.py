"""The organism's synthetic world: invented entities with facts to memorise or read.

A world is fully determined by its seed and sizes. It holds three disjoint sets of names:

- ``memorised``: entities whose facts (one value per relation) are stated in the training
  corpus and must be recalled closed-book;
- ``held_out``: entities that only ever appear in passages with freshly drawn values, so the
  model can answer questions about them only by reading the passage (open-book);
- ``unseen``: names in the vocabulary that never occur in training (a harder open-book probe).

A world's memorised entities have a *popularity*: ``"uniform"`` (every entity equally likely
to be drawn into a training document, the shipped organism) or ``"zipf"`` (the entity of
popularity rank ``r`` is drawn with probability proportional to ``r ** -exponent``, so that a
few head entities fill many documents and paraphrases and a long tail appears in few). A
zipf world labels each memorised entity ``head``, ``torso`` or ``tail`` (terciles of its
rank) and, once trained on, records how often each fact was stated in training.

Values come from small fixed sets per relation (invented city names, common colour, job and
animal words). Every sentence is built from templates here so the training corpus and the
task suite see identical strings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lenskit.errors import CorruptFileError, UsageError

__all__ = ["BUCKETS", "POPULARITY_LAWS", "RELATIONS", "Relation", "World", "WorldConfig",
           "build_world"]


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
POPULARITY_LAWS: tuple[str, ...] = ("uniform", "zipf")
# Popularity buckets, most popular first: terciles of the entities' popularity rank.
BUCKETS: tuple[str, ...] = ("head", "torso", "tail")


@dataclass
class World:
    """A seeded world. ``facts[entity][relation] = value`` for memorised entities only.

    ``popularity`` (zipf worlds only, else ``None``): the probability that a training
    document about a memorised entity is about each entity (sums to 1); ``memorised`` is
    then in popularity order, most popular first. ``exposure`` (set by the trainer, see
    :func:`lenskit.synthetic.corpus.exposure_counts`): ``exposure[entity][relation]`` = the
    number of training documents that stated the fact, and ``exposure_config`` the training
    run it was counted for.
    """

    seed: int
    memorised: list[str]
    held_out: list[str]
    unseen: list[str]
    cities: list[str]
    facts: dict[str, dict[str, str]]
    relations: tuple[Relation, ...] = field(default=())
    popularity: dict[str, float] | None = None
    exposure: dict[str, dict[str, int]] | None = None
    exposure_config: dict | None = None

    def __post_init__(self) -> None:
        if not self.relations:
            self.relations = _relations(tuple(self.cities))
        self._by_name = {r.name: r for r in self.relations}
        self._buckets: dict[str, str] | None = None
        if self.popularity is not None:
            n = len(self.memorised)
            self._buckets = {e: BUCKETS[min(len(BUCKETS) - 1, (i * len(BUCKETS)) // n)]
                             for i, e in enumerate(self.memorised)}

    def relation(self, name: str) -> Relation:
        if name not in self._by_name:
            raise KeyError(f"unknown relation {name!r}; allowed: {sorted(self._by_name)}")
        return self._by_name[name]

    @property
    def n_facts(self) -> int:
        return sum(len(v) for v in self.facts.values())

    @property
    def buckets(self) -> dict[str, str] | None:
        """``entity -> "head" | "torso" | "tail"`` for a zipf world (terciles of the
        popularity rank, the first third of ``memorised`` being the head; computed when the
        world is made), else ``None``."""
        return self._buckets

    def bucket(self, entity: str) -> str | None:
        """The popularity bucket of a memorised ``entity`` (``None`` in a uniform world)."""
        if self._buckets is None:
            return None
        if entity not in self._buckets:
            raise KeyError(f"{entity!r} is not a memorised entity of this world")
        return self._buckets[entity]

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
        words: set[str] = {"an"}
        for name in (*self.memorised, *self.held_out, *self.unseen):
            words |= set(name.split())  # two-word names contribute both words
        for rel in self.relations:
            words |= set(rel.values)
            for text in (rel.question, *rel.statements):
                words |= set(
                    text.replace("{e}", " ").replace("{v}", " ").replace("?", " ")
                    .replace(".", " ").split()
                )
        return sorted(words)

    def to_json(self) -> dict:
        out = {
            "seed": self.seed,
            "memorised": self.memorised,
            "held_out": self.held_out,
            "unseen": self.unseen,
            "cities": self.cities,
            "facts": self.facts,
            "relations": [asdict(r) for r in self.relations],
        }
        # Written only when set, so that a uniform world's file is what it always was.
        if self.popularity is not None:
            out["popularity"] = self.popularity
            out["buckets"] = self.buckets
        if self.exposure is not None:
            out["exposure"] = self.exposure
            out["exposure_config"] = self.exposure_config
        return out

    def save(self, path: str | Path) -> None:
        """Write the world as JSON with a sha256 of its content (checked by :meth:`load`)."""
        data = self.to_json()
        data["sha256"] = _content_sha256(data)
        # A popularity world holds tens of thousands of facts and their exposure counts:
        # written compactly (a uniform world's file keeps its indented form).
        Path(path).write_text(json.dumps(data, indent=1 if self.popularity is None else None))

    @classmethod
    def load(cls, path: str | Path) -> World:
        """The world saved at ``path``. Raises :class:`lenskit.errors.CorruptFileError`
        naming the file when it is truncated, not a world, or (for files saved with a
        checksum) changed since it was saved."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except UnicodeDecodeError as err:
            raise _damaged(path, f"not text: {err}") from err
        except ValueError as err:
            raise _damaged(path, f"not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise _damaged(path, f"a JSON {type(data).__name__}, not a world object")
        stored = data.pop("sha256", None)
        if stored is not None and stored != _content_sha256(data):
            raise _damaged(path, "its content does not match the checksum stored when it "
                                 "was saved")
        try:
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
                popularity=data.get("popularity"),
                exposure=data.get("exposure"),
                exposure_config=data.get("exposure_config"),
            )
        except (KeyError, TypeError) as err:
            raise _damaged(path, f"missing or malformed entry {err}") from err


def _content_sha256(data: dict) -> str:
    """sha256 of a world's JSON content (keys sorted; the checksum itself left out)."""
    # normalised as it reads back (int keys become strings, tuples lists) before sorting
    rest = json.loads(json.dumps({k: v for k, v in data.items() if k != "sha256"}))
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def _damaged(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"world file {path} is damaged ({why}); restore the organism directory it belongs "
        "to (e.g. `git checkout` it, or reinstall lenskit for a shipped organism) or train a "
        "new organism with `lenskit organism train`", path)


def build_world(
    seed: int = 0,
    n_memorised: int = 150,
    n_held_out: int = 400,
    n_unseen: int = 50,
    n_cities: int = 40,
    popularity: str = "uniform",
    zipf_exponent: float = 1.0,
    name_words: int = 1,
) -> World:
    """Build the world for ``seed``: names, cities and one value per (memorised, relation).

    Sizes: ``n_memorised * 4`` facts to memorise; ``n_held_out`` names for open-book
    passages; ``n_unseen`` names that never appear in training. ``popularity`` is
    ``"uniform"`` or ``"zipf"`` (entity of rank ``r``, 1-based, drawn into training documents
    with probability ``r ** -zipf_exponent / H``). ``name_words`` is 1 (one invented word per
    name, one token) or 2 (a given and a family name from two pools of about
    ``2 * sqrt(names)`` words each: large worlds then need few tokens, and an entity's facts
    cannot live in one embedding row). The defaults' draws are those of the shipped world.
    """
    for name, v in (("n_memorised", n_memorised), ("n_held_out", n_held_out),
                    ("n_cities", n_cities)):
        if v < 1:
            raise UsageError(f"{name} must be >= 1, got {v}")
    if n_unseen < 0:
        raise UsageError(f"n_unseen must be >= 0, got {n_unseen}")
    if popularity not in POPULARITY_LAWS:
        raise UsageError(f"unknown popularity {popularity!r}; allowed: {POPULARITY_LAWS}")
    if not zipf_exponent > 0:
        raise UsageError(f"zipf_exponent must be > 0, got {zipf_exponent}")
    if name_words not in (1, 2):
        raise UsageError(f"name_words must be 1 or 2, got {name_words}")
    rng = np.random.default_rng(seed)
    taken = {w.lower() for w in _COLOURS + _JOBS + _PETS}
    cities = _invent_names(rng, n_cities, taken)
    n_names = n_memorised + n_held_out + n_unseen
    if name_words == 1:
        names = _invent_names(rng, n_names, taken)
    else:
        pool = max(4, int(np.ceil(2 * np.sqrt(n_names))))
        given, family = _invent_names(rng, pool, taken), _invent_names(rng, pool, taken)
        pairs = rng.choice(pool * pool, size=n_names, replace=False)
        names = [f"{given[int(k) // pool]} {family[int(k) % pool]}" for k in pairs]
    memorised = names[:n_memorised]
    held_out = names[n_memorised : n_memorised + n_held_out]
    unseen = names[n_memorised + n_held_out :]
    relations = _relations(tuple(cities))
    facts = {
        e: {r.name: r.values[int(rng.integers(len(r.values)))] for r in relations}
        for e in memorised
    }
    weights = None
    if popularity == "zipf":
        # ``memorised`` is already in random order, so its order is the popularity rank.
        w = np.arange(1, n_memorised + 1, dtype=float) ** -zipf_exponent
        weights = {e: float(p) for e, p in zip(memorised, w / w.sum(), strict=True)}
    return World(seed, memorised, held_out, unseen, cities, facts, relations,
                 popularity=weights)


@dataclass(frozen=True)
class WorldConfig:
    """The organism world's size, popularity law and seed (what :func:`build_world` takes).

    The defaults are the shipped organism's world (uniform popularity, one-word names).
    A world near a small model's capacity with a long tail is e.g.
    ``WorldConfig(n_memorised=10_000, n_held_out=2_000, n_unseen=200, n_cities=200,
    popularity="zipf", zipf_exponent=1.0, name_words=2)`` (40,000 facts).
    """

    seed: int = 0
    n_memorised: int = 120
    n_held_out: int = 400
    n_unseen: int = 50
    n_cities: int = 40
    popularity: str = "uniform"
    zipf_exponent: float = 1.0
    name_words: int = 1

    def __post_init__(self) -> None:
        if self.popularity not in POPULARITY_LAWS:
            raise UsageError(f"unknown popularity {self.popularity!r}; allowed: "
                             f"{POPULARITY_LAWS}")
        if not self.zipf_exponent > 0:
            raise UsageError(f"zipf_exponent must be > 0, got {self.zipf_exponent}")
        if self.name_words not in (1, 2):
            raise UsageError(f"name_words must be 1 or 2, got {self.name_words}")

    def build(self) -> World:
        return build_world(**asdict(self))
