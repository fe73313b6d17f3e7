"""Strided layouts: where a site's ``[out, in]`` matrix lies inside the parameter that holds it.

A fused projection (GPT-2's ``c_attn``, BLOOM's and Falcon's ``query_key_value``, Phi-3's
``qkv_proj`` and ``gate_up_proj``) or a stack of experts (Mixtral's ``gate_up_proj``
``[expert, 2 * d_ffn, d_model]``) holds several sites. Each site is a set of elements of the
parameter; for every layout in use that set is a strided view: ``param.as_strided(sizes,
strides, offset)`` whose elements, read in row-major order, are the site's matrix in
row-major order. :func:`strided_layout` finds that view from an integer index matrix
(which element of the flattened parameter each matrix entry is), so edits through it are
in place and exact, and restoring writes the very bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["StridedLayout", "strided_layout"]


@dataclass(frozen=True)
class StridedLayout:
    """``as_strided`` arguments relative to the start of a parameter (in elements)."""

    sizes: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int

    def view(self, t: torch.Tensor) -> torch.Tensor:
        """The in-place view of ``t`` (the parameter's data) this layout names."""
        return t.as_strided(self.sizes, self.strides, t.storage_offset() + self.offset)

    def indices(self) -> torch.Tensor:
        """The flat element indices the view covers, in row-major order (int64)."""
        idx = torch.full((), self.offset, dtype=torch.int64)
        for size, stride in zip(self.sizes, self.strides, strict=True):
            idx = idx[..., None] + torch.arange(size, dtype=torch.int64) * stride
        return idx.reshape(-1)

    def describe(self) -> str:
        return f"as_strided(sizes={self.sizes}, strides={self.strides}, offset={self.offset})"


def strided_layout(index: torch.Tensor) -> StridedLayout:
    """The strided view whose row-major elements are ``index.reshape(-1)``.

    Args:
        index: integer tensor of any shape; entry ``i`` (row-major) is the flat position,
            in the parameter, of the site matrix's entry ``i``.

    Raises:
        ValueError: the positions repeat, go backwards or follow no strided pattern (then
            the layout cannot be edited in place through one view).
    """
    flat = index.reshape(-1).to(torch.int64)
    # Internal: the indices come from the adapter's own split of a weight, not from input;
    # load_model reports a model whose weights cannot be mapped as a UsageError.
    if flat.numel() == 0:
        raise ValueError("an empty index has no layout")
    dims: list[tuple[int, int]] = []  # (size, stride), innermost first
    seq = flat
    while seq.numel() > 1:
        stride = int(seq[1] - seq[0])
        if stride <= 0:
            raise ValueError(f"positions repeat or go backwards (stride {stride}); not a "
                             "strided view")
        diffs = seq[1:] - seq[:-1]
        off = (diffs != stride).nonzero()
        run = seq.numel() if off.numel() == 0 else int(off[0, 0]) + 1
        size = run
        ramp = torch.arange(seq.numel(), dtype=torch.int64)
        while size > 1:
            if seq.numel() % size == 0:
                chunks = seq.view(-1, size)
                if torch.equal(chunks - chunks[:, :1], (ramp[:size] * stride).expand_as(chunks)):
                    break
            size -= 1
        if size == 1:
            raise ValueError("the positions follow no strided pattern")
        dims.append((size, stride))
        seq = seq[::size]
    dims.reverse()
    layout = StridedLayout(tuple(s for s, _ in dims) or (1,),
                           tuple(st for _, st in dims) or (1,), int(flat[0]))
    if not torch.equal(layout.indices(), flat):  # a layout that is wrong must never be used
        raise ValueError("the positions follow no strided pattern")
    return layout
