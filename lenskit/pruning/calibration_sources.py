"""Where calibration text comes from: a source string -> :class:`CalibrationData`.

Sources (the ``calibration.source`` of a study, or :func:`calibration_from_source`):

- ``"default"``: the organism's own corpus for an organism (a model directory with
  ``world.json``), else the natural English text shipped with lenskit
  (``data/calibration/kjv_narrative.txt``, public domain; see its README), cut into seeded
  random windows. Works offline.
- ``"random"``: seeded uniformly random non-special token ids (only when asked for: random
  tokens calibrate real models badly).
- ``"c4:PATH"`` (or a path ending in ``.json.gz``/``.jsonl``/``.jsonl.gz``/``.json``): a local
  C4 shard in its published format, JSON lines with a ``"text"`` field, e.g.
  ``en/c4-train.00000-of-01024.json.gz``; sampled as the SparseGPT/Wanda loaders do (a random
  document with more than ``seq_len`` tokens, a random window of it, seeded).
- ``"wikitext2:PATH"`` (or a ``wiki.*.raw`` file, or a directory holding ``wiki.train.raw``):
  the raw WikiText-2 files (``wikitext-2-raw/wiki.train.raw``), the whole file tokenized as one
  stream, seeded random windows.
- ``"text:PATH"`` or any other existing file: a plain text file, seeded random windows.
- ``"hub:NAME"``, ``"c4"``, ``"wikitext2"`` or any other string: a Hugging Face dataset
  (online only; ``"c4"`` is the references' first shard of ``allenai/c4``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from pathlib import Path

import torch

from lenskit.errors import UsageError
from lenskit.models.loading import model_info
from lenskit.pruning.calibration import (
    CalibrationData,
    check_size,
    default_calibration,
    document_windows,
    random_calibration,
)

__all__ = ["SOURCE_KINDS", "CalibrationSource", "c4_calibration", "calibration_from_source",
           "parse_source", "source_fingerprint"]

#: The kinds of source :func:`parse_source` returns.
SOURCE_KINDS = ("default", "random", "c4", "wikitext2", "text", "hub")
_C4_SUFFIXES = (".json.gz", ".jsonl.gz", ".jsonl", ".json")
_C4_HUB = ("allenai/c4", {"data_files": {"train": "en/c4-train.00000-of-01024.json.gz"}})
_WIKITEXT2_HUB = ("wikitext", "wikitext-2-raw-v1")


class CalibrationSource(str):
    """A source string, parsed: still the string as written (it compares, hashes, prints and
    serialises as that string, so configs and manifests store it unchanged), plus its
    :attr:`kind` (one of :data:`SOURCE_KINDS`) and :attr:`where` (the resolved file path, the
    dataset name, or None). Made by :meth:`parse` (or :meth:`of`), which checks the string."""

    kind: str
    where: str | None

    @classmethod
    def parse(cls, source: str) -> CalibrationSource:
        """``source`` parsed (see the module docstring). Raises :class:`UsageError` for an
        empty string or a ``kind:PATH`` whose file is missing."""
        return _made(source, *_parse(source))

    @classmethod
    def of(cls, source: str) -> CalibrationSource:
        """``source`` itself when it is parsed already, else :meth:`parse` of it."""
        return source if isinstance(source, CalibrationSource) else cls.parse(source)

    def __reduce__(self):
        # copies and pickles (Ray workers) keep the parse: the file is not looked up again
        return (_made, (str(self), self.kind, self.where))

    def fingerprint(self) -> str:
        """What identifies the source's content: the kind and, for local files, a sha256 of
        the file's bytes (16 hex digits), so that editing a file changes the results'
        identity."""
        kind, where = self.kind, self.where
        if kind in ("c4", "wikitext2", "text"):
            st = Path(where).stat()
            return f"{kind}:{_file_sha(str(Path(where).resolve()), st.st_mtime_ns, st.st_size)}"
        if kind == "default":
            return "default"
        return f"{kind}:{where}" if where else kind


def _made(text: str, kind: str, where: str | None) -> CalibrationSource:
    obj = str.__new__(CalibrationSource, text)
    obj.kind, obj.where = kind, where
    return obj


def parse_source(source: str) -> tuple[str, str | None]:
    """``(kind, path_or_name)`` of a source string (see the module docstring); kind is one of
    :data:`SOURCE_KINDS`. Raises :class:`UsageError` for an empty string or a ``kind:PATH``
    whose file is missing."""
    src = CalibrationSource.of(source)
    return src.kind, src.where


def _parse(source: str) -> tuple[str, str | None]:
    if not isinstance(source, str) or not source.strip():
        raise UsageError(f"calibration source must be a non-empty string, got {source!r}; "
                         f"allowed: 'default', 'random', 'c4:PATH', 'wikitext2:PATH', "
                         f"'text:PATH', a file, or a dataset name")
    s = source.strip()
    if s in ("default", "random"):
        return s, None
    if s in ("c4", "wikitext2"):
        return "hub", s
    for kind in ("c4", "wikitext2", "text", "hub"):
        if s.startswith(kind + ":"):
            rest = s[len(kind) + 1:]
            if kind != "hub":
                path = Path(rest).expanduser()
                if kind == "wikitext2" and path.is_dir():
                    path = path / "wiki.train.raw"
                if not path.is_file():
                    raise UsageError(f"calibration source {s!r}: no file {path}")
                rest = str(path)
            return kind, rest
    path = Path(s).expanduser()
    if path.is_dir() and (path / "wiki.train.raw").is_file():
        return "wikitext2", str(path / "wiki.train.raw")
    if path.is_file():
        if path.name.startswith("wiki.") and path.name.endswith(".raw"):
            return "wikitext2", str(path)
        if path.name.endswith(_C4_SUFFIXES):
            return "c4", str(path)
        return "text", str(path)
    return "hub", s


def source_fingerprint(source: str) -> str:
    """What identifies a source's content (:meth:`CalibrationSource.fingerprint`)."""
    return CalibrationSource.of(source).fingerprint()


