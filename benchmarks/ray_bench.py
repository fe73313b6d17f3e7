"""The ray executor against the local one: throughput and per-cell cost, same grid, same run.

Runs one organism grid twice into fresh run directories: with the local executor (this
process, one torch thread) and with the ray executor on a local 2-CPU Ray cluster (two
workers of one CPU and one torch thread each). The cluster is started before the ray sweep
is timed (a cluster is up before a sweep is sent to it); the ray sweep's time includes
starting its workers and loading the model in each. Prints a markdown table:

- throughput ratio = local wall time / ray wall time (target >= 1.7 on an idle 2-core machine);
- per-cell time = the seconds a cell takes where it runs (its share of pruning plus its
  evaluation, from the manifest), ray against local (target: under 10% more);
- fixed cost of ray = ray wall time - (ray cell seconds / workers): worker start, model
  loads, uneven finish and transport;
- why whole pruner groups are the work unit: setting a pruner up (calibration statistics,
  scores, one level) against evaluating one cell; single-cell units would pay it per cell.

    python -m benchmarks.ray_bench [--quick]

``--quick`` runs a 5-cell grid (a check that the script works, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

GRID = {"models": "organism", "methods": "magnitude,wanda", "scopes": "all;attn;mlp",
        "sparsities": "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", "matched": "false",
        "calibration.n_samples": "16", "calibration.seq_len": "64"}
QUICK = {**GRID, "methods": "magnitude", "scopes": "attn;mlp", "sparsities": "0.3,0.7",
         "tasks": "closed_book"}


def _cell_seconds(run_dir: Path) -> float:
    cells = json.loads((run_dir / "manifest.json").read_text())["cells"]
    return sum(c["seconds"] for c in cells.values())


def _pruner_setup(grid: dict) -> tuple[float, float]:
    """Seconds to set up a Wanda pruner (its calibration pass and scores) and prune one
    level, and to evaluate one cell."""
    from lenskit.models import load_model, pruned
    from lenskit.pruning import Pruner, default_calibration
    from lenskit.sweep.config import load_config
    from lenskit.tasks import default_suite, evaluate_suite

    cfg = load_config(None, {**grid, "out_dir": "unused"})
    model = load_model("organism")
    suite = cfg.select_tasks(default_suite(model, cfg.task_size, 0))
    # calibration data is built once per seed and worker, not per unit: not timed
    calib = default_calibration(model, n_samples=cfg.calibration.n_samples,
                                seq_len=cfg.calibration.seq_len, seed=0)
    t0 = time.perf_counter()
    r = Pruner(model, "wanda", scope="mlp", calibration=calib, seed=0).sweep([0.5])[0.5]
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad(), pruned(model, r.masks, r.weights):
        evaluate_suite(model, suite, batch_size=cfg.batch_size)
    return setup, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 5-cell grid: checks the script")
    args = ap.parse_args()
    import ray

    from lenskit.sweep.config import load_config
    from lenskit.sweep.runner import run_sweep

    torch.set_num_threads(1)
    grid = QUICK if args.quick else GRID
    workers = 2
    with tempfile.TemporaryDirectory() as tmp:
        def sweep(name: str, **extra) -> tuple[float, int, Path]:
            out = Path(tmp) / name
            cfg = load_config(None, {**grid, "out_dir": str(out), **extra})
            t0 = time.perf_counter()
            res = run_sweep(cfg, progress=False, echo=lambda _: None)
            return time.perf_counter() - t0, res.cells_run, out

        local_wall, n, local_dir = sweep("local")
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        try:
            ray_wall, n_ray, ray_dir = sweep("ray", executor="ray", workers=str(workers),
                                             num_cpus="1")
        finally:
            ray.shutdown()
        assert n_ray == n
        local_cell = _cell_seconds(local_dir) / n
        ray_cell = _cell_seconds(ray_dir) / n
    setup, one_eval = _pruner_setup(grid)
    fixed = ray_wall - ray_cell * n / workers
    print(f"organism grid: {n} cells{' (--quick: not a measurement)' if args.quick else ''}; "
          f"local = 1 process, 1 thread; ray = {workers} workers x 1 CPU, 1 thread\n")
    print("| measure | local | ray | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| sweep wall time (s) | {local_wall:.1f} | {ray_wall:.1f} | "
          f"{local_wall / ray_wall:.2f}x throughput |")
    print(f"| time per cell where it runs (s) | {local_cell:.2f} | {ray_cell:.2f} | "
          f"{ray_cell / local_cell - 1:+.1%} per-cell overhead |")
    print(f"| ray fixed cost: start, loads, uneven finish (s) | - | {fixed:.1f} | "
          f"{fixed / ray_wall:.0%} of ray wall |")
    print(f"| pruner set-up + 1 level vs 1 cell's evaluation (s) | {setup:.2f} | "
          f"{one_eval:.2f} | {setup / one_eval:.0%} per cell if units were single cells |")


if __name__ == "__main__":
    main()
