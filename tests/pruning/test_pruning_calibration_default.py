"""default_calibration, the cache of its text's token ids, and CalibrationData.from_text,
against oracles built here: the shipped text and the organism's corpus rows tokenized in the
test, and the documented window draw (starts uniform over every window, numpy's
``default_rng(seed)``) redone in the test."""

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import normalizers

from lenskit.models import load_model, model_info
from lenskit.pruning import CalibrationData, default_calibration
from lenskit.pruning import calibration as calibration_module
from lenskit.pruning.calibration import DEFAULT_TEXT
from lenskit.synthetic.calibration import CALIBRATION_STEP
from lenskit.synthetic.corpus import CorpusSampler, corpus_config_from_json
from lenskit.synthetic.tokenizer import build_tokenizer
from lenskit.synthetic.world import World


def drawn_windows(stream, n_samples: int, seq_len: int, seed: int) -> list[list[int]]:
    """The documented draw: ``n_samples`` starts uniform over 0..len - seq_len (numpy's
    ``default_rng(seed).integers``), each window the ``seq_len`` tokens from its start."""
    starts = np.random.default_rng(seed).integers(0, len(stream) - seq_len + 1, size=n_samples)
    return [list(map(int, stream[s:s + seq_len])) for s in starts]


@pytest.fixture(scope="module")
def organism():
    return load_model("organism")


def test_default_calibration_is_seeded_windows_of_the_shipped_text(llama):
    tok = model_info(llama).tokenizer
    stream = np.asarray(tok(DEFAULT_TEXT.read_text(encoding="utf-8"),
                            add_special_tokens=False)["input_ids"])
    assert len(stream) > 100_000 and len(np.unique(stream)) > 50
    cal = default_calibration(llama, n_samples=5, seq_len=24, seed=3)
    assert cal.tokens.shape == (5, 24) and cal.tokens.dtype == torch.long
    views = np.lib.stride_tricks.sliding_window_view(stream, 24)
    for row in cal.tokens.numpy():  # a contiguous piece of the text's stream, no BOS added
        assert (views == row).all(axis=1).any()
    assert cal.tokens.tolist() == drawn_windows(stream, 5, 24, 3)
    assert cal.description == ("default text: 5 random windows of 24 tokens from "
                               f"kjv_narrative.txt ({len(stream)} tokens; seed 3)")
    assert torch.equal(default_calibration(llama, 5, 24, seed=3).tokens, cal.tokens)
    other = default_calibration(llama, 5, 24, seed=4)
    assert other.tokens.tolist() == drawn_windows(stream, 5, 24, 4)
    assert not torch.equal(other.tokens, cal.tokens)
    # the defaults: 128 windows of 128 tokens, seed 0
    full = default_calibration(llama)
    assert full.tokens.tolist() == drawn_windows(stream, 128, 128, 0)
    assert full.description == ("default text: 128 random windows of 128 tokens from "
                                f"kjv_narrative.txt ({len(stream)} tokens; seed 0)")
    for n, s, message in ((0, 8, "n_samples must be a positive integer, got 0"),
                          (2, 0, "seq_len must be a positive integer, got 0")):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            default_calibration(llama, n, s)


def corpus_rows(model_dir: Path, tok, n_samples: int, seq_len: int, seed: int):
    """The organism's calibration as its world.json declares it, rebuilt from the corpus
    sampler: sample i is consecutive rows of the calibration step (from where sample i - 1
    stopped) cut to ``seq_len`` tokens; the mixture is training.json's first stage."""
    meta = json.loads((model_dir / "training.json").read_text())
    stage = meta.get("first_stage") or meta
    sampler = CorpusSampler(World.load(model_dir / "world.json"), tok,
                            corpus_config_from_json(stage["train_config"]["corpus"]), seed=seed)
    rows, index = [], 0
    for _ in range(n_samples):
        ids = []
        while len(ids) < seq_len:
            ids += sampler.row_ids(CALIBRATION_STEP, index)
            index += 1
        rows.append(ids[:seq_len])
    return rows, ("training mixture from training.json"
                  + (" (first stage)" if "first_stage" in meta else ""))


