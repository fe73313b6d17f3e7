"""Devices and precisions: what ``device``, ``dtype`` and ``device_map`` may say, and what
to lower when a device runs out of memory.

``device``: ``"auto"`` (CUDA if available, else Apple's MPS, else the CPU), ``"cpu"``,
``"cuda"``, ``"cuda:N"`` or ``"mps"``. ``dtype``: the precision the weights are held and
evaluated in (``"float32"``, ``"bfloat16"``, ``"float16"``); calibration statistics,
Hessians and SparseGPT's arithmetic stay float32 whatever it is (as in the references).
``device_map``: ``"none"`` (the whole model on ``device``) or ``"auto"`` (Accelerate spreads
the layers over every visible GPU, then CPU memory; ``device`` is then ignored; needs the
``accelerate`` package).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lenskit.errors import UsageError

__all__ = [
    "DEVICE_MAPS",
    "DTYPES",
    "OutOfMemoryError",
    "device_problems",
    "memory_error",
    "oom_hint",
    "parse_dtype",
    "resolve_device",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
}
DEVICE_MAPS = ("none", "auto")
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_DEVICES_ALLOWED = "auto, cpu, cuda, cuda:N, mps"


class OutOfMemoryError(MemoryError):
    """A device (or the host) ran out of memory; the message says what to lower (a
    ``MemoryError``, so that the command line reports it as an error, not a crash)."""


def device_problems(device: object, dtype: object, device_map: object = "none") -> list[str]:
    """Every problem with a device/dtype/device_map triple, as messages naming the bad value
    and what is allowed (empty when valid). Only the spelling is checked, not whether the
    device exists here (a config may be written on one machine and run on another)."""
    p = []
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        p.append(f"unknown device {device!r}; allowed: {_DEVICES_ALLOWED}")
    if dtype not in DTYPES:
        p.append(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    if device_map not in DEVICE_MAPS:
        p.append(f"unknown device_map {device_map!r}; allowed: {', '.join(DEVICE_MAPS)}")
    return p


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device ``device`` names; ``"auto"`` = CUDA if available, else MPS, else
    CPU. Raises ``ValueError`` for a bad name or a device this machine does not have."""
    if isinstance(device, torch.device):
        return device
    problems = device_problems(device, "float32")
    if problems:
        raise UsageError(problems[0])
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} asked for, but CUDA is not available here "
                             "(use device 'auto' or 'cpu')")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device {device!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UsageError("device 'mps' asked for, but MPS is not available here")
    return dev


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16``. A floating torch dtype is returned as it is (the
    API also takes ``torch.float64``, e.g. for exactness checks). Raises ``ValueError``
    naming the allowed precisions."""
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise UsageError(f"unsupported dtype {dtype}; allowed: {', '.join(DTYPES)} "
                             "(or a floating torch dtype)")
        return dtype
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, OutOfMemoryError):
        return False  # already translated
    if isinstance(err, MemoryError):
        return True
    cuda_oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if cuda_oom is not None and isinstance(err, cuda_oom):
        return True
    # MPS, older CUDA builds and the CPU allocator raise a plain RuntimeError.
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text
                                              or "can't allocate memory" in text)


_ADVICE = {
    "evaluation": "lower batch_size (evaluation sequences per forward pass, e.g. "
                  "--set batch_size=8)",
    "pruning": "lower calibration.n_samples or calibration.seq_len (the block inputs of all "
               "calibration sequences are held on the device), or the calibration batch size",
    "calibration": "lower calibration.n_samples or calibration.seq_len (the block inputs of "
                   "all calibration sequences are held on the device), or the calibration "
                   "batch size",
}


def memory_error(err: BaseException, stage: str, *, dtype: str | torch.dtype | None = None,
                 device: str | torch.device | None = None) -> OutOfMemoryError | None:
    """The lenskit error for an out-of-memory ``err`` raised during ``stage``
    (``"evaluation"``, ``"pruning"`` or ``"calibration"``), or ``None`` if ``err`` is not an
    out-of-memory error. The message says what to lower for that stage, and a lower
    precision when the weights are float32."""
    if not _is_oom(err):
        return None
    if stage not in _ADVICE:
        raise ValueError(f"unknown stage {stage!r}; allowed: {', '.join(_ADVICE)}")
    where = f" on {device}" if device is not None else ""
    tips = [_ADVICE[stage]]
    name = str(dtype).removeprefix("torch.") if dtype is not None else None
    if name in (None, "float32"):
        tips.append("hold the weights in a lower precision (dtype bfloat16 or float16)")
    tips.append("or spread the model over devices (device_map auto)")
    return OutOfMemoryError(f"out of memory during {stage}{where}: {err}\nTo fit, "
                            + "; ".join(tips) + ".")


@contextmanager
def oom_hint(stage: str, *, dtype: str | torch.dtype | None = None,
             device: str | torch.device | None = None) -> Iterator[None]:
    """Re-raise an out-of-memory error inside the block as :class:`OutOfMemoryError`
    saying what to lower (see :func:`memory_error`); other errors pass unchanged."""
    try:
        yield
    except BaseException as err:
        translated = memory_error(err, stage, dtype=dtype, device=device)
        if translated is None:
            raise
        raise translated from err
