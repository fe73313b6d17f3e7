"""A word-level tokenizer for the organism, saved in Hugging Face format.

Words, numbers (with their sign) and single punctuation marks are tokens; a newline is a
token of its own (greedy decoding stops on it); spaces are dropped. The tokenizer prepends
``<bos>`` like Llama's. Unknown words map to ``<unk>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from lenskit.synthetic.functions import DEFAULT_LABELS
from lenskit.synthetic.world import World

__all__ = ["SPECIAL_TOKENS", "build_tokenizer", "count_tokens", "organism_vocabulary"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
_PUNCTUATION = ("\n", ".", ",", "?", ":", "'", "!", ";", "(", ")", "-", "->", "=")
_SPLIT = r"->|-?\d+(?:\.\d+)?|[A-Za-z]+|[^\sA-Za-z\d]"


_TOKEN = re.compile(r"\n|" + _SPLIT)


def count_tokens(text: str) -> int:
    """The number of tokens :func:`build_tokenizer`'s tokenizers split ``text`` into
    (without ``<bos>``), whatever their vocabulary: one per word, number, punctuation mark
    or newline. Pure Python, for counting without a tokenizer."""
    return len(_TOKEN.findall(text))


def build_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is the special tokens, punctuation and ``words``."""
    vocab: dict[str, int] = {}
    for w in (*SPECIAL_TOKENS, *_PUNCTUATION, *words):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n"), "isolated"),
            pre_tokenizers.Split(Regex(r"[^\S\n]+"), "removed"),
            pre_tokenizers.Split(Regex(_SPLIT), "isolated"),
        ]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        model_max_length=4096,
    )


def organism_vocabulary(world: World) -> list[str]:
    """Every word the organism's tasks use: world words, QA scaffolding, numbers, labels."""
    scaffold = ["Q", "A", "The", "In", "At", "By"]
    numbers = [str(i) for i in range(-20, 21)]
    return [*scaffold, *world.words(), *numbers, *DEFAULT_LABELS]
