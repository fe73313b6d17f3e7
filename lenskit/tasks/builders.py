"""Builders that turn items into task sets: QA prompts, function prompts, text windows.

Few-shot examples are drawn per instance (seeded) from the task's own items (or from
``shot_pool``), never the query itself nor an item asking the same question; an example
carries its passage when the task has passages, so an overriding task's examples are
themselves counterfactual (they demonstrate that the passage decides). With ``demos`` the
same fixed demonstrations precede every query instead (see :mod:`lenskit.tasks.templates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from lenskit.errors import UsageError
from lenskit.synthetic.formats import QAFormat
from lenskit.synthetic.functions import FunctionSpec, sample_function_instances
from lenskit.tasks.core import TaskInstance, TaskSet, TextWindow
from lenskit.tasks.encoding import special_affixes, tokenizer_fingerprint
from lenskit.tasks.items import QAItem, QAItems

__all__ = [
    "closed_book_task",
    "function_task",
    "open_book_task",
    "overriding_task",
    "perplexity_task",
    "qa_task",
]


def _context_offset(fmt: QAFormat) -> int:
    """Where the passage starts inside ``fmt.context_template`` once rendered."""
    marker = "\x00"
    return fmt.context_template.format(context=marker).index(marker)


def _draw(items: Sequence[QAItem], n: int | None, rng: np.random.Generator) -> list[int]:
    if n is None:
        return list(range(len(items)))
    if not isinstance(n, (int, np.integer)) or not 1 <= n <= len(items):
        raise UsageError(f"n must be an int in 1..{len(items)} (the number of items), got {n!r}")
    return sorted(rng.choice(len(items), size=int(n), replace=False).tolist())


def qa_task(
    kind: str,
    items: Sequence[QAItem],
    fmt: QAFormat | None = None,
    shots: int = 0,
    *,
    n: int | None = None,
    seed: int = 0,
    name: str | None = None,
    source: str | None = None,
    split: str | None = None,
    shot_pool: Sequence[QAItem] | None = None,
    demos: Sequence[QAItem] | None = None,
) -> TaskSet:
    """A closed-book, open-book or overriding task set from ``items``.

    Args:
        kind: ``"closed_book"`` (passages ignored), ``"open_book"`` or ``"overriding"``
            (every item needs a passage; overriding items also a ``memorised_answer``).
        items: the items (a :class:`QAItems` also gives source and split).
        fmt: prompt format (default ``QAFormat()``: ``"Q: {question}\\nA:"``).
        shots: few-shot examples per prompt.
        n: draw this many items (seeded); all when ``None``.
        seed: seeds the draw of items and of few-shot examples.
        name: the task's name (default: ``kind``).
        source, split: override the provenance taken from ``items``.
        shot_pool: where examples come from (default: ``items``).
        demos: fixed demonstrations shown, in order, before every query (``shots`` is then
            their number); they carry their passage when the task has passages.
    """
    if kind not in ("closed_book", "open_book", "overriding"):
        raise UsageError(
            f"qa_task kind must be closed_book, open_book or overriding, got {kind!r}"
        )
    fmt = fmt or QAFormat()
    if not isinstance(fmt, QAFormat):
        raise UsageError(f"fmt must be a QAFormat, got {type(fmt).__name__}")
    items = items if isinstance(items, (QAItems, list, tuple)) else list(items)
    if len(items) == 0:
        raise UsageError(f"cannot build a {kind} task from no items")
    if not isinstance(shots, (int, np.integer)) or shots < 0:
        raise UsageError(f"shots must be an int >= 0, got {shots!r}")
    use_context = kind != "closed_book"
    if demos is not None:
        demos = list(demos)
        if shots not in (0, len(demos)):
            raise UsageError(f"shots={shots} but {len(demos)} fixed demos were given")
        shots = len(demos)
        if use_context and any(not d.context for d in demos):
            raise UsageError(f"{kind} demonstrations need passages; some have none")
    for it in items:
        if not isinstance(it, QAItem):
            raise UsageError(f"items must be QAItem objects, got a {type(it).__name__}")
        if use_context and not it.context:
            raise UsageError(f"{kind} needs a passage for every item; item "
                             f"{it.id or it.question!r} has none")
        if kind == "overriding" and it.memorised_answer is None:
            raise UsageError(f"overriding needs a memorised_answer for every item; item "
                             f"{it.id or it.question!r} has none")
    pool = list(shot_pool) if shot_pool is not None else list(items)
    if demos is not None:
        pool = demos
    elif shots and use_context and any(not p.context for p in pool):
        raise UsageError(f"{kind} few-shot examples need passages; the shot pool has items "
                         "without one")
    if demos is None and shots > len(pool) - (0 if shot_pool is not None else 1):
        raise UsageError(f"shots={shots} needs more items in the shot pool (has {len(pool)})")
    rng = np.random.default_rng(seed)
    chosen = _draw(items, n, rng)
    name = name or kind
    ctx_off = _context_offset(fmt)
    instances = []
    for idx in chosen:
        it = items[idx]
        ex = demos if demos is not None else (_pick_shots(pool, it, shots, rng) if shots
                                              else [])
        examples = [(p.question, p.context if use_context else None, p.answers[0]) for p in ex]
        context = it.context if use_context else None
        prompt = fmt.prompt(it.question, context, examples)
        span = None
        if use_context:
            inner = it.answer_span()
            if inner is not None:
                start = len(prompt) - len(fmt.block(it.question, context)) + ctx_off
                span = (start + inner[0], start + inner[1])
        meta = dict(it.meta)
        if ex:
            meta["shot_ids"] = [p.id for p in ex]
        if kind == "overriding" and it.memorised_aliases:
            meta["memorised_aliases"] = list(it.memorised_aliases)
        instances.append(
            TaskInstance(
                id=it.id or f"{name}-{idx}",
                prompt=prompt,
                answers=it.answers,
                memorised_answer=it.memorised_answer if kind == "overriding" else None,
                answer_span=span,
                meta=meta,
            )
        )
    prov_source = source or (items.source if isinstance(items, QAItems) else "custom")
    prov_split = split if split is not None else (
        items.split if isinstance(items, QAItems) else "")
    config = {
        "format": asdict(fmt),
        "shots": int(shots),
        "n_items": len(items),
        **({"demo_ids": [d.id for d in demos]} if demos is not None else {}),
        **({"items": dict(items.config)} if isinstance(items, QAItems) else {}),
    }
    return TaskSet(name=name, kind=kind, instances=tuple(instances), source=prov_source,
                   split=prov_split, seed=seed, config=config)


def _pick_shots(pool: Sequence[QAItem], query: QAItem, k: int,
                rng: np.random.Generator) -> list[QAItem]:
    """``k`` distinct pool items other than the query and not asking the same question."""
    def ok(p: QAItem) -> bool:
        return p is not query and p.question != query.question and (
            not query.id or p.id != query.id)

    picked: list[QAItem] = []
    for j in rng.choice(len(pool), size=min(len(pool), k + 4), replace=False):
        if ok(pool[int(j)]):
            picked.append(pool[int(j)])
            if len(picked) == k:
                return picked
    # Rare: many near-duplicates among the first candidates; scan a full permutation.
    picked = [pool[int(j)] for j in rng.permutation(len(pool)) if ok(pool[int(j)])][:k]
    if len(picked) < k:
        raise UsageError(f"only {len(picked)} usable few-shot examples for {query.question!r}; "
                         f"asked for {k}")
    return picked


def closed_book_task(items: Sequence[QAItem], fmt: QAFormat | None = None, shots: int = 0,
                     **kwargs) -> TaskSet:
    """Closed-book QA (fact recall): the question alone, after ``shots`` examples.

    Keyword arguments are those of :func:`qa_task` (``n``, ``seed``, ``name``, ...).
    """
    return qa_task("closed_book", items, fmt, shots, **kwargs)


def open_book_task(items: Sequence[QAItem], fmt: QAFormat | None = None, shots: int = 0,
                   **kwargs) -> TaskSet:
    """Open-book QA: each item's passage, then its question; ``answer_span`` marks the
    answer inside the passage."""
    return qa_task("open_book", items, fmt, shots, **kwargs)


def overriding_task(items: Sequence[QAItem], fmt: QAFormat | None = None, shots: int = 0,
                    **kwargs) -> TaskSet:
    """Overriding QA: the passage states a counterfactual answer (scored as gold); the
    item's ``memorised_answer`` is what the model would say from memory."""
    return qa_task("overriding", items, fmt, shots, **kwargs)


