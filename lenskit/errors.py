"""lenskit's exceptions: one small hierarchy, so that callers (and the CLI) can tell a
mistake in what was asked for from a problem with the files on disk.

``LenskitError`` is the base of everything lenskit raises on purpose. Two families:

- :class:`UsageError` (also a ``ValueError``): the input is wrong (a config value, a flag,
  an argument, a user's file). The message names the value and what is allowed. It is
  raised where input enters (config validation, CLI arguments, public functions' argument
  checks); the CLI exits with 2.
- :class:`RunDirectoryError` (also an ``OSError``): a file or run directory cannot be used
  as asked (it is locked, corrupt, read-only, not a lenskit run...). The message names the
  path and, where there is one, the command that repairs it. The CLI exits with 1.

Anything else that escapes (a plain ``ValueError`` or ``KeyError`` included) is a bug in
lenskit: the CLI says so on one line, with the ``--debug`` hint, and exits with 1.

A base module: it imports nothing from lenskit.
"""

from __future__ import annotations

__all__ = [
    "CorruptFileError",
    "LenskitError",
    "RunDirectoryError",
    "RunLockedError",
    "SweepTerminated",
    "UsageError",
]


class LenskitError(Exception):
    """Base class of the errors lenskit raises on purpose (message: what, value, fix)."""


class UsageError(LenskitError, ValueError):
    """Bad input: the message names the value and what is allowed."""


class RunDirectoryError(LenskitError, OSError):
    """A run directory or file cannot be used as asked; the message names the path."""

    def __init__(self, message: str, path: object = None):
        super().__init__(message)
        self.path = None if path is None else str(path)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CorruptFileError(RunDirectoryError):
    """A file lenskit wrote does not read back (truncated, or its checksum differs)."""


class RunLockedError(RunDirectoryError):
    """Another live process holds the lock of this run directory."""


class SweepTerminated(KeyboardInterrupt):
    """A sweep stopped by a signal (SIGTERM): handled like Ctrl-C (the run is marked
    interrupted and its lock released); ``signum`` is the signal's number."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum
