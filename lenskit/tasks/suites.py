"""Ready-made suites: the organism's, the offline country facts, and the default per model.

Sizes: ``"small"`` is meant for sweeps (a whole suite of the organism evaluates in
seconds on one core), ``"full"`` for final numbers (every memorised fact; the study's 2,048
function prompts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lenskit.errors import UsageError
from lenskit.models import model_info
from lenskit.synthetic import episodes
from lenskit.synthetic.corpus import CorpusSampler, corpus_config_from_json
from lenskit.synthetic.formats import QAFormat
from lenskit.synthetic.functions import FunctionSpec
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import BUCKETS, World
from lenskit.tasks import loaders
from lenskit.tasks.builders import (
    closed_book_task,
    function_spec_name,
    function_task,
    open_book_task,
    overriding_task,
    perplexity_task,
)
from lenskit.tasks.core import TaskSet
from lenskit.tasks.countries import COUNTRY_ATTRIBUTES, country_items, gazetteer_text
from lenskit.tasks.items import QAItem, QAItems
from lenskit.tasks.templates import templated_task

__all__ = ["SIZES", "closed_book_exposure", "countries_suite", "default_suite",
           "organism_suite", "study_function_specs"]

SIZES = ("small", "full")
# Corpus steps from here on are never drawn in training (a run is ~10^4 steps), so rows of
# these steps are held-out text from the training distribution.
HELD_OUT_STEP = 10**7

_ORGANISM_SIZES = {
    "small": {"closed_book": 300, "open_book": 300, "overriding": 300, "function": 300,
              "perplexity": 32},
    "full": {"closed_book": None, "open_book": 1000, "overriding": None, "function": 1000,
             "perplexity": 256},
}
_COUNTRY_SIZES = {"small": 100, "full": None}
# The study's 2,048 prompts per function task when full; 512 when small, whose 95% Wilson
# interval at an accuracy of 0.5 is +-0.043 (2,048: +-0.022). At 64 it was +-0.12: wide
# enough that a model at chance could look above it, and "thresholds" of noise followed.
_STUDY_FUNCTION_N = {"small": 512, "full": 2048}


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise UsageError(f"unknown size {size!r}; allowed: {SIZES}")


# ----------------------------------------------------------------------------- organism


def _organism_dir(model_or_path) -> Path | None:
    """The directory of an organism (it holds ``world.json``), or None."""
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
    else:
        try:
            path = Path(model_info(model_or_path).path)
        except ValueError:
            return None
    return path if (path / "world.json").is_file() else None


def _training_config(directory: Path | None) -> dict[str, Any]:
    if directory is None or not (directory / "training.json").is_file():
        return {}
    meta = json.loads((directory / "training.json").read_text())
    # A two-stage organism: the first stage's corpus (the one it learned its facts and
    # language from; the second only adds function prompts) defines the suite, so that its
    # perplexity rows are those of a one-stage member and the family compares like with like.
    return meta.get("first_stage", meta).get("train_config", {})


def _corpus_config(train_cfg: dict[str, Any]):
    """The corpus settings the organism was trained with (defaults when not recorded)."""
    return corpus_config_from_json(train_cfg.get("corpus"))


def _statement_span(world, context: str, entity: str, relation: str,
                    value: str) -> tuple[int, int] | None:
    """Span of ``value`` in the sentence of ``context`` stating ``entity``'s ``relation``."""
    rel = world.relation(relation)
    for t in range(len(rel.statements)):
        sentence = world.statement(entity, relation, value, t)
        pos = context.find(sentence)
        if pos >= 0:
            # The value is the last occurrence in its sentence (it follows the entity).
            start = pos + sentence.rindex(value)
            return start, start + len(value)
    return None


def _item_id(prefix: str, entity: str, relation: str) -> str:
    return f"{prefix}-{entity}-{relation}"


