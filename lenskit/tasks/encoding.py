"""Tokenising prompts and answers exactly as the model will see them.

BOS policy: lenskit uses each tokenizer's own special-token behaviour and never adds a BOS
the tokenizer does not add itself. Llama-style tokenizers (and the organism's) prepend
``<s>``/``<bos>``, OPT's prepends ``</s>``; GPT-2's and Pythia's prepend nothing, which is
also how these models are usually evaluated (e.g. by lm-evaluation-harness). A token the
tokenizer *appends* to a single sequence (an EOS) is dropped: prompts are continued, and
an end-of-sequence token before the answer would be wrong.

Answers are tokenised in context: the tokens of ``" " + answer`` are the tokens that
``prompt + " " + answer`` has after the prompt's own tokens, so a BPE gets ``" Paris"``
(one token) rather than ``"Paris"`` and a SentencePiece gets its word-initial piece.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from lenskit.errors import UsageError

__all__ = [
    "answer_token_ids",
    "encode_prompts",
    "encode_texts",
    "pad_id",
    "pad_right",
    "special_affixes",
    "stop_token_mask",
    "token_span",
    "tokenizer_fingerprint",
]

_AFFIXES: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], tuple[int, ...]]] = (
    weakref.WeakKeyDictionary()
)
_FINGERPRINTS: weakref.WeakKeyDictionary[Any, tuple[int, str]] = (
    weakref.WeakKeyDictionary()
)
_STOP_MASKS: weakref.WeakKeyDictionary[Any, dict[tuple, torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def special_affixes(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The special token ids the tokenizer puts before and after a single sequence."""
    if tokenizer in _AFFIXES:
        return _AFFIXES[tokenizer]
    probe = "lenskit probe"
    full = list(tokenizer(probe)["input_ids"])
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    prefix: tuple[int, ...] = ()
    suffix: tuple[int, ...] = ()
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            prefix, suffix = tuple(full[:i]), tuple(full[i + len(bare) :])
            break
    _AFFIXES[tokenizer] = (prefix, suffix)
    return prefix, suffix


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text, with the tokenizer's prefix specials and without its suffix ones."""
    if isinstance(texts, str):
        raise UsageError("encode_texts takes a list of strings, got a single string")
    _, suffix = special_affixes(tokenizer)
    out = [list(ids) for ids in tokenizer(list(texts))["input_ids"]]
    if suffix:
        k = len(suffix)
        out = [ids[:-k] if tuple(ids[-k:]) == suffix else ids for ids in out]
    return out


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids [B, T], lengths [B])``: rows left-aligned, padded on the right with ``pad_id``."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = int(lengths.max()) if len(rows) else 0
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
    return ids, lengths


def pad_id(tokenizer) -> int:
    """The token id that pads a batch: the tokenizer's pad token, else its end-of-text or
    unknown token, else 0 (padding is masked out, so any id will do)."""
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def encode_prompts(tokenizer, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise prompts as lenskit's evaluation does and right-pad them.

    Args:
        tokenizer: a Hugging Face tokenizer (its own BOS behaviour is kept; see the module
            docstring).
        prompts: texts; each must tokenise to at least one token.

    Returns:
        ``input_ids`` ``[B, T]`` LongTensor, right-padded with the pad token (its value is
        never meaningful: use the lengths), and ``lengths`` ``[B]`` LongTensor; prompt ``i``
        occupies ``input_ids[i, :lengths[i]]`` and its next token is predicted at position
        ``lengths[i] - 1``.
    """
    if isinstance(prompts, str) or len(prompts) == 0:
        raise UsageError("encode_prompts needs a non-empty list of prompt strings")
    rows = encode_texts(tokenizer, prompts)
    for p, r in zip(prompts, rows, strict=True):
        if not r:
            raise UsageError(f"prompt {p!r} tokenises to no tokens")
    return pad_right(rows, pad_id(tokenizer))


def answer_token_ids(
    tokenizer,
    prompts: Sequence[str],
    answers: Sequence[str],
    prompt_ids: Sequence[Sequence[int]] | None = None,
) -> tuple[list[list[int]], int]:
    """Token ids of each answer as it continues its prompt after one space.

    The answer's ids are those of ``prompt + " " + answer`` beyond the prompt's ids. When a
    tokenizer merges across that boundary (the prompt's ids are not a prefix), the answer
    is tokenised on its own as ``" " + answer`` instead; the second return value counts
    those fallbacks.
    """
    if prompt_ids is None:
        prompt_ids = encode_texts(tokenizer, prompts)
    joint = encode_texts(tokenizer, [p + " " + a for p, a in zip(prompts, answers, strict=True)])
    out: list[list[int]] = []
    fallback_idx: list[int] = []
    for i, (p, j) in enumerate(zip(prompt_ids, joint, strict=True)):
        if len(j) > len(p) and list(j[: len(p)]) == list(p):
            out.append(list(j[len(p) :]))
        else:
            out.append([])
            fallback_idx.append(i)
    if fallback_idx:
        alone = tokenizer([" " + answers[i] for i in fallback_idx],
                          add_special_tokens=False)["input_ids"]
        for i, ids in zip(fallback_idx, alone, strict=True):
            out[i] = list(ids)
    for a, ids in zip(answers, out, strict=True):
        if not ids:
            raise UsageError(f"answer {a!r} tokenises to no tokens")
    return out, len(fallback_idx)


def token_span(tokenizer, prompt: str, span: tuple[int, int]) -> tuple[int, int]:
    """Token positions ``[start, end)`` (in :func:`encode_prompts` indexing, BOS included)
    of the tokens that overlap the character ``span`` of ``prompt``.

    Needs a fast tokenizer (character offsets). Raises ValueError if no token overlaps.
    """
    s, e = span
    if not 0 <= s < e <= len(prompt):
        raise UsageError(f"span {span} is outside the {len(prompt)}-character prompt")
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError("token_span needs a fast tokenizer (character offsets)")
    enc = tokenizer(prompt, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    specials = set(getattr(tokenizer, "all_special_ids", []))
    hit = [
        k for k, ((a, b), t) in enumerate(zip(offsets, ids, strict=True))
        if b > a and a < e and b > s and not (t in specials and a == b == 0)
    ]
    if not hit:
        raise UsageError(f"no token of the prompt overlaps characters {span}")
    return hit[0], hit[-1] + 1


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of the vocabulary and special tokens (identifies a tokenizer)."""
    cached = _FINGERPRINTS.get(tokenizer)
    if cached is not None and cached[0] == len(tokenizer):  # tokens added since? recompute
        return cached[1]
    h = hashlib.sha256()
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(special_affixes(tokenizer)).encode())
    fp = h.hexdigest()[:16]
    _FINGERPRINTS[tokenizer] = (len(tokenizer), fp)
    return fp


def stop_token_mask(tokenizer, vocab_size: int, stop: Sequence[str] = ()) -> torch.Tensor:
    """``[vocab_size]`` bool: tokens that end a greedy answer (contain a newline or any of
    the ``stop`` strings, or EOS).

    Ids beyond the tokenizer's vocabulary (padded embedding rows) are never stops.
    """
    cache = _STOP_MASKS.setdefault(tokenizer, {})
    stops = ("\n", *stop)
    key = (vocab_size, len(tokenizer), *stop)
    if key in cache:
        return cache[key]
    n = min(len(tokenizer), vocab_size)
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[:n] = torch.tensor([any(s in t for s in stops) for t in texts], dtype=torch.bool)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id < vocab_size:
        mask[tokenizer.eos_token_id] = True
    cache[key] = mask
    return mask