@functools.lru_cache(maxsize=64)
def _file_sha(path: str, _mtime_ns: int, _size: int) -> str:
    # Cached by (path, mtime, size): a C4 shard is hundreds of MB and configs ask often.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _read_c4(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    texts: list[str] = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                texts.append(json.loads(line)["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise UsageError(f"{path} line {n} is not a JSON object with a 'text' field "
                                 f"(the C4 format): {err}") from None
    if not texts:
        raise UsageError(f"{path} holds no documents")
    return texts


def c4_calibration(path: str | Path, tokenizer, n_samples: int = 128, seq_len: int = 2048,
                   seed: int = 0) -> CalibrationData:
    """Windows from a local C4 shard, sampled as the SparseGPT/Wanda loaders sample C4.

    Draws documents uniformly (numpy, ``seed``) until one has more than ``seq_len`` tokens
    (tokenized without special tokens), then a uniformly random window of ``seq_len`` tokens
    of it; repeats for each sample. Raises ValueError when 100 x ``n_samples`` draws find
    too few long documents.
    """
    check_size(n_samples, seq_len)
    path = Path(path)
    docs = _read_c4(path)
    rows = document_windows(docs.__getitem__, len(docs), tokenizer, n_samples, seq_len, seed,
                            str(path))
    return CalibrationData(torch.tensor(rows, dtype=torch.long),
                           f"c4 {path.name}: {n_samples} random windows of {seq_len} tokens "
                           f"from random documents longer than {seq_len} tokens "
                           f"({len(docs)} documents; seed {seed})")


def calibration_from_source(model, source: str = "default", n_samples: int = 128,
                            seq_len: int = 128, seed: int = 0) -> CalibrationData:
    """Calibration data for ``model`` from a source string (see the module docstring).

    The description starts with the source kind so that results record where their
    calibration came from.
    """
    check_size(n_samples, seq_len)
    kind, where = parse_source(source)  # parsed once: a config's source is parsed already
    info = model_info(model)
    tok = info.tokenizer
    if kind == "default":
        return default_calibration(model, n_samples, seq_len, seed)
    if kind == "random":
        return random_calibration(info, n_samples, seq_len, seed)
    if kind == "c4":
        return c4_calibration(where, tok, n_samples, seq_len, seed)
    if kind in ("wikitext2", "text"):
        cal = CalibrationData.from_text(Path(where), tok, n_samples=n_samples,
                                        seq_len=seq_len, seed=seed)
        return CalibrationData(cal.tokens, f"{kind}: {cal.description}")
    if where == "c4":
        name, kw = _C4_HUB
        return CalibrationData.from_hf_dataset(name, None, tokenizer=tok, n_samples=n_samples,
                                               seq_len=seq_len, seed=seed, **kw)
    name, config = _WIKITEXT2_HUB if where == "wikitext2" else (where, None)
    return CalibrationData.from_hf_dataset(name, config, tokenizer=tok, n_samples=n_samples,
                                           seq_len=seq_len, seed=seed)