def closed_book_exposure(world: World) -> dict[str, int]:
    """``{instance_id: exposure}`` of every closed-book item :func:`organism_suite` can ask
    about ``world`` (any size or seed): how many training documents stated the fact, as
    recorded in a trained zipf world's ``exposure``. Empty when the world records none."""
    if world.exposure is None:
        return {}
    return {_item_id("cb", e, r): int(n) for e, rels in world.exposure.items()
            for r, n in rels.items()}


def _episode_item(world, ep, prefix: str, k: int | None = None) -> QAItem:
    span = (_statement_span(world, ep.context, ep.entity, ep.relation, ep.answer)
            if ep.context else None)
    tag = _item_id(prefix, ep.entity, ep.relation) if k is None else f"{prefix}-{k}-{ep.entity}"
    meta = {"entity": ep.entity, "relation": ep.relation}
    if world.buckets is not None and ep.entity in world.buckets:
        meta["bucket"] = world.buckets[ep.entity]
        if world.exposure is not None:
            meta["exposure"] = world.exposure[ep.entity][ep.relation]
    return QAItem(ep.question, (ep.answer,), context=ep.context,
                  memorised_answer=ep.memorised_answer, context_answer_span=span, id=tag,
                  meta=meta)


def organism_suite(model_or_world, size: str = "small", seed: int = 0) -> dict[str, TaskSet]:
    """The organism's suite: its own facts, passages, function tasks and held-out text.

    Args:
        model_or_world: the organism's bridge (loaded from a directory holding
            ``world.json``), that directory, or a :class:`lenskit.synthetic.world.World`.
        size: ``"small"`` (300 instances per task, 32 perplexity rows) or ``"full"`` (all
            memorised facts for closed-book and overriding, 1000 open-book and function
            prompts, 256 rows).
        seed: seeds every draw (subsets, fresh values, distractors, functions).

    Tasks: ``closed_book`` (memorised facts, ``world.facts``; in a world with popularity
    buckets, one task per bucket instead, ``closed_book_head``, ``closed_book_torso``,
    ``closed_book_tail``, each of that size, so that sweeps report thresholds per bucket and
    figures draw head and tail recall as separate fact-recall tasks), ``open_book`` (held-out
    names with freshly drawn values and distractor sentences), ``overriding`` (memorised
    entities whose passage states a counterfactual value), one function task per spec the
    organism was trained on (``training.json``, its first stage's for a two-stage organism;
    else ``DEFAULT_FUNCTION_SPECS``), and ``perplexity`` on (first-stage) corpus rows of steps ``>= 10**7``, which training never draws. The
    episodes come from :mod:`lenskit.synthetic.episodes`, the very builders of the
    training corpus, in its format (``QAFormat()``, zero-shot).
    """
    _check_size(size)
    tokenizer = None
    directory = None
    if isinstance(model_or_world, World):
        world = model_or_world
    else:
        directory = _organism_dir(model_or_world)
        if directory is None:
            raise UsageError("organism_suite needs the organism (a model loaded from a "
                             "directory holding world.json), that directory, or a World; "
                             f"got {model_or_world!r}")
        world = World.load(directory / "world.json")
        if not isinstance(model_or_world, (str, os.PathLike)):
            tokenizer = model_info(model_or_world).tokenizer
    if tokenizer is None:
        if directory is not None and (directory / "tokenizer.json").is_file():
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        else:
            tokenizer = build_tokenizer(organism_vocabulary(world))
    train_cfg = _training_config(directory)
    corpus = _corpus_config(train_cfg)
    sizes = _ORGANISM_SIZES[size]
    fmt = corpus.qa_format
    rels = [r.name for r in world.relations]
    pairs = [(e, r) for e in world.memorised for r in rels]
    source = f"organism:{directory}" if directory else "organism"
    tasks: dict[str, TaskSet] = {}

    def provenance(name: str, items: list[QAItem]) -> QAItems:
        return QAItems(name=name, items=tuple(items), source=source, split="",
                       config={"world_seed": world.seed})

    cb = [_episode_item(world, episodes.closed_book(world, e, r), "cb") for e, r in pairs]
    if world.buckets is None:
        tasks["closed_book"] = closed_book_task(provenance("closed_book", cb), fmt,
                                                n=_n(sizes["closed_book"], len(cb)), seed=seed)
    else:
        for bucket in BUCKETS:
            name = f"closed_book_{bucket}"
            part = [it for it in cb if it.meta["bucket"] == bucket]
            if part:  # a world of fewer than 3 entities leaves a bucket empty
                tasks[name] = closed_book_task(provenance(name, part), fmt, name=name,
                                               n=_n(sizes["closed_book"], len(part)),
                                               seed=seed)

    rng = np.random.default_rng([seed, 1])
    n_open = sizes["open_book"]
    ob = []
    for k in range(n_open):
        e = world.held_out[int(rng.integers(len(world.held_out)))]
        r = rels[int(rng.integers(len(rels)))]
        nd = int(rng.integers(0, corpus.max_distractors + 1))
        ob.append(_episode_item(world, episodes.open_book(world, rng, e, r, nd), "ob", k))
    tasks["open_book"] = open_book_task(provenance("open_book", ob), fmt, seed=seed)

    rng = np.random.default_rng([seed, 2])
    ov = []
    for e, r in pairs:
        nd = int(rng.integers(0, corpus.max_distractors + 1))
        ov.append(_episode_item(world, episodes.overriding(world, rng, e, r, nd), "ov"))
    tasks["overriding"] = overriding_task(provenance("overriding", ov), fmt,
                                          n=_n(sizes["overriding"], len(ov)), seed=seed)

    for j, spec in enumerate(corpus.function_specs):
        name = _unique(function_spec_name(spec), tasks)
        tasks[name] = function_task(spec, sizes["function"], seed=seed * 1000 + j, name=name)

    sampler = CorpusSampler(world, tokenizer, corpus, seed=int(train_cfg.get("seed", 0)))
    rows = [sampler.row_ids(HELD_OUT_STEP + seed, i) for i in range(sizes["perplexity"])]
    tasks["perplexity"] = perplexity_task(rows, tokenizer, window=corpus.row_tokens,
                                          add_bos=False, source=source,
                                          split=f"corpus steps >= {HELD_OUT_STEP}")
    return tasks