def function_spec_name(spec: FunctionSpec) -> str:
    """A task name that tells function specs apart, e.g. ``fn_linear_d4_n32_k2``."""
    return f"fn_{spec.kind}_d{spec.n_dims}_n{spec.n_exemplars}_k{spec.n_classes}"


def function_task(spec: FunctionSpec, n: int, seed: int = 0, *,
                  name: str | None = None) -> TaskSet:
    """In-context function learning: ``n`` prompts, each a fresh random function of
    ``spec.kind`` with ``spec.n_exemplars`` labelled inputs and a query; query labels are
    class-balanced (see :func:`lenskit.synthetic.functions.sample_function_instances`).
    The task's ``chance`` is the share of the most frequent query label (``1/K``)."""
    if not isinstance(spec, FunctionSpec):
        raise UsageError(f"spec must be a FunctionSpec, got {type(spec).__name__}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"n must be an int >= 1, got {n!r}")
    name = name or function_spec_name(spec)
    raw = sample_function_instances(spec, int(n), seed)
    instances = tuple(
        TaskInstance(
            id=f"{name}-{i}",
            prompt=r.prompt,
            answers=(r.answer,),
            meta={"label": r.label, "function": spec.kind},
        )
        for i, r in enumerate(raw)
    )
    config = {k: v for k, v in asdict(spec).items() if k != "fmt"}
    config["labels"] = list(spec.labels[: spec.n_classes])
    config["format"] = asdict(spec.fmt)
    # Chance: the best a guess blind to the exemplars does, i.e. always answering the most
    # frequent query label (exactly 1/K when n is a multiple of K: labels are balanced).
    counts = np.unique([r.label for r in raw], return_counts=True)[1]
    return TaskSet(name=name, kind="function", instances=instances, source="generated",
                   split="", seed=seed, config=config, chance=float(counts.max()) / len(raw))


def _documents(text_or_tokens, tokenizer) -> tuple[list[list[int]], bool]:
    """Token documents and whether they came from text."""
    if isinstance(text_or_tokens, str):
        texts = [text_or_tokens]
    elif isinstance(text_or_tokens, Sequence) and len(text_or_tokens) and all(
            isinstance(t, str) for t in text_or_tokens):
        texts = list(text_or_tokens)
    else:
        texts = None
    if texts is not None:
        if tokenizer is None:
            raise UsageError("perplexity_task needs a tokenizer to tokenise text")
        return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]], True
    seq = list(text_or_tokens) if text_or_tokens is not None else []
    if not seq:
        raise UsageError("perplexity_task needs a non-empty text or token sequence")
    if all(isinstance(t, (int, np.integer)) for t in seq):
        return [[int(t) for t in seq]], False
    if all(isinstance(t, Sequence) and not isinstance(t, str) for t in seq):
        return [[int(t) for t in d] for d in seq], False
    raise UsageError("text_or_tokens must be a string, a list of strings, a list of token "
                     "ids, or a list of token-id lists")


