"""Calibration data: the token sequences whose activations pruning statistics are taken on.

A :class:`CalibrationData` is a ``[n_samples, seq_len]`` LongTensor of token ids plus a
description (saved in every mask's metadata). Build one from tokens, from text (a file or a
string: tokenized, concatenated, cut into seeded random windows) or, online only, from a
Hugging Face dataset (random documents longer than ``seq_len``, a random window of each, as
the SparseGPT/Wanda C4 loaders do).

:func:`default_calibration` works offline and is seeded:

- if the model's directory declares a calibration source
  (:func:`lenskit.models.sources.declared_calibration_source`; the organism's ``world.json``
  declares rows of its own training corpus), that source's token ids;
- otherwise, seeded random windows of natural English text shipped with lenskit
  (:data:`DEFAULT_TEXT`, public domain; see ``data/calibration/README.md``). Uniformly random
  token ids calibrate real models badly; they are used only when asked for
  (``source="random"`` in :mod:`lenskit.pruning.calibration_sources`, which also reads C4
  shards, WikiText-2 files and text files).

Sample count and length are parameters (defaults 128 x 128; the references use 128 x 2048 of
C4), never ``max_position_embeddings``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lenskit.errors import UsageError
from lenskit.models.loading import data_path, model_info
from lenskit.models.offline import offline, offline_setting
from lenskit.models.sources import declared_calibration_source

__all__ = ["DEFAULT_TEXT", "CalibrationData", "check_size", "default_calibration",
           "document_windows", "random_calibration"]

#: The shipped natural-text calibration corpus (see data/calibration/README.md).
DEFAULT_TEXT = data_path("calibration", "kjv_narrative.txt")


def check_size(n_samples: int, seq_len: int) -> None:
    """Raise ValueError unless ``n_samples`` and ``seq_len`` are positive integers."""
    for name, v in (("n_samples", n_samples), ("seq_len", seq_len)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise UsageError(f"{name} must be a positive integer, got {v!r}")


@dataclass(frozen=True, eq=False)
class CalibrationData:
    """Calibration token ids ``[n_samples, seq_len]`` (int64) and how they were made."""

    tokens: torch.Tensor
    description: str

    def __post_init__(self) -> None:
        t = self.tokens
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.is_floating_point() \
                or t.dtype == torch.bool or t.is_complex():
            raise UsageError(
                "calibration tokens must be an integer tensor [n_samples, seq_len], got "
                f"{getattr(t, 'dtype', type(t))} of shape {tuple(getattr(t, 'shape', ()))}")
        if t.shape[0] < 1 or t.shape[1] < 1:
            raise UsageError(f"calibration tokens must be non-empty, got shape {tuple(t.shape)}")
        if int(t.min()) < 0:
            raise UsageError(f"calibration tokens must be >= 0, got min {int(t.min())}")
        object.__setattr__(self, "tokens", t.detach().to(torch.long).cpu().contiguous())

    @property
    def n_samples(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def fingerprint(self) -> str:
        """A hash of the token ids (to check that a result used these very tokens)."""
        return hashlib.sha256(self.tokens.numpy().tobytes()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"description": self.description, "n_samples": self.n_samples,
                "seq_len": self.seq_len, "fingerprint": self.fingerprint}

    def check(self, model) -> None:
        """``ValueError`` if a token id is outside the model's vocabulary or the sequences
        are longer than its position table (for learned positions)."""
        hf = model_info(model).hf
        vocab = int(hf.get_input_embeddings().num_embeddings)
        top = int(self.tokens.max())
        if top >= vocab:
            raise UsageError(f"calibration token id {top} is outside the model's vocabulary "
                             f"(0..{vocab - 1}); was it tokenized with another tokenizer?")
        cfg = hf.config
        limit = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings",
                                                              None)
        if limit is not None and self.seq_len > int(limit):
            raise UsageError(f"calibration seq_len {self.seq_len} exceeds the model's "
                             f"{int(limit)} positions; use shorter sequences")

    def __repr__(self) -> str:
        return f"CalibrationData({self.n_samples} x {self.seq_len}: {self.description})"

    # Constructors
    @classmethod
    def from_tokens(cls, tokens: torch.Tensor | Any, description: str | None = None
                    ) -> CalibrationData:
        """Wrap token ids ``[n_samples, seq_len]`` (a tensor or nested lists)."""
        t = tokens if isinstance(tokens, torch.Tensor) else torch.as_tensor(tokens)
        shape = tuple(t.shape)
        return cls(t, description or f"given tokens {shape[0] if shape else 0} x "
                                     f"{shape[1] if len(shape) > 1 else 0}")

    @classmethod
    def from_text(cls, text: str | os.PathLike, tokenizer, n_samples: int = 128,
                  seq_len: int = 128, seed: int = 0, add_bos: bool = False
                  ) -> CalibrationData:
        """Random windows of ``seq_len`` tokens from a text.

        ``text`` is read from a file when it is a path (``os.PathLike``) or a string of one
        line, shorter than 4096 characters, that names an existing file; any other string
        is the text itself (a missing path is an error, a missing file's name is text). The
        text is tokenized without special tokens and ``n_samples`` window starts are drawn
        uniformly (numpy, ``seed``); windows may overlap. ``add_bos`` puts the tokenizer's BOS
        first (then ``seq_len - 1`` text tokens).
        """
        check_size(n_samples, seq_len)
        source = "text"
        if isinstance(text, os.PathLike) or (isinstance(text, str) and len(text) < 4096
                                             and "\n" not in text and _names_file(text)):
            path = Path(text)
            if not path.is_file():
                raise UsageError(f"calibration text file {path} does not exist")
            source = str(path)
            text = path.read_text()
        ids = tokenizer(str(text), add_special_tokens=False)["input_ids"]
        return cls._windows(ids, tokenizer, n_samples, seq_len, seed, add_bos, source)

    @classmethod
    def _windows(cls, ids, tokenizer, n_samples: int, seq_len: int, seed: int, add_bos: bool,
                 source: str) -> CalibrationData:
        body = seq_len - 1 if add_bos else seq_len
        if add_bos and tokenizer.bos_token_id is None:
            raise UsageError("add_bos=True but the tokenizer has no BOS token")
        if len(ids) < body:
            raise UsageError(f"the calibration text has {len(ids)} tokens, fewer than the "
                             f"{body} a window needs (seq_len={seq_len})")
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, len(ids) - body + 1, size=n_samples)
        arr = np.asarray(ids, dtype=np.int64)
        rows = np.stack([arr[s:s + body] for s in starts])
        if add_bos:
            rows = np.concatenate([np.full((n_samples, 1), tokenizer.bos_token_id), rows], 1)
        return cls(torch.from_numpy(rows),
                   f"{n_samples} random windows of {seq_len} tokens from {source} "
                   f"({len(ids)} tokens; seed {seed}{', BOS first' if add_bos else ''})")

    @classmethod
    def from_hf_dataset(cls, name: str, config: str | None = None, split: str = "train", *,
                        tokenizer, n_samples: int = 128, seq_len: int = 128, seed: int = 0,
                        text_field: str = "text", **load_kwargs) -> CalibrationData:
        """Random windows from random documents of a Hugging Face dataset (online only).

        As the SparseGPT/Wanda C4 loaders: draw documents at random (numpy, ``seed``), keep
        those longer than ``seq_len`` tokens, cut one random window from each
        (:func:`document_windows`).
        ``load_kwargs`` go to ``datasets.load_dataset`` (e.g. ``data_files=`` to pick one C4
        shard). Raises ``RuntimeError`` offline or without the ``datasets`` package.
        """
        check_size(n_samples, seq_len)
        if offline():
            raise RuntimeError(
                f"cannot load the dataset {name!r}: offline ({offline_setting()} is set). "
                "Use CalibrationData.from_text, .from_tokens or default_calibration(model) "
                "offline")
        try:
            import datasets  # optional (the "hub" extra), heavy: imported only when asked for
        except ImportError:
            raise RuntimeError("CalibrationData.from_hf_dataset needs the 'datasets' package "
                               "(pip install datasets); offline, use from_text or "
                               "from_tokens") from None
        try:
            ds = datasets.load_dataset(name, config, split=split, **load_kwargs)
        except Exception as err:  # network, missing dataset, bad config: one clear message
            raise RuntimeError(f"could not load the dataset {name!r} (config {config!r}, "
                               f"split {split!r}): {err}. Offline, use from_text or "
                               "from_tokens") from err
        if text_field not in ds.column_names:
            raise UsageError(f"dataset {name!r} has no column {text_field!r}; columns: "
                             f"{ds.column_names}")
        rows = document_windows(lambda i: ds[i][text_field], len(ds), tokenizer, n_samples,
                                seq_len, seed, repr(name))
        return cls(torch.tensor(rows, dtype=torch.long),
                   f"{n_samples} random windows of {seq_len} tokens from random documents of "
                   f"{name}/{config}:{split} (seed {seed})")


def _names_file(text: str) -> bool:
    """Whether ``text`` is the path of an existing file (False, not an error, for a text
    that cannot be a path, such as a line longer than the file system's name limit)."""
    try:
        return Path(text).is_file()
    except OSError:  # ENAMETOOLONG: a text of one long line
        return False


def document_windows(text_of: Callable[[int], str], n_docs: int, tokenizer, n_samples: int,
                     seq_len: int, seed: int, where: str) -> list[list[int]]:
    """``n_samples`` windows of ``seq_len`` token ids, as the SparseGPT/Wanda C4 loaders cut
    them: a random document (``text_of(i)``, i < ``n_docs``; numpy, ``seed``) is kept when
    it has more than ``seq_len`` tokens, and one random window is cut from it. Raises
    ``ValueError`` naming ``where`` when 100 draws per sample find too few such documents."""
    rng = np.random.default_rng(seed)
    rows: list[list[int]] = []
    draws = 0
    while len(rows) < n_samples:
        draws += 1
        if draws > 100 * n_samples:
            raise UsageError(f"found only {len(rows)} documents of more than {seq_len} tokens "
                             f"in {draws - 1} draws from {where}; use a shorter seq_len")
        ids = tokenizer(text_of(int(rng.integers(n_docs))), add_special_tokens=False)["input_ids"]
        if len(ids) <= seq_len:
            continue
        start = int(rng.integers(0, len(ids) - seq_len))
        rows.append(ids[start:start + seq_len])
    return rows


def random_calibration(info, n_samples: int, seq_len: int, seed: int) -> CalibrationData:
    """``n_samples`` rows of ``seq_len`` uniformly random non-special token ids of the
    model's vocabulary (seeded): calibration for a model with no text source."""
    tok = info.tokenizer
    vocab = min(int(info.hf.get_input_embeddings().num_embeddings), len(tok))
    special = set(getattr(tok, "all_special_ids", []) or [])
    allowed = torch.tensor([i for i in range(vocab) if i not in special], dtype=torch.long)
    if allowed.numel() == 0:
        raise UsageError("the tokenizer has no non-special tokens to draw calibration from")
    gen = torch.Generator().manual_seed(seed)
    tokens = allowed[torch.randint(allowed.numel(), (n_samples, seq_len), generator=gen)]
    bos = getattr(tok, "bos_token_id", None)
    if bos is not None and bos < vocab:
        tokens[:, 0] = bos
    return CalibrationData(
        tokens, f"random tokens: {n_samples} x {seq_len}, uniform over {allowed.numel()} "
                f"non-special ids{', BOS first' if bos is not None else ''}, seed {seed}")


def default_calibration(model, n_samples: int = 128, seq_len: int = 128,
                        seed: int = 0) -> CalibrationData:
    """lenskit's offline, seeded default: the calibration source the model's directory
    declares (organism corpus rows for a directory with ``world.json``); otherwise seeded
    random windows of the shipped English text (:data:`DEFAULT_TEXT`). See the module
    docstring."""
    check_size(n_samples, seq_len)
    declared = declared_calibration_source(model)
    if declared is not None:
        tokens, description = declared.build(n_samples, seq_len, seed)
        return CalibrationData(tokens, description)
    info = model_info(model)
    if not DEFAULT_TEXT.is_file():
        raise FileNotFoundError(f"lenskit's calibration text {DEFAULT_TEXT} is missing; "
                                f"reinstall lenskit or pass a source (c4:PATH, a text file)")
    tok = info.tokenizer
    cal = CalibrationData._windows(_default_text_ids(tok), tok, n_samples, seq_len, seed, False,
                                   DEFAULT_TEXT.name)
    return CalibrationData(cal.tokens, f"default text: {cal.description}")


_TEXT_IDS: dict[str, np.ndarray] = {}


def _default_text_ids(tokenizer) -> np.ndarray:
    """Token ids of :data:`DEFAULT_TEXT`, cached per tokenizer (tokenizing the 1.3 MB text
    takes seconds; tests and sweeps ask for it many times). The key is the tokenizer's class
    and, for a fast tokenizer, its whole pipeline (normalizer, pre-tokenizer, model), for
    another its vocabulary: two tokenizers of one vocabulary may split a text differently."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = backend.to_str() if backend is not None else sorted(tokenizer.get_vocab().items())
    key = hashlib.sha256(json.dumps([type(tokenizer).__name__, state]).encode()).hexdigest()
    if key not in _TEXT_IDS:
        _TEXT_IDS[key] = np.asarray(tokenizer(DEFAULT_TEXT.read_text(encoding="utf-8"),
                                              add_special_tokens=False)["input_ids"], np.int64)
    return _TEXT_IDS[key]
