"""Attention-pattern metrics accumulated online, one layer of one batch at a time.

:class:`PatternStats` turns attention patterns ``[batch, head, query, key]`` (softmax
probabilities, as TransformerLens' ``blocks.{l}.attn.hook_pattern`` gives them) into
per-(layer, head) running sums and counts, so that a caller can feed it every layer of every
batch from inside forward hooks and drop each pattern at once: memory does not grow with the
number of prompts. :func:`lenskit.analysis.attention_metrics` drives it from the model.

Which query positions count (right-padded batches, ``lengths[b]`` real tokens in row ``b``):

- ``"all"``: every real query position ``q`` with ``1 <= q < lengths[b]``. Position 0 is
  left out: it sees one key only, so its entropy, sink mass and divergence are fixed
  (0, 1, 0) whatever the model does. Pad query rows (``q >= lengths[b]``) never count;
  their keys are never read either, since a real query ``q`` sees keys ``0..q`` only (the
  causal mask; checked on the first batch of every run).
- ``"answer"``: the answer position ``lengths[b] - 1`` (the last prompt token, which
  predicts the answer's first token), for rows with at least two tokens.
- ``"repeat"``: the induction and previous-token scores on repeated random tokens (see
  below).

Averages are over (prompt, query) pairs: a long prompt weighs more than a short one in
``"all"``; each prompt weighs one in ``"answer"``. ``n`` is the number of pairs (rows of the
pattern) averaged.

Metrics, per head, from one query row ``p`` (the row's ``k = q + 1`` visible keys):

- ``entropy``: ``-sum_j p_j ln p_j / ln k``, in [0, 1]: 1 is uniform over the visible keys,
  0 all mass on one key.
- ``sink``: ``p_0``, the mass on the first token (the BOS where the tokenizer adds one: the
  "attention sink").
- ``js``: Jensen-Shannon divergence of the row to the reference (dense) model's row of the
  same prompt, in bits (log base 2), in [0, 1]:
  ``JS = H(m) - (H(p) + H(r)) / 2`` with ``m = (p + r) / 2``; clamped at 0 against rounding.
- ``span_mass`` (``"answer"`` only): mass from the answer position onto the tokens of the
  answer stated in the context (open-book and overriding prompts), averaged over the
  prompts that have such a span.
- ``induction`` and ``prev_token`` (``"repeat"`` only): on sequences ``prefix + r + r`` of
  ``n`` distinct random tokens ``r`` after the tokenizer's own prefix (BOS) of length
  ``p0``: the induction score is the mean over the second copy's queries
  ``q in [p0 + n, p0 + 2n)`` of the mass on key ``q - n + 1`` (the token after the query
  token's first occurrence, Olsson et al. 2022); the previous-token score is the mean over
  queries ``q in [p0 + 1, p0 + 2n)`` (every sequence token whose previous token is a
  sequence token) of the mass on key ``q - 1``.
  TransformerLens' ``detect_head(model, seq, "induction_head")`` divides the same mass by
  the number of all query rows instead: on such a sequence its score is ours times
  ``n / (p0 + 2n)``.

Every per-row quantity is computed for all rows of a layer at once (no Python loop over
heads or positions); the answer rows are gathered from the per-row tensors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lenskit.errors import UsageError

__all__ = [
    "METRIC_QUERIES",
    "BatchLayout",
    "PatternStats",
    "row_metrics",
]

_LN2 = math.log(2.0)

#: (metric, queries) pairs :class:`PatternStats` may report, in output order.
METRIC_QUERIES: tuple[tuple[str, str], ...] = (
    ("entropy", "all"),
    ("sink", "all"),
    ("js", "all"),
    ("entropy", "answer"),
    ("sink", "answer"),
    ("js", "answer"),
    ("span_mass", "answer"),
    ("induction", "repeat"),
    ("prev_token", "repeat"),
)


@dataclass(frozen=True)
class BatchLayout:
    """Which rows and keys of one right-padded batch count.

    Attributes:
        lengths: ``[B]`` real tokens per row (prompt ``b`` occupies positions
            ``0..lengths[b]-1``).
        span: ``[B, T]`` bool, the keys of the in-context answer span per row (all False
            for a row without one), or None when no row has a span.
        answers: whether the answer position (``lengths - 1``) is reported (prompts: yes;
            perplexity windows and repeated tokens: no).
        repeat: ``(p0, n)`` for repeated-token batches (prefix length, length of one copy),
            else None.
    """

    lengths: torch.Tensor
    span: torch.Tensor | None = None
    answers: bool = True
    repeat: tuple[int, int] | None = None

    @property
    def width(self) -> int:
        return int(self.lengths.max())

    def __post_init__(self) -> None:
        # Internal: the attention engine builds layouts from its own encoding of the prompts.
        lengths = torch.as_tensor(self.lengths, dtype=torch.long)
        if lengths.ndim != 1 or not len(lengths) or int(lengths.min()) < 1:
            raise ValueError(f"lengths must be a non-empty 1-d tensor of positive token counts,"
                             f" got {self.lengths!r}")
        object.__setattr__(self, "lengths", lengths)
        if self.span is not None:
            span = torch.as_tensor(self.span, dtype=torch.bool)
            if span.ndim != 2 or span.shape[0] != len(lengths):
                raise ValueError(f"span must be [batch, width] bool, got shape "
                                 f"{tuple(span.shape)} for a batch of {len(lengths)}")
            object.__setattr__(self, "span", span)
        if self.repeat is not None:
            p0, n = (int(v) for v in self.repeat)
            if p0 < 0 or n < 2 or bool((lengths != p0 + 2 * n).any()):
                raise ValueError(f"repeat (p0={p0}, n={n}) needs every row to hold "
                                 f"p0 + 2n = {p0 + 2 * n} tokens and n >= 2; lengths "
                                 f"{lengths.tolist()}")
            object.__setattr__(self, "repeat", (p0, n))


@dataclass
class _Masks:
    """Per-batch tensors derived from a layout once and shared by every layer."""

    all_w: torch.Tensor  # [B, T] float: 1 where the query counts in "all"
    inv_log_k: torch.Tensor  # [T] float: 1 / ln(q + 1), 0 at q = 0
    answer_idx: torch.Tensor  # [B] long
    answer_w: torch.Tensor  # [B] float: row has an answer position (>= 2 tokens)
    span: torch.Tensor | None  # [B, T] float
    span_w: torch.Tensor | None  # [B] float: row has a span and an answer position


def _masks(layout: BatchLayout, width: int, device, dtype) -> _Masks:
    lengths = layout.lengths.to(device)
    q = torch.arange(width, device=device)
    all_w = ((q[None, :] >= 1) & (q[None, :] < lengths[:, None])).to(dtype)
    inv = torch.zeros(width, dtype=dtype, device=device)
    if width > 1:
        inv[1:] = 1.0 / torch.log(q[1:].to(dtype) + 1.0)
    answer_w = (lengths >= 2).to(dtype)
    span = span_w = None
    if layout.span is not None:
        s = layout.span.to(device)
        if s.shape[1] < width:
            s = torch.nn.functional.pad(s, (0, width - s.shape[1]))
        span = s[:, :width].to(dtype)
        span_w = answer_w * (span.sum(1) > 0).to(dtype)
    return _Masks(all_w, inv, (lengths - 1).clamp(min=0), answer_w, span, span_w)


# Smallest value fed to the logarithm: p ln p is 0 at p = 0 either way, and clamping keeps
# the logarithm off its slow -inf path (xlogy is about 1.3x, log(0) over 3x slower here).
_TINY = 1e-30


def _row_blocks(width: int) -> list[tuple[int, int]]:
    """Query blocks ``[q0, q1)``: a block's rows see keys ``< q1`` only (causal), so the
    zero upper triangle is mostly skipped (n blocks read (n + 1) / 2n of the elements; about
    16 rows per block, at most 8 blocks, was fastest here for T = 60-200)."""
    n = max(1, min(8, width // 16))
    edges = [round(width * i / n) for i in range(n + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _plogp_rows(x: torch.Tensor, blocks) -> torch.Tensor:
    """``sum_j x_j ln x_j`` per row of a causal ``[..., T, T]`` tensor -> ``[..., T]``."""
    parts = []
    for a, b in blocks:
        part = x[..., a:b, :b]
        log = part.clamp_min(_TINY)
        log.log_()
        parts.append(torch.linalg.vecdot(part, log))
    return torch.cat(parts, -1)


def _mix_plogp_rows(p: torch.Tensor, r: torch.Tensor, blocks) -> torch.Tensor:
    """``sum_j m_j ln m_j`` per row for ``m = (p + r) / 2``, rows of ``p`` and ``r`` summing
    to 1: ``sum m ln m = (sum s ln s) / 2 - ln 2`` with ``s = p + r`` (one product fewer)."""
    parts = []
    for a, b in blocks:
        s = p[..., a:b, :b] + r[..., a:b, :b]
        log = s.clamp_min(_TINY)
        log.log_()
        parts.append(torch.linalg.vecdot(s, log))
    return torch.cat(parts, -1).mul_(0.5).sub_(_LN2)


def row_metrics(pattern: torch.Tensor, reference: torch.Tensor | None = None,
                reference_negent: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
    """Per-row quantities of a causal pattern ``[B, H, T, T]`` -> tensors ``[B, H, T]``.

    ``negent``: ``sum_j p_j ln p_j`` (nats, <= 0); ``sink``: ``p_0``; with a
    ``reference`` pattern of the same shape, ``js``: Jensen-Shannon divergence in bits.
    ``reference_negent`` (the reference's own ``negent``) saves recomputing it. Entries
    above the diagonal must be 0 (they are skipped).
    """
    blocks = _row_blocks(pattern.shape[-1])
    negent = _plogp_rows(pattern, blocks)
    out = {"negent": negent, "sink": pattern[..., 0]}
    if reference is not None:
        if reference.shape != pattern.shape:
            raise ValueError(f"reference pattern has shape {tuple(reference.shape)}, the "
                             f"pattern {tuple(pattern.shape)}")
        if reference_negent is None:
            reference_negent = _plogp_rows(reference, blocks)
        mix_negent = _mix_plogp_rows(pattern, reference, blocks)
        js = (0.5 * (negent + reference_negent) - mix_negent).div_(_LN2)
        out["js"] = js.clamp_(0.0, 1.0)
    return out


class PatternStats:
    """Running per-(layer, head) sums and counts of the metrics of
    :data:`METRIC_QUERIES` (see the module docstring for what each means).

    Feed it with :meth:`add` (one layer of one batch); read the averages with
    :meth:`records` or :meth:`mean`. Sums are kept in float64 on the CPU: ``[n_layers,
    n_heads]`` per metric, whatever the number of prompts.
    """

    def __init__(self, n_layers: int, n_heads: int) -> None:
        if n_layers < 1 or n_heads < 1:
            raise ValueError(f"n_layers and n_heads must be >= 1, got {n_layers}, {n_heads}")
        self.n_layers = int(n_layers)
        self.n_heads = int(n_heads)
        self.sums: dict[tuple[str, str], torch.Tensor] = {}
        self.counts: dict[tuple[str, str], torch.Tensor] = {}
        self._cache: tuple[BatchLayout, int, _Masks] | None = None

    def _acc(self, key: tuple[str, str], layer: int, total: torch.Tensor, count) -> None:
        if key not in self.sums:
            self.sums[key] = torch.zeros(self.n_layers, self.n_heads, dtype=torch.float64)
            self.counts[key] = torch.zeros(self.n_layers, dtype=torch.float64)
        self.sums[key][layer] += total.detach().to("cpu", torch.float64)
        self.counts[key][layer] += float(count)

    def add(self, layer: int, pattern: torch.Tensor, layout: BatchLayout,
            reference: torch.Tensor | None = None,
            reference_negent: torch.Tensor | None = None) -> torch.Tensor:
        """Accumulate one layer's causal pattern ``[B, H, T, T]`` of the batch ``layout``
        (entries above the diagonal must be 0: they are skipped, not read).

        With a ``reference`` pattern (the dense model's, same batch and layer), the
        Jensen-Shannon divergence to it is accumulated too. Returns the per-row ``negent``
        ``[B, H, T]`` (so that a caller storing this pattern as a reference can keep it).
        The pattern is read, never modified.
        """
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer {layer} is outside 0..{self.n_layers - 1}")
        if pattern.ndim != 4 or pattern.shape[1] != self.n_heads \
                or pattern.shape[2] != pattern.shape[3]:
            raise ValueError(f"pattern must be [batch, {self.n_heads} heads, query, key] with "
                             f"as many keys as queries, got {tuple(pattern.shape)}")
        b, _, t, _ = pattern.shape
        if b != len(layout.lengths) or t < layout.width:
            raise ValueError(f"pattern {tuple(pattern.shape)} does not fit a batch of "
                             f"{len(layout.lengths)} rows of up to {layout.width} tokens")
        p = pattern if pattern.dtype in (torch.float32, torch.float64) else pattern.float()
        if reference is not None and reference.dtype != p.dtype:
            reference = reference.to(p.dtype)
        m = self._layout_masks(layout, t, p)
        rows = row_metrics(p, reference, reference_negent)
        entropy = -rows["negent"] * m.inv_log_k  # [B, H, T], 0 at q = 0 (excluded)
        per_row = [("entropy", entropy), ("sink", rows["sink"])]
        if "js" in rows:
            per_row.append(("js", rows["js"]))
        stacked = torch.stack([v for _, v in per_row])  # [k, B, H, T]
        totals = torch.einsum("kbht,bt->kh", stacked, m.all_w)
        n_all = m.all_w.sum()
        for (name, _), total in zip(per_row, totals, strict=True):
            self._acc((name, "all"), layer, total, n_all)
        if layout.answers:
            idx = m.answer_idx[None, :, None, None].expand(len(per_row), b, self.n_heads, 1)
            at_answer = stacked.gather(3, idx)[..., 0]  # [k, B, H]
            totals = torch.einsum("kbh,b->kh", at_answer, m.answer_w)
            n_ans = m.answer_w.sum()
            for (name, _), total in zip(per_row, totals, strict=True):
                self._acc((name, "answer"), layer, total, n_ans)
            if m.span is not None and float(m.span_w.sum()) > 0:
                ai = m.answer_idx[:, None, None, None].expand(b, self.n_heads, 1, t)
                answer_rows = p.gather(2, ai)[:, :, 0]  # [B, H, T]
                mass = torch.einsum("bhk,bk->bh", answer_rows, m.span)
                self._acc(("span_mass", "answer"), layer,
                          torch.einsum("bh,b->h", mass, m.span_w), m.span_w.sum())
        if layout.repeat is not None:
            p0, n = layout.repeat
            prev = p.diagonal(offset=-1, dim1=-2, dim2=-1)  # [B, H, T-1]: (q, q-1) at q-1
            sel = prev[..., p0 : p0 + 2 * n - 1]
            self._acc(("prev_token", "repeat"), layer, sel.sum((0, 2)), sel.shape[0] * sel.shape[2])
            ind = p.diagonal(offset=-(n - 1), dim1=-2, dim2=-1)  # (q, q-n+1) at q-n+1
            sel = ind[..., p0 + 1 : p0 + n + 1]
            self._acc(("induction", "repeat"), layer, sel.sum((0, 2)), sel.shape[0] * sel.shape[2])
        return rows["negent"]

    def _layout_masks(self, layout: BatchLayout, width: int, p: torch.Tensor) -> _Masks:
        # One batch's masks serve all its layers: rebuild only for another layout (held by
        # reference, so that an identity check cannot be fooled by a reused id).
        c = self._cache
        if c is None or c[0] is not layout or c[1] != width or c[2].all_w.dtype != p.dtype \
                or c[2].all_w.device != p.device:
            self._cache = (layout, width, _masks(layout, width, p.device, p.dtype))
        return self._cache[2]

    def pairs(self) -> list[tuple[str, str]]:
        """The (metric, queries) pairs accumulated so far, in :data:`METRIC_QUERIES` order."""
        return [k for k in METRIC_QUERIES if k in self.sums]

    def mean(self, metric: str, queries: str) -> torch.Tensor:
        """``[n_layers, n_heads]`` float64 averages (NaN where nothing was counted)."""
        key = (metric, queries)
        if key not in self.sums:
            raise UsageError(f"no {metric!r} at {queries!r} queries was accumulated; have "
                             f"{self.pairs()}")
        counts = self.counts[key][:, None]
        return torch.where(counts > 0, self.sums[key] / counts.clamp(min=1),
                           torch.full_like(self.sums[key], float("nan")))

    def records(self, layers=None) -> Iterator[dict]:
        """Tidy rows ``{layer, head, metric, queries, value, n}`` of every layer (or of
        ``layers``) with a count."""
        wanted = range(self.n_layers) if layers is None else layers
        for metric, queries in self.pairs():
            means = self.mean(metric, queries)
            counts = self.counts[(metric, queries)]
            for layer in wanted:
                if counts[layer] <= 0:
                    continue
                for head in range(self.n_heads):
                    yield {"layer": int(layer), "head": head, "metric": metric,
                           "queries": queries, "value": float(means[layer, head]),
                           "n": int(counts[layer])}
