"""Real-world facts that need no network: countries from the ``countryinfo`` package.

``countryinfo`` (MIT licence, Porimol Chandro) ships JSON records of about 250 countries
and territories. lenskit keeps the clean ones (an ISO 3166 code, a plain English name, one
capital; defunct entities dropped) and asks two attributes:

- ``capital``: ``"What is the capital of France?"`` -> ``"Paris"``;
- ``region``: ``"On which continent is France?"`` -> ``"Europe"`` (countryinfo's five
  regions; ``"the Americas"`` accepts America / North / South / Central America).

Aliases: accent-free spellings (``"Bogota"`` for ``"Bogotá"``) and a short list of common
variants (``"Kiev"``, ``"Washington"``...). Passages are built from the same sentences: the
queried fact among true facts about other countries (open-book), or with the queried fact
replaced by another country's value (overriding; the memorised answer is the true one).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np

from lenskit.errors import UsageError
from lenskit.tasks.items import QAItem, QAItems
from lenskit.tasks.normalize import normalize_answer

__all__ = ["COUNTRY_ATTRIBUTES", "CountryFact", "country_facts", "country_items",
           "gazetteer_text"]

COUNTRY_ATTRIBUTES = ("capital", "region")

_QUESTIONS = {"capital": "What is the capital of {c}?", "region": "On which continent is {c}?"}
_STATEMENTS = {"capital": "The capital of {c} is {v}.", "region": "{c} lies in {v}."}
# Entities countryinfo still lists that no longer exist.
_DEFUNCT = {"Antilles néerlandaises", "Serbia and Montenegro"}
_CAPITAL_ALIASES = {
    "Washington D.C.": ("Washington", "Washington, D.C.", "Washington DC"),
    "Kyiv": ("Kiev",),
    "City of San Marino": ("San Marino",),
    "Naypyidaw": ("Nay Pyi Taw", "Naypyitaw"),
    "Sana'a": ("Sanaa",),
    "Bern": ("Berne",),
    "Mexico City": ("Mexico",),
    "Kuwait City": ("Kuwait",),
    "Guatemala City": ("Guatemala",),
    "Panama City": ("Panama",),
    "Vatican City": ("Vatican",),
}
_REGION_DISPLAY = {"Americas": "the Americas"}
_REGION_ALIASES = {"Americas": ("America", "North America", "South America",
                                "Central America")}


@dataclass(frozen=True)
class CountryFact:
    """One (country, attribute, value) fact with the value's aliases."""

    country: str
    iso2: str
    attribute: str
    value: str
    aliases: tuple[str, ...] = ()

    @property
    def answers(self) -> tuple[str, ...]:
        return (self.value, *self.aliases)

    @property
    def question(self) -> str:
        return _QUESTIONS[self.attribute].format(c=self.country)

    def statement(self, value: str | None = None) -> str:
        return _STATEMENTS[self.attribute].format(c=self.country, v=value or self.value)

    @property
    def cloze(self) -> str:
        """The statement up to its value: ``"The capital of France is"``."""
        return self.statement()[: self.value_offset()].rstrip()

    def value_offset(self) -> int:
        """Where the value starts inside :meth:`statement`."""
        return len(_STATEMENTS[self.attribute].split("{v}")[0].format(c=self.country))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _aliases(value: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    seen = {normalize_answer(value)}
    for a in (_ascii(value), *extra):
        if a and normalize_answer(a) not in seen:
            seen.add(normalize_answer(a))
            out.append(a)
    return tuple(out)


@cache
def _records() -> tuple[dict, ...]:
    from countryinfo._cache import load_countries

    countries = load_countries()["countries"]
    keep = []
    for rec in countries.values():
        name, capital, iso = rec.get("name"), rec.get("capital"), rec.get("ISO") or {}
        if not isinstance(name, str) or not isinstance(capital, str) or not capital.strip():
            continue
        if name in _DEFUNCT or any(ch in name for ch in ",()") or "/" in capital:
            continue
        if not (iso.get("alpha2") and iso.get("alpha3") and iso.get("numeric")):
            continue
        keep.append(rec)
    keep.sort(key=lambda r: r["name"])
    return tuple(keep)


def country_facts(attribute: str = "capital") -> list[CountryFact]:
    """The clean facts of one attribute, sorted by country name."""
    if attribute not in COUNTRY_ATTRIBUTES:
        raise UsageError(f"unknown country attribute {attribute!r}; allowed: "
                         f"{COUNTRY_ATTRIBUTES}")
    facts = []
    for rec in _records():
        iso2 = rec["ISO"]["alpha2"]
        if attribute == "capital":
            value = rec["capital"].strip()
            facts.append(CountryFact(rec["name"], iso2, attribute, value,
                                     _aliases(value, _CAPITAL_ALIASES.get(value, ()))))
        else:
            region = (rec.get("region") or "").strip()
            if not region:
                continue
            value = _REGION_DISPLAY.get(region, region)
            facts.append(CountryFact(rec["name"], iso2, attribute, value,
                                     _aliases(value, _REGION_ALIASES.get(region, ()))))
    return facts


def country_items(
    attribute: str = "capital",
    kind: str = "closed_book",
    seed: int = 0,
    n_distractors: int = 0,
) -> QAItems:
    """Items for one attribute: plain questions, or with passages for open-book/overriding.

    Args:
        attribute: one of :data:`COUNTRY_ATTRIBUTES`.
        kind: ``"closed_book"`` (no passage), ``"open_book"`` (the true fact among
            ``n_distractors`` true facts about other countries, random attributes, shuffled)
            or ``"overriding"`` (the same, but the queried fact states another country's
            value; ``memorised_answer`` is the true value). Each item's ``meta["cloze"]``
            is the statement up to the value (for the ``cloze`` template).
        n_distractors: true sentences about other countries around the queried one
            (default 0: the passage is the gold sentence alone, the study's setting).
        seed: seeds distractors, sentence order and counterfactual values.
    """
    if kind not in ("closed_book", "open_book", "overriding"):
        raise UsageError(f"kind must be closed_book, open_book or overriding, got {kind!r}")
    if n_distractors < 0:
        raise UsageError(f"n_distractors must be >= 0, got {n_distractors}")
    facts = country_facts(attribute)
    by_attr = {a: country_facts(a) for a in COUNTRY_ATTRIBUTES}
    rng = np.random.default_rng([seed, COUNTRY_ATTRIBUTES.index(attribute),
                                 ("closed_book", "open_book", "overriding").index(kind)])
    items = []
    for fact in facts:
        meta = {"country": fact.country, "attribute": attribute, "iso2": fact.iso2,
                "cloze": fact.cloze}
        if kind == "closed_book":
            items.append(QAItem(fact.question, fact.answers, id=f"{attribute}-{fact.iso2}",
                                meta=meta))
            continue
        value, memorised, mem_aliases = fact.value, None, ()
        if kind == "overriding":
            true_norm = {normalize_answer(a) for a in fact.answers}
            while True:
                other = facts[int(rng.integers(len(facts)))]
                if normalize_answer(other.value) not in true_norm:
                    break
            value, memorised, mem_aliases = other.value, fact.value, fact.aliases
            answers = other.answers
            meta["counterfactual_from"] = other.country
        else:
            answers = fact.answers
        sentences = [fact.statement(value)]
        for _ in range(n_distractors):
            attr = COUNTRY_ATTRIBUTES[int(rng.integers(len(COUNTRY_ATTRIBUTES)))]
            pool = by_attr[attr]
            other = pool[int(rng.integers(len(pool)))]
            while other.country == fact.country:
                other = pool[int(rng.integers(len(pool)))]
            sentences.append(other.statement())
        order = rng.permutation(len(sentences))
        where = int(np.flatnonzero(order == 0)[0])
        start = sum(len(sentences[j]) + 1 for j in order[:where]) + fact.value_offset()
        context = " ".join(sentences[j] for j in order)
        assert context[start : start + len(value)] == value
        items.append(QAItem(fact.question, answers, context=context,
                            memorised_answer=memorised, memorised_aliases=mem_aliases,
                            context_answer_span=(start, start + len(value)),
                            id=f"{attribute}-{fact.iso2}", meta=meta))
    return QAItems(name=f"countries_{attribute}_{kind}", items=tuple(items),
                   source="countryinfo", split="",
                   config={"attribute": attribute, "kind": kind, "seed": seed,
                           "n_distractors": n_distractors})


def gazetteer_text() -> str:
    """A short generated English text about every clean country (for perplexity).

    One paragraph per country, e.g. ``"Kabul is the capital of Afghanistan, a country in
    Southern Asia. Its people are called Afghan."``; about 5k words.
    """
    paragraphs = []
    for rec in _records():
        name, capital = rec["name"], rec["capital"].strip()
        sub = (rec.get("subregion") or rec.get("region") or "").strip()
        text = f"{capital} is the capital of {name}"
        text += f", a country in {sub}." if sub else "."
        demonym = rec.get("demonym")
        if isinstance(demonym, str) and demonym.strip() and not any(c in demonym for c in ",/"):
            text += f" Its people are called {demonym.strip()}."
        pop = rec.get("population")
        if isinstance(pop, int) and pop > 0:
            text += f" About {pop:,} people live there."
        paragraphs.append(text)
    return "\n\n".join(paragraphs) + "\n"