def perplexity_task(
    text_or_tokens: str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]],
    tokenizer=None,
    window: int = 256,
    stride: int | None = None,
    *,
    name: str = "perplexity",
    add_bos: bool | None = None,
    max_windows: int | None = None,
    source: str = "custom",
    split: str = "",
) -> TaskSet:
    """Perplexity over fixed windows of a text (token-weighted).

    Each document is cut into windows of ``window`` tokens starting every ``stride`` tokens
    (default ``stride = window``: disjoint windows). A token is scored at most once, in
    the first window that holds it outside the overlap with the previous window (the
    sliding-window scheme of the transformers docs); the overlap is context only. A window
    without a BOS cannot score its first token, so disjoint windows without a BOS leave
    one token per window unscored; with a BOS every token is scored. Perplexity is
    ``exp(total NLL / total scored tokens)``.

    Args:
        text_or_tokens: a text, a list of texts (documents), a token-id list, or a list of
            token-id lists.
        tokenizer: needed for text; recorded (by fingerprint) so that evaluation refuses a
            model with a different vocabulary.
        window: tokens per window (excluding an added BOS).
        stride: start-to-start distance, ``1 <= stride <= window``.
        add_bos: prepend the tokenizer's BOS to each window; default: when the tokenizer
            itself prepends one (Llama, OPT, the organism), never for token input.
        max_windows: keep at most this many windows (the first ones).
    """
    if not isinstance(window, (int, np.integer)) or window < 2:
        raise UsageError(f"window must be an int >= 2, got {window!r}")
    stride = window if stride is None else stride
    if not isinstance(stride, (int, np.integer)) or not 1 <= stride <= window:
        raise UsageError(f"stride must be an int in 1..{window} (the window), got {stride!r}")
    if max_windows is not None and max_windows < 1:
        raise UsageError(f"max_windows must be >= 1, got {max_windows}")
    docs, from_text = _documents(text_or_tokens, tokenizer)
    if add_bos is None:
        add_bos = bool(from_text and special_affixes(tokenizer)[0])
    bos: list[int] = []
    if add_bos:
        if tokenizer is None or tokenizer.bos_token_id is None:
            raise UsageError("add_bos=True needs a tokenizer with a BOS token")
        bos = [int(tokenizer.bos_token_id)]
    windows: list[TextWindow] = []
    for d, toks in enumerate(docs):
        prev_end = 0 if bos else 1  # without a BOS a document's first token has no context
        begin = 0
        while prev_end < len(toks):
            end = min(begin + window, len(toks))
            chunk = bos + toks[begin:end]
            score_from = len(bos) + max(prev_end - begin, 0)
            if score_from < len(chunk):
                windows.append(TextWindow(
                    id=f"{name}-{d}-{begin}", tokens=tuple(chunk),
                    score_from=max(score_from, 1), meta={"doc": d, "offset": begin}))
            prev_end = end
            begin += stride
            if end == len(toks):
                break
    if max_windows is not None:
        windows = windows[:max_windows]
    if not windows:
        raise UsageError("the text is too short to score any token (need >= 2 tokens, or "
                         "1 with a BOS)")
    config = {
        "window": int(window), "stride": int(stride), "add_bos": bool(add_bos),
        "n_documents": len(docs), "n_scored_tokens": sum(w.n_scored for w in windows),
        "tokenizer": getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer) if tokenizer is not None
        else None,
    }
    return TaskSet(name=name, kind="perplexity", instances=tuple(windows), source=source,
                   split=split, seed=None, config=config)
