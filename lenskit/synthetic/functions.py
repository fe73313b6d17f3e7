"""Parameterised functions learned in context: linear classifiers, 2-layer ReLU nets, trees.

A *function task* samples a fresh random function per instance, shows ``n_exemplars``
labelled inputs and asks for the label of a query. Query labels are class-balanced across
instances (each class is asked ``floor(n / K)`` times, the remainder go to distinct random
classes), so chance accuracy is exactly ``1/K`` when ``n`` is a multiple of ``K``. Everything is drawn from a ``numpy.random.Generator`` seeded by the caller: the same
seed gives the same instances.

Shapes: inputs ``x`` are ``[n, n_dims]`` float arrays (integers when ``decimals == 0``);
labels are ``[n]`` int arrays in ``0..n_classes-1``; margins are ``[n]`` float arrays (how far
an input is from the nearest decision boundary, in the function's own units).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from lenskit.errors import UsageError
from lenskit.synthetic.formats import FunctionFormat

__all__ = [
    "FUNCTION_KINDS",
    "FunctionInstance",
    "FunctionSpec",
    "sample_function",
    "sample_function_instances",
]

FUNCTION_KINDS = ("linear", "mlp", "tree")
DEFAULT_LABELS = ("foo", "bar", "baz", "qux", "zap", "vim", "dot", "hex")

LabelFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class FunctionSpec:
    """What function family to sample and how its prompts look.

    Attributes:
        kind: ``"linear"`` (argmax of ``W x + b``; for K=2 the sign of ``w.x + b``),
            ``"mlp"`` (2-layer ReLU net with ``hidden`` units, argmax of its outputs) or
            ``"tree"`` (axis-aligned decision tree of ``depth``, random features/thresholds).
        n_dims: D, the number of input coordinates.
        n_exemplars: N, labelled examples shown before the query.
        n_classes: K.
        value_range: inputs are uniform on ``[-value_range, value_range]``.
        decimals: digits after the point (0 = integer inputs, one token each in most BPEs).
        margin: inputs closer than this to a decision boundary are never shown or asked
            (0 disables); an easier task for small models.
        labels: the class names (the first K are used); each should be one token.
        hidden: hidden units of the ``mlp`` family.
        depth: depth of the ``tree`` family.
        fmt: the text format of exemplars and query.
    """

    kind: str = "linear"
    n_dims: int = 4
    n_exemplars: int = 32
    n_classes: int = 2
    value_range: float = 9.0
    decimals: int = 0
    margin: float = 0.0
    labels: tuple[str, ...] = DEFAULT_LABELS
    hidden: int = 8
    depth: int = 2
    fmt: FunctionFormat = field(default_factory=FunctionFormat)

    def __post_init__(self) -> None:
        if self.kind not in FUNCTION_KINDS:
            raise UsageError(f"unknown function kind {self.kind!r}; allowed: {FUNCTION_KINDS}")
        for name in ("n_dims", "n_exemplars", "hidden", "depth"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 2 <= self.n_classes <= len(self.labels):
            raise UsageError(
                f"n_classes must be in 2..{len(self.labels)} (the number of labels), "
                f"got {self.n_classes}"
            )
        if len(set(self.labels[: self.n_classes])) != self.n_classes:
            raise UsageError(f"labels must be distinct, got {self.labels[: self.n_classes]}")
        if self.value_range <= 0:
            raise UsageError(f"value_range must be > 0, got {self.value_range}")
        if self.margin < 0:
            raise UsageError(f"margin must be >= 0, got {self.margin}")
        if self.decimals != self.fmt.decimals:
            object.__setattr__(
                self,
                "fmt",
                FunctionFormat(
                    arrow=self.fmt.arrow,
                    separator=self.fmt.separator,
                    decimals=self.decimals,
                    instruction=self.fmt.instruction,
                ),
            )

    @property
    def name(self) -> str:
        return f"fn_{self.kind}"

    def to_json(self) -> dict:
        """A JSON-able dict that :meth:`from_json` turns back into this spec."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fmt"}
        d["labels"] = list(self.labels)
        d["fmt"] = {f.name: getattr(self.fmt, f.name) for f in fields(self.fmt)}
        return d

    @classmethod
    def from_json(cls, d: dict) -> FunctionSpec:
        """Inverse of :meth:`to_json` (``fmt`` may be absent: the default format)."""
        kw = {k: v for k, v in d.items() if k != "fmt"}
        if "labels" in kw:
            kw["labels"] = tuple(kw["labels"])
        if d.get("fmt"):
            kw["fmt"] = FunctionFormat(**d["fmt"])
        return cls(**kw)


@dataclass(frozen=True)
class FunctionInstance:
    """One prompt of in-context function learning."""

    prompt: str
    answer: str
    label: int
    exemplars_x: np.ndarray  # [N, D]
    exemplars_y: np.ndarray  # [N]
    query_x: np.ndarray  # [D]


