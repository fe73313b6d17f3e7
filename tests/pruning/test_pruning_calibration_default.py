"""The cache of the default calibration text's token ids: one entry per tokenizer class and
pipeline (fast tokenizers) or vocabulary (others), checked against the text tokenized here."""

import io

import numpy as np
from tokenizers import normalizers

from lenskit.pruning import calibration as calibration_module
from lenskit.synthetic.tokenizer import build_tokenizer


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
