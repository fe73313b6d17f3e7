"""Sequential calibration: lenskit's ``prune()`` against the references' whole-model pipeline.

Run::

    OMP_NUM_THREADS=1 python -m benchmarks.sequential_pipeline_bench            # the organism
    OMP_NUM_THREADS=1 python -m benchmarks.sequential_pipeline_bench --model tiny-llama

The baseline (:func:`reference_pipeline`) is written here in the shape of the published
whole-model pipelines of Wanda (``prune_wanda`` / ``prune_sparsegpt`` of the Wanda code) and
SparseGPT (``llama_sequential`` without true-sequential groups): a Catcher module in place of
block 0 stores each calibration sample's block input (one sample per forward call, the call
stopped by an exception); then, block by block, forward hooks on every linear of the block
accumulate the statistics one sample at a time (Wanda's running mean of squared feature
norms; SparseGPT's ``H`` rescaled by ``n / (n + 1)`` before each addition) while the dense
block runs on each sample in turn; each linear is pruned (Wanda: ``|W| sqrt(scaler_row)``,
stable sort per output row, the lowest ``int(s * in_features)`` zeroed; SparseGPT:
:func:`lenskit.pruning.reference.reference_sparsegpt`, the blocked OBS with the reference's
per-column loop and ``<=`` threshold); the pruned block is run again on each sample and its
outputs are the next block's inputs. Two adaptations to current transformers: the Catcher
keeps every keyword argument the model gives its blocks (rotary embeddings are computed once
per model call now), and weights are written in place (``copy_``), not by replacing
``weight.data``, so that the TransformerLens bridge's views stay in sync.

In the same process and on the same calibration tokens this times (process CPU time, one
torch thread, rounds interleaved, medians) one level of the reference pipeline and of
lenskit's sequential ``prune(..., mode="sequential")`` (Pruner construction and applying the
result included; calibration tokens given to both), checks that Wanda's masks are bit for
bit equal, and compares SparseGPT's reconstruction error: the relative error of the last
block's output (before the final norm) over the calibration tokens, pruned model against
dense model. It also times ten sequential levels (``Pruner.sweep``, 0.05 to 0.95) against one
(``Pruner.prune``), a fresh Pruner each time.

The bound: a sequential level must compute, per block, the statistics pass up to the last
linear's input (every linear but the FFW's output projection, on the dense weights) and, for
every block but the last, the pruned block's outputs (every linear). ``linear floor`` times
only those matrix products (random operands of the same shapes, lenskit's batches of 16
sequences; for SparseGPT also the ``X^T X`` of every input group): the reference's time over it is the largest speed-up any float32 implementation
of the same computation could reach here, even with attention, norms, activations,
statistics and mask selection free.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lenskit.models import load_model, make_tiny_model, model_info, restore
from lenskit.pruning import Pruner, calibration_from_source, prune
from lenskit.pruning.reference import reference_sparsegpt
from lenskit.pruning.statistics import GroupStats, group_sites

# Ten non-zero levels (a level of 0 prunes nothing; the study's levels are 0.1 ... 0.9).
TEN_LEVELS = [round(0.05 + 0.1 * i, 2) for i in range(10)]


# --- the reference pipeline ---------------------------------------------------------------

def find_linears(module: nn.Module, prefix: str = "") -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` under ``module`` by dotted name (as the references' find_layers)."""
    if type(module) is nn.Linear:
        return {prefix: module}
    out: dict[str, nn.Linear] = {}
    for name, child in module.named_children():
        out.update(find_linears(child, f"{prefix}.{name}" if prefix else name))
    return out


def _as_rows(inp: torch.Tensor) -> torch.Tensor:
    """A linear's input ``[batch, seq, d]`` (or ``[seq, d]``) as ``[d, tokens]``, and the
    number of samples it holds (the references' add_batch preamble)."""
    if inp.ndim == 2:
        inp = inp.unsqueeze(0)
    return inp.reshape(-1, inp.shape[-1]).t(), inp.shape[0]


