"""A sweep's plan: everything the runner needs, derived from its config once, before the
run directory is touched.

:func:`plan_sweep` applies the executor settings given beside the config, checks the
config (:meth:`SweepConfig.validate`, then :func:`lenskit.sweep.preflight.preflight`
against the models' configs, suites and the calibration source), expands its cells, builds
the executor and the record the run directory stores (:class:`~lenskit.rundir.records.RunConfig`).
A mistake therefore costs a second and leaves nothing on disk. From then on the config
travels only inside the work units the executor runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenskit.rundir.records import RunConfig
from lenskit.sweep.config import Cell, ConfigError, SweepConfig
from lenskit.sweep.executors import Executor, WorkUnit, executor_problems, make_executor, plan_units
from lenskit.sweep.preflight import preflight
from lenskit.sweep.settings import steady_settings

__all__ = ["SweepPlan", "plan_sweep"]


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs: its config (executor overrides applied), its cells in order, the
    run directory and the record of the config it stores there, and the executor (owned by
    the plan, closed by :meth:`close`, unless the caller passed one in).

    A plan is a context manager: leaving it closes an executor it owns."""

    config: SweepConfig
    cells: tuple[Cell, ...]
    run_dir: Path
    run: RunConfig
    executor: Executor
    owns_executor: bool

    def units(self, cells: Sequence[Cell]) -> list[WorkUnit]:
        """The work units of ``cells`` (some of :attr:`cells`, in order: those a run lacks)."""
        return plan_units(self.config, cells)

    def close(self) -> None:
        """Close the executor when the plan made it (idempotent)."""
        if self.owns_executor:
            self.executor.close()

    def __enter__(self) -> SweepPlan:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _overrides(executor, address, workers, num_cpus, num_gpus) -> dict[str, Any]:
    given = {"executor": executor, "address": address, "workers": workers,
             "num_cpus": num_cpus, "num_gpus": num_gpus}
    return {k: v for k, v in given.items() if v is not None}


def plan_sweep(
    cfg: SweepConfig,
    *,
    executor: str | Executor | None = None,
    address: str | None = None,
    workers: int | None = None,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
) -> SweepPlan:
    """The plan of a sweep of ``cfg``; the keyword arguments override the config's executor
    settings (``executor`` may also be an :class:`Executor` instance, which the caller owns
    and closes). Raises :class:`ConfigError` listing every problem found before anything
    is loaded or written; loads no weights (a Ray executor joins or starts its cluster)."""
    given = executor if isinstance(executor, Executor) else None
    overrides = _overrides(None if given else executor, address, workers, num_cpus, num_gpus)
    if overrides:
        cfg = cfg.with_overrides(overrides)
    problems = executor_problems(cfg)
    if problems:
        raise ConfigError(problems)
    cells = cfg.cells()  # validates
    preflight(cfg, cells)
    run = RunConfig.of(cfg.to_dict(), steady_settings())
    return SweepPlan(cfg, tuple(cells), Path(cfg.out_dir), run,
                     given if given is not None else make_executor(cfg), given is None)
