"""One cell of a run directory as a plain Hugging Face model: ``lenskit export RUN_DIR
--cell ID --out DIR``.

A run directory stores results, not masks. :func:`export_cell` rebuilds a cell's pruning
from what the run recorded: the config (``manifest.json``) gives the cell (method, scope,
structure, allocation, keyword arguments, seed, calibration source, sizes and mode), the
model is loaded as the sweep loaded it, the calibration data is drawn again with the
cell's seed, and the cell is pruned through the sweep's own pruner construction
(:meth:`~lenskit.sweep.executors.work.ModelWorker.pruner`). Before anything is written
it checks that the model's weights fingerprint, the calibration tokens' fingerprint and
the masks' count of pruned weights (hence the achieved sparsity) equal the recorded ones:
a cell that does not reproduce is an error, never a silently different model. The
directory then loads with ``transformers.AutoModelForCausalLM.from_pretrained(DIR)``
(lm-evaluation-harness, vLLM...) without lenskit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lenskit.errors import UsageError
from lenskit.pruning import PruneResult, export_pruned
from lenskit.rundir.store import RunStore
from lenskit.sweep.config import Cell, SweepConfig
from lenskit.sweep.executors.work import ModelWorker

__all__ = ["CellNotReproducedError", "export_cell", "find_cell", "reprune_cell"]


class CellNotReproducedError(RuntimeError):
    """Re-pruning a recorded cell did not give what the run recorded."""


def find_cell(store: RunStore, cell_id: str) -> tuple[str, Cell]:
    """The full id and the :class:`Cell` of a finished cell of the run in ``store``;
    ``cell_id`` may be a unique prefix. Raises ``ValueError`` naming the cells there are."""
    done = sorted(store.done_ids())
    matches = [c for c in done if c.startswith(str(cell_id))] if cell_id else []
    if len(matches) != 1:
        listing = _listing(store, done)
        what = "matches several finished cells" if matches else "is not a finished cell"
        raise UsageError(f"cell {cell_id!r} {what} of {str(store.dir)!r}; its cells:\n"
                         f"{listing}")
    full = matches[0]
    cfg = SweepConfig.from_dict(store.config())
    for cell in cfg.cells():
        if cell.cell_id == full:
            return full, cell
    canonical = (store.manifest()["cells"].get(full) or {}).get("cell")
    if canonical:  # a cell of a merged or grown run: rebuilt from its recorded identity
        cell = _cell_from_canonical(canonical)
        if cell.cell_id == full:
            return full, cell
    raise UsageError(f"cell {full!r} of {str(store.dir)!r} is not in the run's config and its "
                     "identity is not recorded: it cannot be rebuilt")


def _listing(store: RunStore, ids: list[str]) -> str:
    cells = store.manifest().get("cells", {})
    return "\n".join(f"  {c}  {(cells.get(c) or {}).get('label') or ''}" for c in ids) \
        or "  (none)"


def _pairs(value: Any) -> tuple:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in value or ())


def _cell_from_canonical(d: dict[str, Any]) -> Cell:
    return Cell(model=d["model"], method=d["method"], structure=d["structure"],
                allocation=d["allocation"], scope=d["scope"], sparsity=float(d["sparsity"]),
                seed=int(d["seed"]), match_scope=d.get("match_scope"),
                method_kwargs=_pairs(d.get("method_kwargs")),
                allocation_kwargs=_pairs(d.get("allocation_kwargs")),
                calibration=_pairs(d.get("calibration")), tasks=_pairs(d.get("tasks")))


def reprune_cell(run_dir: str | os.PathLike, cell_id: str, *, device: str | None = None
                 ) -> tuple[Any, PruneResult, dict[str, Any]]:
    """``(model, result, record)``: the run's model loaded as the sweep loaded it, the
    cell's :class:`~lenskit.pruning.PruneResult` re-computed as recorded (not applied), and
    what was checked (ids, recorded and re-computed counts, fingerprints).

    Raises:
        ValueError: no such finished cell, or it is the dense model (nothing to prune).
        CellNotReproducedError: the weights, the calibration tokens or the number of pruned
            weights differ from the run's record.
    """
    store = RunStore(run_dir)
    full, cell = find_cell(store, cell_id)
    if cell.is_dense:
        raise UsageError(f"cell {full!r} is the dense model: nothing was pruned; export the "
                         f"model {cell.model!r} itself")
    manifest = store.manifest()
    rows = store.read_cell(full)
    recorded = {"params_removed": int(rows["params_removed"].iloc[0]),
                "achieved_sparsity": float(rows["achieved_sparsity"].iloc[0])}
    cfg = SweepConfig.from_dict(store.config())
    worker = ModelWorker(cfg, device=device)
    worker.load(cell.model)
    model_fp = (manifest.get("models", {}).get(cell.model) or {}).get("fingerprint")
    if model_fp and model_fp != worker.info.fingerprint:
        raise CellNotReproducedError(
            f"model {cell.model!r} is not the one the run pruned (weights fingerprint "
            f"{worker.info.fingerprint}, recorded {model_fp}): the cell cannot be rebuilt")
    pruner = worker.pruner(cell)
    cal_fp = ((manifest["cells"].get(full) or {}).get("calibration") or {}).get("fingerprint")
    if cal_fp and pruner.calibration is not None and pruner.calibration.fingerprint != cal_fp:
        raise CellNotReproducedError(
            f"cell {full!r}: the calibration tokens drawn again (fingerprint "
            f"{pruner.calibration.fingerprint}) differ from the recorded ones ({cal_fp}); "
            "has the calibration source file changed?")
    if cell.is_matched:
        result = pruner.prune(n_params=cell.params_to_remove(worker.counts))
    elif cell.structure != "unstructured":
        result = pruner.prune()
    else:
        result = pruner.prune(cell.sparsity)
    n_scope = worker.counts.get(cell.scope) or worker.info.select(cell.scope).n_params
    got = {"params_removed": int(result.masks.n_pruned),
           "achieved_sparsity": int(result.masks.n_pruned) / n_scope}
    if got["params_removed"] != recorded["params_removed"]:
        raise CellNotReproducedError(
            f"cell {full!r}: re-pruning removed {got['params_removed']:,} weights "
            f"(achieved sparsity {got['achieved_sparsity']:.6f}) but the run recorded "
            f"{recorded['params_removed']:,} ({recorded['achieved_sparsity']:.6f})")
    record = {"run_dir": str(store.dir), "cell_id": full,
              "label": (manifest["cells"].get(full) or {}).get("label"),
              "recorded": recorded, "reproduced": got,
              "model_fingerprint": worker.info.fingerprint,
              "calibration_fingerprint": (pruner.calibration.fingerprint
                                          if pruner.calibration is not None else None),
              "mode": pruner.mode}
    return worker.model, result, record


def export_cell(run_dir: str | os.PathLike, cell_id: str, out_dir: str | os.PathLike, *,
                device: str | None = None) -> Path:
    """Re-prune cell ``cell_id`` of the run in ``run_dir`` as recorded
    (:func:`reprune_cell`) and write it to ``out_dir`` as a Hugging Face model directory
    (:func:`~lenskit.pruning.export_pruned`; ``lenskit_pruning.json`` also records the run,
    the cell and what was checked). ``out_dir`` must not exist or be empty; it is checked
    before the model is loaded."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory; choose a new one")
    model, result, record = reprune_cell(run_dir, cell_id, device=device)
    return export_pruned(model, result, out, extra={"run": record})