def test_default_calibration_of_the_organism_is_its_declared_corpus(organism, tmp_path,
                                                                    monkeypatch):
    info = model_info(organism)
    model_dir = Path(info.path)
    assert (model_dir / "world.json").is_file()
    rows, which = corpus_rows(model_dir, info.tokenizer, 3, 40, 2)
    cal = default_calibration(organism, n_samples=3, seq_len=40, seed=2)
    assert cal.tokens.tolist() == rows
    assert (cal.tokens[:, 0] == info.tokenizer.bos_token_id).all()  # rows start with <bos>
    assert cal.description == (f"organism corpus ({which}; world.json of {model_dir}): 3 x 40 "
                               f"tokens, rows of step {CALIBRATION_STEP}, seed 2")
    other = default_calibration(organism, n_samples=3, seq_len=40, seed=5)
    assert other.tokens.tolist() == corpus_rows(model_dir, info.tokenizer, 3, 40, 5)[0]
    assert not torch.equal(other.tokens, cal.tokens)
    # the declared source comes first: the shipped text is not even looked at
    monkeypatch.setattr(calibration_module, "DEFAULT_TEXT", tmp_path / "missing.txt")
    assert torch.equal(default_calibration(organism, 3, 40, seed=2).tokens, cal.tokens)


def test_default_calibration_without_its_text_names_the_file(llama, tmp_path, monkeypatch):
    missing = tmp_path / "kjv_narrative.txt"
    monkeypatch.setattr(calibration_module, "DEFAULT_TEXT", missing)
    with pytest.raises(FileNotFoundError) as err:
        default_calibration(llama, 2, 8)
    assert str(err.value) == (f"lenskit's calibration text {missing} is missing; reinstall "
                              "lenskit or pass a source (c4:PATH, a text file)")


class WordIds:
    """A tokenizer without a fast backend: whitespace-separated words -> their ids in the
    vocabulary (0 for unknown), a BOS id first when special tokens are asked for (the
    default, as Hugging Face tokenizers)."""

    def __init__(self, words):
        self.vocab = {w: i for i, w in enumerate(["<unk>", *words])}

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def prepare(self, text: str) -> str:
        return text

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab.get(w, 0) for w in self.prepare(text).split()]
        return {"input_ids": ([len(self.vocab)] if add_special_tokens else []) + ids}


class LowerWordIds(WordIds):
    """The same vocabulary, words lowercased first: other ids for a text with capitals."""

    def prepare(self, text: str) -> str:
        return text.lower()


def test_default_text_ids_are_cached_per_tokenizer(tmp_path, monkeypatch):
    text = "In the beginning God created the heaven and the earth .\nAnd the earth — was\n"
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(calibration_module, "DEFAULT_TEXT", path)
    monkeypatch.setattr(calibration_module, "_TEXT_IDS", {})  # nothing cached before
    # a machine whose locale encoding is Latin-1 (pathlib asks io.text_encoding for the
    # default): the text must still be read as UTF-8
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "latin-1")
    ids_of = calibration_module._default_text_ids
    words = ["in", "the", "beginning", "god", "created", "heaven", "and", "earth", "was",
             "—"]
    lower = build_tokenizer(words)  # one vocabulary, another pipeline: lowercased first
    lower.backend_tokenizer.normalizer = normalizers.Lowercase()
    tokenizers = [build_tokenizer(words), lower, build_tokenizer(words[::-1]),
                  WordIds(words), LowerWordIds(words), WordIds(words[::-1])]
    want = [t(text, add_special_tokens=False)["input_ids"] for t in tokenizers]
    assert len({tuple(w) for w in want}) == len(tokenizers)  # six different streams
    assert lower.get_vocab()["—"] in want[1] and 10 in want[3]  # the UTF-8 word is known
    got = [ids_of(t) for t in tokenizers]
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray) and g.dtype == np.int64 and g.tolist() == w
    # cached: the same tokenizer, or a new one with the same class and pipeline or
    # vocabulary, gets the same array without the text being read again
    path.write_text("changed", encoding="utf-8")
    assert ids_of(tokenizers[0]) is got[0] and ids_of(build_tokenizer(words)) is got[0]
    assert ids_of(tokenizers[3]) is got[3] and ids_of(WordIds(words)) is got[3]
    assert ids_of(lower) is got[1] and ids_of(tokenizers[4]) is got[4]
    assert len(calibration_module._TEXT_IDS) == len(tokenizers)


