"""What causal tracing runs on: prompts as token rows, the span to corrupt, the answer token,
and the corruption itself (seeded embedding noise, or a counterfactual prompt).

:func:`trace_prompts` turns a QA :class:`~lenskit.tasks.TaskSet` into :class:`TracePrompt` s:

- the prompt's tokens exactly as evaluation sees them (the tokenizer's own BOS policy,
  :func:`lenskit.tasks.encoding.encode_texts`);
- the token span to corrupt: the subject (``corrupt="subject"``, found by
  :func:`lenskit.tasks.subject_span`) or the answer stated in the passage
  (``corrupt="answer"``, the instance's ``answer_span``: open-book and overriding);
- the answer's first token as it continues the prompt after one space
  (:func:`lenskit.tasks.encoding.answer_token_ids`): its probability is the measure;
- for ``corruption="counterfactual"``, the tokens of the same prompt with the span
  replaced by another instance's (a seeded donor of the same task whose text has the same
  number of tokens there, leaves every other token unchanged, and has another gold answer).

:func:`embedding_noise_std` is ROME's noise level: the empirical standard deviation of the
input embeddings of the corrupted tokens of all prompts (every embedding coordinate of every
corrupted token counts once); the noise added is ``noise`` (3 by default) times it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lenskit.errors import UsageError
from lenskit.tasks import TaskSet, subject_span
from lenskit.tasks.core import TaskInstance
from lenskit.tasks.encoding import answer_token_ids, encode_texts, token_span

__all__ = [
    "CORRUPTIONS",
    "CORRUPT_SPANS",
    "TracePrompt",
    "embedding_noise_std",
    "item_noise",
    "trace_prompts",
]

#: How the input is corrupted: Gaussian noise on the span's embeddings, or the span
#: replaced by another instance's.
CORRUPTIONS: tuple[str, ...] = ("noise", "counterfactual")
#: Which span is corrupted: the subject's name, or the answer stated in the passage.
CORRUPT_SPANS: tuple[str, ...] = ("subject", "answer")


@dataclass(frozen=True)
class TracePrompt:
    """One traced prompt.

    Attributes:
        id: the instance's id.
        tokens: the clean prompt's token ids.
        span: token positions ``[start, end)`` that are corrupted.
        answer: the id of the gold answer's first token.
        counterfactual: the corrupted prompt's token ids (same length as ``tokens``;
            ``None`` for noise corruption).
        donor: the id of the instance whose span was substituted (``""`` for noise).
    """

    id: str
    tokens: tuple[int, ...]
    span: tuple[int, int]
    answer: int
    counterfactual: tuple[int, ...] | None = None
    donor: str = ""

    @property
    def last(self) -> int:
        """The position that predicts the answer (the prompt's last token)."""
        return len(self.tokens) - 1


def _char_span(instance: TaskInstance, corrupt: str) -> tuple[int, int]:
    if corrupt == "subject":
        return subject_span(instance)
    if instance.answer_span is None:
        raise UsageError(f"instance {instance.id!r} has no answer_span (corrupt='answer' "
                         "needs open-book or overriding prompts that state the answer)")
    return instance.answer_span


def _substitute(tokenizer, inst: TaskInstance, span: tuple[int, int], tokens: list[int],
                tok_span: tuple[int, int], text: str) -> tuple[int, ...] | None:
    """The prompt with characters ``span`` replaced by ``text``, if it keeps every token
    outside the token span and the span's length; else ``None``."""
    prompt = inst.prompt[: span[0]] + text + inst.prompt[span[1]:]
    new = encode_texts(tokenizer, [prompt])[0]
    a, b = tok_span
    if len(new) != len(tokens) or new[:a] != tokens[:a] or new[b:] != tokens[b:]:
        return None
    if new[a:b] == tokens[a:b]:
        return None
    return tuple(new)


def trace_prompts(info, task: TaskSet, *, corrupt: str = "subject",
                  corruption: str = "noise", seed: int = 0) -> list[TracePrompt]:
    """The task's instances as :class:`TracePrompt` s (see the module docstring).

    Instances for which no counterfactual donor exists are left out (counterfactual
    corruption only); an instance whose span cannot be found raises.

    Raises:
        ValueError: not a QA task, an unknown ``corrupt``/``corruption``, an instance
            without the span to corrupt.
    """
    if corrupt not in CORRUPT_SPANS:
        raise UsageError(f"unknown corrupt {corrupt!r}; allowed: {CORRUPT_SPANS}")
    if corruption not in CORRUPTIONS:
        raise UsageError(f"unknown corruption {corruption!r}; allowed: {CORRUPTIONS}")
    if task.kind in ("perplexity", "function"):
        raise UsageError(f"causal tracing needs a QA task with a subject; {task.name!r} is "
                         f"{task.kind!r}")
    tok = info.tokenizer
    instances = list(task.instances)
    prompts = [i.prompt for i in instances]
    rows = encode_texts(tok, prompts)
    answers, _ = answer_token_ids(tok, prompts, [i.gold for i in instances], rows)
    spans = [_char_span(i, corrupt) for i in instances]
    tok_spans = [token_span(tok, i.prompt, s) for i, s in zip(instances, spans, strict=True)]
    out = []
    rng = np.random.default_rng([seed, zlib.crc32(task.name.encode())])
    for k, inst in enumerate(instances):
        cf, donor = None, ""
        if corruption == "counterfactual":
            n_tok = tok_spans[k][1] - tok_spans[k][0]
            for j in rng.permutation(len(instances)):
                other = instances[j]
                if j == k or answers[j][0] == answers[k][0] or \
                        tok_spans[j][1] - tok_spans[j][0] != n_tok:
                    continue
                text = other.prompt[spans[j][0]:spans[j][1]]
                cf = _substitute(tok, inst, spans[k], rows[k], tok_spans[k], text)
                if cf is not None:
                    donor = other.id
                    break
            if cf is None:
                continue
        out.append(TracePrompt(inst.id, tuple(rows[k]), tok_spans[k], int(answers[k][0]), cf,
                               donor))
    return out


def embedding_noise_std(info, prompts: Sequence[TracePrompt]) -> float:
    """Empirical standard deviation of the input embeddings of the prompts' corrupted
    tokens (ROME's reference scale for the noise)."""
    ids = [t for p in prompts for t in p.tokens[p.span[0]:p.span[1]]]
    if not ids:
        raise UsageError("no corrupted tokens to measure the embedding scale on")
    emb = info.hf.get_input_embeddings()
    with torch.inference_mode():
        vectors = emb(torch.tensor(ids, device=emb.weight.device))
    return float(vectors.double().std())


def item_noise(prompt: TracePrompt, d_model: int, std: float, seed: int,
               n_samples: int = 1) -> torch.Tensor:
    """Gaussian noise ``[n_samples, span_length, d_model]`` (float32) for one prompt's
    corrupted span: seeded by ``seed`` and the prompt's id, so a prompt gets the same noise
    whatever batch it is traced in."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(
        [seed, zlib.crc32(prompt.id.encode())]).generate_state(1)[0]))
    n = prompt.span[1] - prompt.span[0]
    return torch.randn(n_samples, n, d_model, generator=g, dtype=torch.float32) * std
