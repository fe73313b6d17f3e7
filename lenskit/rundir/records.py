"""What a run directory is given to record: the config a session runs (:class:`RunConfig`)
and each evaluated cell (:class:`CellOutput`).

Both hold their JSON parts in the form the manifest stores, made once when the record is
built, so the writer (:class:`lenskit.rundir.store.RunWriter`) stores them as they are. The
run directory knows nothing about how a sweep is configured: whoever runs the sweep
(:mod:`lenskit.sweep`) builds these records from its own types.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["DEFAULT_STEADY", "CellOutput", "RunConfig", "json_form"]

#: Config keys that may change between sessions of one run (they do not change results).
DEFAULT_STEADY: tuple[str, ...] = ("out_dir", "executor", "address", "workers", "num_cpus",
                                   "num_gpus")


def json_form(obj: Any) -> Any:
    """``obj`` as it reads back from the manifest's JSON (tuples as lists, other non-JSON
    values as their ``str``)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


@dataclass(frozen=True)
class RunConfig:
    """The config a writing session runs, as the manifest stores it.

    ``settings`` is the config's JSON form (the manifest's ``config``); ``steady`` names the
    settings that do not change results (where and how cells run): a run resumes under
    other values of them, and they are left out of its config history (:attr:`history`).
    """

    settings: dict[str, Any]
    steady: tuple[str, ...] = DEFAULT_STEADY

    @classmethod
    def of(cls, config: Any, steady: Iterable[str] = DEFAULT_STEADY) -> RunConfig:
        """From a JSON-able mapping, or an object with ``to_dict()`` (a ``SweepConfig``)."""
        if isinstance(config, RunConfig):
            return config
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a SweepConfig or a mapping, got "
                            f"{type(config).__name__}")
        return cls(json_form(dict(config)), tuple(steady))

    @property
    def history(self) -> dict[str, Any]:
        """The settings that change results (one entry of the manifest's ``configs``)."""
        return {k: v for k, v in self.settings.items() if k not in self.steady}


@dataclass(frozen=True)
class CellOutput:
    """One evaluated cell, as its run directory records it.

    Attributes:
        cell_id: the cell's id (its file name in ``cells/``).
        dense_id: the id of the dense cell whose values are this cell's baselines (its own
            id for a dense cell).
        model: the model spec the cell ran on (the key of the manifest's ``models`` and
            ``devices``).
        rows: the schema rows (:data:`lenskit.results.RESULT_COLUMNS`); ``baseline`` and
            ``relative_drop`` may be NaN: the writer attaches them from the dense cell.
        instances: per-instance rows (:data:`lenskit.results.INSTANCE_COLUMNS`), or None.
        seconds: wall time (s): the cell's share of its pruning plus its evaluation.
        label: a readable name of the cell.
        identity: what identifies the cell (what ``cell_id`` hashes).
        weights: which weights the model was (``fingerprint``, ``path``, ``source``).
        device: where the model ran (device, dtype, device map, accelerator names).
        calibration: the calibration data of a calibrated cell.
    """

    cell_id: str
    dense_id: str
    model: str
    rows: pd.DataFrame = field(repr=False)
    instances: pd.DataFrame | None = field(default=None, repr=False)
    seconds: float | None = None
    label: str | None = None
    identity: dict[str, Any] | None = None
    weights: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("identity", "weights", "device", "calibration"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, json_form(dict(value)))

    @property
    def is_dense(self) -> bool:
        """Whether this is a dense cell (its own baseline)."""
        return self.dense_id == self.cell_id
