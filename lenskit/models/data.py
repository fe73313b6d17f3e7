"""Where the data shipped with lenskit lives: the organisms and the calibration text.

Inside an installed wheel it is the package data ``lenskit/_data`` (``setup.py`` maps the
repository's ``data/`` there); in the source tree and in editable installs it is the
repository's top-level ``data/``. ``$LENSKIT_DATA`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_path"]

_PACKAGED_DATA = Path(__file__).resolve().parents[1] / "_data"
_DATA_DIR = _PACKAGED_DATA if _PACKAGED_DATA.is_dir() else \
    Path(__file__).resolve().parents[2] / "data"


def data_path(*parts: str) -> Path:
    """A path inside the data shipped with lenskit (``$LENSKIT_DATA`` when set, else the
    repository's ``data/`` in a source tree or editable install, ``lenskit/_data`` inside
    an installed wheel), e.g. ``data_path("calibration", "kjv_narrative.txt")``."""
    return Path(os.environ.get("LENSKIT_DATA", _DATA_DIR)).joinpath(*parts)
