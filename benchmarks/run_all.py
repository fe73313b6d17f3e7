"""Run every benchmark in turn (`make bench`); each prints a markdown table."""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("pruning_bench", "tasks_bench", "sensitivity_bench", "attention_bench",
              "study_bench", "calibration_bench", "sequential_pipeline_bench")


def main() -> None:
    for name in BENCHMARKS:
        print(f"\n## benchmarks.{name}\n", flush=True)
        t0 = time.perf_counter()
        sys.argv = [f"benchmarks.{name}"]
        importlib.import_module(f"benchmarks.{name}").main()
        print(f"\n({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
