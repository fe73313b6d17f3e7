"""Calibration statistics at each site's input, gathered one transformer block at a time.

Statistics are captured with forward pre-hooks on the plain HF modules
(``model_info(model).hf``), not with TransformerLens hooks: the plain model shares every
parameter with the bridge, runs with fused attention kernels and no hook dispatch, and, most
importantly, its blocks can be called one at a time with the arguments the model gives them
(attention mask, rotary position embeddings ...). Running block by block is what bounds
memory (only one block's statistics exist at a time) and what sequential calibration needs
(block ``l``'s pruned outputs feed block ``l + 1``).

The :class:`BlockWalker` captures block 0's inputs for all calibration samples (the call
is stopped right there), then for each block runs it on the stored inputs with hooks on the
modules whose inputs are needed, and stores its outputs as the next block's inputs.
Sites of one ``input_group`` (q, k, v; or in, gate) read one tensor: one hook, one
statistic. The experts of a mixture-of-experts FFW (sites with a ``route``) see only the tokens the
router sends them: their inputs are captured from the real forward, as the arguments of the
matrix products the experts module computes with each expert's slice of its stacked
parameters (:class:`ExpertInputs`; the eager experts implementation runs meanwhile).
Statistics are summed with large matmuls per batch of sequences
(``H += X^T X`` with ``X`` ``[batch * seq_len, d_in]``, only the row panels up to the
diagonal since ``X^T X`` is symmetric), never per sequence. Memory: the block inputs of all
calibration samples, one copy (``n_samples x seq_len x d_model``, in the model's dtype; each
batch's output replaces its input as it is computed), plus one block's statistics (``d_in^2``
float32 per input group for SparseGPT). A sequential sweep of several levels
(:meth:`BlockWalker.walk_levels`) shares what every level sees on the dense model (block 0's
inputs, the first calibrated block's statistics) and keeps that block's inputs while each
level is walked: one more copy.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from lenskit.models.early_exit import StopForward, early_exit
from lenskit.models.sites import Site

__all__ = ["BlockWalker", "ExpertInputs", "GroupStats", "group_sites"]

STAT_KINDS = ("norms", "hessian")
SYMMETRIC_MIN_DIM = 512  # from this d_in on, X^T X is accumulated block-triangularly
# A statistics pass whose outputs are not needed stops once its last wanted input is seen
# (off only to measure what it saves: benchmarks/calibration_bench.py).
EARLY_STOP = True


def symmetric_chunk(d_in: int) -> int:
    """Rows per panel of the block-triangular ``X^T X`` (measured best on CPU here)."""
    return 128 if d_in < 1536 else 256


class GroupStats:
    """Running statistics of one input group.

    ``norms`` kind: per input feature, the sum of squares over all calibration tokens
    (float32 per batch, accumulated in float64). ``hessian`` kind: ``X^T X`` (float32, like the reference) summed over all
    tokens; :meth:`hessian` scales it as the reference does (``2 / n_sequences``).
    """

    def __init__(self, d_in: int, kind: str, device: torch.device | str = "cpu") -> None:
        if kind not in STAT_KINDS:
            raise ValueError(f"unknown statistic {kind!r}; allowed: {STAT_KINDS}")
        self.kind = kind
        self.d_in = d_in
        self.n_sequences = 0
        self.n_tokens = 0
        self.sq = torch.zeros(d_in, dtype=torch.float64, device=device)
        self.xtx = (torch.zeros(d_in, d_in, dtype=torch.float32, device=device)
                    if kind == "hessian" else None)

    def add(self, x: torch.Tensor, n_sequences: int | None = None) -> None:
        """Add a batch of inputs ``[batch, seq, d_in]`` or ``[tokens, d_in]``.

        ``n_sequences``: how many calibration sequences the batch holds (default: ``batch``
        for 3-D inputs, 1 for 2-D ones; OPT flattens its FFW inputs to 2-D, so the block
        walker counts sequences itself).
        """
        if n_sequences is None:
            n_sequences = x.shape[0] if x.ndim == 3 else 1
        self.n_sequences += n_sequences
        # Statistics are float32 whatever the model's dtype (as in the references).
        flat = x.detach().reshape(-1, self.d_in).to(self.sq.device, torch.float32)
        self.n_tokens += flat.shape[0]
        if self.xtx is None:
            # float32 sums per batch (fast), accumulated across batches in float64
            self.sq += flat.square().sum(0)
        elif self.d_in < SYMMETRIC_MIN_DIM:
            self.xtx.addmm_(flat.t(), flat)
        else:
            # X^T X is symmetric: compute only row panels up to the diagonal (about 54% of
            # the flops for d_in = 3072), one matmul per panel; gram() mirrors the rest.
            c = symmetric_chunk(self.d_in)
            for i in range(0, self.d_in, c):
                self.xtx[i:i + c, :i + c].addmm_(flat[:, i:i + c].t(), flat[:, :i + c])

    def gram(self, scale: float = 1.0) -> torch.Tensor:
        """``scale * X^T X`` summed over all tokens, ``[d_in, d_in]`` float32 (a new tensor)."""
        if self.xtx is None:
            raise ValueError("these statistics hold feature norms only, not a Hessian")
        if self.d_in < SYMMETRIC_MIN_DIM:
            return self.xtx * scale
        out = torch.tril(self.xtx).mul_(scale)
        out += torch.tril(out, -1).t()  # mirror the lower triangle
        return out

    def norms(self) -> torch.Tensor:
        """``||X_j||_2`` over all calibration tokens, ``[d_in]`` float32."""
        sq = torch.diagonal(self.xtx).double() if self.xtx is not None else self.sq
        return sq.sqrt().float()

    def hessian(self) -> torch.Tensor:
        """``H = 2 / n_sequences * X^T X``, ``[d_in, d_in]`` float32 (the reference's H)."""
        return self.gram(2.0 / max(1, self.n_sequences))


def group_sites(sites: Sequence[Site]) -> dict[str, list[Site]]:
    """Sites by ``input_group`` (in site order)."""
    out: dict[str, list[Site]] = {}
    for s in sites:
        out.setdefault(s.input_group, []).append(s)
    return out


_PRODUCTS = frozenset({"linear", "matmul", "__matmul__", "mm", "bmm"})


class ExpertInputs(TorchFunctionMode):
    """While active, adds to ``stats[(param, e)]`` the input of every matrix product whose
    weight is expert ``e``'s slice of a watched stacked parameter (``param[e]``).

    The experts module computes ``F.linear(x, gate_up_proj[e])`` (or ``x @ w[e]`` for
    transposed stacks) on exactly the tokens routed to expert ``e``: ``x`` is that expert's
    input, taken from the real forward pass, the router's choices included. A batched
    product with the whole stack (Llama-4: ``bmm(x, gate_up_proj)``, ``x`` ``[expert,
    tokens, d]``, tokens not routed to an expert zeroed by their router score) gives expert
    ``e`` the rows ``x[e]``.
    """

    def __init__(self, stats: dict[tuple[torch.Tensor, int], GroupStats]) -> None:
        super().__init__()
        self.by_ptr: dict[int, tuple[torch.Tensor, dict[int, GroupStats]]] = {}
        for (param, e), st in stats.items():
            ptr = param.untyped_storage().data_ptr()
            self.by_ptr.setdefault(ptr, (param, {}))[1][e] = st

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", None) in _PRODUCTS and len(args) >= 2 \
                and isinstance(args[1], torch.Tensor) and isinstance(args[0], torch.Tensor):
            w = args[1]
            hit = self.by_ptr.get(w.untyped_storage().data_ptr())
            if hit is not None:
                param, per_expert = hit
                x = args[0]
                if w.ndim == 3 and w.shape == param.shape and x.ndim == 3 \
                        and x.shape[0] == w.shape[0]:
                    for e, st in per_expert.items():
                        st.add(x[e], n_sequences=0)
                else:
                    e = (w.storage_offset() - param.storage_offset()) // param.stride(0)
                    st = per_expert.get(e)
                    if st is not None:
                        st.add(x, n_sequences=0)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _eager_experts(hf):
    """The HF model with its eager experts implementation for the duration (the batched
    kernels never multiply by one expert's slice, so nothing could be captured)."""
    before = getattr(hf.config, "_experts_implementation", None)
    if before in (None, "eager") or not hasattr(hf, "set_experts_implementation"):
        yield
        return
    hf.set_experts_implementation("eager")
    try:
        yield
    finally:
        hf.set_experts_implementation(before)


class _Feeder:
    """Forward pre-hooks that add each wanted input to its statistics; with ``early``, the
    pass is ended (:class:`StopForward`) once all ``n_groups`` inputs of the pass are in."""

    def __init__(self, n_groups: int, early: bool) -> None:
        self.n_groups = n_groups
        self.early = early
        self.seen: set[str] = set()

    def start(self, *_: Any) -> None:
        self.seen.clear()

    def hook(self, group: str, st: GroupStats) -> Callable:
        def add(_module, args):
            st.add(args[0], n_sequences=0)
            self.seen.add(group)
            if self.early and len(self.seen) == self.n_groups:
                self.seen.clear()
                raise StopForward
        return add


@dataclass
class _Batch:
    hidden: torch.Tensor
    args: tuple  # positional arguments after hidden_states
    kwargs: dict[str, Any] = field(default_factory=dict)


class BlockWalker:
    """Runs the plain HF model block by block on calibration tokens.

    Args:
        info: ``model_info(model)``.
        tokens: calibration token ids ``[n_samples, seq_len]``.
        batch_size: sequences per forward call (results do not depend on it beyond float
            summation order).
    """

    def __init__(self, info, tokens: torch.Tensor, batch_size: int = 16) -> None:
        self.info = info
        self.hf = info.hf
        self.blocks = self.hf.get_submodule(info.arch.blocks)
        self.tokens = tokens
        self.batch_size = batch_size
        self.device = next(self.hf.parameters()).device

    def _capture(self) -> list[_Batch]:
        """Block 0's inputs for every batch, and the other arguments every block is called
        with (``self._layer_args[layer][batch]``): models with several attention types
        (Gemma-2/3's sliding and global layers) give each layer its own mask and rotary
        embeddings. The blocks do not compute meanwhile: each one records its arguments
        and hands its input on; the last one stops the forward pass."""
        store: list[_Batch] = []
        n = len(self.blocks)
        self._layer_args: list[list[tuple[tuple, dict]]] = [[] for _ in range(n)]

        def recorder(layer: int):
            def forward(*args, **kwargs):
                if args:
                    hidden, rest = args[0], tuple(args[1:])
                else:
                    kwargs = dict(kwargs)
                    hidden, rest = kwargs.pop("hidden_states"), ()
                if layer == 0:
                    store.append(_Batch(hidden.detach(), rest, dict(kwargs)))
                self._layer_args[layer].append((rest, dict(kwargs)))
                if layer == n - 1:
                    raise StopForward
                return hidden
            return forward

        # An instance attribute shadows the method; one already there (Accelerate's device
        # hooks wrap ``forward`` that way under a device map) is put back afterwards.
        saved = [block.__dict__.get("forward") for block in self.blocks]
        for layer, block in enumerate(self.blocks):
            block.forward = recorder(layer)
        try:
            for i in range(0, self.tokens.shape[0], self.batch_size):
                ids = self.tokens[i:i + self.batch_size].to(self.device)
                # use_cache off: a KV cache would grow across batches and is never needed.
                with early_exit():
                    self.hf(input_ids=ids, use_cache=False)
        finally:
            for block, before in zip(self.blocks, saved, strict=True):
                if before is None:
                    del block.forward
                else:
                    block.forward = before
        if any(len(a) != len(store) for a in self._layer_args):
            raise RuntimeError("the model did not call every block once per batch; lenskit "
                               "cannot run its blocks one at a time")
        return store

    def _run_block(self, layer: int, batches: list[_Batch], keep_outputs: bool,
                   stop: bool = False) -> list[_Batch]:
        """Run block ``layer`` on every batch. With ``keep_outputs``, each batch's output
        replaces its input in ``batches`` as soon as it is computed (returned: the same
        list), so the block inputs and outputs of all calibration sequences never exist at
        once: one copy, plus one batch. With ``stop`` (no outputs wanted) a hook may end a
        batch's pass early by raising :class:`StopForward`."""
        block = self.blocks[layer]
        for i, b in enumerate(batches):
            args, kwargs = self._layer_args[layer][i]
            if stop:
                with early_exit():
                    block(b.hidden, *args, **kwargs)
                continue
            out = block(b.hidden, *args, **kwargs)
            if keep_outputs:
                hidden = out[0] if isinstance(out, tuple) else out
                batches[i] = _Batch(hidden.detach(), b.args, b.kwargs)
            del out, b  # drop the references before the next batch runs
        return batches if keep_outputs else []

    @torch.no_grad()
    def walk(
        self,
        groups: dict[int, dict[str, tuple[Site, str]]],
        on_block: Callable[[int, dict[str, GroupStats]], Any],
        sequential: bool = False,
        last_layer: int | None = None,
    ) -> None:
        """Gather statistics block by block and hand them to ``on_block``.

        Args:
            groups: ``layer -> {input_group: (a site of the group, kind)}``: the statistics
                wanted in each layer (``kind`` in ``"norms"``, ``"hessian"``).
            on_block: called as ``on_block(layer, stats)`` after the block ran. In
                sequential mode it may modify the block's weights (prune it): the block is
                then run again and its new outputs feed the next block.
            sequential: re-run each block after ``on_block`` (only for blocks with groups).
            last_layer: stop after this block (default: the last one with groups).
        """
        if last_layer is None:
            last_layer = max(groups) if groups else -1
        if last_layer < 0:
            return
        with self._experts_for(groups):
            self._walk(groups, on_block, sequential, last_layer)

    @torch.no_grad()
    def walk_levels(
        self,
        groups: dict[int, dict[str, tuple[Site, str]]],
        n_levels: int,
        on_block: Callable[[int, int, dict[str, GroupStats]], Any],
        end_level: Callable[[int], Any],
    ) -> None:
        """Sequential calibration of ``n_levels`` levels in one walk.

        What every level shares is computed once: the capture of block 0's inputs, the
        blocks before the first one with groups (dense in every level) and that block's
        statistics (taken on the dense model in every level). Then, level after level,
        ``on_block(level, layer, stats)`` prunes each block with groups (the first block's
        ``stats`` are the same objects for every level), the block is re-run and its outputs
        feed the next block, as :meth:`walk` with ``sequential=True`` does; ``end_level(level)``
        is called when a level is done (it must put the model's original weights back).
        Each level's results are those of a walk of its own, bit for bit. Memory: with
        several levels the first block's inputs are kept while a level is walked (one more
        copy of the block inputs than :meth:`walk`).
        """
        if not groups:
            return
        with self._experts_for(groups):
            self._walk_levels(groups, n_levels, on_block, end_level)

    def _experts_for(self, groups: dict[int, dict[str, tuple[Site, str]]]):
        """Eager experts while a walk calibrates expert sites (each expert's own routed
        tokens); nothing otherwise."""
        if any(site.route is not None for g in groups.values() for site, _ in g.values()):
            return _eager_experts(self.hf)
        return contextlib.nullcontext()

    def _walk_levels(self, groups, n_levels: int, on_block, end_level) -> None:
        first, last_layer = min(groups), max(groups)
        batches = self._capture()
        for layer in range(first):  # no groups there: the dense blocks, once for all levels
            batches = self._run_block(layer, batches, keep_outputs=True)
        stats, _ = self._stats_pass(first, batches, groups[first], keep=False)
        for level in range(n_levels):
            on_block(level, first, stats)
            if first < last_layer:
                # The last level may consume the shared inputs; the others run on a copy of
                # the list (its batches are replaced, never modified in place).
                own = batches if level == n_levels - 1 else list(batches)
                outs = self._run_block(first, own, keep_outputs=True)
                self._walk(groups, functools.partial(on_block, level), True, last_layer,
                           start=first + 1, batches=outs)
            end_level(level)

    def _stats_pass(self, layer: int, batches: list[_Batch],
                    wanted: dict[str, tuple[Site, str]], keep: bool
                    ) -> tuple[dict[str, GroupStats], list[_Batch]]:
        """Run block ``layer`` on every batch with hooks gathering the ``wanted`` statistics;
        with ``keep``, its outputs replace the inputs (returned)."""
        stats: dict[str, GroupStats] = {}
        handles = []
        routed: dict[tuple[torch.Tensor, int], GroupStats] = {}
        # When the pass's outputs are not kept, it ends as soon as every wanted input of
        # the batch is seen: the rest of the block (e.g. the FFW's output projection; the
        # whole FFW when only attention is pruned) is never computed. Same statistics.
        # Not with routed experts: which experts a batch reaches is known only at the end.
        early = EARLY_STOP and not keep and bool(wanted) and not any(
            site.route is not None for site, _ in wanted.values())
        feed = _Feeder(len(wanted), early)
        for group, (site, kind) in wanted.items():
            # On the device of the weight that reads this input (device maps spread
            # the blocks over several devices).
            st = GroupStats(site.shape[1], kind, site.bindings[0].param.device)
            stats[group] = st
            module = self.hf.get_submodule(site.hf_path)  # relative to the *ForCausalLM
            if site.route is not None:
                routed[(module.get_parameter(site.route[0]), site.route[1])] = st
                continue
            handles.append(module.register_forward_pre_hook(feed.hook(group, st)))
        if early:  # a new pass starts with no group seen
            handles.append(self.blocks[layer].register_forward_pre_hook(feed.start))
        capture = (ExpertInputs(routed) if routed else contextlib.nullcontext())
        try:
            with capture:
                outs = self._run_block(layer, batches, keep_outputs=keep, stop=early)
        finally:
            for h in handles:
                h.remove()
        if routed and not any(st.n_tokens for st in routed.values()):
            raise RuntimeError(
                f"block {layer}: no expert input was seen; the experts module does not "
                "multiply by one expert's slice of its stacked parameters, so lenskit "
                "cannot tell which tokens each expert received")
        for st in stats.values():
            st.n_sequences = self.tokens.shape[0]
        return stats, outs

    def _walk(self, groups, on_block, sequential: bool, last_layer: int, start: int = 0,
              batches: list[_Batch] | None = None) -> None:
        # From block ``start`` on, with ``batches`` its inputs (default: block 0's, captured).
        if batches is None:
            batches = self._capture()
        for layer in range(start, last_layer + 1):
            wanted = groups.get(layer, {})
            last = layer == last_layer
            keep = not last and not (sequential and wanted)
            stats, outs = self._stats_pass(layer, batches, wanted, keep)
            if wanted:
                on_block(layer, stats)
            if last:
                return
            if sequential and wanted:
                outs = self._run_block(layer, batches, keep_outputs=True)
            batches = outs
