"""Wall time of the README's first command (`lenskit sweep`, the default study).

Runs the default study on the shipped organism into a fresh temporary run directory, in a
subprocess exactly as `make study` does, and reports its wall time beside the time of one
dense evaluation of the same suite measured in this run (the unit of work of every cell).

    python -m benchmarks.study_bench [--keep DIR]

``--keep DIR`` runs the study into DIR (which must not hold a run yet) instead of a
temporary directory, so that its results and figures are kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", help="run directory to keep the study in (must be new)")
    args = ap.parse_args()
    if args.keep and (Path(args.keep) / "manifest.json").exists():
        raise SystemExit(f"--keep {args.keep}: already holds a run; a resumed run would not "
                         "measure the whole study")
    import lenskit
    from lenskit.sweep import default_config
    from lenskit.tasks import default_suite, evaluate_suite

    cfg = default_config()
    model = lenskit.load_model("organism")
    suite = default_suite(model, cfg.task_size, 0)
    evaluate_suite(model, suite, batch_size=cfg.batch_size)  # warm-up
    t0 = time.perf_counter()
    evaluate_suite(model, suite, batch_size=cfg.batch_size)
    one_eval = time.perf_counter() - t0
    n_cells = len(cfg.cells())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "study"
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lenskit", "sweep", "--out", str(out)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        study = time.perf_counter() - t0
    print("| measure | seconds | ratio |")
    print("|---|---:|---:|")
    print(f"| one dense evaluation of the small suite | {one_eval:.1f} | 1.0 |")
    print(f"| `lenskit sweep` (default study, {n_cells} cells, incl. start-up, "
          f"thresholds, figures) | {study:.0f} | {study / one_eval:.1f} |")
    print(f"| per cell | {study / n_cells:.1f} | {study / n_cells / one_eval:.2f} |")
    print(f"\ntorch threads: {__import__('torch').get_num_threads()}; "
          f"budget: 600 s ({'within' if study <= 600 else 'OVER'})")


if __name__ == "__main__":
    main()
