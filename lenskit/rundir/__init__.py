"""The run directory: where a sweep's results live on disk, written so that sweeps resume,
grow and merge.

- :mod:`~lenskit.rundir.store`: :class:`RunStore` reads a run, :class:`RunWriter` (from
  ``RunStore.open``) writes it atomically cell by cell; :func:`iter_missing`, the cells a
  run still lacks.
- :mod:`~lenskit.rundir.records`: what a run is given to record, typed: the config of a
  session (:class:`RunConfig`) and each evaluated cell (:class:`CellOutput`), whose
  baselines the writer attaches (the one place a sweep's rows get them).
- :mod:`~lenskit.rundir.manifest`: the typed :class:`RunManifest` (one constructor per
  origin: new, rebuilt, merged), its format, file names and checks.
- :mod:`~lenskit.rundir.summary`: :func:`summarise_run`, a run's threshold and
  study-comparison tables.
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
from lenskit.rundir.manifest import CellRecord, ConfigMismatchError, RunManifest, Session
from lenskit.rundir.merge import merge_runs
from lenskit.rundir.records import CellOutput, RunConfig
from lenskit.rundir.store import RunStore, RunWriter, iter_missing
from lenskit.rundir.summary import RunSummary, summarise_run

__all__ = [
    "CellOutput",
    "CellRecord",
    "ConfigMismatchError",
    "RunConfig",
    "RunLockedError",
    "RunManifest",
    "RunStore",
    "RunSummary",
    "RunWriter",
    "Session",
    "environment_info",
    "iter_missing",
    "merge_runs",
    "summarise_run",
]
