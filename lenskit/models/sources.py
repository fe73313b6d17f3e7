"""Calibration sources that a model directory declares.

Pruning needs calibration sequences but must not know where a particular model's data comes
from. The model's directory says it: a source is registered under a name together with the
file whose presence in a model directory declares it (the organism's ``world.json``
declares ``"organism-corpus"``). :func:`declared_calibration_source` returns the source a
loaded model declares, or ``None``; :func:`lenskit.pruning.default_calibration` asks it
first and falls back to its own generic source.

A builder is called as ``builder(model_dir, tokenizer, n_samples, seq_len, seed)`` and
returns ``(tokens, description)``: an int64 tensor ``[n_samples, seq_len]`` of token ids
and one line saying how they were made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lenskit.errors import UsageError
from lenskit.models.loading import model_info
from lenskit.synthetic.calibration import organism_corpus_calibration

__all__ = ["CalibrationSource", "calibration_sources", "declared_calibration_source",
           "register_calibration_source"]

CalibrationBuilder = Callable[[Path, Any, int, int, int], tuple[torch.Tensor, str]]


@dataclass(frozen=True)
class CalibrationSource:
    """A named calibration builder and the file that declares it in a model directory."""

    name: str
    marker: str
    builder: CalibrationBuilder


@dataclass(frozen=True)
class DeclaredSource:
    """A source bound to one loaded model: call :meth:`build` for token ids."""

    source: CalibrationSource
    model_dir: Path
    tokenizer: Any

    @property
    def name(self) -> str:
        return self.source.name

    def build(self, n_samples: int, seq_len: int, seed: int) -> tuple[torch.Tensor, str]:
        """``(tokens [n_samples, seq_len], description)`` from the source's builder."""
        return self.source.builder(self.model_dir, self.tokenizer, n_samples, seq_len, seed)


_SOURCES: dict[str, CalibrationSource] = {}


def register_calibration_source(name: str, builder: CalibrationBuilder, *, marker: str,
                                replace: bool = False) -> CalibrationSource:
    """Register ``builder`` as the calibration source ``name`` of every model directory that
    holds the file ``marker``. ``ValueError`` for an empty name, a marker that is not a
    plain file name, a builder that is not callable, or a name already registered (unless
    ``replace``)."""
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"a calibration source needs a non-empty name, got {name!r}")
    if not isinstance(marker, str) or not marker or Path(marker).name != marker:
        raise UsageError(f"marker must be a plain file name (like 'world.json'), got {marker!r}")
    if not callable(builder):
        raise UsageError(f"builder of calibration source {name!r} must be callable, got "
                         f"{type(builder).__name__}")
    if name in _SOURCES and not replace:
        raise UsageError(f"calibration source {name!r} is already registered (by "
                         f"{_SOURCES[name].marker}); pass replace=True to replace it")
    source = CalibrationSource(name, marker, builder)
    _SOURCES[name] = source
    return source


def calibration_sources() -> dict[str, CalibrationSource]:
    """Every registered source by name (a copy), in registration order."""
    return dict(_SOURCES)


def declared_calibration_source(model: Any) -> DeclaredSource | None:
    """The calibration source a loaded model's directory declares (the first registered
    source whose marker file it holds), bound to that model; ``None`` when none is."""
    info = model_info(model)
    model_dir = Path(info.path)
    for source in _SOURCES.values():
        if (model_dir / source.marker).is_file():
            return DeclaredSource(source, model_dir, info.tokenizer)
    return None


# The organism's directory holds its world; its calibration rows come from its corpus.
register_calibration_source("organism-corpus", organism_corpus_calibration, marker="world.json")
