"""The ``ray`` executor: work units on actors of a Ray cluster, results streamed back.

One actor per worker holds one :class:`ModelWorker` (one loaded model); it runs whole
units (pruner groups), so a model loads once per worker and scores, calibration statistics
and Hessians are computed once per unit, exactly as the local runner does. The driver
keeps a queue of units in plan order and gives an idle actor the next unit of the model it
holds; an actor whose model has no units left takes the model with the most queued units
per actor holding it (loading it once). Finished units come back through ``ray.wait`` and
their cells are yielded to the runner, the one writer of the run directory.

A unit is sent whole and returned whole: an actor that dies mid-unit (killed, out of
memory, its node lost) raises ``RayActorError`` on the pending call; the driver drops the
actor, starts a new one and puts the unit back at the head of the queue, so none of its
cells is lost or written twice. A unit that kills :attr:`RayExecutor.max_attempts`
actors in a row stops the sweep with an error.

Ray is imported only here, when a :class:`RayExecutor` is made.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lenskit.rundir.records import CellOutput
from lenskit.sweep.config import SweepConfig
from lenskit.sweep.executors.base import Executor
from lenskit.sweep.executors.work import ModelWorker, WorkUnit

__all__ = ["RayExecutor", "import_ray"]

INSTALL_HINT = "pip install 'lenskit[ray]'"


def import_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"the 'ray' executor needs Ray, which is not installed: "
                          f"{INSTALL_HINT} (or pip install 'ray>=2.9,<3')") from e
    return ray


def _noop(_: str) -> None:
    pass


class _WorkerActor:
    """The body of one Ray actor: a :class:`ModelWorker` with ``threads`` torch threads."""

    def __init__(self, cfg: SweepConfig, threads: int, device: str) -> None:
        torch.set_num_threads(threads)
        self.worker = ModelWorker(cfg, device)

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname()}

    def run(self, unit: WorkUnit) -> list[CellOutput]:
        return list(self.worker.run(unit))

    def loads(self) -> int:
        return self.worker.loads


@dataclass
class _Slot:
    actor: Any
    model: str | None = None
    unit: WorkUnit | None = None


class RayExecutor(Executor):
    """Runs units on ``cfg.workers`` Ray actors (default: as many as the cluster's CPUs and
    GPUs fit at ``cfg.num_cpus`` and ``cfg.num_gpus`` each).

    Connects to ``cfg.address`` ("auto", "HOST:PORT", "ray://HOST:PORT"), or reuses the
    Ray session this process already has, or starts a local cluster (shut down again by
    :meth:`close`). ``requeued`` counts units re-run because their actor died;
    ``actors_started`` counts actors made.
    """

    name = "ray"
    #: Actors a unit may lose in a row before the sweep stops.
    max_attempts = 3

    def __init__(self, cfg: SweepConfig) -> None:
        ray = import_ray()
        self._ray = ray
        self.cfg = cfg
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False}
            if cfg.address:
                kwargs["address"] = cfg.address
            else:
                kwargs["include_dashboard"] = False
            ray.init(**kwargs)
            self._started = True
        self.resources = {k: float(v) for k, v in ray.cluster_resources().items()}
        self.capacity = self._capacity()
        if self.capacity < 1:
            self.close()
            raise RuntimeError(
                f"the Ray cluster has {self.resources.get('CPU', 0):g} CPUs and "
                f"{self.resources.get('GPU', 0):g} GPUs; one worker needs num_cpus="
                f"{cfg.num_cpus:g} and num_gpus={cfg.num_gpus:g}: lower them or add nodes")
        # Capped at what the cluster fits now: a worker Ray cannot place would hold the unit
        # given to it until the end, while the placed workers run out of work.
        self.workers = min(cfg.workers or self.capacity, self.capacity)
        self._remote = ray.remote(num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
                                  max_restarts=0)(_WorkerActor)
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self.requeued = 0
        self.actors_started = 0

    def _capacity(self) -> int:
        cfg = self.cfg
        n = math.floor(self.resources.get("CPU", 0) / cfg.num_cpus + 1e-9)
        if cfg.num_gpus > 0:
            n = min(n, math.floor(self.resources.get("GPU", 0) / cfg.num_gpus + 1e-9))
        return n

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "address": self.cfg.address, "workers": self.workers,
                "num_cpus": self.cfg.num_cpus, "num_gpus": self.cfg.num_gpus,
                "ray_version": self._ray.__version__, "cluster_resources": self.resources,
                "actors_started": self.actors_started, "units_requeued": self.requeued}

    def busy(self) -> list[tuple[Any, WorkUnit]]:
        """(actor handle, unit) of every unit in flight now (safe from another thread)."""
        with self._lock:
            return [(s.actor, s.unit) for s in self._slots if s.unit is not None]

    def model_loads(self) -> int:
        """Models loaded so far by the live workers, all together (waits for busy ones)."""
        return sum(self._ray.get([s.actor.loads.remote() for s in list(self._slots)]))

    # ---- scheduling ---------------------------------------------------------------------

    def _new_slot(self) -> _Slot:
        threads = max(1, int(self.cfg.num_cpus))
        device = "cuda" if self.cfg.num_gpus > 0 else "cpu"
        slot = _Slot(self._remote.remote(self.cfg, threads, device))
        self.actors_started += 1
        with self._lock:
            self._slots.append(slot)
        return slot

    def _drop(self, slot: _Slot) -> None:
        with self._lock:
            self._slots.remove(slot)
        self._ray.kill(slot.actor)

    def _pick(self, slot: _Slot, queue: list[WorkUnit]) -> int:
        """Index in ``queue`` of the unit ``slot`` runs next: the first unit of the model it
        holds; else the first of the model with the most queued units per actor holding it."""
        for i, u in enumerate(queue):
            if u.model == slot.model:
                return i
        queued = Counter(u.model for u in queue)
        holders = Counter(s.model for s in self._slots if s is not slot)
        best = max(queued, key=lambda m: queued[m] / (1 + holders[m]))  # first max wins
        return next(i for i, u in enumerate(queue) if u.model == best)

    def run(self, units: Sequence[WorkUnit], status: Callable[[str], None] = _noop
            ) -> Iterator[CellOutput]:
        ray = self._ray
        queue = list(units)
        attempts: Counter[int] = Counter()
        inflight: dict[Any, _Slot] = {}
        try:
            while queue or inflight:
                self._dispatch(queue, inflight)
                status(f"{len(inflight)} units running on {len(self._slots)} workers, "
                       f"{len(queue)} queued")
                ready, _ = ray.wait(list(inflight), num_returns=1)
                slot = inflight.pop(ready[0])
                unit = slot.unit
                with self._lock:
                    slot.unit = None  # idle again, whatever the outcome
                try:
                    results = ray.get(ready[0])
                except ray.exceptions.RayActorError as e:
                    self._drop(slot)
                    attempts[unit.index] += 1
                    if attempts[unit.index] >= self.max_attempts:
                        raise RuntimeError(
                            f"work unit {unit.label!r} lost {attempts[unit.index]} Ray workers "
                            f"in a row (last: {e}); stopping the sweep (finished cells are kept)"
                        ) from e
                    self.requeued += 1
                    queue.insert(0, unit)
                    status(f"worker lost, re-running {unit.label}")
                    continue
                except ray.exceptions.RayTaskError as e:
                    # the unit itself failed (bad config for this model, a bug): the original
                    # error, not Ray's wrapper, is what the user needs to read
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from e
                    raise
                yield from results
        finally:
            # Stopped early (an error, Ctrl-C): nobody will collect the units still running,
            # so their workers go; the next run of this executor starts fresh ones.
            for slot in list(inflight.values()):
                self._drop(slot)

    def _dispatch(self, queue: list[WorkUnit], inflight: dict[Any, _Slot]) -> None:
        """Give every idle worker (started here up to :attr:`workers`) a unit of ``queue``."""
        idle = [s for s in self._slots if s.unit is None]
        while queue and len(self._slots) < self.workers:
            idle.append(self._new_slot())
        for slot in idle:
            if not queue:
                break
            unit = queue.pop(self._pick(slot, queue))
            with self._lock:
                slot.unit, slot.model = unit, unit.model
            inflight[slot.actor.run.remote(unit)] = slot

    def close(self) -> None:
        for slot in list(getattr(self, "_slots", ())):
            self._drop(slot)
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False