def _n(wanted: int | None, available: int) -> int | None:
    return None if wanted is None or wanted >= available else wanted


def _unique(name: str, taken: dict) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


# ----------------------------------------------------------------------------- countries


def countries_suite(
    size: str = "small",
    seed: int = 0,
    *,
    attributes: Sequence[str] = COUNTRY_ATTRIBUTES,
    shots: int = 3,
    n_distractors: int = 0,
    fmt: QAFormat | None = None,
    template: str = "cloze",
) -> dict[str, TaskSet]:
    """Country facts from ``countryinfo`` in closed-book, open-book and overriding form.

    Task names are ``countries_{attribute}_{kind}``. ``size="small"`` draws 100 countries
    per task (seeded), ``"full"`` uses all (about 237) but the demonstrations' countries.
    Every prompt starts with the same ``shots`` demonstrations (true facts about other
    countries; overriding tasks demonstrate with true passages, see
    :func:`lenskit.tasks.templates.templated_task`) worded by ``template`` (or ``fmt``);
    passages are the gold sentence alone unless ``n_distractors`` adds true sentences about
    other countries.
    """
    _check_size(size)
    tasks: dict[str, TaskSet] = {}
    for attribute in attributes:
        for kind in ("closed_book", "open_book", "overriding"):
            items = country_items(attribute, kind, seed=seed, n_distractors=n_distractors)
            demo_items = (country_items(attribute, "open_book", seed=seed,
                                        n_distractors=n_distractors)
                          if kind == "overriding" else None)
            name = f"countries_{attribute}_{kind}"
            tasks[name] = templated_task(kind, items, template=fmt or template, shots=shots,
                                         n=_COUNTRY_SIZES[size], seed=seed, name=name,
                                         demo_items=demo_items)
    return tasks


