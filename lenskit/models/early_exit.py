"""Ending a forward pass early: a hook raises :class:`StopForward` once everything the pass was
run for is known (a block's inputs captured, the last measured layer's pattern read), and
:func:`early_exit` around the call ends the pass there, so the layers after it never run."""

from __future__ import annotations

from contextlib import AbstractContextManager, suppress

__all__ = ["StopForward", "early_exit"]


class StopForward(Exception):
    """Raised from a hook: the rest of the forward pass is not needed."""


def early_exit() -> AbstractContextManager[None]:
    """Context for a forward pass whose hooks may raise :class:`StopForward`: the exception
    ends the pass where it was raised and goes no further. Any other exception propagates."""
    return suppress(StopForward)
