"""Few-shot prompt templates that pretrained models follow, with fixed demonstrations.

A template is a :class:`~lenskit.synthetic.formats.QAFormat` plus how it words an item:

- ``qa``: ``"Q: {question}\\nA: {answer}"`` (the organism's format);
- ``question_answer``: ``"Question: ...\\nAnswer: ..."``, passages as ``"Context: ..."``;
- ``cloze``: the fact's statement up to its value (``"The capital of France is Paris."``),
  passages as one ``"Context: ..."`` sentence; items need ``meta["cloze"]`` (the country
  facts have it).

:func:`templated_task` builds a QA task whose every prompt starts with the *same*
demonstrations, drawn (seeded) from a split disjoint from the evaluated items: prompts then
share a token prefix that evaluation encodes once (see :mod:`lenskit.tasks.evaluate`), and
no query is ever its own or a trivially related example. Demonstrations are consistent
with the task: closed-book demos are plain true facts, open-book demos carry their true
passage, and overriding demos are true open-book examples unless ``counterfactual_demos``
asks for the task's own counterfactual ones. :func:`split_demos` makes the split;
:func:`with_passages` sets passage length and distractors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from lenskit.errors import UsageError
from lenskit.synthetic.formats import QAFormat
from lenskit.tasks.builders import qa_task
from lenskit.tasks.core import TaskSet
from lenskit.tasks.items import QAItem, QAItems

__all__ = ["TEMPLATES", "split_demos", "templated_task", "with_passages"]

TEMPLATES: dict[str, QAFormat] = {
    "qa": QAFormat(),
    "question_answer": QAFormat("Question: {question}\nAnswer:", "Context: {context}\n"),
    "cloze": QAFormat("{question}", "Context: {context}\n", shot_separator=".\n"),
}


def template_format(template: str | QAFormat) -> QAFormat:
    """The format of a template name (or a format itself)."""
    if isinstance(template, QAFormat):
        return template
    if template not in TEMPLATES:
        raise UsageError(f"unknown template {template!r}; allowed: {sorted(TEMPLATES)}")
    return TEMPLATES[template]


def _worded(items: Sequence[QAItem], template: str | QAFormat) -> list[QAItem]:
    """Items as the template words them (``cloze`` replaces the question by the statement)."""
    if template != "cloze":
        return list(items)
    out = []
    for it in items:
        cloze = it.meta.get("cloze")
        if not cloze:
            raise UsageError(f"the cloze template needs items with meta['cloze'] (a "
                             f"statement up to the answer); item {it.id or it.question!r} "
                             "has none: use template 'qa' or 'question_answer'")
        out.append(replace(it, question=cloze))
    return out


def split_demos(items: Sequence[QAItem], n_demos: int, seed: int = 0
                ) -> tuple[list[QAItem], list[QAItem]]:
    """``(demos, rest)``: ``n_demos`` items drawn (seeded) as demonstrations and the others,
    without any item asking a demo's question or about a demo's entity (``meta["country"]``
    of the country facts): a disjoint split."""
    if not isinstance(n_demos, (int, np.integer)) or n_demos < 0:
        raise UsageError(f"shots must be an int >= 0, got {n_demos!r}")
    if n_demos >= len(items):
        raise UsageError(f"shots={n_demos} leaves no item to evaluate ({len(items)} items)")
    order = np.random.default_rng([seed, 7]).permutation(len(items))
    demos = [items[int(i)] for i in order[:n_demos]]
    asked = {d.question for d in demos}
    keys = {d.meta.get("country") for d in demos} - {None}
    rest = [items[int(i)] for i in sorted(order[n_demos:])
            if items[int(i)].question not in asked
            and items[int(i)].meta.get("country") not in keys]
    return demos, rest


def _window(it: QAItem, chars: int) -> QAItem:
    """The item with a passage of at most ``chars`` characters around its answer."""
    ctx = it.context or ""
    if len(ctx) <= chars:
        return it
    span = it.answer_span() or (0, 0)
    mid = (span[0] + span[1]) // 2
    start = max(0, min(mid - chars // 2, len(ctx) - chars))
    end = start + chars
    # whole words: move the cut to a space when one is near
    if start > 0:
        sp = ctx.find(" ", start, span[0] if span[1] else end)
        start = sp + 1 if sp >= 0 else start
    sp = ctx.rfind(" ", max(span[1], start), end)
    end = sp if sp > start else end
    cut = ctx[start:end]
    inner = it.context_answer_span
    new_span = None
    if inner is not None and start <= inner[0] and inner[1] <= end:
        new_span = (inner[0] - start, inner[1] - start)
    return replace(it, context=cut, context_answer_span=new_span)


def with_passages(items: Sequence[QAItem], *, passage_chars: int | None = None,
                  distractors: int = 0, seed: int = 0) -> list[QAItem]:
    """Items whose passage is cut to ``passage_chars`` characters around the answer, then
    joined (in a seeded random order) with ``distractors`` passages of other items.

    Default: the gold passage as it is (the study's setting).
    """
    if passage_chars is not None and passage_chars < 1:
        raise UsageError(f"passage_chars must be >= 1 or None, got {passage_chars}")
    if distractors < 0:
        raise UsageError(f"distractors must be >= 0, got {distractors}")
    out = [_window(it, passage_chars) if passage_chars and it.context else it for it in items]
    if not distractors:
        return out
    if distractors >= len(out):
        raise UsageError(f"distractors={distractors} needs more than {len(out)} items")
    rng = np.random.default_rng([seed, 11])
    mixed = []
    for k, it in enumerate(out):
        others = [j for j in rng.permutation(len(out))[: distractors + 1] if j != k]
        parts = [it.context or ""] + [out[int(j)].context or "" for j in others[:distractors]]
        order = rng.permutation(len(parts))
        span = it.answer_span()
        offset = sum(len(parts[j]) + 1 for j in order[: int(np.flatnonzero(order == 0)[0])])
        context = " ".join(parts[j] for j in order)
        new_span = (offset + span[0], offset + span[1]) if span else None
        mixed.append(replace(it, context=context, context_answer_span=new_span))
    return mixed


def templated_task(
    kind: str,
    items: Sequence[QAItem],
    *,
    template: str | QAFormat = "qa",
    shots: int = 3,
    n: int | None = None,
    seed: int = 0,
    name: str | None = None,
    demo_items: Sequence[QAItem] | None = None,
    counterfactual_demos: bool = False,
    stop: Sequence[str] = (),
    fold_accents: bool = False,
) -> TaskSet:
    """A QA task with ``shots`` fixed demonstrations shared by every prompt.

    Args:
        kind: ``closed_book``, ``open_book`` or ``overriding``.
        items: the task's items; demonstrations are split off them (seeded) unless
            ``demo_items`` gives them another source (for overriding: true open-book items
            of the same facts), which is then split the same way.
        template: a name in :data:`TEMPLATES` or a :class:`QAFormat`.
        shots: demonstrations per prompt (0: zero-shot).
        n: evaluate this many items (seeded draw), all when ``None``.
        counterfactual_demos: overriding only: demonstrate with the task's own
            counterfactual items instead of true ones.
        stop: strings that end an answer besides the newline (recorded in the config).
        fold_accents: score exact match on accent-free forms.
    """
    fmt = template_format(template)
    worded = _worded(items, template)
    pool = worded
    if demo_items is not None and not (kind == "overriding" and counterfactual_demos):
        pool = _worded(demo_items, template)
    demos, _ = split_demos(pool, shots, seed) if shots else ([], list(pool))
    taken = {d.question for d in demos} | ({d.meta.get("country") for d in demos} - {None})
    evaluated = [it for it in worded
                 if it.question not in taken and it.meta.get("country") not in taken]
    if not evaluated:
        raise UsageError("no item left to evaluate once the demonstrations are split off")
    n_requested = n
    if n is not None and n > len(evaluated):
        n = len(evaluated)  # fewer items than asked: all of them (recorded in the config)
    source = items.source if isinstance(items, QAItems) else None
    split = items.split if isinstance(items, QAItems) else None
    held = QAItems(name=getattr(items, "name", kind), items=tuple(evaluated),
                   source=source or "custom", split=split or "",
                   config=dict(getattr(items, "config", {})))
    task = qa_task(kind, held, fmt, n=n, seed=seed, name=name, demos=demos)
    config = {**task.config, "template": template if isinstance(template, str) else "custom",
              "stop": list(stop), "fold_accents": bool(fold_accents),
              "counterfactual_demos": bool(counterfactual_demos), "n_requested": n_requested}
    return replace(task, config=config)