class ScalerRow:
    """Wanda's per-linear statistics: running mean over samples of squared feature norms."""

    def __init__(self, layer: nn.Linear) -> None:
        self.scaler_row = torch.zeros(layer.in_features, device=layer.weight.device)
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        x, n = _as_rows(inp)
        self.scaler_row *= self.nsamples / (self.nsamples + n)
        self.nsamples += n
        self.scaler_row += torch.norm(x.float(), p=2, dim=1) ** 2 / self.nsamples


class Hessian:
    """SparseGPT's per-linear statistics: ``H = 2/N sum X X^T``, rescaled before each add."""

    def __init__(self, layer: nn.Linear) -> None:
        d = layer.in_features
        self.H = torch.zeros(d, d, device=layer.weight.device)
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        x, n = _as_rows(inp)
        self.H *= self.nsamples / (self.nsamples + n)
        self.nsamples += n
        x = (2 / self.nsamples) ** 0.5 * x.float()
        self.H += x.matmul(x.t())


def _wanda_prune(layer: nn.Linear, st: ScalerRow, sparsity: float, prunen: int,
                 prunem: int) -> torch.Tensor:
    w = layer.weight.data
    metric = torch.abs(w) * torch.sqrt(st.scaler_row.reshape(1, -1))
    mask = torch.zeros_like(metric, dtype=torch.bool)
    if prunen:
        for ii in range(0, metric.shape[1], prunem):
            tmp = metric[:, ii:ii + prunem].float()
            mask.scatter_(1, ii + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
    else:
        order = torch.sort(metric, dim=-1, stable=True)[1]
        mask.scatter_(1, order[:, :int(metric.shape[1] * sparsity)], True)
    w[mask] = 0
    return mask


def _sparsegpt_prune(layer: nn.Linear, st: Hessian, sparsity: float, prunen: int,
                     prunem: int) -> torch.Tensor:
    new = reference_sparsegpt(layer.weight.data, st.H, sparsity, prunen, prunem,
                              blocksize=128, percdamp=0.01)
    del st.H
    layer.weight.data.copy_(new.to(layer.weight.dtype))  # in place: bridge views stay valid
    return new == 0


_METHODS = {"wanda": (ScalerRow, _wanda_prune), "sparsegpt": (Hessian, _sparsegpt_prune)}


def _first(out: Any) -> torch.Tensor:
    # Decoder layers return a tuple (older transformers) or the hidden states (newer ones).
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def reference_pipeline(hf: nn.Module, blocks_path: str, tokens: torch.Tensor, method: str,
                       sparsity: float, prunen: int = 0, prunem: int = 0
                       ) -> dict[str, torch.Tensor]:
    """Prune every linear of every block of ``hf`` in place, as the references' sequential
    pipelines do (see the module docstring); returns the pruned positions (``True`` =
    pruned) by HF module path."""
    make_stats, prune_linear = _METHODS[method]
    use_cache = hf.config.use_cache
    hf.config.use_cache = False
    layers = hf.get_submodule(blocks_path)
    n, seqlen = tokens.shape
    dtype = next(iter(hf.parameters())).dtype
    inps = torch.zeros((n, seqlen, hf.config.hidden_size), dtype=dtype)
    cache: dict[str, Any] = {"i": 0, "kwargs": None}

    class Catcher(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, inp, *args, **kwargs):
            inps[cache["i"]] = inp
            cache["i"] += 1
            cache["args"], cache["kwargs"] = args, kwargs
            raise ValueError

    layers[0] = Catcher(layers[0])
    for j in range(n):  # the references' dataloader: one sample per batch
        with contextlib.suppress(ValueError):
            hf(tokens[j:j + 1])
    layers[0] = layers[0].module
    outs = torch.zeros_like(inps)
    args, kwargs = cache["args"], cache["kwargs"]

    pruned: dict[str, torch.Tensor] = {}
    for i in range(len(layers)):
        layer = layers[i]
        subset = find_linears(layer)
        stats = {name: make_stats(mod) for name, mod in subset.items()}

        def add_batch(st: ScalerRow | Hessian) -> Callable:
            def hook(_module, inp, _out):
                st.add_batch(inp[0].data)
            return hook

        handles = [subset[name].register_forward_hook(add_batch(st))
                   for name, st in stats.items()]
        for j in range(n):
            outs[j] = _first(layer(inps[j].unsqueeze(0), *args, **kwargs))[0]
        for h in handles:
            h.remove()
        for name, mod in subset.items():
            pruned[f"{blocks_path}.{i}.{name}"] = prune_linear(mod, stats[name], sparsity,
                                                                prunen, prunem)
        for j in range(n):
            outs[j] = _first(layer(inps[j].unsqueeze(0), *args, **kwargs))[0]
        inps, outs = outs, inps
    hf.config.use_cache = use_cache
    return pruned


# --- measuring ----------------------------------------------------------------------------

@torch.no_grad()
def last_hidden(hf: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The last block's output (before the final norm) on ``tokens`` ``[n, seq, d]``."""
    out = hf(tokens, output_hidden_states=True, use_cache=False)
    return out.hidden_states[-1]


def rel_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).double().norm() / ref.double().norm())