def _sample_inputs(spec: FunctionSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    r = spec.value_range
    if spec.decimals == 0:
        lo, hi = int(np.ceil(-r)), int(np.floor(r))
        return rng.integers(lo, hi + 1, size=(n, spec.n_dims)).astype(np.float64)
    x = rng.uniform(-r, r, size=(n, spec.n_dims))
    return np.round(x, spec.decimals)


def _top2_gap(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax label and the gap between the best and second-best score, per row."""
    order = np.sort(scores, axis=1)
    return scores.argmax(axis=1), order[:, -1] - order[:, -2]


def _linear(spec: FunctionSpec, rng: np.random.Generator) -> LabelFn:
    k, d = spec.n_classes, spec.n_dims
    scale = spec.value_range
    if k == 2:
        w = rng.normal(size=d)
        w /= np.linalg.norm(w)
        b = rng.normal() * 0.25 * scale

        def fn(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            s = x @ w + b  # signed distance to the hyperplane (w has unit norm)
            return (s > 0).astype(np.int64), np.abs(s)

        return fn
    w = rng.normal(size=(d, k))
    b = rng.normal(size=k) * 0.25 * scale

    def fn_multi(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _top2_gap(x @ w + b)

    return fn_multi


def _mlp(spec: FunctionSpec, rng: np.random.Generator) -> LabelFn:
    d, h, k = spec.n_dims, spec.hidden, spec.n_classes
    w1 = rng.normal(size=(d, h)) / np.sqrt(d)
    b1 = rng.normal(size=h) * 0.5 * spec.value_range / np.sqrt(d)
    w2 = rng.normal(size=(h, k)) / np.sqrt(h)
    probe = _sample_inputs(spec, rng, 512)
    # Centre the output scores on the input distribution so every class is reachable.
    b2 = -np.mean(np.maximum(probe @ w1 + b1, 0.0) @ w2, axis=0)

    def fn(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _top2_gap(np.maximum(x @ w1 + b1, 0.0) @ w2 + b2)

    return fn


def _tree(spec: FunctionSpec, rng: np.random.Generator) -> LabelFn:
    depth, k, r = spec.depth, spec.n_classes, spec.value_range
    n_internal = 2**depth - 1
    features = rng.integers(0, spec.n_dims, size=n_internal)
    thresholds = rng.uniform(-0.5 * r, 0.5 * r, size=n_internal)
    # Leaves cycle through the classes in a random order so that all K appear when possible.
    leaves = np.resize(rng.permutation(k), 2**depth)
    rng.shuffle(leaves)

    def fn(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        node = np.zeros(len(x), dtype=np.int64)
        margin = np.full(len(x), np.inf)
        for _ in range(depth):
            f, t = features[node], thresholds[node]
            v = x[np.arange(len(x)), f]
            margin = np.minimum(margin, np.abs(v - t))
            node = 2 * node + 1 + (v > t)
        return leaves[node - n_internal], margin

    return fn


_FAMILIES: dict[str, Callable[[FunctionSpec, np.random.Generator], LabelFn]] = {
    "linear": _linear,
    "mlp": _mlp,
    "tree": _tree,
}


def sample_function(
    spec: FunctionSpec, rng: np.random.Generator, max_tries: int = 1000
) -> LabelFn:
    """A random function of ``spec.kind`` whose classes are all reasonably frequent.

    A function is accepted when, on 512 random inputs outside the margin, every class covers
    at least ``1 / (3K)`` of them; otherwise another is drawn (so functions that are almost
    constant, which a model could solve without reading the exemplars, never appear).
    """
    k = spec.n_classes
    for _ in range(max_tries):
        fn = _FAMILIES[spec.kind](spec, rng)
        x = _sample_inputs(spec, rng, 512)
        y, m = fn(x)
        y = y[m >= spec.margin] if spec.margin > 0 else y
        if len(y) < 64:
            continue
        counts = np.bincount(y, minlength=k)
        if counts.min() >= len(y) / (3 * k):
            return fn
    raise RuntimeError(
        f"could not sample a balanced {spec.kind} function with K={k}, D={spec.n_dims}, "
        f"margin={spec.margin} in {max_tries} tries; lower the margin or the number of classes"
    )


def _labelled_pool(
    spec: FunctionSpec, fn: LabelFn, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    total = 0
    while total < n:
        x = _sample_inputs(spec, rng, 4 * n)
        y, m = fn(x)
        keep = m >= spec.margin if spec.margin > 0 else np.ones(len(x), dtype=bool)
        xs.append(x[keep])
        ys.append(y[keep])
        total += int(keep.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def sample_function_instances(
    spec: FunctionSpec, n_instances: int, seed: int
) -> list[FunctionInstance]:
    """``n_instances`` prompts, each with its own random function; query labels balanced.

    Exemplars are drawn from the input distribution (outside the margin) and always contain
    every class at least once; the query's class is fixed in advance for balance and its
    input is drawn from that class.
    """
    if n_instances < 1:
        raise UsageError(f"n_instances must be >= 1, got {n_instances}")
    rng = np.random.default_rng(seed)
    k = spec.n_classes
    # Every class appears floor(n / K) times; the remaining n mod K instances get distinct
    # random classes (so a single instance, as the organism's corpus draws them, asks for a
    # uniformly random class rather than always class 0).
    targets = np.resize(rng.permutation(k), n_instances)
    rng.shuffle(targets)
    out: list[FunctionInstance] = []
    for target in targets:
        fn = sample_function(spec, rng)
        while True:
            ex_x, ex_y = _labelled_pool(spec, fn, rng, spec.n_exemplars)
            if len(np.unique(ex_y)) == k or spec.n_exemplars < k:
                break
        pool_x, pool_y = _labelled_pool(spec, fn, rng, 64)
        while not (pool_y == target).any():
            pool_x, pool_y = _labelled_pool(spec, fn, rng, 64)
        query = pool_x[np.flatnonzero(pool_y == target)[0]]
        labels = spec.labels
        prompt = spec.fmt.prompt(
            [(x, labels[int(y)]) for x, y in zip(ex_x, ex_y, strict=True)], query
        )
        out.append(
            FunctionInstance(
                prompt=prompt,
                answer=labels[int(target)],
                label=int(target),
                exemplars_x=ex_x,
                exemplars_y=ex_y,
                query_x=query,
            )
        )
    return out
