"""The names lenskit uses across its packages, in one torch-free module.

Pruning methods and allocations, task kinds and the ability each measures: the pruning and
task packages define their behaviour; sweep configs (:mod:`lenskit.sweep`) and result tables
(:mod:`lenskit.results`) validate against these names without importing torch.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = ("random", "magnitude", "wanda", "sparsegpt")
ALLOCATIONS: tuple[str, ...] = ("uniform", "global", "owl", "matched")

TASK_KINDS: tuple[str, ...] = ("closed_book", "open_book", "overriding", "function", "perplexity")
CATEGORIES: tuple[str, ...] = ("fact_recall", "icl", "lm")
# How the study groups its tasks: recall from the weights (closed-book QA) versus use of the
# context (open-book, overriding and function learning: in-context abilities).
KIND_CATEGORY: dict[str, str] = {
    "closed_book": "fact_recall",
    "open_book": "icl",
    "overriding": "icl",
    "function": "icl",
    "perplexity": "lm",
}

__all__ = ["ALLOCATIONS", "CATEGORIES", "KIND_CATEGORY", "METHODS", "TASK_KINDS"]