def linear_floor(info, n_samples: int, seq_len: int, hessians: bool,
                 batch_size: int = 16) -> float:
    """Process CPU seconds of only the matrix products of one sequential level of scope
    ``all`` (see the module docstring), on random operands of the same shapes; with
    ``hessians`` (SparseGPT) also the statistics pass's ``X^T X`` of every input group, as
    lenskit accumulates it (:class:`lenskit.pruning.statistics.GroupStats`)."""
    by_layer: dict[int, list] = {}
    for site in info.select("all"):
        by_layer.setdefault(site.layer, []).append(site)
    gen = torch.Generator().manual_seed(0)
    weights = {s.name: torch.randn(s.shape, generator=gen) for s in info.select("all")}
    dims = {s.shape[1] for s in info.select("all")}
    sizes = [min(batch_size, n_samples - i) for i in range(0, n_samples, batch_size)]
    xs = {(b, d): torch.randn(b, seq_len, d, generator=gen) for b in set(sizes) for d in dims}
    last = max(by_layer)
    c = time.process_time()
    for layer, sites in by_layer.items():
        groups = group_sites(sites)
        stats = {g: GroupStats(m[0].shape[1], "hessian") for g, m in groups.items()}
        for b in sizes:
            for s in sites[:-1]:  # the statistics pass stops at the last linear's input
                F.linear(xs[b, s.shape[1]], weights[s.name])
            if hessians:
                for g, st in stats.items():
                    st.add(xs[b, groups[g][0].shape[1]])
            if layer != last:  # the pruned block's outputs feed the next block
                for s in sites:
                    F.linear(xs[b, s.shape[1]], weights[s.name])
    return time.process_time() - c


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _model(spec: str, tmp: str):
    if spec == "tiny-llama":
        # A tiny Llama (GQA) with real-sized rows: d_model 256, FFW 688, 4 blocks.
        path = make_tiny_model("llama", f"{tmp}/tiny-llama", d_model=256, n_layers=4,
                               n_heads=8, d_ffn=688, seed=0)
        return load_model(str(path))
    return load_model(spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism",
                    help="'organism' (default), 'tiny-llama' or a model spec/path")
    ap.add_argument("--source", default="default",
                    help="calibration source ('random' for tiny-llama: its word-level "
                         "vocabulary covers little of the shipped English text)")
    ap.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"])
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--n-samples", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--level-repeat", type=int, default=3,
                    help="rounds of the ten-levels / one-level timing (0: skip it)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(args.model, tmp)
        run(model, args)


