"""The executor interface, the local executor and the checks of a config's executor settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lenskit.rundir.records import CellOutput
from lenskit.sweep.config import SweepConfig
from lenskit.sweep.executors.work import ModelWorker, WorkUnit

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "executor_problems"]

#: Executor names a config's ``executor`` setting accepts.
EXECUTORS: tuple[str, ...] = ("local", "ray")


def _noop(_: str) -> None:
    pass


class Executor:
    """Runs work units and yields their cells' results (base class)."""

    name = "executor"

    def run(self, units: Sequence[WorkUnit], status: Callable[[str], None] = _noop
            ) -> Iterator[CellOutput]:
        """Every cell of ``units``, each once, as it finishes (in any order)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for the manifest: the executor's name and resources."""
        return {"executor": self.name}

    def close(self) -> None:
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Everything in this process, unit after unit, on one :class:`ModelWorker` (each model
    loaded once, since units come grouped by model)."""

    name = "local"

    def __init__(self, cfg: SweepConfig) -> None:
        self.worker = ModelWorker(cfg)

    def run(self, units: Sequence[WorkUnit], status: Callable[[str], None] = _noop
            ) -> Iterator[CellOutput]:
        for unit in units:
            yield from self.worker.run(unit, status)

    def close(self) -> None:
        self.worker = None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def executor_problems(cfg: SweepConfig) -> list[str]:
    """Problems with the executor settings of ``cfg`` (executor, address, workers,
    num_cpus, num_gpus), as sentences naming the bad value and what is allowed."""
    p: list[str] = []
    if cfg.executor not in EXECUTORS:
        p.append(f"unknown executor {cfg.executor!r}; allowed: {', '.join(EXECUTORS)}")
    if cfg.address is not None and (not isinstance(cfg.address, str) or not cfg.address.strip()):
        p.append(f"address {cfg.address!r} must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    if cfg.workers is not None and (isinstance(cfg.workers, bool)
                                    or not isinstance(cfg.workers, int) or cfg.workers < 1):
        p.append(f"workers {cfg.workers!r} must be an integer >= 1 (or unset: as many as "
                 f"the cluster's resources fit)")
    if not _is_number(cfg.num_cpus) or cfg.num_cpus <= 0:
        p.append(f"num_cpus {cfg.num_cpus!r} must be a number > 0 (CPUs per worker)")
    if not _is_number(cfg.num_gpus) or cfg.num_gpus < 0:
        p.append(f"num_gpus {cfg.num_gpus!r} must be a number >= 0 (GPUs per worker)")
    if cfg.executor == "local":
        if cfg.address is not None:
            p.append(f"address {cfg.address!r} needs executor 'ray' (executor is 'local')")
        if cfg.workers not in (None, 1):
            p.append(f"workers {cfg.workers!r} needs executor 'ray'; the local executor "
                     f"runs one worker")
        if _is_number(cfg.num_gpus) and cfg.num_gpus > 0:
            p.append(f"num_gpus {cfg.num_gpus!r} needs executor 'ray'; the local executor "
                     f"runs on the CPU")
    return p
