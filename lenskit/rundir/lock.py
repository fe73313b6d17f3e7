"""The lock of a run directory: an OS-level lock (``flock``) on ``RUN_DIR/.lock``.

The kernel releases the lock when its holder dies however it dies (SIGKILL included), so a
dead sweep never leaves a stale lock, and two processes can never both hold it: taking it
is one atomic system call, not a read-check-delete of a pid file. The file itself is never
deleted (deleting it would let a newcomer lock a fresh file while the holder still locks
the old one); it only carries the holder's pid, host and start time, for messages.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from lenskit.errors import RunLockedError

__all__ = ["LOCK_NAME", "RunLock", "check_not_locked", "lock_holder"]

LOCK_NAME = ".lock"


def _describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process"
    return (f"process {info.get('pid')} on {info.get('host')} "
            f"since {info.get('since')}")


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class RunLock:
    """The exclusive lock of one run directory, held from :meth:`acquire` to
    :meth:`release` (or the holder's death)."""

    def __init__(self, run_dir: str | Path, patience: float = 0.1):
        """``patience``: seconds to keep trying before giving up (a reader's probe, see
        :func:`lock_holder`, holds the lock shared for an instant)."""
        self.dir = Path(run_dir)
        self.path = self.dir / LOCK_NAME
        self.patience = float(patience)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock now or raise :class:`RunLockedError` naming its holder."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.patience
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.01)
        except BlockingIOError:
            os.close(fd)
            holder = _describe(_read_info(self.path))
            raise RunLockedError(
                f"run directory {str(self.dir)!r} is in use by {holder}; wait for it to "
                "finish (the lock is released when that process ends, even if killed)",
                self.dir) from None
        except BaseException:
            os.close(fd)
            raise
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        # The content is informative only; written under the lock, so never torn by a rival.
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (idempotent). The file stays: see the module docstring."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(run_dir: str | Path) -> dict[str, Any] | None:
    """Who holds the lock of ``run_dir`` right now (pid, host, since), or None when nobody
    does. Probes without creating anything (a read-only directory is fine)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_info(path) or {"pid": None}
    finally:
        os.close(fd)  # closing drops the probe's shared lock, if it got one
    return None


def check_not_locked(run_dir: str | Path, what: str) -> None:
    """Raise :class:`RunLockedError` when a sweep holds ``run_dir``'s lock; ``what`` says
    what would have been written (e.g. "the threshold tables")."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise RunLockedError(
            f"a sweep ({_describe(holder) if holder.get('pid') else 'another process'}) is "
            f"writing to {str(run_dir)!r}; {what} would race with it: wait for it to finish",
            run_dir)