def run(model, args) -> None:
    info = model_info(model)
    hf = info.hf
    cal = calibration_from_source(model, args.source, n_samples=args.n_samples,
                                  seq_len=args.seq_len, seed=0)
    tokens = cal.tokens
    sites = info.select("all")
    by_path = {s.hf_path: s.name for s in sites}
    linears = {f"{info.arch.blocks}.{i}.{n}": m for i, b in enumerate(hf.get_submodule(
        info.arch.blocks)) for n, m in find_linears(b).items()}
    if set(linears) != set(by_path):
        raise SystemExit(f"the blocks' linears {sorted(set(linears) ^ set(by_path))} are not "
                         "lenskit's sites: this pipeline compares scope 'all' only")
    originals = {p: m.weight.detach().clone() for p, m in linears.items()}
    dense_out = last_hidden(hf, tokens)

    def put_back() -> None:
        with torch.no_grad():
            for p, m in linears.items():
                m.weight.copy_(originals[p])
        restore(model)

    print(f"model {args.model}: {len(info.sites)} block linears, "
          f"{sum(s.numel for s in sites):,} weights; calibration {cal.n_samples} x "
          f"{cal.seq_len} tokens ({cal.description}); sparsity {args.sparsity}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), {platform.machine()}; "
          f"process CPU time, medians of {args.repeat} interleaved rounds\n")
    rows = []
    for method in args.methods:
        times: dict[str, list[float]] = {"reference": [], "lenskit": [], "floor": []}
        ref_mask = ref_err = lk_mask = lk_err = None
        for _ in range(args.repeat):
            for who in ("reference", "lenskit"):
                c = time.process_time()
                if who == "reference":
                    mk = reference_pipeline(hf, info.arch.blocks, tokens, method, args.sparsity)
                else:
                    res = prune(model, method, args.sparsity, calibration=cal,
                                mode="sequential", apply=True)
                times[who].append(time.process_time() - c)
                err = rel_error(last_hidden(hf, tokens), dense_out)
                if who == "reference":
                    ref_mask, ref_err = mk, err
                else:
                    lk_mask = {p: ~res.masks[by_path[p]] for p in linears}
                    lk_err = err
                put_back()
            times["floor"].append(linear_floor(info, cal.n_samples, cal.seq_len,
                                               hessians=method == "sparsegpt"))
        assert ref_mask is not None and lk_mask is not None
        equal = all(torch.equal(ref_mask[p], lk_mask[p]) for p in linears)
        agree = (sum(int((ref_mask[p] == lk_mask[p]).sum()) for p in linears)
                 / sum(m.numel() for m in ref_mask.values()))
        ref_t, lk_t = _median(times["reference"]), _median(times["lenskit"])
        rows.append((method, ref_t, lk_t, _median(times["floor"]), ref_err, lk_err, equal,
                     agree))
    print("| method | reference pipeline (s) | lenskit prune() (s) | speed-up | "
          "linear floor (s) | reference / floor | "
          "rel. error of last block output (ref / lenskit) | masks bitwise equal | "
          "mask entries equal |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    for method, ref_t, lk_t, floor, ref_err, lk_err, equal, agree in rows:
        print(f"| {method} | {ref_t:.3f} | {lk_t:.3f} | {ref_t / lk_t:.2f}x | {floor:.3f} | "
              f"{ref_t / floor:.2f}x | {ref_err:.5f} / {lk_err:.5f} | "
              f"{'yes' if equal else 'no'} | {agree:.6f} |")
    if args.level_repeat:
        print(f"\nTen sequential levels ({TEN_LEVELS}, Pruner.sweep) against one "
              f"({args.sparsity}, Pruner.prune), a fresh Pruner each time, medians of "
              f"{args.level_repeat} interleaved rounds:\n")
        print("| method | one level (s) | ten levels (s) | ratio |")
        print("|---|---:|---:|---:|")
        for method in args.methods:
            t1, t10 = [], []
            for _ in range(args.level_repeat):
                c = time.process_time()
                Pruner(model, method, calibration=cal, mode="sequential").prune(args.sparsity)
                t1.append(time.process_time() - c)
                c = time.process_time()
                Pruner(model, method, calibration=cal, mode="sequential").sweep(TEN_LEVELS)
                t10.append(time.process_time() - c)
            a, b = _median(t1), _median(t10)
            print(f"| {method} | {a:.3f} | {b:.3f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
