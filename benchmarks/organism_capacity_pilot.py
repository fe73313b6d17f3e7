"""Capacity pilot for the organism family: closed-book recall against exposures per fact.

Run (one thread; resumable, the run directory keeps its checkpoint)::

    OMP_NUM_THREADS=1 python -m benchmarks.organism_capacity_pilot --d-model 32 \\
        --steps 2400 --n-entities 2500 --out /tmp/pilot-d32

It trains one member of the family recipe (:func:`lenskit.organism.family.family_config`)
on a world of ``--n-entities`` x 4 facts (zipf ``--zipf-exponent``) for ``--steps`` steps
(cosine schedule over those steps), then scores the organism's small task suite and reports

- closed-book exact match per popularity bucket (head / torso / tail, 300 facts each), and
  against the number of training documents that stated each fact (world.json records it
  exactly), in bins;
- open-book, overriding and the function tasks (the in-context side of the recipe).

``--checkpoint-of RUN_DIR`` scores the latest checkpoint of a run instead (a family member
still training: ``--checkpoint-of ROOT/organism-d32 --out /tmp/d32-now``),
with the exposure counted for the steps it has done. ``--json`` writes the numbers. It is a
pilot to choose the family's world and length, not a benchmark of speed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lenskit.models import load_model
from lenskit.organism.family import FAMILY_CORPUS, FAMILY_WORLD, family_config
from lenskit.organism.train import export_checkpoint, train
from lenskit.tasks import evaluate_suite, organism_suite

EXPOSURE_BINS = (0, 10, 30, 100, 300, 1000, 10**9)


def exposure_table(rows: pd.DataFrame, tasks: dict) -> pd.DataFrame:
    """Closed-book exact match by exposure bin: ``rows`` are ``EvalResult.rows``, ``tasks``
    the suite whose closed-book instances carry ``meta["exposure"]``."""
    exposure = {it.id: it.meta["exposure"] for name, t in tasks.items()
                if name.startswith("closed_book") for it in t.instances}
    cb = rows[rows["task"].str.startswith("closed_book")].copy()
    cb["exposure"] = cb["instance_id"].map(exposure)
    labels = [f"{a}-{b - 1}" if b < 10**9 else f">={a}"
              for a, b in itertools.pairwise(EXPOSURE_BINS)]
    cb["bin"] = pd.cut(cb["exposure"], EXPOSURE_BINS, right=False, labels=labels)
    return (cb.groupby("bin", observed=True)
            .agg(n=("correct", "size"), em=("correct", "mean"),
                 median_exposure=("exposure", "median")).reset_index())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--n-entities", type=int, default=FAMILY_WORLD.n_memorised)
    ap.add_argument("--zipf-exponent", type=float, default=FAMILY_WORLD.zipf_exponent)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", required=True, help="run directory (resumes if present)")
    ap.add_argument("--checkpoint-of", metavar="RUN_DIR",
                    help="instead of training: score the latest checkpoint of this run (e.g. a "
                         "family member still training), exported to --out")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()

    t0 = time.time()
    if args.checkpoint_of:
        run = Path(args.checkpoint_of)
        final = export_checkpoint(run, args.out)
        recorded = json.loads((run / "train_config.json").read_text())
        args.d_model = recorded["model"]["d_model"]
        args.n_entities = recorded["world"]["n_memorised"]
        args.zipf_exponent = recorded["world"]["zipf_exponent"]
        args.steps = json.loads((final / "world.json").read_text())["exposure_config"]["steps"]
        log_dir = run
    else:
        world = replace(FAMILY_WORLD, n_memorised=args.n_entities,
                        zipf_exponent=args.zipf_exponent)
        cfg = family_config(args.d_model, steps=args.steps, world=world, corpus=FAMILY_CORPUS,
                            dtype=args.dtype, eval_every=10**9)
        final = train(args.out, cfg, progress=False)
        log_dir = Path(args.out)
    train_s = time.time() - t0
    model = load_model(final)
    tasks = organism_suite(model, "small", seed=0)
    result = evaluate_suite(model, tasks, batch_size=64)
    summary = result.summary(n_bootstrap=200)
    em = summary[summary["metric"].isin(["em", "memorised_rate"])]
    table = exposure_table(result.rows, tasks)
    n_facts = 4 * args.n_entities
    print(f"d{args.d_model}, {n_facts} facts (zipf {args.zipf_exponent}), {args.steps} steps, "
          f"{train_s:.0f} s wall this call" + (f" (checkpoint of {args.checkpoint_of})"
                                               if args.checkpoint_of else ""))
    for r in em.itertuples():
        print(f"  {r.task}/{r.metric}: {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")
    print("closed-book EM by exposures per fact (documents stating it in training):")
    for r in table.itertuples():
        print(f"  {r.bin:>9}: EM {r.em:.3f} (n={r.n}, median exposure {r.median_exposure:.0f})")
    log = (log_dir / "train_log.jsonl").read_text().splitlines()[: args.steps]
    loss = float(np.mean([json.loads(line)["loss"] for line in log[-100:]]))
    print(f"training loss (mean of the last 100 steps): {loss:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"d_model": args.d_model, "n_facts": n_facts, "steps": args.steps,
                       "zipf_exponent": args.zipf_exponent,
                       "scores": {f"{r.task}/{r.metric}": r.value for r in em.itertuples()},
                       "by_exposure": json.loads(table.to_json(orient="records")),
                       "loss_last_100": loss}, f, indent=1)


if __name__ == "__main__":
    main()
