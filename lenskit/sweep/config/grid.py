"""The grid of a sweep: methods x structures x allocations x scopes x sparsities x seeds,
and the parameter-matched attention-vs-FFW comparison. Every check here runs before any
model loads; names are checked against :mod:`lenskit.names`, N:M structures with
:func:`lenskit.pruning.structure.parse_structure`, scopes with
:meth:`lenskit.models.sites.Selection.parse`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lenskit.models.sites import Selection, is_attention_scope, is_ffw_scope
from lenskit.pruning.structure import parse_structure, sparsity_problems
from lenskit.results.schema import DENSE, known_allocations, known_methods
from lenskit.sweep.config.errors import check_list

__all__ = [
    "DEFAULT_SPARSITIES",
    "SPARSITY_DIGITS",
    "STRUCTURED_ALLOCATIONS",
    "UNSUPPORTED_COMBINATIONS",
    "grid_problems",
    "matched_pairs",
]

DEFAULT_SPARSITIES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Allocations an N:M structure can use: N:M fixes the sparsity of every group of M
#: weights, so a per-layer (OWL) or global spread of sparsity cannot apply.
STRUCTURED_ALLOCATIONS: tuple[str, ...] = ("uniform",)
#: (method, allocation) pairs no pruner supports: SparseGPT chooses its mask block by block
#: while it updates the weights, so there is no single score to threshold globally.
UNSUPPORTED_COMBINATIONS: dict[tuple[str, str], str] = {
    ("sparsegpt", "global"): "SparseGPT picks its mask per block of columns while updating "
                             "the weights; there is no global score to threshold",
}
SPARSITY_DIGITS = 6  # sparsities are compared and hashed after rounding to this many digits


def grid_problems(methods: Any, structures: Any, allocations: Any, sparsities: Any,
                  scopes: Any, matched: Any, pairs: Any, seeds: Any) -> list[str]:
    """Every problem with the grid settings of a sweep config (same names as its fields)."""
    p: list[str] = []
    plain_allocations = tuple(a for a in known_allocations() if a != "matched")
    if DENSE in (methods or []):
        p.append(f"method {DENSE!r} is implicit (every sweep evaluates the dense model); "
                 f"remove it from methods")
    method_list = check_list(p, "methods", [m for m in methods if m != DENSE]
                             if methods else [], known_methods())
    nm_structures, unstructured = [], False
    for s in check_list(p, "structures", structures, None, "structure"):
        try:
            nm = parse_structure(s)
        except ValueError as e:
            p.append(str(e))
            continue
        if nm.unstructured:
            unstructured = True
        else:
            nm_structures.append(s)
    alloc_values = list(allocations) if isinstance(allocations, list) else []
    is_matched = bool(matched) or "matched" in alloc_values
    if alloc_values == ["matched"]:
        p.append("allocations lists only 'matched'; matched cells need a plain "
                 "allocation for their reference scope, e.g. ['uniform', 'matched']")
        plain_allocs = []
    else:
        plain_allocs = check_list(p, "allocations", [a for a in alloc_values if a != "matched"]
                                  if isinstance(allocations, list) else allocations,
                                  plain_allocations, "allocation")
    if unstructured:
        if not isinstance(sparsities, list) or not sparsities:
            p.append("sparsities is empty; give fractions in [0, 1], e.g. [0.1, 0.5, 0.9]")
        else:
            p.extend(sparsity_problems(sparsities, "sparsities", SPARSITY_DIGITS))
    good_scopes = []
    for s in check_list(p, "scopes", scopes, None, "scope"):
        if not isinstance(s, str):
            p.append(f"scope {s!r} must be a string")
            continue
        try:
            Selection.parse(s)
            good_scopes.append(s)
        except ValueError as e:
            p.append(str(e))
    # impossible combinations
    for s in nm_structures:
        for a in plain_allocs:
            if a not in STRUCTURED_ALLOCATIONS and a in plain_allocations:
                p.append(f"structure {s!r} cannot use allocation {a!r}: N:M fixes the "
                         f"sparsity of every group of M weights (allowed with N:M: "
                         f"{', '.join(STRUCTURED_ALLOCATIONS)})")
    for m in method_list:
        for a in plain_allocs:
            why = UNSUPPORTED_COMBINATIONS.get((m, a))
            if why:
                p.append(f"method {m!r} cannot use allocation {a!r}: {why}")
    if is_matched:
        if not unstructured:
            p.append("matched comparison needs structure 'unstructured' (an N:M pattern "
                     "cannot remove an arbitrary number of weights)")
        matched_pairs(pairs, good_scopes, p)
    for s in check_list(p, "seeds", seeds, None, "seed"):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            p.append(f"seed {s!r} must be a non-negative integer")
    return p


def matched_pairs(pairs: Sequence[Any], scopes: Sequence[str], problems: list[str]
                  ) -> list[tuple[str, str]]:
    """The (reference, target) scope pairs of the matched comparison: ``pairs`` checked
    against ``scopes``, or, when ``pairs`` is empty, the first attention-only scope with the
    first FFW-only scope. Problems are appended to ``problems``."""
    if pairs:
        out = []
        for pair in pairs:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                problems.append(f"matched pair {pair!r} must be [reference, target]")
                continue
            ref, tgt = pair
            bad = [s for s in (ref, tgt) if s not in scopes]
            if bad:
                problems.append(f"matched pair {list(pair)}: scope(s) {bad} not in scopes "
                                f"{list(scopes)} (both curves are needed)")
                continue
            if ref == tgt:
                problems.append(f"matched pair {list(pair)} matches a scope to itself")
                continue
            if not ((is_attention_scope(ref) and is_ffw_scope(tgt))
                    or (is_ffw_scope(ref) and is_attention_scope(tgt))):
                problems.append(f"matched pair {list(pair)} must pair an attention-only "
                                f"scope with an FFW-only scope")
                continue
            out.append((ref, tgt))
        return out
    attn = [s for s in scopes if is_attention_scope(s)]
    ffw = [s for s in scopes if is_ffw_scope(s)]
    if not attn or not ffw:
        problems.append(
            "matched comparison needs an attention-only scope and an FFW-only scope in "
            f"scopes (e.g. 'attn' and 'mlp'); got {list(scopes)}"
            + ("" if attn else "; no attention-only scope")
            + ("" if ffw else "; no FFW-only scope")
            + " (or set matched = false)"
        )
        return []
    # Attention is the smaller scope in every supported family (<= 4 d^2 against ~8 d^2
    # per block), so FFW is pruned to match it.
    return [(attn[0], ffw[0])]
