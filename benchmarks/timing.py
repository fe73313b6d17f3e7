"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved(fns: dict[str, Callable[[], object]], repeat: int
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall and CPU time (seconds) of each function over ``repeat`` interleaved rounds.

    Rounds alternate the functions so that a slow spell of the machine (another process
    taking the core) hits all of them alike; CPU time (this process only) is reported too,
    as it is insensitive to such spells.
    """
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[name] = min(wall[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], time.process_time() - c)
    return wall, cpu
