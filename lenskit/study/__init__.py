"""Compatibility: the names and modules ``lenskit.study`` held before it was split.

The study now lives in three packages: :mod:`lenskit.results` (the tidy-results vocabulary:
schema, thresholds, the published study's comparison), :mod:`lenskit.rundir` (run
directories: store, manifest, integrity, lock, doctor, merge) and :mod:`lenskit.sweep`
(config, preflight, runner, executors). Every name ``lenskit.study`` exported is still
importable from here, and the old module paths (``lenskit.study.schema``,
``lenskit.study.config.grid``, ...) are the new modules under their old names, so code
written against ``lenskit.study`` keeps working. New code imports the three packages.
"""

import importlib
import pkgutil
import sys

from lenskit.results import *  # noqa: F403
from lenskit.results import __all__ as _results_all
from lenskit.rundir import *  # noqa: F403
from lenskit.rundir import __all__ as _rundir_all
from lenskit.sweep import *  # noqa: F403
from lenskit.sweep import __all__ as _sweep_all

__all__ = sorted({*_results_all, *_rundir_all, *_sweep_all})

#: old module name under ``lenskit.study`` -> the package it moved to
_MOVED = {
    "comparison": "lenskit.results", "schema": "lenskit.results",
    "thresholds": "lenskit.results",
    "doctor": "lenskit.rundir", "environment": "lenskit.rundir", "files": "lenskit.rundir",
    "integrity": "lenskit.rundir", "lock": "lenskit.rundir", "manifest": "lenskit.rundir",
    "merge": "lenskit.rundir", "rundir": "lenskit.rundir", "store": "lenskit.rundir",
    "config": "lenskit.sweep", "executors": "lenskit.sweep", "preflight": "lenskit.sweep",
    "runner": "lenskit.sweep",
}


def _alias(old: str, new: str) -> None:
    """Make ``import <old>`` return the module ``<new>`` (and its submodules likewise)."""
    module = importlib.import_module(new)
    sys.modules[old] = module
    for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
        _alias(f"{old}.{sub.name}", f"{new}.{sub.name}")


for _name, _package in _MOVED.items():
    _alias(f"{__name__}.{_name}", f"{_package}.{_name}")
    globals()[_name] = sys.modules[f"{__name__}.{_name}"]
del _name, _package