class CharIds:
    """Token ids = code points of the non-blank characters ("ab c" -> [97, 98, 99]), with
    BOS id 1 first when special tokens are asked for (the default, as Hugging Face
    tokenizers)."""

    bos_token_id = 1

    def __call__(self, text, add_special_tokens=True):
        ids = [ord(c) for c in text if not c.isspace()]
        return {"input_ids": ([1] if add_special_tokens else []) + ids}


char_ids = CharIds()


def codes(text: str) -> list[int]:
    return [ord(c) for c in text if not c.isspace()]


class PathLikeOnly(os.PathLike):
    """An ``os.PathLike`` that is not a ``Path``."""

    def __init__(self, path):
        self.path = str(path)

    def __fspath__(self) -> str:
        return self.path


def test_from_text_reads_a_file_named_by_a_path_or_a_one_line_string(tmp_path):
    content = "first line of the file\nsecond line, longer than the first\n"
    path = tmp_path / "calib.txt"
    path.write_text(content)
    stream = codes(content)
    for source in (path, str(path), PathLikeOnly(path)):
        cal = CalibrationData.from_text(source, char_ids, n_samples=3, seq_len=5, seed=2)
        assert cal.tokens.tolist() == drawn_windows(stream, 3, 5, 2), source
        assert cal.description == (f"3 random windows of 5 tokens from {path} "
                                   f"({len(stream)} tokens; seed 2)")
    with pytest.raises(ValueError) as err:
        CalibrationData.from_text(tmp_path / "missing.txt", char_ids)
    assert str(err.value) == f"calibration text file {tmp_path / 'missing.txt'} does not exist"


def test_from_text_takes_any_other_string_as_the_text(tmp_path):
    lines = "a short text\nof two lines"  # not a file name: a line break
    missing = str(tmp_path / "no-such-file.txt")  # one line, but no file of that name
    named = tmp_path / "a\nb.txt"  # a file whose name has a line break: the string is text
    named.write_text("the file's own content, never read")
    long_line = "x" * 300  # longer than a file name may be (ENAMETOOLONG), shorter than 4096
    for text in (lines, missing, str(named), long_line, "y" * 4096, "z" * 5000):
        stream = codes(text)
        cal = CalibrationData.from_text(text, char_ids, n_samples=4, seq_len=3, seed=1)
        assert cal.tokens.tolist() == drawn_windows(stream, 4, 3, 1), text[:20]
        assert cal.description == (f"4 random windows of 3 tokens from text ({len(stream)} "
                                   "tokens; seed 1)")


def test_from_text_defaults_and_bos(tmp_path):
    text = " ".join(f"w{i}" for i in range(200))  # 200 words, no special tokens among them
    stream = codes(text)
    cal = CalibrationData.from_text(text, char_ids)
    assert cal.tokens.tolist() == drawn_windows(stream, 128, 128, 0)  # no BOS by default
    assert cal.description == (f"128 random windows of 128 tokens from text ({len(stream)} "
                               "tokens; seed 0)")
    bos = CalibrationData.from_text(text, char_ids, n_samples=3, seq_len=6, seed=4,
                                    add_bos=True)
    assert bos.tokens.tolist() == [[1, *w] for w in drawn_windows(stream, 3, 5, 4)]
    assert bos.description == (f"3 random windows of 6 tokens from text ({len(stream)} "
                               "tokens; seed 4, BOS first)")
    for n, s, message in ((0, 4, "n_samples must be a positive integer, got 0"),
                          (2, -1, "seq_len must be a positive integer, got -1")):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            CalibrationData.from_text(text, char_ids, n_samples=n, seq_len=s)
