"""Observing attention patterns during an evaluation's prompt pass.

An evaluation already runs every prompt through the model once; a *probe* receives the
attention patterns of that pass, layer by layer, so that pattern statistics cost no extra
forward pass (:class:`lenskit.analysis.AttentionProbe` is one). The plain HF model switches
to eager attention for the duration (the fused kernels never form the pattern) and forward
hooks on its attention modules hand each layer's pattern ``[batch, head, query, key]`` to the
probe, for prompt passes only (never for decoding steps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

from lenskit.errors import UsageError

__all__ = ["PromptProbe", "observe_prompt_patterns"]


@runtime_checkable
class PromptProbe(Protocol):
    """Receives the patterns of an evaluation's prompt passes.

    ``begin_batch(rows, lengths)`` announces a batch: the task's instance indices in batch
    order and their prompt lengths in tokens (``[B]``; the batch may hold more columns,
    answer tokens scored in the same pass and padding). ``pattern(layer, p)`` then gives each
    layer's softmax pattern ``p`` ``[B, heads, T, T]``; it must not keep ``p``.
    """

    def begin_batch(self, rows: Sequence[int], lengths: torch.Tensor) -> None: ...

    def pattern(self, layer: int, pattern: torch.Tensor) -> None: ...


class _Switch:
    """Passes patterns to the probe only while ``on`` (the prompt pass of a batch)."""

    def __init__(self, probe: PromptProbe) -> None:
        self.probe = probe
        self.on = False

    def begin(self, rows: Sequence[int], lengths: torch.Tensor) -> None:
        self.probe.begin_batch(rows, lengths)
        self.on = True

    def end(self) -> None:
        self.on = False


@contextlib.contextmanager
def observe_prompt_patterns(info, probe: PromptProbe) -> Iterator[_Switch]:
    """Eager attention and pattern hooks on ``info.hf`` (a :class:`LoadedModel`'s plain HF
    model) for the duration; yields the switch that turns delivery on per prompt pass."""
    if not isinstance(probe, PromptProbe):
        raise UsageError(f"probe must have begin_batch(rows, lengths) and pattern(layer, p); "
                         f"got {type(probe).__name__}")
    hf = info.hf
    switch = _Switch(probe)
    before = hf.config._attn_implementation
    blocks = hf.get_submodule(info.arch.blocks)
    handles = []

    def make_hook(layer: int):
        def hook(_module, _inputs, output):
            if switch.on:
                pattern = output[1] if isinstance(output, tuple) and len(output) > 1 else None
                if pattern is None:
                    raise RuntimeError(f"layer {layer}: the attention module returned no "
                                       "pattern (eager attention is needed)")
                probe.pattern(layer, pattern)
        return hook

    try:
        hf.set_attn_implementation("eager")
        for layer, block in enumerate(blocks):
            handles.append(block.get_submodule(info.arch.attention)
                           .register_forward_hook(make_hook(layer)))
        yield switch
    finally:
        for h in handles:
            h.remove()
        hf.set_attn_implementation(before)
