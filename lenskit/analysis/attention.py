"""Attention patterns under pruning: per layer and head, dense versus pruned, on task prompts.

    from lenskit.analysis import attention_metrics, attention_drift
    df = attention_metrics(model, suite["open_book"], masks=result)   # one pruning result
    drift = attention_drift(model, suite, {"wanda 50% attn": r1, "wanda 50% mlp": r2})

Patterns are read from the bridge's ``blocks.{l}.attn.hook_pattern`` (``[batch, head,
query, key]``, after the softmax; with grouped-query attention one pattern per *query*
head) and reduced inside the hook by :class:`~lenskit.analysis.attention_stats.PatternStats`
(entropy, first-token mass, Jensen-Shannon divergence to the dense model, answer-span mass,
induction and previous-token scores; definitions and which query positions count are in
:mod:`lenskit.analysis.attention_stats`). No pattern outlives its batch.

How the comparison runs, per batch of prompts (right-padded, longest first):

1. a dense forward; each layer's hook accumulates the dense metrics and keeps that layer's
   pattern (and its per-row entropy) as the reference for this batch;
2. per pruning configuration: the masks are applied with :func:`lenskit.models.pruned`
   (relative to the original weights, restored bitwise afterwards), a forward runs, and each
   layer's hook accumulates the pruned metrics and the divergence to the stored reference;
3. the references are dropped.

So memory holds at most one batch's dense patterns (``n_layers x batch x heads x T x T``
floats; :attr:`AttentionRun.peak_reference_bytes` reports it), and the dense forward is
shared by every configuration. The forward stops right after the last layer whose pattern
is needed (the rest of the model, including the unembedding, never runs).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from lenskit.analysis.attention_stats import METRIC_QUERIES, BatchLayout, PatternStats

__all__ = [
    "ATTENTION_COLUMNS",
    "DRIFT_COLUMNS",
    "AttentionProbe",
    "AttentionRun",
    "RepeatedTokens",
    "attention_drift",
    "attention_metrics",
    "repeated_token_ids",
]

#: Columns of :func:`attention_metrics`.
ATTENTION_COLUMNS: tuple[str, ...] = ("layer", "head", "metric", "queries", "model", "value",
                                      "n")
#: Columns of :func:`attention_drift`.
DRIFT_COLUMNS: tuple[str, ...] = (
    "config", "method", "structure", "allocation", "scope", "sparsity", "achieved_sparsity",
    "task", "kind", "category", "layer", "head", "metric", "queries", "dense", "value",
    "drift", "n",
)
_REPEAT_KIND = "repeated_tokens"
_REPEAT_CATEGORY = "synthetic"


@dataclass(frozen=True)
class RepeatedTokens:
    """Sequences ``prefix + r + r`` of ``length`` distinct random tokens ``r`` (drawn
    uniformly without replacement from the tokenizer's non-special tokens, seeded), after
    the tokenizer's own prefix (its BOS, if it adds one): the input of the induction and
    previous-token scores (Olsson et al. 2022). Pass it where prompts go."""

    n_sequences: int = 32
    length: int = 24
    seed: int = 0
    name: str = "repeated_tokens"

    def __post_init__(self) -> None:
        for attr, low in (("n_sequences", 1), ("length", 2)):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"RepeatedTokens.{attr} must be an int >= {low}, got {v!r}")


def repeated_token_ids(tokenizer, spec: RepeatedTokens, vocab_size: int | None = None
                       ) -> tuple[torch.Tensor, int]:
    """``(ids [n_sequences, p0 + 2 * length], p0)`` for ``spec`` (``p0``: prefix length)."""
    from lenskit.tasks.encoding import special_affixes

    prefix, _ = special_affixes(tokenizer)
    n_vocab = len(tokenizer) if vocab_size is None else min(len(tokenizer), int(vocab_size))
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    candidates = np.array([i for i in range(n_vocab) if i not in specials], dtype=np.int64)
    if len(candidates) < spec.length:
        raise ValueError(f"RepeatedTokens.length {spec.length} exceeds the "
                         f"{len(candidates)} non-special tokens of the vocabulary")
    rng = np.random.default_rng(spec.seed)
    rows = []
    for _ in range(spec.n_sequences):
        r = rng.choice(candidates, size=spec.length, replace=False)
        rows.append([*prefix, *r.tolist(), *r.tolist()])
    return torch.tensor(rows, dtype=torch.long), len(prefix)


# ---------------------------------------------------------------------------------------
# Inputs: prompts -> token rows, answer spans, batches
# ---------------------------------------------------------------------------------------

@dataclass
class _Source:
    name: str
    kind: str
    category: str
    rows: list[list[int]]
    spans: list[tuple[int, int] | None]
    answers: bool = True
    repeat_p0: int | None = None
    repeat_n: int | None = None


# Tokenised task sets per tokenizer (a task set is measured again for every configuration).
_SOURCES: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], _Source]] = (
    weakref.WeakKeyDictionary())


def _source(info, source, answer_spans, vocab_size: int) -> _Source:
    from lenskit.tasks.core import TaskSet
    from lenskit.tasks.encoding import tokenizer_fingerprint

    if isinstance(source, TaskSet) and answer_spans is None:
        key = (tokenizer_fingerprint(info.tokenizer), int(vocab_size))
        per_task = _SOURCES.setdefault(source, {})
        if key not in per_task:
            per_task[key] = _build_source(info, source, None, vocab_size)
        return per_task[key]
    return _build_source(info, source, answer_spans, vocab_size)


def _build_source(info, source, answer_spans, vocab_size: int) -> _Source:
    from lenskit.tasks.core import TaskInstance, TaskSet, TextWindow
    from lenskit.tasks.encoding import encode_texts, token_span

    tok = info.tokenizer
    if isinstance(source, RepeatedTokens):
        if answer_spans is not None:
            raise ValueError("answer_spans does not apply to RepeatedTokens")
        ids, p0 = repeated_token_ids(tok, source, vocab_size)
        return _Source(source.name, _REPEAT_KIND, _REPEAT_CATEGORY, ids.tolist(),
                       [None] * len(ids), answers=False, repeat_p0=p0,
                       repeat_n=source.length)
    name, kind, category = "prompts", "custom", "custom"
    if isinstance(source, TaskSet):
        name, kind, category = source.name, source.kind, source.category
        items = list(source.instances)
    elif isinstance(source, (str, bytes)) or not isinstance(source, Sequence) or not source:
        raise ValueError("prompts must be a TaskSet, a RepeatedTokens, or a non-empty list of "
                         f"prompt strings or TaskInstances; got {type(source).__name__}")
    else:
        items = list(source)
    if all(isinstance(i, TextWindow) for i in items):
        if answer_spans is not None:
            raise ValueError("answer_spans does not apply to perplexity windows")
        rows = [list(w.tokens) for w in items]
        top = max(max(r) for r in rows)
        if top >= vocab_size:
            raise ValueError(f"{name}: token id {top} is outside the model's vocabulary of "
                             f"{vocab_size}")
        return _Source(name, kind, category, rows, [None] * len(rows), answers=False)
    if all(isinstance(i, TaskInstance) for i in items):
        if answer_spans is not None:
            raise ValueError("answer_spans is taken from the instances' answer_span; pass it "
                             "only with prompt strings")
        texts = [i.prompt for i in items]
        char_spans = [i.answer_span for i in items]
    elif all(isinstance(i, str) for i in items):
        texts = items
        if answer_spans is None:
            char_spans = [None] * len(texts)
        else:
            if isinstance(answer_spans, (str, bytes)) or len(answer_spans) != len(texts):
                raise ValueError(f"answer_spans must list one (start, end) character span or "
                                 f"None per prompt ({len(texts)}), got {answer_spans!r}")
            char_spans = [None if s is None else tuple(s) for s in answer_spans]
        for t in texts:
            if not t.strip():
                raise ValueError("prompts must be non-empty strings")
    else:
        kinds = sorted({type(i).__name__ for i in items})
        raise ValueError(f"prompts must all be strings, TaskInstances or TextWindows; got "
                         f"{kinds}")
    rows = encode_texts(tok, texts)
    spans: list[tuple[int, int] | None] = []
    for text, row, cs in zip(texts, rows, char_spans, strict=True):
        if not row:
            raise ValueError(f"prompt {text[:60]!r} tokenises to no tokens")
        if cs is None:
            spans.append(None)
            continue
        if len(cs) != 2:
            raise ValueError(f"answer span {cs!r} must be a (start, end) character span")
        s, e = token_span(tok, text, (int(cs[0]), int(cs[1])))
        if e > len(row):  # a suffix special of the tokenizer cannot be in a prompt's span
            raise ValueError(f"answer span {cs} of prompt {text[:60]!r} maps beyond its "
                             f"{len(row)} tokens")
        spans.append((s, e))
    return _Source(name, kind, category, rows, spans, answers=True)


def _batches(src: _Source, batch_size: int, pad_id: int) -> list[tuple[torch.Tensor,
                                                                         BatchLayout]]:
    """Right-padded batches, longest rows first (less padding), with their layouts."""
    from lenskit.tasks.encoding import pad_right

    order = np.argsort(-np.array([len(r) for r in src.rows]), kind="stable")
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size].tolist()
        ids, lengths = pad_right([src.rows[i] for i in idx], pad_id)
        span = None
        if any(src.spans[i] is not None for i in idx):
            span = torch.zeros(ids.shape, dtype=torch.bool)
            for k, i in enumerate(idx):
                if src.spans[i] is not None:
                    s, e = src.spans[i]
                    span[k, s:e] = True
        repeat = None if src.repeat_p0 is None else (src.repeat_p0, src.repeat_n)
        out.append((ids, BatchLayout(lengths, span, answers=src.answers, repeat=repeat)))
    return out


# ---------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------

@dataclass
class _Config:
    label: str
    masks: Mapping[str, torch.Tensor]
    weights: Mapping[str, torch.Tensor] | None
    meta: dict[str, Any] = field(default_factory=dict)


def _config(info, label: str, masks, weights=None) -> _Config:
    from lenskit.models.masks import MaskSet, _validate
    from lenskit.pruning import PruneResult

    if isinstance(masks, PruneResult):
        if weights is not None:
            raise ValueError(f"{label}: weights come with the PruneResult; pass weights only "
                             "with a MaskSet")
        cfg = masks.config
        meta = {"method": cfg.get("method"), "structure": cfg.get("structure"),
                "allocation": cfg.get("allocation"), "scope": cfg.get("scope"),
                "sparsity": cfg.get("sparsity"),
                "achieved_sparsity": masks.achieved_sparsity}
        masks, weights = masks.masks, masks.weights
    elif isinstance(masks, Mapping):
        src = getattr(masks, "meta", {}) or {}
        meta = {k: src.get(k) for k in ("method", "structure", "allocation", "scope",
                                        "sparsity")}
        meta["achieved_sparsity"] = (masks.sparsity() if isinstance(masks, MaskSet) else
                                     _mask_sparsity(masks))
    else:
        raise ValueError(f"{label}: expected a PruneResult, a MaskSet or a dict of site -> "
                         f"bool mask; got {type(masks).__name__}")
    if not len(masks):
        raise ValueError(f"{label}: the mask set is empty (no site to prune)")
    _validate(info, masks, weights)  # the checks `pruned` does, before anything runs
    meta["scope"] = _scope_text(meta.get("scope"))
    return _Config(label, masks, weights, meta)


def _mask_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    total = sum(int(m.numel()) for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return 1.0 - kept / total if total else 0.0


def _scope_text(scope) -> str | None:
    if scope is None or isinstance(scope, str):
        return scope
    if isinstance(scope, (list, tuple)):
        return ",".join(str(s) for s in scope)
    return str(scope)


# ---------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------

class _Stop(Exception):
    """Raised in the last needed layer's hook: the rest of the forward is not needed."""


@dataclass
class AttentionRun:
    """What one run of the engine accumulated (kept for inspection and tests).

    Attributes:
        dense: the dense model's statistics (None when ``reference=None`` and masks given).
        pruned: configuration label -> statistics.
        peak_reference_bytes: the most bytes of reference patterns held at once.
        batch_pattern_bytes: the size of the largest batch's float32 patterns and per-row
            entropies over all measured layers (``layers x batch x heads x T x (T + 1) x 4``),
            the bound ``peak_reference_bytes`` never exceeds.
        layers: the layers measured.
    """

    dense: PatternStats | None
    pruned: dict[str, PatternStats]
    peak_reference_bytes: int = 0
    batch_pattern_bytes: int = 0
    layers: tuple[int, ...] = ()


def _check_pattern(pattern: torch.Tensor, layout: BatchLayout, layer: int) -> None:
    """The visible keys of query ``q`` are ``0..q``: no mass above the diagonal, and each
    real query row sums to 1 (checked on a run's first batch, from the pattern itself)."""
    p = pattern.float()
    above = float(p.triu(1).abs().amax()) if p.shape[-1] > 1 else 0.0
    if above > 0:
        raise ValueError(f"layer {layer}: the attention pattern puts mass {above:.3g} on keys "
                         "after the query; lenskit's attention metrics need causal attention "
                         "over right-padded rows")
    sums = p.sum(-1)  # [B, H, T]
    t = torch.arange(p.shape[-1])
    real = (t[None, :] < layout.lengths[:, None]).to(sums.device)
    err = float(((sums - 1).abs() * real[:, None, :]).amax())
    if err > 1e-3:
        raise ValueError(f"layer {layer}: attention rows of real queries sum to 1 +- {err:.3g};"
                         " hook_pattern is not a softmax over keys")


class _Engine:
    def __init__(self, model, layers: Sequence[int] | None) -> None:
        from lenskit.models import model_info

        self.model = model
        self.info = model_info(model)
        n_layers = self.info.n_layers
        if layers is None:
            layers = range(n_layers)
        elif isinstance(layers, (int, np.integer)):
            layers = [int(layers)]
        layers = sorted({int(x) for x in layers})
        bad = [x for x in layers if not 0 <= x < n_layers]
        if bad or not layers:
            raise ValueError(f"layers must be a non-empty list of layer indices in 0.."
                             f"{n_layers - 1}; got {bad or 'none'}")
        self.layers = tuple(layers)
        self.n_heads = int(model.cfg.n_heads)
        self.n_layers = n_layers
        known = set(model.hook_dict)
        for layer in self.layers:
            if f"blocks.{layer}.attn.hook_pattern" not in known:
                raise ValueError(f"the model has no hook blocks.{layer}.attn.hook_pattern")
        self.n_ctx = getattr(model.cfg, "n_ctx", None)
        self.checked = False  # the causal structure is checked on the first batch only
        self.vocab_size = int(model.cfg.d_vocab)

    def check_rows(self, src: _Source) -> None:
        longest = max(len(r) for r in src.rows)
        if self.n_ctx and longest > self.n_ctx:
            raise ValueError(f"{src.name}: a prompt of {longest} tokens is longer than the "
                             f"model's context of {self.n_ctx}")

    def _forward(self, ids: torch.Tensor, hooks: list) -> None:
        try:
            with torch.inference_mode(), self.model.hooks(fwd_hooks=hooks):
                self.model(ids, return_type=None)
        except _Stop:
            pass

    def run(self, batches, configs: Sequence[_Config], reference: bool,
            run: AttentionRun | None = None) -> AttentionRun:
        from lenskit.models import pruned

        if configs and self.info.originals:
            raise ValueError(
                f"the model already has {len(self.info.originals)} pruned site(s) (e.g. "
                f"{next(iter(self.info.originals))}); call lenskit.models.restore(model) first "
                "so that the comparison is against the dense model")
        want_dense = reference or not configs
        if run is None:
            run = AttentionRun(
                dense=PatternStats(self.n_layers, self.n_heads) if want_dense else None,
                pruned={c.label: PatternStats(self.n_layers, self.n_heads) for c in configs},
                layers=self.layers)
        last = self.layers[-1]
        device = next(self.model.parameters()).device
        for ids, layout in batches:
            ids = ids.to(device)
            refs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            held = [0]
            run.batch_pattern_bytes = max(
                run.batch_pattern_bytes,
                len(self.layers) * ids.shape[0] * self.n_heads * ids.shape[1]
                * (ids.shape[1] + 1) * 4)

            def make_hook(layer: int, stats: PatternStats, store: bool, compare: bool,
                          check: bool, layout=layout, refs=refs, held=held):
                def hook(pattern, hook):
                    if check:
                        _check_pattern(pattern, layout, layer)
                    ref = refs.get(layer, (None, None)) if compare else (None, None)
                    negent = stats.add(layer, pattern, layout, *ref)
                    if store:
                        refs[layer] = (pattern, negent)
                        held[0] += pattern.numel() * pattern.element_size() \
                            + negent.numel() * negent.element_size()
                        run.peak_reference_bytes = max(run.peak_reference_bytes, held[0])
                    if layer == last:
                        raise _Stop
                    return None
                return hook

            if want_dense:
                store = bool(configs) and reference
                self._forward(ids, [(f"blocks.{lay}.attn.hook_pattern",
                                     make_hook(lay, run.dense, store, False, not self.checked))
                                    for lay in self.layers])
                self.checked = True
            for cfg in configs:
                with pruned(self.model, cfg.masks, cfg.weights):
                    self._forward(ids, [(f"blocks.{lay}.attn.hook_pattern",
                                         make_hook(lay, run.pruned[cfg.label], False,
                                                   reference, not self.checked))
                                        for lay in self.layers])
                self.checked = True
            refs.clear()  # this batch's references go; the next batch starts from nothing
        return run


def _rows(stats: PatternStats, layers, **extra) -> list[dict]:
    return [{**r, **extra} for r in stats.records(layers)]


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return int(batch_size)


class AttentionProbe:
    """Pattern metrics gathered *during* an evaluation: no extra forward pass.

    Pass it to :func:`lenskit.tasks.evaluate` (``probe=``): the evaluation's prompt passes
    run with eager attention and hand every layer's pattern to this probe, which reduces it
    at once (the same per-(layer, head) metrics as :func:`attention_metrics` without a
    reference: ``entropy`` and ``sink`` at ``all`` and ``answer`` queries, ``span_mass`` at
    the answer). Read them with :meth:`frame` (columns :data:`ATTENTION_COLUMNS` plus the
    task's name, kind and category). The JS divergence to the dense model needs the dense
    pattern of the same batch: :func:`attention_drift` computes it.

        probe = AttentionProbe(model, task)
        result = evaluate(model, task, probe=probe)
        metrics = probe.frame()
    """

    def __init__(self, model, task, label: str = "model") -> None:
        from lenskit.models import model_info

        info = model_info(model)
        n_heads = int(model.cfg.n_heads)
        vocab = int(info.hf.get_output_embeddings().weight.shape[0])
        self._src = _source(info, task, None, vocab)
        if not self._src.answers:
            raise ValueError(f"AttentionProbe needs a QA or function task; {self._src.name!r} "
                             f"is {self._src.kind!r}")
        self.stats = PatternStats(info.n_layers, n_heads)
        self.label = label
        self._layout: BatchLayout | None = None

    def begin_batch(self, rows, lengths: torch.Tensor) -> None:
        rows = [int(r) for r in rows]
        mine = [len(self._src.rows[r]) for r in rows]
        if mine != [int(v) for v in lengths]:
            raise ValueError("the evaluation's prompt lengths differ from this probe's "
                             "tokenisation of the task (a probe belongs to one task set)")
        span = None
        if any(self._src.spans[r] is not None for r in rows):
            span = torch.zeros((len(rows), max(mine)), dtype=torch.bool)
            for k, r in enumerate(rows):
                if self._src.spans[r] is not None:
                    s, e = self._src.spans[r]
                    span[k, s:e] = True
        self._layout = BatchLayout(lengths.cpu(), span)

    def pattern(self, layer: int, pattern: torch.Tensor) -> None:
        if self._layout is None:
            raise RuntimeError("pattern() before begin_batch()")
        self.stats.add(layer, pattern, self._layout)

    def frame(self) -> pd.DataFrame:
        """Tidy per-(layer, head) metrics accumulated so far."""
        df = pd.DataFrame(list(self.stats.records()), columns=["layer", "head", "metric",
                                                                "queries", "value", "n"])
        df.insert(4, "model", self.label)
        return df.assign(task=self._src.name, kind=self._src.kind, category=self._src.category)


def attention_metrics(
    model,
    prompts,
    *,
    masks=None,
    weights: Mapping[str, torch.Tensor] | None = None,
    reference: str | None = "dense",
    batch_size: int = 16,
    answer_spans: Sequence[tuple[int, int] | None] | None = None,
    layers: Sequence[int] | None = None,
    return_run: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, AttentionRun]:
    """Attention metrics per layer and head of ``model`` on ``prompts``, dense and pruned.

    Args:
        model: a bridge from :func:`lenskit.load_model` (not pruned when ``masks`` is given:
            the masks are applied inside and the weights restored bitwise after).
        prompts: a :class:`~lenskit.tasks.TaskSet` (QA prompts with their answer spans, or
            perplexity windows), a list of :class:`~lenskit.tasks.TaskInstance` s or of
            prompt strings, or a :class:`RepeatedTokens` (induction and previous-token
            scores).
        masks: what to compare with the dense model: a :class:`~lenskit.pruning.PruneResult`
            (its SparseGPT weights included), a :class:`~lenskit.models.MaskSet` or a dict
            site -> bool mask ``[out, in]``; None: only the model as it is.
        weights: replacement weights for ``masks`` (SparseGPT-style), with a MaskSet only.
        reference: ``"dense"``: also run the dense model and report its metrics and the
            Jensen-Shannon divergence of the pruned patterns to it; None: the pruned model
            only (half the forwards, no ``js``).
        batch_size: prompts per forward pass (memory: one batch's patterns of every layer).
        answer_spans: with prompt strings, one ``(start, end)`` character span of the answer
            stated in the prompt (or None) per prompt.
        layers: layer indices to measure (default all; the forward stops after the last).
        return_run: also return the :class:`AttentionRun` (raw sums, memory bookkeeping).

    Returns:
        A tidy frame with columns :data:`ATTENTION_COLUMNS`: ``layer``, ``head`` (query
        head), ``metric`` (``entropy``, ``sink``, ``js``, ``span_mass``, ``induction``,
        ``prev_token``), ``queries`` (``"all"``, ``"answer"``, ``"repeat"``), ``model``
        (``"dense"`` or ``"pruned"``; without masks, ``"dense"`` unless the model already
        has masks applied), ``value`` (the mean over ``n`` query rows). Definitions in
        :mod:`lenskit.analysis.attention_stats`.
    """
    from lenskit.models import model_info

    info = model_info(model)
    batch_size = _check_batch_size(batch_size)
    if reference not in ("dense", None):
        raise ValueError(f"reference must be 'dense' or None, got {reference!r}")
    if weights is not None and masks is None:
        raise ValueError("weights need masks")
    engine = _Engine(model, layers)
    configs = [] if masks is None else [_config(info, "pruned", masks, weights)]
    src = _source(info, prompts, answer_spans, engine.vocab_size)
    engine.check_rows(src)
    batches = _batches(src, batch_size, _pad_id(info.tokenizer))
    run = engine.run(batches, configs, reference == "dense")
    rows: list[dict] = []
    if run.dense is not None:
        label = "dense" if (configs or not info.originals) else "pruned"
        rows += _rows(run.dense, engine.layers, model=label)
    for stats in run.pruned.values():
        rows += _rows(stats, engine.layers, model="pruned")
    df = pd.DataFrame(rows, columns=list(ATTENTION_COLUMNS))
    df = _sorted(df, ["model"])
    return (df, run) if return_run else df


def _pad_id(tokenizer) -> int:
    from lenskit.tasks.encoding import _pad_id as pad

    return pad(tokenizer)


def _sorted(df: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
    order = {k: i for i, k in enumerate(METRIC_QUERIES)}
    key = pd.Series([order[(m, q)] for m, q in zip(df["metric"], df["queries"], strict=True)],
                    index=df.index, dtype="int64")
    out = df.assign(_k=key).sort_values([*first, "_k", "layer", "head"], kind="stable")
    return out.drop(columns="_k").reset_index(drop=True)


def attention_drift(
    model,
    suite,
    prune_results: Mapping[str, Any],
    *,
    batch_size: int = 16,
    repeats: RepeatedTokens | None = RepeatedTokens(),
    layers: Sequence[int] | None = None,
    max_prompts: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Attention drift of several pruning configurations on every task of a suite.

    For each task (and the ``repeats`` sequences, unless None) the dense forward of each
    batch is run once and shared by all configurations (see the module docstring), so the
    cost is one forward per configuration plus one dense forward per batch.

    Args:
        model: an unpruned bridge from :func:`lenskit.load_model`.
        suite: dict name -> :class:`~lenskit.tasks.TaskSet` (e.g.
            :func:`lenskit.tasks.organism_suite`), or a list of task sets.
        prune_results: label -> :class:`~lenskit.pruning.PruneResult` or
            :class:`~lenskit.models.MaskSet` (e.g. one per sparsity x scope).
        batch_size, layers: as in :func:`attention_metrics`.
        repeats: the repeated-token sequences for ``induction`` and ``prev_token``
            (reported under task ``repeats.name``); None skips them.
        max_prompts: measure at most this many prompts per task (a seeded subset).
        seed: seeds that subset.

    Returns:
        A tidy frame with columns :data:`DRIFT_COLUMNS`: the configuration (``config``
        label, ``method``, ``structure``, ``allocation``, ``scope``, ``sparsity`` as asked,
        ``achieved_sparsity``), the task (``task``, ``kind``, ``category``), ``layer``,
        ``head``, ``metric``, ``queries``, ``dense`` (the dense model's value; 0 for
        ``js``), ``value`` (the pruned model's), ``drift = value - dense`` and ``n``.
    """
    from lenskit.models import model_info
    from lenskit.tasks.core import TaskSet, check_task_sets

    info = model_info(model)
    batch_size = _check_batch_size(batch_size)
    tasks = list(suite.values()) if isinstance(suite, Mapping) else list(suite)
    if not tasks and repeats is None:
        raise ValueError("attention_drift needs at least one task set (or repeats)")
    check_task_sets(tasks)
    if not isinstance(prune_results, Mapping) or not prune_results:
        raise ValueError("prune_results must be a non-empty dict label -> PruneResult")
    for label in prune_results:
        if not isinstance(label, str) or not label:
            raise ValueError(f"configuration labels must be non-empty strings, got {label!r}")
    if max_prompts is not None and (isinstance(max_prompts, bool) or
                                    not isinstance(max_prompts, (int, np.integer))
                                    or max_prompts < 1):
        raise ValueError(f"max_prompts must be None or an int >= 1, got {max_prompts!r}")
    if repeats is not None and not isinstance(repeats, RepeatedTokens):
        raise ValueError(f"repeats must be a RepeatedTokens or None, got {repeats!r}")
    if repeats is not None and repeats.name in {t.name for t in tasks}:
        raise ValueError(f"repeats.name {repeats.name!r} is also a task name; rename it")
    engine = _Engine(model, layers)
    configs = [_config(info, label, r) for label, r in prune_results.items()]
    sources: list[_Source] = []
    for t in tasks:
        if not isinstance(t, TaskSet):
            raise ValueError(f"suite must hold TaskSets, got {type(t).__name__}")
        if max_prompts is not None and len(t) > max_prompts:
            t = t.subset(int(max_prompts), seed=seed)
        sources.append(_source(info, t, None, engine.vocab_size))
    if repeats is not None:
        sources.append(_source(info, repeats, None, engine.vocab_size))
    for src in sources:
        engine.check_rows(src)
    pad = _pad_id(info.tokenizer)
    parts = []
    for src in sources:
        run = engine.run(_batches(src, batch_size, pad), configs, reference=True)
        parts.append(_drift_rows(run, engine.layers, src, configs))
    df = pd.concat(parts, ignore_index=True)
    return df[list(DRIFT_COLUMNS)]


def _drift_rows(run: AttentionRun, layers, src: _Source, configs) -> pd.DataFrame:
    keys = ["layer", "head", "metric", "queries"]
    dense = pd.DataFrame(list(run.dense.records(layers)))
    dense = dense.rename(columns={"value": "dense"}).drop(columns="n")
    out = []
    for cfg in configs:
        p = pd.DataFrame(list(run.pruned[cfg.label].records(layers)))
        p = p.merge(dense, on=keys, how="left")
        p.loc[p["metric"] == "js", "dense"] = 0.0  # the dense pattern's divergence to itself
        p["drift"] = p["value"] - p["dense"]
        m = cfg.meta
        p = p.assign(config=cfg.label, method=m.get("method"), structure=m.get("structure"),
                     allocation=m.get("allocation"), scope=m.get("scope"),
                     sparsity=float("nan") if m.get("sparsity") is None
                     else float(m["sparsity"]),
                     achieved_sparsity=float(m["achieved_sparsity"]),
                     task=src.name, kind=src.kind, category=src.category)
        out.append(_sorted(p, []))
    return pd.concat(out, ignore_index=True)
