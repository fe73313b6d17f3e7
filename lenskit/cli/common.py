"""Helpers shared by the command handlers: argparse types that name the bad value, torch
threads, and silencing library log chatter."""

from __future__ import annotations

import argparse
import os

from lenskit.errors import UsageError

__all__ = ["fraction", "int_at_least", "positive", "quiet", "resolve_threads", "set_threads",
           "steps_triple"]


def quiet() -> None:
    # No blanket warnings filter: loading, pruning and evaluating the supported families
    # raise no Python warnings (checked with -W always), so any warning that appears is
    # news (lenskit's own, e.g. answers tokenised alone, are meant to be read). Library
    # log chatter and download bars are silenced instead.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    for name in ("transformers", "transformer_lens", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resolve_threads(value: str | int) -> int:
    """Torch threads for a command: an integer >= 1, or ``"auto"`` = the cores not already
    busy when the command starts (cpu count minus the 1-minute load average, at least 1).

    Why not torch's default (every core): on a shared machine, threads spinning on cores
    that another job holds slow small-model work down by up to 10x (measured here).
    """
    if str(value) == "auto":
        cores = os.cpu_count() or 1
        try:
            busy = round(os.getloadavg()[0])
        except OSError:  # not available on this platform
            busy = 0
        return max(1, cores - busy)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UsageError(f"--threads must be an integer >= 1 or 'auto', got {value!r}")
    return n


def int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (the error names the value)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (0.05 = 5%)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"must be a fraction in (0, 1), e.g. 0.05 for a 5% drop; got {text!r}")
    return value


def positive(text: str) -> float:
    """An argparse type: a number > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def steps_triple(text: str) -> tuple[int, int, int]:
    """``"1800,3150,5400"`` -> three non-decreasing step numbers."""
    try:
        steps = tuple(int(v) for v in text.split(","))
    except ValueError:
        steps = ()
    if len(steps) != 3 or min(steps) < 0 or list(steps) != sorted(steps):
        raise argparse.ArgumentTypeError(
            f"expected three non-decreasing steps REPEAT,LOOKUP,NEAR, got {text!r}")
    return steps


def set_threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(resolve_threads(args.threads))
