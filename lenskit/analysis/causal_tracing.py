"""Causal tracing (Meng et al. 2022, ROME): which hidden states carry a fact to the answer.

Three runs per prompt on a TransformerBridge:

1. *clean*: the prompt as it is; every needed site's output is kept;
2. *corrupted*: the subject's tokens corrupted, by Gaussian noise on their input embeddings
   (``hook_embed``; ``noise`` times the empirical embedding std of the corrupted tokens, 3
   as in ROME, seeded per prompt) or by a counterfactual prompt (the subject replaced by
   another instance's, see :mod:`lenskit.analysis.trace_inputs`);
3. *restored*, once per site: the corrupted run with one site's output at one token
   position set back to its clean value.

The measure is the probability of the gold answer's first token at the prompt's last
token: ``p_clean``, ``p_corrupted`` and, per site, ``p_restored``; the *indirect effect*
of a site is ``p_restored - p_corrupted``, and normalised by the total effect
``p_clean - p_corrupted`` it is the fraction of the fact the site brings back.

Sites (:class:`TraceSite`; TransformerLens hook names of the bridge):

- ``"resid"``: the residual stream after block ``L`` (``blocks.L.hook_resid_post``);
- ``"attn"`` / ``"mlp"``: the attention / FFW output of block ``L``
  (``blocks.L.attn.hook_out`` / ``blocks.L.mlp.hook_out``), optionally for a ``window``
  of consecutive layers restored together (ROME restores ~10 around ``L``);
- ``"head"``: one attention head's output before the output projection
  (``blocks.L.attn.hook_z[:, :, h]``; query heads under grouped-query attention).

Positions: ``"subject_first"``, ``"subject_last"``, ``"subject"`` (all its tokens at once),
``"last"`` (the token that predicts the answer) and ``"all"`` (every token: restoring the
residual stream there gives back the clean run exactly, a check).

Batching: prompts are right-padded (never left: the bridge would be silently wrong) and the
answer is read at each prompt's last real token. Sites are batched too: one forward holds
``sites x prompts x noise samples`` rows, each row restoring its own site (restoration
hooks write rows, positions and heads by index). The forward stops at the unembedding's
input; only the last position's logits are computed.

:func:`trace_items` returns one row per (task, prompt, site) with the three probabilities;
:func:`trace_rows` aggregates them into map rows (:data:`~lenskit.analysis.mapping.MAP_COLUMNS`,
``analysis == "causal_trace"``, ``method`` = the corruption) with bootstrap intervals over
prompts; :func:`causal_trace` does both.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lenskit.analysis.attention_engine import StopForward
from lenskit.analysis.mapping import check_layers, finish_frame, prepare_suite
from lenskit.analysis.trace_inputs import (
    CORRUPTIONS,
    TracePrompt,
    embedding_noise_std,
    item_noise,
    trace_prompts,
)
from lenskit.errors import UsageError
from lenskit.models import model_info
from lenskit.stats import bootstrap_means, percentile_interval
from lenskit.tasks.encoding import pad_id, pad_right

__all__ = [
    "POSITIONS",
    "SITE_KINDS",
    "TRACE_COLUMNS",
    "TRACE_ITEM_COLUMNS",
    "TRACE_METRICS",
    "TraceSite",
    "causal_trace",
    "trace_items",
    "trace_rows",
    "trace_sites",
]

SITE_KINDS: tuple[str, ...] = ("resid", "attn", "mlp", "head")
POSITIONS: tuple[str, ...] = ("subject_first", "subject_last", "subject", "last", "all")
#: Metrics of the trace rows: the restored probability, the indirect effect, and the
#: indirect effect over the total effect (a ratio of means, as ROME reports it).
TRACE_METRICS: tuple[str, ...] = ("p_restored", "indirect_effect", "normalised_effect")
#: Columns trace rows add after the map columns.
TRACE_COLUMNS: dict[str, str] = {
    "position": "str", "window": "int64", "corrupt": "str", "noise_std": "float64",
    "p_clean": "float64", "p_corrupted": "float64",
}
#: Columns of :func:`trace_items`.
TRACE_ITEM_COLUMNS: tuple[str, ...] = (
    "model", "task", "kind", "category", "instance_id", "donor", "kind_of_site", "layer",
    "first_layer", "last_layer", "head", "position", "window", "scope", "p_clean",
    "p_corrupted", "p_restored")

_HOOKS = {"resid": "blocks.{}.hook_resid_post", "attn": "blocks.{}.attn.hook_out",
          "mlp": "blocks.{}.mlp.hook_out", "head": "blocks.{}.attn.hook_z"}
_FAMILY = {"resid": "resid", "attn": "attn", "mlp": "mlp", "head": "attn"}


@dataclass(frozen=True)
class TraceSite:
    """One restoration: the output of ``kind`` at ``layers`` (restored together) and at
    the token(s) ``position`` (of :data:`POSITIONS`); ``head`` for ``kind == "head"``.
    ``layer`` is the layer the site is reported at (the window's centre)."""

    kind: str
    layer: int
    layers: tuple[int, ...]
    position: str
    head: int | None = None

    @property
    def scope(self) -> str:
        if not self.layers:  # a control: restores nothing (gives p_corrupted)
            span = "none"
        else:
            span = (str(self.layers[0]) if len(self.layers) == 1
                    else f"{self.layers[0]}-{self.layers[-1]}")
        if self.kind == "head":
            return f"attn.o@{span}[head={self.head},pos={self.position}]"
        return f"{self.kind}@{span}[pos={self.position}]"

    def positions(self, p: TracePrompt) -> range:
        a, b = p.span
        return {"subject_first": range(a, a + 1), "subject_last": range(b - 1, b),
                "subject": range(a, b), "last": range(p.last, p.last + 1),
                "all": range(len(p.tokens))}[self.position]


def _window(layer: int, window: int, n_layers: int) -> tuple[int, ...]:
    # ROME's window: layers [L - w//2, L + w - w//2), clipped to the stack
    lo = max(0, layer - window // 2)
    hi = min(n_layers, layer - window // 2 + window)
    return tuple(range(lo, hi))


def trace_sites(model, *, kinds: Sequence[str] = ("resid", "attn", "mlp"),
                positions: Sequence[str] = ("subject_last", "last"),
                layers: Iterable[int] | int | None = None, window: int = 1,
                heads: Iterable[int] | None = None) -> list[TraceSite]:
    """Every ``kind x position x layer`` site (``x head`` for ``"head"``).

    ``window`` > 1 restores ``attn`` and ``mlp`` outputs of that many consecutive layers
    around each layer (clipped at the ends of the stack); residual and head sites restore
    one layer. Raises ValueError on unknown kinds or positions, bad layers, heads or window.
    """
    info = model_info(model)
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    positions = (positions,) if isinstance(positions, str) else tuple(positions)
    for values, allowed, name in ((kinds, SITE_KINDS, "kinds"),
                                  (positions, POSITIONS, "positions")):
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise UsageError(f"unknown {name} {bad or list(values)}; allowed: {allowed}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) \
            or not 1 <= window <= info.n_layers:
        raise UsageError(f"window must be an int in 1..{info.n_layers} (the model's layers), "
                         f"got {window!r}")
    chosen = check_layers(layers, info.n_layers)
    n_heads = int(model.cfg.n_heads)
    if heads is None:
        head_list = list(range(n_heads))
    else:
        head_list = [heads] if isinstance(heads, (int, np.integer)) else list(heads)
        bad = [h for h in head_list if isinstance(h, bool)
               or not isinstance(h, (int, np.integer)) or not 0 <= h < n_heads]
        if bad or not head_list:
            raise UsageError(f"heads must be ints in 0..{n_heads - 1} (the model has "
                             f"{n_heads} heads), got {bad or head_list}")
    out = []
    for kind in kinds:
        for pos in positions:
            for layer in chosen:
                span = (_window(layer, int(window), info.n_layers)
                        if kind in ("attn", "mlp") else (layer,))
                if kind == "head":
                    out.extend(TraceSite(kind, layer, span, pos, int(h)) for h in head_list)
                else:
                    out.append(TraceSite(kind, layer, span, pos))
    return out


# ----------------------------------------------------------------------------- the engine


class _Tracer:
    """Runs the clean, corrupted and restored forwards of batches of prompts."""

    def __init__(self, model, info, noise_std: float, n_noise: int, seed: int) -> None:
        self.model = model
        self.info = info
        self.noise_std = noise_std
        self.n_noise = n_noise
        self.seed = seed
        self.device = next(model.parameters()).device
        self.pad = pad_id(info.tokenizer)
        self.head = info.hf.get_output_embeddings()
        self.d_model = int(model.cfg.d_model)

    def _probs(self, ids: torch.Tensor, last: torch.Tensor, answer: torch.Tensor,
               hooks: list) -> torch.Tensor:
        """The answer's probability at each row's ``last`` position ``[rows]`` (float64)."""
        got: dict[str, torch.Tensor] = {}

        def read(t: torch.Tensor, hook) -> None:
            got["x"] = t[torch.arange(t.shape[0], device=t.device), last.to(t.device)]
            raise StopForward

        with contextlib.suppress(StopForward):
            self.model.run_with_hooks(ids.to(self.device), return_type=None,
                                      fwd_hooks=[*hooks, ("unembed.hook_in", read)])
        logits = self.head(got["x"]).double()
        return torch.softmax(logits, -1)[torch.arange(len(answer)), answer.to(logits.device)]

    def batch(self, prompts: Sequence[TracePrompt], sites: Sequence[TraceSite],
              max_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(p_clean [B], p_corrupted [B], p_restored [B, S])`` for one batch of prompts."""
        B, K = len(prompts), self.n_noise
        clean_ids, lengths = pad_right([p.tokens for p in prompts], self.pad)
        T = clean_ids.shape[1]
        last = lengths - 1
        answer = torch.tensor([p.answer for p in prompts])
        names = sorted({_HOOKS[s.kind].format(layer) for s in sites for layer in s.layers})
        cache: dict[str, torch.Tensor] = {}

        def keep(name: str):
            def hook(t: torch.Tensor, hook) -> None:
                cache[name] = t.detach().clone()
            return hook

        with torch.inference_mode():
            p_clean = self._probs(clean_ids, last, answer, [(n, keep(n)) for n in names])
            counterfactual = prompts[0].counterfactual is not None
            if counterfactual:
                corr_ids = pad_right([p.counterfactual for p in prompts], self.pad)[0]
                noise = None
            else:
                corr_ids = clean_ids
                noise = torch.zeros(B * K, T, self.d_model)
                for b, p in enumerate(prompts):
                    z = item_noise(p, self.d_model, self.noise_std, self.seed, K)
                    noise[b * K:(b + 1) * K, p.span[0]:p.span[1]] = z
            rows_ids = corr_ids.repeat_interleave(K, 0)  # row b*K + k
            rows_last = last.repeat_interleave(K)
            rows_answer = answer.repeat_interleave(K)

            def embed_hook(reps: int):
                full = None if noise is None else noise.repeat(reps, 1, 1)

                def hook(t: torch.Tensor, hook) -> torch.Tensor:
                    return t + full.to(t.device, t.dtype)
                return hook

            def run(reps: int, extra: list) -> torch.Tensor:
                hooks = [] if noise is None else [("hook_embed", embed_hook(reps))]
                return self._probs(rows_ids.repeat(reps, 1), rows_last.repeat(reps),
                                   rows_answer.repeat(reps), [*hooks, *extra])

            p_corr = run(1, []).reshape(B, K).mean(1)
            per_chunk = max(1, max_rows // (B * K))
            restored = torch.empty(B, len(sites), dtype=torch.float64)
            for c in range(0, len(sites), per_chunk):
                chunk = sites[c:c + per_chunk]
                p = run(len(chunk), self._restore_hooks(chunk, prompts, cache))
                restored[:, c:c + len(chunk)] = p.reshape(len(chunk), B, K).mean(2).T
        return p_clean.cpu().numpy(), p_corr.cpu().numpy(), restored.cpu().numpy()

    def _restore_hooks(self, chunk: Sequence[TraceSite], prompts: Sequence[TracePrompt],
                       cache: dict[str, torch.Tensor]) -> list:
        """Hooks writing the clean values into the rows of each site of the chunk (row
        ``(s * B + b) * K + k``: site ``s``, prompt ``b``, noise sample ``k``)."""
        B, K = len(prompts), self.n_noise
        index: dict[str, tuple[list, list, list, list]] = {}
        for s, site in enumerate(chunk):
            for layer in site.layers:
                name = _HOOKS[site.kind].format(layer)
                rows, pos, src, heads = index.setdefault(name, ([], [], [], []))
                for b, p in enumerate(prompts):
                    for t in site.positions(p):
                        for k in range(K):
                            rows.append((s * B + b) * K + k)
                            pos.append(t)
                            src.append(b)
                            heads.append(-1 if site.head is None else site.head)
        hooks = []
        for name, (rows, pos, src, heads) in index.items():
            r, q, b, h = (torch.tensor(v, device=self.device) for v in (rows, pos, src, heads))
            clean = cache[name]
            whole = bool((h < 0).all())

            def hook(t: torch.Tensor, hook, r=r, q=q, b=b, h=h, clean=clean, whole=whole):
                if whole:
                    t[r, q] = clean[b, q].to(t.dtype)
                else:  # hook_z [batch, pos, head, d_head]
                    t[r, q, h] = clean[b, q, h].to(t.dtype)
                return t
            hooks.append((name, hook))
        return hooks


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise UsageError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def trace_items(
    model,
    suite,
    *,
    kinds: Sequence[str] = ("resid", "attn", "mlp"),
    positions: Sequence[str] = ("subject_last", "last"),
    layers: Iterable[int] | int | None = None,
    window: int = 1,
    heads: Iterable[int] | None = None,
    sites: Sequence[TraceSite] | None = None,
    corruption: str = "noise",
    corrupt: str = "subject",
    noise: float = 3.0,
    noise_std: float | None = None,
    n_noise: int = 1,
    tasks: Iterable[str] | None = None,
    n_per_task: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Trace every prompt of the suite's QA tasks at every site; one row per (task, prompt,
    site) with ``p_clean``, ``p_corrupted`` and ``p_restored`` (columns
    :data:`TRACE_ITEM_COLUMNS`).

    Args:
        model: a bridge from :func:`lenskit.load_model` (float weights; any family).
        suite: task sets (a dict or a list of :class:`~lenskit.tasks.TaskSet`); every
            traced task must be closed-book, open-book or overriding.
        kinds, positions, layers, window, heads: the sites (:func:`trace_sites`), unless
            ``sites`` gives them.
        corruption: ``"noise"`` or ``"counterfactual"`` (see the module docstring).
        corrupt: the span corrupted: ``"subject"`` (from the instance's ``meta``, see
            :func:`lenskit.tasks.subject_span`) or ``"answer"`` (the answer stated in the
            passage: which heads carry a read answer).
        noise: the noise's standard deviation in units of the empirical embedding std of
            the corrupted tokens (ROME: 3); ``noise_std`` sets it absolutely instead.
        n_noise: noise samples per prompt (the probabilities are averaged over them).
        tasks, n_per_task: trace only these tasks / at most this many prompts per task (a
            seeded subset).
        batch_size: rows per forward (rows = restored sites x prompts x noise samples).
        seed: seeds the noise, the subsets and the counterfactual donors.

    ``df.attrs`` records the corruption, the noise std used and how many prompts each task
    lost for want of a counterfactual donor.
    """
    from tqdm.auto import tqdm

    info = model_info(model)
    if corruption not in CORRUPTIONS:
        raise UsageError(f"unknown corruption {corruption!r}; allowed: {CORRUPTIONS}")
    batch_size = _check_int(batch_size, "batch_size", 1)
    n_noise = _check_int(n_noise, "n_noise", 1)
    if corruption == "counterfactual":
        n_noise = 1
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise > 0:
        raise UsageError(f"noise must be a number > 0 (a multiple of the embedding std), got "
                         f"{noise!r}")
    if noise_std is not None and (isinstance(noise_std, bool) or not isinstance(
            noise_std, (int, float)) or not noise_std > 0):
        raise UsageError(f"noise_std must be a number > 0 or None, got {noise_std!r}")
    if sites is None:
        sites = trace_sites(model, kinds=kinds, positions=positions, layers=layers,
                            window=window, heads=heads)
    else:
        sites = list(sites)
        for s in sites:
            if not isinstance(s, TraceSite):
                raise UsageError(f"sites must hold TraceSite objects, got {type(s).__name__}")
            if s.kind not in SITE_KINDS or s.position not in POSITIONS:
                raise UsageError(f"site {s}: kind must be one of {SITE_KINDS} and position "
                                 f"one of {POSITIONS}")
            if s.layers:  # no layers: a control that restores nothing
                check_layers(s.layers, info.n_layers)
    prepared = prepare_suite(suite, tasks, n_per_task, seed)
    for t in prepared.values():
        if t.kind not in ("closed_book", "open_book", "overriding"):
            raise UsageError(f"causal tracing needs QA tasks; {t.name!r} is {t.kind!r} (pick "
                             "tasks with tasks=)")
    # Everything is checked (subjects found, donors drawn) before the first forward.
    by_task = {name: trace_prompts(info, t, corrupt=corrupt, corruption=corruption,
                                   seed=seed) for name, t in prepared.items()}
    if corruption == "noise" and noise_std is None:
        std = float(noise) * embedding_noise_std(info, [p for ps in by_task.values()
                                                        for p in ps])
    else:
        std = float(noise_std) if noise_std is not None else float("nan")
    tracer = _Tracer(model, info, std, n_noise, seed)
    items_per_batch = max(1, min(batch_size // n_noise, 32))
    parts = []
    total = sum(len(ps) for ps in by_task.values())
    bar = tqdm(total=total, disable=not progress, unit="prompt", desc="causal trace",
               dynamic_ncols=True)
    for name, prompts in by_task.items():
        task = prepared[name]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].tokens))
        for start in range(0, len(order), items_per_batch):
            batch = [prompts[i] for i in order[start:start + items_per_batch]]
            pc, pk, pr = tracer.batch(batch, sites, batch_size)
            for s, site in enumerate(sites):
                parts.append(pd.DataFrame({
                    "task": name, "kind": task.kind, "category": task.category,
                    "instance_id": [p.id for p in batch], "donor": [p.donor for p in batch],
                    "kind_of_site": site.kind, "layer": site.layer,
                    "first_layer": site.layers[0] if site.layers else site.layer,
                    "last_layer": site.layers[-1] if site.layers else site.layer,
                    "head": pd.NA if site.head is None else site.head,
                    "position": site.position, "window": len(site.layers),
                    "scope": site.scope, "p_clean": pc, "p_corrupted": pk,
                    "p_restored": pr[:, s]}))
            bar.update(len(batch))
    bar.close()
    df = (pd.concat(parts, ignore_index=True) if parts
          else pd.DataFrame(columns=list(TRACE_ITEM_COLUMNS)))
    df.insert(0, "model", info.spec)
    df["head"] = pd.array(df["head"], dtype="Int64")
    df = df[list(TRACE_ITEM_COLUMNS)]
    df.attrs.update({"corruption": corruption, "corrupt": corrupt, "noise_std": std,
                     "n_noise": n_noise, "seed": seed, "model_params": info.total_params,
                     "dropped": {n: len(prepared[n]) - len(ps) for n, ps in by_task.items()}})
    return df


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.abs(den) > 1e-12, num / den, np.nan)


def trace_rows(items: pd.DataFrame, *, n_bootstrap: int = 1000, ci: float = 0.95,
               seed: int | None = None, corruption: str | None = None,
               model_params: int | None = None, noise_std: float | None = None,
               corrupt: str | None = None) -> pd.DataFrame:
    """Map rows of traced prompts (:func:`trace_items`): per task and site, the mean of
    each of :data:`TRACE_METRICS` with a percentile bootstrap interval over prompts.

    Rows: ``analysis == "causal_trace"``, ``method`` the corruption, ``family``
    ``resid``/``attn``/``mlp``, ``unit`` ``site`` or ``head``; ``value`` the metric,
    ``ci_low``/``ci_high`` its interval; ``baseline`` what full recovery would give
    (``p_clean`` for ``p_restored``, the total effect ``p_clean - p_corrupted`` for the
    indirect effect, 1 for the normalised one), so ``drop`` is what the site leaves
    missing; ``p_clean`` and ``p_corrupted`` are the task's means. Nothing is pruned
    (sparsities and parameter counts are 0). The metadata default to ``items.attrs``.
    """
    need = set(TRACE_ITEM_COLUMNS) - {"model"}
    missing = sorted(need - set(items.columns))
    if missing:
        raise UsageError(f"not a trace item frame: missing column(s) {missing}")
    n_bootstrap = _check_int(n_bootstrap, "n_bootstrap", 0)
    attrs = items.attrs
    corruption = corruption or attrs.get("corruption", "noise")
    seed = int(attrs.get("seed", 0) if seed is None else seed)
    model_params = int(attrs.get("model_params", 0) if model_params is None else model_params)
    noise_std = float(attrs.get("noise_std", np.nan) if noise_std is None else noise_std)
    corrupt = corrupt or attrs.get("corrupt", "subject")
    out = []
    for (task, scope), g in items.groupby(["task", "scope"], sort=False):
        clean = g["p_clean"].to_numpy(np.float64)
        corr = g["p_corrupted"].to_numpy(np.float64)
        rest = g["p_restored"].to_numpy(np.float64)
        values = np.vstack([clean, corr, rest])
        mean = values.mean(1)
        point = {"p_restored": (mean[2], mean[0]),
                 "indirect_effect": (mean[2] - mean[1], mean[0] - mean[1]),
                 "normalised_effect": (_ratio(mean[2] - mean[1], mean[0] - mean[1]), 1.0)}
        lo = dict.fromkeys(TRACE_METRICS, np.nan)
        hi = dict.fromkeys(TRACE_METRICS, np.nan)
        if n_bootstrap and len(g) > 1:
            draws = bootstrap_means(values, None, n_bootstrap,
                                    [seed, zlib.crc32(f"{task}|{scope}".encode())])
            ie = draws[:, 2] - draws[:, 1]
            for metric, d in (("p_restored", draws[:, 2]), ("indirect_effect", ie),
                              ("normalised_effect", _ratio(ie, draws[:, 0] - draws[:, 1]))):
                lo[metric], hi[metric] = percentile_interval(d, ci)
        first = g.iloc[0]
        head = first["head"]
        is_head = first["kind_of_site"] == "head"
        for metric in TRACE_METRICS:
            value, base = point[metric]
            out.append({
                "model": first.get("model", ""), "analysis": "causal_trace",
                "method": corruption, "seed": seed, "scope": scope,
                "layer": int(first["layer"]), "first_layer": int(first["first_layer"]),
                "last_layer": int(first["last_layer"]), "direction": "",
                "family": _FAMILY[first["kind_of_site"]],
                "component": "o" if is_head else "all",
                "unit": "head" if is_head else "site",
                "head": head if is_head else pd.NA,
                "unit_label": f"head {head}" if is_head else str(first["kind_of_site"]),
                "target_sparsity": 0.0, "achieved_sparsity": 0.0, "params_removed": 0,
                "group_params": 0, "model_params": model_params, "task": task,
                "kind": first["kind"], "category": first["category"], "metric": metric,
                "value": float(value), "n": len(g), "ci_low": lo[metric],
                "ci_high": hi[metric], "baseline": float(base),
                "drop": float(base - value),
                "relative_drop": float(_ratio(np.float64(base - value), np.float64(base))),
                "position": first["position"], "window": int(first["window"]),
                "corrupt": corrupt, "noise_std": noise_std, "p_clean": float(mean[0]),
                "p_corrupted": float(mean[1]),
            })
    df = finish_frame([pd.DataFrame(out)] if out else [])
    for col, dtype in TRACE_COLUMNS.items():
        if col not in df.columns:
            df[col] = pd.Series(dtype="object" if dtype == "str" else dtype)
        df[col] = df[col].astype(str if dtype == "str" else dtype)
    return df


def causal_trace(model, suite, *, n_bootstrap: int = 1000, ci: float = 0.95,
                 **kwargs) -> pd.DataFrame:
    """Trace the suite (:func:`trace_items`, same keyword arguments) and aggregate it into
    map rows (:func:`trace_rows`). Restoring nothing gives ``p_corrupted`` and restoring
    the residual stream at every position gives ``p_clean`` (tested)."""
    items = trace_items(model, suite, **kwargs)
    return trace_rows(items, n_bootstrap=n_bootstrap, ci=ci)
