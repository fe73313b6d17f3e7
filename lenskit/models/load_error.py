"""The error raised when a model cannot be loaded (its own module, so that every loading
step can raise it without importing the loader)."""

from __future__ import annotations

from lenskit.errors import RunDirectoryError

__all__ = ["ModelLoadError"]


class ModelLoadError(RunDirectoryError):
    """A model could not be loaded; the message says why and what to do (an OSError)."""
