"""Pruning: magnitude, Wanda, SparseGPT and a random control; unstructured and N:M; any scope
of sites; uniform, global, OWL and parameter-matched allocation; cheap sweeps.

    from lenskit.pruning import prune, Pruner
    result = prune(model, "wanda", 0.5, scope="attn")   # model left pruned; sequential
    results = Pruner(model, "magnitude", scope="mlp").sweep([0.1, 0.2, 0.3])  # dense: fast

``prune`` calibrates sequentially (as the reference implementations); ``Pruner`` defaults
to dense calibration, the fast approximation for many levels, and records which it used.
"""

from lenskit.pruning.allocation import ALLOCATIONS, matched_sparsities
from lenskit.pruning.calibration import CalibrationData, default_calibration
from lenskit.pruning.calibration_sources import calibration_from_source, parse_source
from lenskit.pruning.export import export_pruned
from lenskit.pruning.pruner import METHODS, MODES, Pruner, prune
from lenskit.pruning.result import PruneResult
from lenskit.pruning.structure import Structure, parse_structure

__all__ = [
    "ALLOCATIONS",
    "METHODS",
    "MODES",
    "CalibrationData",
    "PruneResult",
    "Pruner",
    "Structure",
    "calibration_from_source",
    "default_calibration",
    "export_pruned",
    "matched_sparsities",
    "parse_source",
    "parse_structure",
    "prune",
]
