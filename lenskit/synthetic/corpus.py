"""The organism's training corpus: documents sampled on the fly from a world.

Document kinds (mixed by ``CorpusConfig.mixture``):

- ``statements``: 1-4 template sentences about one memorised entity (the facts to learn);
- ``closed_book``: ``Q: ...\\nA: value`` about a memorised entity;
- ``open_book``: a passage about a held-out name (fresh random values) then its question;
- ``overriding``: a passage giving a memorised entity a counterfactual value, then the
  question, answered with the passage's value;
- ``function``: an in-context function-learning prompt and its answer.

Documents are packed, separated by a blank line, into rows of at most ``row_tokens``
tokens that start with ``<bos>``. Every token has a loss weight: 1 for *answer* tokens (the
value of a fact statement, the answer after ``A:``, every label after ``->``) and
``context_weight`` for the rest, so that the few tokens that carry facts and in-context
answers are not drowned by the unpredictable ones (random names, passage values, inputs). Row ``i`` of step ``s`` depends only on ``(seed, s, i)``,
so an interrupted run resumes on exactly the data it would have seen.

Documents about memorised entities (statements, closed-book, overriding) draw their entity
by the world's popularity: uniformly, or by its zipf law, so that head facts are stated in
many documents and all paraphrase templates and tail facts in few.
:func:`exposure_counts` replays a run's draws (without tokenizing) and counts how many
documents stated each fact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from lenskit.errors import UsageError
from lenskit.synthetic.episodes import closed_book, open_book, overriding
from lenskit.synthetic.formats import FunctionFormat, QAFormat
from lenskit.synthetic.functions import FunctionSpec, sample_function_instances
from lenskit.synthetic.tokenizer import count_tokens
from lenskit.synthetic.world import World

__all__ = ["CURRICULUM_MODES", "CURRICULUM_STYLES", "DEFAULT_FUNCTION_SPECS", "DOC_KINDS", "CorpusConfig",
           "CorpusSampler", "curriculum_prompt", "exposure_counts",
           "mixed_curriculum"]

DOC_KINDS = ("statements", "closed_book", "open_book", "overriding", "function")

# The organism's in-context function tasks: smaller than the study's D=4, N=32 so that a
# sub-million-parameter model can learn them (see the model card). The label follows the
# inputs directly ("3 foo"), so that an induction-style lookup of the query among the
# exemplars is one attention step, as it is for a large model reading "3 -> foo".
_ORGANISM_FORMAT = FunctionFormat(arrow="")
DEFAULT_FUNCTION_SPECS: tuple[FunctionSpec, ...] = (
    FunctionSpec(kind="linear", n_dims=1, n_exemplars=16, value_range=9, margin=1.0,
                 fmt=_ORGANISM_FORMAT),
    FunctionSpec(kind="linear", n_dims=2, n_exemplars=16, value_range=5, margin=0.75,
                 fmt=_ORGANISM_FORMAT),
)


@dataclass(frozen=True)
class CorpusConfig:
    row_tokens: int = 192
    mixture: dict[str, float] = field(
        default_factory=lambda: {
            "statements": 0.2,
            "closed_book": 0.25,
            "open_book": 0.2,
            "overriding": 0.1,
            "function": 0.25,
        }
    )
    max_distractors: int = 4
    context_weight: float = 0.1
    exemplar_weight: float = 0.5
    exemplar_warmup: int = 4
    function_specs: tuple[FunctionSpec, ...] = DEFAULT_FUNCTION_SPECS
    # Steps (repeat_end, lookup_end, near_end) of the function-learning curriculum; () = none
    # (see :func:`curriculum_prompt`).
    function_curriculum: tuple[int, ...] = ()
    # How the curriculum's stages are drawn: "phased" (every function document of a stage in
    # its mode, all exemplars) or "mixed" (per document, short prompts early, earlier modes
    # kept in the mix after their stage: :func:`mixed_curriculum`).
    curriculum_style: str = "phased"
    qa_format: QAFormat = field(default_factory=QAFormat)

    def __post_init__(self) -> None:
        unknown = set(self.mixture) - set(DOC_KINDS)
        if unknown:
            raise UsageError(f"unknown document kinds {sorted(unknown)}; allowed: {DOC_KINDS}")
        if not self.mixture or min(self.mixture.values()) < 0 or sum(self.mixture.values()) <= 0:
            raise UsageError(f"mixture weights must be >= 0 and not all 0, got {self.mixture}")
        if self.row_tokens < 16:
            raise UsageError(f"row_tokens must be >= 16, got {self.row_tokens}")
        for name in ("context_weight", "exemplar_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.exemplar_warmup < 0:
            raise UsageError(f"exemplar_warmup must be >= 0, got {self.exemplar_warmup}")
        c = tuple(self.function_curriculum)
        if c and (len(c) != 3 or min(c) < 0 or list(c) != sorted(c)):
            raise UsageError("function_curriculum must be () or three non-decreasing steps "
                             f"(repeat_end, lookup_end, near_end), got {c}")
        if self.curriculum_style not in CURRICULUM_STYLES:
            raise UsageError(f"unknown curriculum_style {self.curriculum_style!r}; allowed: "
                             f"{CURRICULUM_STYLES}")


def corpus_config_from_json(raw: dict | None) -> CorpusConfig:
    """The corpus config recorded in a ``training.json`` / ``train_config.json``
    (``train_config["corpus"]``); fields it lacks keep their defaults, except
    ``exemplar_weight``, which defaults to the context weight (older organisms gave every
    exemplar label the context weight)."""
    raw = raw or {}
    kwargs: dict = {k: raw[k] for k in ("row_tokens", "max_distractors", "context_weight",
                                         "exemplar_weight", "exemplar_warmup",
                                         "curriculum_style") if k in raw}
    if "exemplar_weight" not in raw:
        kwargs["exemplar_weight"] = raw.get("context_weight", CorpusConfig.context_weight)
    if raw.get("mixture"):
        kwargs["mixture"] = dict(raw["mixture"])
    if raw.get("function_curriculum"):
        kwargs["function_curriculum"] = tuple(raw["function_curriculum"])
    if raw.get("function_specs"):
        kwargs["function_specs"] = tuple(FunctionSpec.from_json(s)
                                         for s in raw["function_specs"])
    return CorpusConfig(**kwargs)


class CorpusSampler:
    """Samples packed, tokenized training rows from ``world``."""

    def __init__(
        self,
        world: World,
        tokenizer: PreTrainedTokenizerBase | None,
        config: CorpusConfig | None = None,
        seed: int = 0,
    ) -> None:
        """``tokenizer`` may be ``None`` for :meth:`row_facts` alone."""
        self.world = world
        self.tok = tokenizer
        self.cfg = config or CorpusConfig()
        self.seed = seed
        self._kinds = list(self.cfg.mixture)
        w = np.array([self.cfg.mixture[k] for k in self._kinds], dtype=float)
        self._p = w / w.sum()
        self._cdf = None
        if world.popularity is not None:
            p = np.array([world.popularity[e] for e in world.memorised], dtype=float)
            self._cdf = np.cumsum(p / p.sum())

    def _entity(self, rng: np.random.Generator) -> str:
        """A memorised entity drawn by the world's popularity."""
        mem = self.world.memorised
        if self._cdf is None:
            return mem[int(rng.integers(len(mem)))]
        return mem[min(int(np.searchsorted(self._cdf, rng.random(), side="right")),
                       len(mem) - 1)]

    def document(self, rng: np.random.Generator, kind: str, step: int | None = None
                 ) -> tuple[str, list[tuple]]:
        """One document of ``kind`` and the character spans of its answer tokens
        (``(start, end)``, weight 1, or ``(start, end, weight)``); ``step`` places a function
        document in the curriculum (``CorpusConfig.function_curriculum``)."""
        text, spans, _ = self.document_facts(rng, kind, step)
        return text, spans

    def document_facts(self, rng: np.random.Generator, kind: str, step: int | None = None
                       ) -> tuple[str, list[tuple], list[tuple[str, str]]]:
        """:meth:`document` and the memorised facts ``(entity, relation)`` whose true
        value the document states (an overriding passage states its entity's other true
        facts among its distractors, never the overridden one)."""
        world, fmt = self.world, self.cfg.qa_format
        rel = world.relations[int(rng.integers(len(world.relations)))].name
        nd = int(rng.integers(0, self.cfg.max_distractors + 1))
        facts: list[tuple[str, str]] = []
        if kind == "statements":
            e = self._entity(rng)
            rels = rng.permutation(len(world.relations))[: int(rng.integers(1, 5))]
            text, spans = "", []
            for i in rels:
                rel_name = world.relations[i].name
                value = world.facts[e][rel_name]
                sentence = world.statement(e, rel_name, value, int(rng.integers(3)))
                start = len(text) + sentence.rindex(value)
                spans.append((start, start + len(value)))
                facts.append((e, rel_name))
                text += sentence + " "
            return text.rstrip(), spans, facts
        if kind == "closed_book":
            e = self._entity(rng)
            ep = closed_book(world, e, rel)
            facts.append((e, rel))
        elif kind == "open_book":
            e = world.held_out[int(rng.integers(len(world.held_out)))]
            ep = open_book(world, rng, e, rel, nd)
        elif kind == "overriding":
            e = self._entity(rng)
            ep = overriding(world, rng, e, rel, nd)
            for other in world.relations:
                if other.name != rel and any(
                        world.statement(e, other.name, world.facts[e][other.name], t)
                        in ep.context for t in range(len(other.statements))):
                    facts.append((e, other.name))
        elif kind == "function":
            specs = self.cfg.function_specs
            if self.cfg.curriculum_style == "mixed":
                spec, mode = mixed_curriculum(specs, self.cfg.function_curriculum, step, rng)
            else:
                spec = specs[int(rng.integers(len(specs)))]
                mode = _curriculum_mode(self.cfg.function_curriculum, step)
            inst = sample_function_instances(spec, 1, seed=int(rng.integers(2**62)))[0]
            prompt, answer = inst.prompt, inst.answer
            if mode is not None:
                prompt, answer = curriculum_prompt(spec, inst, mode, rng)
            text = prompt + " " + answer
            # The query's answer counts fully; each exemplar label after the first
            # ``exemplar_warmup`` ones (predictable from the exemplars before it) gets
            # ``exemplar_weight``, so that the 16-32 labels of one prompt do not outweigh
            # every fact in the batch.
            spans = [(len(text) - len(answer), len(text), 1.0)]
            pos = 0
            for i, line in enumerate(text.split("\n")[:-1]):
                if i >= self.cfg.exemplar_warmup:
                    label = line.rsplit(" ", 1)[-1]
                    end = pos + len(line)
                    spans.append((end - len(label), end, self.cfg.exemplar_weight))
                pos += len(line) + 1
            return text, spans, facts
        else:  # internal: kinds come from the mixture, checked by CorpusConfig
            raise ValueError(f"unknown document kind {kind!r}; allowed: {DOC_KINDS}")
        prefix = fmt.block(ep.question, ep.context) + " "
        return prefix + ep.answer, [(len(prefix), len(prefix) + len(ep.answer))], facts

    def _encode(self, text: str, spans: list[tuple]) -> tuple[list[int], list[float]]:
        """Token ids and loss weights; ``spans`` are ``(start, end)`` character spans of
        answer tokens (weight 1) or ``(start, end, weight)``."""
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        full = [(s[0], s[1], s[2] if len(s) > 2 else 1.0) for s in spans]
        weights = []
        for a, b in enc["offset_mapping"]:
            hit = [w for s, e, w in full if a < e and s < b]
            weights.append(max(hit) if hit else self.cfg.context_weight)
        return enc["input_ids"], weights

    def row(self, step: int, index: int) -> tuple[list[int], list[float]]:
        """Row ``index`` of ``step``: token ids (``<bos>`` then whole documents) and the loss
        weight of predicting each token."""
        rng = np.random.default_rng([self.seed, step, index])
        ids, weights = [self.tok.bos_token_id], [0.0]
        sep = self.tok("\n\n", add_special_tokens=False)["input_ids"]
        budget = self.cfg.row_tokens
        while True:
            kind = self._kinds[int(rng.choice(len(self._kinds), p=self._p))]
            doc, w = self._encode(*self.document(rng, kind, step))
            if len(ids) > 1:
                doc, w = sep + doc, [self.cfg.context_weight] * len(sep) + w
                if len(ids) + len(doc) > budget:
                    return ids, weights
            ids.extend(doc[: budget - len(ids)])
            weights.extend(w[: budget - len(weights)])
            if len(ids) >= budget:
                return ids, weights

    def row_facts(self, step: int, index: int) -> list[tuple[str, str]]:
        """The memorised facts ``(entity, relation)`` stated in row ``index`` of ``step``
        (once per document stating it), found by replaying :meth:`row`'s draws and packing
        with :func:`~lenskit.synthetic.tokenizer.count_tokens` instead of the tokenizer."""
        return self._replay(step, index)[0]

    def _replay(self, step: int, index: int) -> tuple[list[tuple[str, str]], int]:
        """:meth:`row_facts` and the row's length in tokens (that of :meth:`row_ids`)."""
        rng = np.random.default_rng([self.seed, step, index])
        n, facts = 1, []  # n: tokens so far, starting with <bos>
        budget = self.cfg.row_tokens
        sep = count_tokens("\n\n")
        while True:
            kind = self._kinds[int(rng.choice(len(self._kinds), p=self._p))]
            text, _, stated = self.document_facts(rng, kind, step)
            length = count_tokens(text)
            if n > 1:
                length += sep
                if n + length > budget:
                    return facts, n
            facts.extend(stated)
            n += length
            if n >= budget:
                return facts, budget

    def row_ids(self, step: int, index: int) -> list[int]:
        """Token ids of row ``index`` of ``step``."""
        return self.row(step, index)[0]

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(input_ids [B, T], attention_mask [B, T], loss_weights [B, T])``, right-padded to
        the longest row; ``loss_weights[b, t]`` weighs the prediction of token ``t``."""
        rows: Sequence[tuple[list[int], list[float]]] = [
            self.row(step, i) for i in range(batch_size)
        ]
        t = max(len(r) for r, _ in rows)
        ids = torch.full((batch_size, t), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((batch_size, t), dtype=torch.long)
        weights = torch.zeros((batch_size, t), dtype=torch.float32)
        for i, (r, w) in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
            weights[i, : len(w)] = torch.tensor(w)
        return ids, mask, weights


CURRICULUM_MODES = ("repeat", "lookup", "near")
CURRICULUM_STYLES = ("phased", "mixed")


def mixed_curriculum(specs: Sequence[FunctionSpec], bounds: tuple[int, ...], step: int | None,
                     rng: np.random.Generator) -> tuple[FunctionSpec, str | None]:
    """The spec (with its number of exemplars) and curriculum mode (``None``: the task
    itself) of one function document at ``step`` of the "mixed" curriculum, whose stages
    end at ``bounds = (repeat_end, lookup_end, near_end)``:

    - repeat stage: the exemplars listed twice, 4-8 of them, on the fewest input dimensions;
    - lookup stage: 70% lookup, 30% repeat, 4-8 exemplars, fewest dimensions;
    - near stage: 70% near, 30% lookup, 6-12 exemplars, fewest dimensions;
    - after (or ``bounds == ()`` / ``step is None``): every spec with all its exemplars;
      15% lookup, 20% near and 65% the task itself.

    A tiny model starts in-context lookup on short prompts with many exact matches and keeps
    it only while lookups stay in the mix (``benchmarks/icl_curriculum.py``)."""
    stage = len(bounds) if not bounds or step is None else sum(step >= b for b in bounds)
    if stage == 3 or not bounds:
        spec = specs[int(rng.integers(len(specs)))]
        u = rng.random()
        return spec, "lookup" if u < 0.15 else "near" if u < 0.35 else None
    spec = min(specs, key=lambda s: s.n_dims)
    lo, hi = (6, 12) if stage == 2 else (4, 8)
    n = min(int(rng.integers(lo, hi + 1)), spec.n_exemplars)
    u = rng.random()
    mode = ("repeat", "repeat" if u < 0.3 else "lookup", "lookup" if u < 0.3 else "near")[stage]
    return replace(spec, n_exemplars=max(n, spec.n_classes)), mode


def _curriculum_mode(bounds: tuple[int, ...], step: int | None) -> str | None:
    if not bounds or step is None:
        return None
    for mode, end in zip(CURRICULUM_MODES, bounds, strict=True):
        if step < end:
            return mode
    return None


def curriculum_prompt(spec: FunctionSpec, inst, mode: str, rng: np.random.Generator
                      ) -> tuple[str, str]:
    """An easier ``(prompt, answer)`` made from function instance ``inst`` for the first
    phases of in-context function learning (a tiny model learns to compare numbers in
    context only after learning to look one up: ``benchmarks/icl_curriculum.py``):

    - ``repeat``: the exemplars, then all of them again in random order, then a query equal
      to one of them: every label of the second pass is an exact-match lookup;
    - ``lookup``: the exemplars, then a query equal to one of them;
    - ``near``: a query one unit from an exemplar (per coordinate, within the input range),
      answered with its nearest exemplar's label (Euclidean; ties to the first).
    """
    x, y = np.asarray(inst.exemplars_x, dtype=float), np.asarray(inst.exemplars_y)
    if mode == "repeat":
        order = rng.permutation(len(x))
        x, y = np.concatenate([x, x[order]]), np.concatenate([y, y[order]])
    i = int(rng.integers(len(x)))
    query, label = x[i], int(y[i])
    if mode == "near":
        step = rng.integers(-1, 2, size=x.shape[1]) * 10.0 ** -spec.decimals
        query = np.clip(query + step, -spec.value_range, spec.value_range)
        label = int(y[int(((x - query) ** 2).sum(1).argmin())])
    elif mode not in ("repeat", "lookup"):
        raise ValueError(f"unknown curriculum mode {mode!r}; allowed: {CURRICULUM_MODES}")
    labels = spec.labels
    prompt = spec.fmt.prompt([(xi, labels[int(yi)]) for xi, yi in zip(x, y, strict=True)],
                             query)
    return prompt, labels[label]


def exposure_counts(world: World, corpus_cfg: CorpusConfig | None, steps: int, batch: int,
                    seed: int = 0, start: int = 0) -> dict[str, dict[str, int]]:
    """How many training documents stated each memorised fact in steps ``start..steps-1``
    of ``batch`` rows of the corpus ``(world, corpus_cfg, seed)`` (the trainer's seed):
    ``counts[entity][relation]``, every fact present (0 when never stated). Exact: it replays
    the sampler's seeded draws (see :meth:`CorpusSampler.row_facts`). Cost: about the
    sampler's time without tokenizing, ~1 ms per row on one core."""
    if steps < start or batch < 1:
        raise UsageError(f"need 0 <= start <= steps and batch >= 1, got start={start}, "
                         f"steps={steps}, batch={batch}")
    sampler = CorpusSampler(world, None, corpus_cfg, seed=seed)
    counts = {e: dict.fromkeys(world.facts[e], 0) for e in world.memorised}
    for step in range(start, steps):
        for i in range(batch):
            for e, r in sampler.row_facts(step, i):
                counts[e][r] += 1
    return counts
