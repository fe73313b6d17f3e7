"""Prompt formats shared by the task suite and the organism's training corpus.

One place defines how a question, a passage, few-shot examples and function-learning
exemplars become text, so that the organism is trained on exactly the strings the task
suite later scores. Answers are always appended after a single space and end at a newline:
greedy decoding stops at the first newline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lenskit.errors import UsageError

__all__ = ["FunctionFormat", "QAFormat", "format_number"]


@dataclass(frozen=True)
class QAFormat:
    """How a (context, question) pair becomes a prompt.

    Attributes:
        question_template: must contain ``{question}``; the answer follows after a space.
        context_template: must contain ``{context}``; placed before the question.
        instruction: optional text at the very top of the prompt (e.g. LLM-KICK's
            ``"Answer these questions:\\n\\n"``).
        shot_separator: text between a few-shot example and the next question.
    """

    question_template: str = "Q: {question}\nA:"
    context_template: str = "{context}\n"
    instruction: str = ""
    shot_separator: str = "\n\n"

    def __post_init__(self) -> None:
        if "{question}" not in self.question_template:
            raise UsageError(
                f"question_template {self.question_template!r} must contain '{{question}}'"
            )
        if "{context}" not in self.context_template:
            raise UsageError(
                f"context_template {self.context_template!r} must contain '{{context}}'"
            )

    def block(self, question: str, context: str | None = None) -> str:
        """One question (with its passage when given), ending where the answer starts."""
        text = self.context_template.format(context=context) if context else ""
        return text + self.question_template.format(question=question)

    def prompt(
        self,
        question: str,
        context: str | None = None,
        shots: Sequence[tuple[str, str | None, str]] = (),
    ) -> str:
        """The full prompt: instruction, few-shot examples ``(question, context, answer)``, query."""
        parts = [self.instruction]
        for q, c, a in shots:
            parts.append(self.block(q, c) + " " + a + self.shot_separator)
        parts.append(self.block(question, context))
        return "".join(parts)


def format_number(value: float, decimals: int) -> str:
    """Format one input coordinate: an integer when ``decimals == 0``, else fixed point."""
    if decimals < 0:
        raise UsageError(f"decimals must be >= 0, got {decimals}")
    if decimals == 0:
        return str(round(float(value)))
    return f"{value:.{decimals}f}"


@dataclass(frozen=True)
class FunctionFormat:
    """How (x, y) exemplars of in-context function learning become text.

    Each exemplar is one line ``"{x} {arrow} {y}\\n"`` where ``x`` is the coordinates joined
    by ``separator``; the query is the same line without its label. With ``arrow=""`` the
    label follows the inputs directly (``"{x} {y}\\n"``).
    """

    arrow: str = "->"
    separator: str = " "
    decimals: int = 0
    instruction: str = ""

    def __post_init__(self) -> None:
        if self.decimals < 0:
            raise UsageError(f"decimals must be >= 0, got {self.decimals}")
        if "\n" in self.arrow or "\n" in self.separator:
            raise UsageError("arrow and separator must not contain a newline")

    def inputs(self, x: Sequence[float]) -> str:
        return self.separator.join(format_number(v, self.decimals) for v in x)

    def line(self, x: Sequence[float], label: str) -> str:
        return f"{self.query(x)} {label}\n"

    def query(self, x: Sequence[float]) -> str:
        return f"{self.inputs(x)} {self.arrow}" if self.arrow else self.inputs(x)

    def prompt(
        self, exemplars: Sequence[tuple[Sequence[float], str]], query: Sequence[float]
    ) -> str:
        return (
            self.instruction
            + "".join(self.line(x, y) for x, y in exemplars)
            + self.query(query)
        )
