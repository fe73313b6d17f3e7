"""Where a prompt names its subject: the span causal tracing corrupts.

A fact question names one entity (its *subject*): ``"Q: what is the capital of Brirul?"``
(the organism), ``"The capital of France is"`` (the country tasks). Builders record it in
the instance's ``meta``: ``"subject"`` when set explicitly, else the organism's
``"entity"`` or the country tasks' ``"country"``. :func:`subject_span` finds that name in
the prompt; the *last* occurrence counts, because few-shot demonstrations and passages
come before the query (an overriding passage names the same entity; the question, last,
is what the answer is read from).
"""

from __future__ import annotations

import re

from lenskit.errors import UsageError
from lenskit.tasks.core import TaskInstance

__all__ = ["SUBJECT_KEYS", "subject_of", "subject_span"]

#: ``meta`` keys that name an instance's subject, in the order they are tried.
SUBJECT_KEYS: tuple[str, ...] = ("subject", "entity", "country")


def subject_of(instance: TaskInstance) -> str | None:
    """The subject's name from ``instance.meta`` (see :data:`SUBJECT_KEYS`), or ``None``."""
    for key in SUBJECT_KEYS:
        value = instance.meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def subject_span(instance: TaskInstance) -> tuple[int, int]:
    """Character span ``[start, end)`` of the subject's last occurrence in the prompt, on
    word boundaries (``"Niger"`` does not match inside ``"Nigeria"``).

    Raises:
        ValueError: the instance names no subject, or its prompt does not contain it.
    """
    name = subject_of(instance)
    if name is None:
        raise UsageError(f"instance {instance.id!r} names no subject: its meta has none of "
                         f"{SUBJECT_KEYS} (set meta['subject'] to the entity's name)")
    hits = list(re.finditer(r"(?<!\w)" + re.escape(name) + r"(?!\w)", instance.prompt))
    if not hits:
        raise UsageError(f"instance {instance.id!r}: its subject {name!r} does not occur in "
                         f"its prompt {instance.prompt!r}")
    return hits[-1].start(), hits[-1].end()
