"""The run directory: where a sweep's results live on disk, written so that sweeps resume,
grow and merge.

- :mod:`~lenskit.rundir.store`: :class:`RunStore`, results written atomically cell by cell;
  :func:`iter_missing`, the cells a run still lacks.
- :mod:`~lenskit.rundir.manifest`: the manifest's format, file names and checks.
- :mod:`~lenskit.rundir.rundir`: preparing a directory (creating, refusing a foreign one,
  cleaning temporaries).
- :mod:`~lenskit.rundir.files`: atomic writes; :mod:`~lenskit.rundir.integrity`: hashes,
  verification and quarantine; :mod:`~lenskit.rundir.lock`: the one-writer lock.
- :mod:`~lenskit.rundir.environment`: versions, host and git revision recorded with a run.
- :mod:`~lenskit.rundir.doctor`: repairing a damaged run; :mod:`~lenskit.rundir.merge`:
  :func:`merge_runs`.

It knows the results vocabulary (:mod:`lenskit.results`) and nothing about how a sweep is
configured or run (:mod:`lenskit.sweep` sits above it).
"""

from lenskit.errors import RunLockedError
from lenskit.rundir.environment import environment_info
from lenskit.rundir.manifest import ConfigMismatchError
from lenskit.rundir.merge import merge_runs
from lenskit.rundir.store import RunStore, iter_missing

__all__ = [
    "ConfigMismatchError",
    "RunLockedError",
    "RunStore",
    "environment_info",
    "iter_missing",
    "merge_runs",
]