def study_function_specs() -> tuple[FunctionSpec, ...]:
    """The study's function tasks: linear, 2-layer ReLU net, tree; D=4, N=32, K=2."""
    return tuple(FunctionSpec(kind=k, n_dims=4, n_exemplars=32, n_classes=2)
                 for k in ("linear", "mlp", "tree"))


def default_suite(
    model,
    size: str = "small",
    seed: int = 0,
    *,
    datasets: Sequence[str] = (),
    data_paths: dict[str, str] | None = None,
) -> dict[str, TaskSet]:
    """The suite lenskit evaluates ``model`` on by default.

    The organism (a directory with ``world.json``) gets :func:`organism_suite`. Any other
    model gets :func:`countries_suite`, the study's function tasks (2,048 prompts each when
    full, as the study; 512 when small, a 95% interval of +-0.043 around an accuracy of 0.5
    against +-0.022 at 2,048) and perplexity on :func:`gazetteer_text` with the model's
    tokenizer. Hub datasets are added only when asked for: ``datasets`` names any of
    ``"triviaqa"`` (closed-book), ``"triviaqa_open"`` (open-book on evidence),
    ``"webquestions"``, ``"natural_questions"`` (open-book), ``"disentqa"`` (overriding),
    ``"popqa"`` (closed-book, one task per popularity bucket: ``popqa_head``,
    ``popqa_torso``, ``popqa_tail``, terciles of ``s_pop``);
    ``data_paths`` maps such a name to a local file used instead of the hub.
    """
    _check_size(size)
    unknown = [n for n in [*datasets, *(data_paths or {})] if n not in _HUB_TASKS]
    if unknown:
        raise UsageError(f"unknown dataset(s) {unknown}; allowed: {_HUB_TASKS}")
    if _organism_dir(model) is not None:
        if datasets:
            raise UsageError("the organism's suite is its own world; hub datasets are for "
                             "pretrained models")
        return organism_suite(model, size=size, seed=seed)
    info = model_info(model)
    tasks = countries_suite(size, seed)
    for j, spec in enumerate(study_function_specs()):
        tasks[function_spec_name(spec)] = function_task(spec, _STUDY_FUNCTION_N[size],
                                                        seed=seed * 1000 + j)
    limit = getattr(info.hf.config, "n_positions", None) or getattr(
        info.hf.config, "max_position_embeddings", None) or 512
    window = int(min(256, limit - 1))
    tasks["perplexity"] = perplexity_task(gazetteer_text(), info.tokenizer, window=window,
                                          source="countryinfo gazetteer (generated)")
    tasks.update(_hub_tasks(datasets, data_paths or {}, size, seed))
    return tasks


_HUB_TASKS = ("triviaqa", "triviaqa_open", "webquestions", "natural_questions", "disentqa",
              "popqa")


def _hub_tasks(names: Sequence[str], paths: dict[str, str], size: str,
               seed: int) -> dict[str, TaskSet]:
    n = 500 if size == "small" else None
    out: dict[str, TaskSet] = {}
    for name in names:
        path = paths.get(name)
        if name == "triviaqa":
            items, build = loaders.load_triviaqa(path), closed_book_task
        elif name == "triviaqa_open":
            items, build = loaders.load_triviaqa(path, evidence=True), open_book_task
        elif name == "webquestions":
            items, build = loaders.load_webquestions(path), closed_book_task
        elif name == "natural_questions":
            items, build = loaders.load_natural_questions(path), open_book_task
        elif name == "popqa":
            # one task per popularity bucket, as the organism's closed_book_head/torso/tail
            items = loaders.load_popqa(path)
            for bucket in loaders.POPQA_BUCKETS:
                part = QAItems(items.name, tuple(it for it in items
                                                 if it.meta["bucket"] == bucket),
                               items.source, items.split, {**items.config, "bucket": bucket})
                task = f"popqa_{bucket}"
                out[task] = closed_book_task(part, None, 0, n=_n(n, len(part)), seed=seed,
                                             name=task)
            continue
        else:
            items, build = loaders.load_disentqa(path), overriding_task
        out[name] = build(items, None, 0, n=_n(n, len(items)), seed=seed, name=name)
    return out
