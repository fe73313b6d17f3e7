"""Where a sweep's work runs: in this process (``local``) or on a Ray cluster (``ray``).

The runner (:func:`lenskit.sweep.runner.run_sweep`) splits the missing cells of a run
into :class:`WorkUnit` objects (pruner groups, see :mod:`.work`) and hands them to an
executor, which yields one :class:`~lenskit.rundir.records.CellOutput` per cell as cells
finish. The run directory's writer is the only writer: it fills each row's baseline from
the stored dense cell and writes the cell atomically, whatever executor computed it. Executors are context
managers; :meth:`Executor.describe` is what the run's manifest records about them.

Ray is an optional dependency, imported only by :class:`RayExecutor` (``pip install
'lenskit[ray]'``).
"""

from __future__ import annotations

from lenskit.sweep.config import ConfigError, SweepConfig
from lenskit.sweep.executors.base import EXECUTORS, Executor, LocalExecutor, executor_problems
from lenskit.sweep.executors.ray_cluster import RayExecutor, import_ray
from lenskit.sweep.executors.work import ModelWorker, WorkUnit, plan_units

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ModelWorker",
           "RayExecutor", "WorkUnit", "executor_problems", "import_ray", "make_executor",
           "plan_units"]

def make_executor(cfg: SweepConfig) -> Executor:
    """The executor ``cfg.executor`` names, set up from ``cfg``'s executor settings.
    Raises :class:`ConfigError` listing every bad setting."""
    problems = executor_problems(cfg)
    if problems:
        raise ConfigError(problems)
    if cfg.executor == "local":
        return LocalExecutor(cfg)
    return RayExecutor(cfg)
