"""The computation of evaluation: one pass per batch that scores gold answers and starts
greedy decoding, then cheap decoding steps.

Per batch of prompts (right-padded, see NOTES section 3):

1. **One forward pass** over ``prompt + gold[:-1]`` for every row. Causal attention means
   a prompt's positions never see the gold tokens appended after it, so this single pass
   yields both the logits at the answer position (the first greedy token and the gold's
   first-token rank) and the teacher-forced log-probabilities of every gold token: the gold
   is scored on the prompt's computation, never by re-running the prompt.
2. **Greedy decoding** continues from the prompt:

   - ``"cache"`` (the plain HF model): the pass above also filled a key-value cache. Each
     new token is appended after the padded width with an attention mask that hides the
     row's padding *and* its gold tokens, and with the row's own position id, so a step
     costs one token per row. This is exact: masked keys get zero weight, and the logits
     match re-running the unpadded prompt to ~1e-7.
   - ``"rerun"`` (the TransformerBridge, where hooks apply but the KV cache is wrong):
     each step re-runs prompt + generated tokens for the rows still decoding.

**Shared prefix** (``prefix``, HF backend): when every prompt of a task starts with the same
tokens (fixed few-shot demonstrations), the prefix is run once, batch 1, and its key-value
cache is copied and expanded over each batch; the batch then runs only its suffixes, at
positions ``len(prefix) + j``, with an attention mask that covers the prefix columns. Right
padding stays harmless (pads follow every real token), and decoding masks and positions
are shifted by the prefix length. Predictions equal those of the full prompts (checked per
model family in the tests).

**Width-split prompt passes** (HF backend on CPU): rows are sorted longest first, and a
batch's prompt pass is split into contiguous chunks of similar width where the padding
saved outweighs the fixed cost of another pass (:func:`prefill_chunks`, an exact dynamic
programme over a cost model of the model's size). The chunks' key-value caches are then
merged (zero-padded to the widest; those columns are masked) so that the batch decodes as
one. Few-shot prompts vary in length by their question and passage, so without this a
batch pads every row to its longest.

Decoding stops per row at the first token whose text contains a newline (or EOS), or after
``max_new_tokens`` tokens; a row that stops leaves the batch (its cache rows are dropped),
so a step costs only the rows still decoding, and the batch stops when every row has.

No single-token shortcut is taken: even when every answer is one token, the first greedy
token only decides the answer if the model then stops, and a prediction such as
``"Paris."`` or ``"Paris is"`` differs from ``"Paris"``, so rows are decoded until they stop
(the first step is already free from the scoring pass, and a one-token answer followed by a
newline costs a single decoding step). Predictions are therefore identical to unbatched
greedy generation (checked against ``transformers``' ``generate`` in the tests).

Logits are computed only where they are needed: the HF path runs the base model and applies
the output embedding to the hidden states at the scored positions only (one per gold token;
the ``[batch, seq, vocab]`` tensor of a plain forward never exists); the bridge path takes the bridge's logits as they are, since
hooks may act anywhere up to the unembedding.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lenskit.tasks.encoding import pad_right

__all__ = ["BridgeBackend", "HFBackend", "PrefixState", "QAScores", "prefill_chunks", "score_qa",
           "score_windows"]

# Rows of hidden states turned into logits at once (bounds the [rows, vocab] buffer).
_HEAD_CHUNK_ELEMENTS = 1 << 25


class HFBackend:
    """Forward passes through the plain HF model (base model + output embedding)."""

    def __init__(self, hf) -> None:
        self.hf = hf
        base = hf.base_model
        # Llama-4's causal LM names a base_model_prefix it does not have (base_model is
        # then the causal LM itself); its decoder is ``model``, as in most families.
        self.base = base if base is not hf else hf.model
        self.head = hf.get_output_embeddings()
        # The supported families' LM heads are a linear map of the base model's final
        # hidden state (checked against ``hf(ids).logits`` in the tests), times a constant
        # where the family has one (Cohere's ``logit_scale``, Granite's division by
        # ``logits_scaling``); Gemma-2-style soft-capping is applied when a config declares
        # it.
        self.softcap = getattr(hf.config, "final_logit_softcapping", None)
        scale = getattr(hf, "logit_scale", None)
        self.scale = float(scale) if isinstance(scale, (int, float)) else 1.0
        divide = getattr(hf.config, "logits_scaling", None)
        if isinstance(divide, (int, float)) and divide:
            self.scale /= float(divide)
        self.device = next(hf.parameters()).device
        self.vocab_size = int(self.head.weight.shape[0])
        # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns).
        params = inspect.signature(self.base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        n_params = sum(p.numel() for p in hf.parameters())
        cfg = hf.config
        n_blocks = next((v for v in (getattr(cfg, k, None) for k in
                                     ("num_hidden_layers", "n_layer", "num_layers"))
                         if isinstance(v, int)), 1)
        # the fixed cost of a forward pass in tokens (see scoring._pass_cost)
        self.pass_cost = (3e-4 * n_blocks + 4 * n_params / 1e10) / (2 * n_params / 6e10)

    @staticmethod
    def _cache_of(out):
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits ``[..., vocab]`` from final hidden states ``[..., d_model]``."""
        shape = hidden.shape[:-1]
        flat = hidden.reshape(-1, hidden.shape[-1])
        rows = max(1, _HEAD_CHUNK_ELEMENTS // self.vocab_size)
        parts = [self.head(flat[i : i + rows]).float() for i in range(0, len(flat), rows)]
        out = torch.cat(parts) if parts else flat.new_zeros((0, self.vocab_size)).float()
        if self.scale != 1.0:
            out = out * self.scale
        if self.softcap:
            out = torch.tanh(out / self.softcap) * self.softcap
        return out.reshape(*shape, self.vocab_size)

    def logits_at(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K, V]`` at ``positions`` ``[B, K]`` of a right-padded batch."""
        hidden = self.base(input_ids=ids, use_cache=False).last_hidden_state
        return self.logits(_gather(hidden, positions))

    def hidden(self, ids: torch.Tensor, prefix=None, use_cache: bool = True):
        """Final hidden states ``[B, T, d_model]`` of a right-padded batch and the pass's
        key-value cache (None without ``use_cache``). With ``prefix`` (a
        :class:`PrefixState`) the rows continue the shared prefix: they run on a copy of
        its cache expanded over the batch, at positions ``P..P+T-1``."""
        if prefix is None:
            out = self.base(input_ids=ids, use_cache=use_cache)
        else:
            b, t = ids.shape
            p = prefix.length
            mask = torch.ones((b, p + t), dtype=torch.long, device=ids.device)
            pos = torch.arange(p, p + t, device=ids.device)[None, :].expand(b, -1)
            out = self.base(input_ids=ids, attention_mask=mask, position_ids=pos,
                            use_cache=True, **{self._cache_kw: prefix.expanded(b)})
        return out.last_hidden_state, (self._cache_of(out) if use_cache or prefix else None)

    def prefill(self, ids: torch.Tensor, positions: torch.Tensor, prefix=None):
        """Like :meth:`logits_at`, also returning the key-value cache of the pass (with
        ``prefix``, ``positions`` index ``ids``, not counting the prefix)."""
        hidden, cache = self.hidden(ids, prefix)
        return self.logits(_gather(hidden, positions)), cache

    def prefix_state(self, prefix: Sequence[int]) -> PrefixState:
        """Run the shared ``prefix`` once (batch 1) and keep its key-value cache."""
        ids = torch.tensor([list(prefix)], dtype=torch.long, device=self.device)
        out = self.base(input_ids=ids, use_cache=True)
        return PrefixState(len(prefix), self._cache_of(out))

    def step(self, cache, tokens: torch.Tensor, mask: torch.Tensor, position: torch.Tensor):
        """One decoding step: ``tokens`` ``[B]`` at ``position`` ``[B]``; ``mask`` covers the
        cache plus the new token. Returns logits ``[B, V]`` and the grown cache."""
        out = self.base(input_ids=tokens[:, None], attention_mask=mask,
                        position_ids=position[:, None], use_cache=True,
                        **{self._cache_kw: cache})
        return self.logits(out.last_hidden_state[:, -1]), self._cache_of(out)


@dataclass
class PrefixState:
    """The key-value cache of a shared prompt prefix of ``length`` tokens (batch 1)."""

    length: int
    cache: object

    def expanded(self, batch: int):
        """A fresh copy of the cache repeated ``batch`` times (the forward pass grows the
        cache it is given in place, so the stored one is never handed out)."""
        cache = copy.deepcopy(self.cache)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache


class BridgeBackend:
    """Forward passes through the TransformerBridge, so that active hooks apply."""

    def __init__(self, bridge, vocab_size: int) -> None:
        self.bridge = bridge
        self.vocab_size = vocab_size
        self.device = next(bridge.parameters()).device

    def logits_at(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # Right padding needs no attention mask for causal models (pads come after every
        # real token); the bridge is given none, so it cannot infer one from pad ids.
        logits = self.bridge(ids, return_type="logits")
        return _gather(logits, positions).float()

    def full_logits(self, ids: torch.Tensor) -> torch.Tensor:
        return self.bridge(ids, return_type="logits").float()


def _gather(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``x[b, positions[b, k]]`` -> ``[B, K, ...]``."""
    idx = positions.to(x.device)
    expand = idx[..., None].expand(*idx.shape, x.shape[-1])
    return torch.gather(x, 1, expand)


@dataclass
class QAScores:
    """Per-row results of :func:`score_qa`, in the order of the input rows."""

    generated: list[list[int]]  # greedy tokens, the stop token included when reached
    stopped: np.ndarray  # [N] bool: a stop token was reached
    logprob: np.ndarray  # [N] float: sum of log p(gold token) under teacher forcing
    gold_rank: np.ndarray  # [N] int: 1 + number of tokens scored above the gold's first
    first_token: np.ndarray  # [N] int: the greedy first token


def score_qa(
    backend: HFBackend | BridgeBackend,
    prompts: Sequence[Sequence[int]],
    golds: Sequence[Sequence[int]],
    *,
    batch_size: int,
    max_new_tokens: int,
    stop_mask: torch.Tensor,
    pad_id: int,
    decode: str,
    probe=None,
    prefix: Sequence[int] | None = None,
) -> QAScores:
    """Score gold answers and decode greedily (see the module docstring).

    Rows are processed longest first (less padding per batch); results are returned in
    the input order. With ``prefix`` (HF backend only), ``prompts`` are the suffixes that
    follow these shared tokens.
    """
    state = None
    if prefix is not None and len(prefix):
        if not isinstance(backend, HFBackend) or probe is not None:
            # internal: the runners ask for a shared prefix only in that case
            raise ValueError("a shared prefix needs the HF backend and no probe")
        state = backend.prefix_state(prefix)
    n = len(prompts)
    total = np.array([len(p) + len(g) - 1 for p, g in zip(prompts, golds, strict=True)])
    order = np.argsort(-total, kind="stable")
    generated: list[list[int]] = [[] for _ in range(n)]
    stopped = np.zeros(n, dtype=bool)
    logprob = np.zeros(n, dtype=np.float64)
    rank = np.zeros(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    stop_mask = stop_mask.to(backend.device)
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size].tolist()
        out = _qa_batch(backend, [prompts[i] for i in rows], [golds[i] for i in rows],
                        max_new_tokens, stop_mask, pad_id, decode, probe, rows, state)
        for k, i in enumerate(rows):
            generated[i] = out[0][k]
            stopped[i], logprob[i], rank[i], first[i] = out[1][k], out[2][k], out[3][k], out[4][k]
    return QAScores(generated, stopped, logprob, rank, first)


def prefill_chunks(sizes: Sequence[int], pass_cost: float) -> list[tuple[int, int]]:
    """Split rows sorted longest first into contiguous chunks ``[(start, stop), ...]`` that
    minimise ``sum(pass_cost + width * rows)`` over chunks, ``width`` being a chunk's first
    (longest) row: each chunk is one forward pass, padded to its width, and a pass has a
    fixed cost worth ``pass_cost`` tokens. Exact (dynamic programming over ``len(sizes)``
    rows, quadratic; rows are one batch)."""
    n = len(sizes)
    if n == 0:
        return []
    if pass_cost == float("inf"):  # passes cost more than any padding: one pass
        return [(0, n)]
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for stop in range(1, n + 1):
        for start in range(stop):
            cost = best[start] + pass_cost + sizes[start] * (stop - start)
            if cost < best[stop]:
                best[stop], cut[stop] = cost, start
    out = []
    stop = n
    while stop > 0:
        out.append((cut[stop], stop))
        stop = cut[stop]
    return out[::-1]


def _pass_cost(backend) -> float:
    """The fixed cost of one forward pass in token-equivalents (for :func:`prefill_chunks`).

    A rough CPU model: a pass costs ~0.3 ms of Python per block plus one read of the weights
    (~10 GB/s); a token costs two FLOPs per parameter (~60 GFLOP/s). On SmolLM2-135M this is
    ~14 tokens; on a tiny model hundreds (its passes are all overhead), so it never splits.
    On an accelerator tokens are nearly free beside a pass: one pass per batch."""
    if not isinstance(backend, HFBackend):
        return float("inf")
    if backend.device.type != "cpu":
        return float("inf")
    return backend.pass_cost


def _score_rows(logits: torch.Tensor, targets: torch.Tensor, row: torch.Tensor, b: int):
    """Gold log-probability sums ``[b]`` from flat logits ``[N, V]`` at the scored positions
    (``row`` ``[N]`` says whose; ``targets`` ``[N]`` the gold token each predicts)."""
    logp = torch.log_softmax(logits, dim=-1)
    tok_lp = logp.gather(1, targets[:, None])[:, 0]
    return torch.zeros(b, dtype=tok_lp.dtype, device=tok_lp.device).index_add_(0, row, tok_lp)


def _prompt_pass(backend, prompts, golds, pad_id, prefix, want_cache):
    """One forward pass over ``prompt + gold[:-1]`` rows: gold log-prob sums ``[B]``,
    logits at the answer position ``[B, V]``, the key-value cache (or None) and the padded
    width. Logits are formed only at the ``sum(len(gold))`` scored positions."""
    dev = backend.device
    ids, _ = pad_right([list(p) + list(g[:-1]) for p, g in zip(prompts, golds, strict=True)],
                       pad_id)
    ids = ids.to(dev)
    # Flat scored positions: row r's position L_r - 1 + j predicts its gold token j.
    row = torch.tensor([r for r, g in enumerate(golds) for _ in g], device=dev)
    col = torch.tensor([len(p) - 1 + j for p, g in zip(prompts, golds, strict=True)
                        for j in range(len(g))], device=dev)
    targets = torch.tensor([t for g in golds for t in g], device=dev)
    first_at = torch.tensor(np.cumsum([0] + [len(g) for g in golds[:-1]]), device=dev)
    cache = None
    if isinstance(backend, HFBackend):
        if prefix is not None:
            hidden, cache = backend.hidden(ids, prefix)
        else:
            hidden, cache = backend.hidden(ids, None, use_cache=want_cache)
        logits = backend.logits(hidden[row, col])
    else:
        logits = backend.full_logits(ids)[row, col]
    lp = _score_rows(logits, targets, row, len(prompts))
    return lp, logits[first_at], cache, ids.shape[1]


def _qa_batch(backend, prompts, golds, max_new, stop_mask, pad_id, decode, probe=None,
              rows=(), prefix=None):
    dev = backend.device
    b = len(prompts)
    lengths = torch.tensor([len(p) for p in prompts], device=dev)
    use_cache = decode == "cache" and max_new > 1
    sizes = [len(p) + len(g) - 1 for p, g in zip(prompts, golds, strict=True)]
    chunks = prefill_chunks(sizes, _pass_cost(backend)) if b > 1 else [(0, b)]
    lp_parts, first_parts, caches, widths = [], [], [], []
    for lo, hi in chunks:
        if probe is not None:  # the probe sees this prompt pass, never the decoding steps
            probe.begin(list(rows[lo:hi]), lengths[lo:hi])
        try:
            lp, fl, cache, width = _prompt_pass(backend, prompts[lo:hi], golds[lo:hi], pad_id,
                                                prefix, use_cache)
        finally:
            if probe is not None:
                probe.end()
        lp_parts.append(lp)
        first_parts.append(fl)
        caches.append(cache)
        widths.append(width)
    lp_sum = torch.cat(lp_parts)
    first_logits = torch.cat(first_parts)
    gold_first = torch.tensor([g[0] for g in golds], device=dev)
    rank = 1 + (first_logits > first_logits.gather(1, gold_first[:, None])).sum(1)
    nxt = first_logits.argmax(-1)
    first = nxt.clone()
    done = stop_mask[nxt].clone()
    tokens = torch.full((b, max_new), -1, dtype=torch.long)
    tokens[:, 0] = nxt.cpu()
    if max_new > 1 and not bool(done.all()):
        n_prefix = prefix.length if prefix is not None else 0
        if use_cache:
            merged = _merge_caches(caches, [n_prefix + w for w in widths]) \
                if len(caches) > 1 else caches[0]
            if merged is not None:
                groups = [(0, b, merged, max(widths))]
            else:  # a cache lenskit cannot merge: each chunk decodes on its own
                groups = [(lo, hi, c, w) for (lo, hi), c, w in zip(chunks, caches, widths,
                                                                   strict=True)]
            for lo, hi, cache, width in groups:
                tokens[lo:hi, 1:] = _decode_cached(
                    backend, cache, nxt[lo:hi], done[lo:hi], lengths[lo:hi], width, max_new,
                    stop_mask, n_prefix)
        else:
            gen = _decode_rerun(backend, prompts, nxt, done, max_new, stop_mask, pad_id,
                                prefix)
            if gen:
                tokens[:, 1:1 + len(gen)] = torch.stack(gen, 1).cpu()
    stop_cpu = stop_mask.cpu()
    out_gen, out_stop = [], []
    for r in range(b):
        seq = []
        hit = False
        for t in tokens[r].tolist():
            if t < 0:
                break
            seq.append(t)
            if bool(stop_cpu[t]):
                hit = True
                break
        out_gen.append(seq)
        out_stop.append(hit)
    return (out_gen, out_stop, lp_sum.double().cpu().numpy(), rank.cpu().numpy(),
            first.cpu().numpy())


def _cache_tensors(cache) -> list[list[torch.Tensor]] | None:
    """Per layer ``[keys, values]`` (``[B, heads, T, head_dim]``) of a plain growing cache,
    or None for any other kind (sliding windows, quantised, static)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:  # transformers >= 4.56
        if not all(type(layer).__name__ == "DynamicLayer" for layer in layers):
            return None
        return [[layer.keys, layer.values] for layer in layers]
    keys, values = getattr(cache, "key_cache", None), getattr(cache, "value_cache", None)
    if isinstance(keys, list) and isinstance(values, list):
        return [[k, v] for k, v in zip(keys, values, strict=True)]
    return None


def _set_cache_tensors(cache, tensors: list[list[torch.Tensor]]) -> None:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer, (k, v) in zip(layers, tensors, strict=True):
            layer.keys, layer.values = k, v
    else:
        cache.key_cache[:] = [k for k, _ in tensors]
        cache.value_cache[:] = [v for _, v in tensors]


def _merge_caches(caches, widths: Sequence[int]):
    """One cache for the rows of several chunks (stacked in order), each chunk's keys and
    values zero-padded on the right to the widest (those columns are masked in decoding);
    None when the caches are not plain growing ones."""
    parts = [_cache_tensors(c) for c in caches]
    if any(p is None for p in parts):
        return None
    top = max(widths)
    merged = []
    for layer in range(len(parts[0])):
        kv = []
        for which in range(2):
            ts = [p[layer][which] for p in parts]
            ts = [torch.nn.functional.pad(t, (0, 0, 0, top - t.shape[-2])) for t in ts]
            kv.append(torch.cat(ts, 0))
        merged.append(kv)
    _set_cache_tensors(caches[0], merged)
    return caches[0]


def _select_rows(cache, keep: torch.Tensor) -> bool:
    """Keep only the ``keep`` rows of ``cache`` (in place); False if it cannot."""
    tensors = _cache_tensors(cache)
    if tensors is None:
        return False
    _set_cache_tensors(cache, [[k.index_select(0, keep), v.index_select(0, keep)]
                               for k, v in tensors])
    return True


def _decode_cached(backend, cache, nxt, done, lengths, width, max_new, stop_mask,
                   n_prefix=0) -> torch.Tensor:
    """Greedy steps on the KV cache -> ``[B, max_new - 1]`` tokens (-1 once a row stopped).

    Rows that stop leave the batch (their cache rows are dropped), so a step costs only the
    rows still decoding. ``n_prefix`` shared-prefix columns come first in the cache (always
    attended); then ``width`` columns of which each row attends its first ``lengths``."""
    dev = nxt.device
    b = len(nxt)
    out = torch.full((b, max_new - 1), -1, dtype=torch.long)
    mask = (torch.arange(width, device=dev)[None, :] < lengths[:, None]).long()
    if n_prefix:
        mask = torch.cat([torch.ones((b, n_prefix), dtype=torch.long, device=dev), mask], 1)
    position = n_prefix + lengths
    alive = torch.arange(b, device=dev)
    compact = True
    if bool(done.any()):
        keep = (~done).nonzero()[:, 0]
        compact = _select_rows(cache, keep)
        if compact:
            alive, mask, position, nxt, done = (alive[keep], mask[keep], position[keep],
                                                nxt[keep], done[keep])
    for s in range(1, max_new):
        mask = torch.cat([mask, torch.ones((len(alive), 1), dtype=torch.long, device=dev)], 1)
        logits, cache = backend.step(cache, nxt, mask, position)
        step = logits.argmax(-1)
        live = ~done
        out[alive[live].cpu(), s - 1] = step[live].cpu()
        done = done | stop_mask[step]
        if bool(done.all()):
            break
        if compact and bool(done.any()):
            keep = (~done).nonzero()[:, 0]
            compact = _select_rows(cache, keep)
            if compact:
                alive, mask, position, step, done = (alive[keep], mask[keep], position[keep],
                                                     step[keep], done[keep])
        nxt = step
        position = position + 1
    return out


def _decode_rerun(backend, prompts, nxt, done, max_new, stop_mask, pad_id, prefix=None):
    """Greedy steps by re-running each unfinished row's prompt + generated tokens (after
    the shared ``prefix``'s cache when given)."""
    dev = nxt.device
    b = len(prompts)
    seqs = [[*p, int(t)] for p, t in zip(prompts, nxt.tolist(), strict=True)]
    out = []
    for _ in range(1, max_new):
        active = (~done).nonzero()[:, 0].tolist()
        ids, lens = pad_right([seqs[i] for i in active], pad_id)
        at = (lens - 1)[:, None].to(dev)
        if prefix is not None:
            logits = backend.prefill(ids.to(dev), at, prefix)[0][:, 0]
        else:
            logits = backend.logits_at(ids.to(dev), at)[:, 0]
        step = torch.full((b,), -1, dtype=torch.long, device=dev)
        step[active] = logits.argmax(-1)
        for i in active:
            seqs[i].append(int(step[i]))
        out.append(step)
        done = done | stop_mask[step.clamp(min=0)]
        if bool(done.all()):
            break
    return out


def score_windows(
    backend: HFBackend | BridgeBackend,
    windows: Sequence[Sequence[int]],
    score_from: Sequence[int],
    *,
    batch_size: int,
    pad_id: int,
) -> np.ndarray:
    """Sum of log p(token) over each window's scored tokens -> ``[N]`` float64."""
    n = len(windows)
    order = np.argsort(-np.array([len(w) for w in windows]), kind="stable")
    out = np.zeros(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size].tolist()
        ids, lengths = pad_right([windows[i] for i in rows], pad_id)
        ids = ids.to(backend.device)
        sf = torch.tensor([score_from[i] for i in rows])
        # Flat (row, position) pairs: position j-1 predicts token j for j in [sf, len).
        cols = torch.arange(ids.shape[1])
        scored = (cols[None, :] >= sf[:, None]) & (cols[None, :] < lengths[:, None])
        r_idx, j_idx = (t.to(backend.device) for t in scored.nonzero(as_tuple=True))
        targets = ids[r_idx, j_idx]
        if isinstance(backend, HFBackend):
            source = backend.base(input_ids=ids, use_cache=False).last_hidden_state
            to_logits = backend.logits
        else:
            source = backend.full_logits(ids)
            to_logits = None
        rows_per_chunk = max(1, _HEAD_CHUNK_ELEMENTS // backend.vocab_size)
        parts = []
        for c in range(0, len(targets), rows_per_chunk):
            sl = slice(c, c + rows_per_chunk)
            x = source[r_idx[sl], j_idx[sl] - 1]
            logits = to_logits(x) if to_logits is not None else x
            parts.append(torch.log_softmax(logits, -1).gather(1, targets[sl, None])[:, 0])
        lp = torch.cat(parts).double()
        sums = torch.zeros(len(rows), dtype=torch.float64, device=lp.device)
        sums.index_add_(0, r_idx.to(lp.device), lp)
        out[rows] = sums.cpu().numpy()
    return out
