"""Sequential calibration: lenskit's ``prune()`` against the references' whole-model pipeline.

Run::

    OMP_NUM_THREADS=1 python -m benchmarks.sequential_pipeline_bench            # the organism
    OMP_NUM_THREADS=1 python -m benchmarks.sequential_pipeline_bench --model tiny-llama

The baseline is :func:`lenskit.pruning.reference.reference_pipeline`, the shape of the
published whole-model pipelines of Wanda (``prune_wanda`` / ``prune_sparsegpt``) and SparseGPT
(``llama_sequential``): a Catcher for block 0's inputs, one calibration sample per forward
call, per-sample statistics hooks on every linear of a block, each linear pruned, the pruned
block re-run per sample to feed the next (see its docstring).

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
sequences; for SparseGPT also the ``X^T X`` of every input group): the reference's time
over it is the largest speed-up any float32 implementation of the same computation could
reach here, even with attention, norms, activations, statistics and mask selection free.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from lenskit.models import load_model, make_tiny_model, model_info, restore
from lenskit.pruning import Pruner, calibration_from_source, prune
from lenskit.pruning.reference import find_linears, reference_pipeline
from lenskit.pruning.statistics import GroupStats, group_sites

# Ten non-zero levels (a level of 0 prunes nothing; the study's levels are 0.1 ... 0.9).
TEN_LEVELS = [round(0.05 + 0.1 * i, 2) for i in range(10)]


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
