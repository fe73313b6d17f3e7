"""The shipped organisms by name: ``organism`` (the widest, the one the default study prunes)
and its narrower siblings ``organism-d<width>`` (``data/organisms/``), one family trained on
one world and one data order.

Reads only each member's ``config.json``: no weights, no torch.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from lenskit.errors import UsageError
from lenskit.models.data import data_path

__all__ = ["dense_siblings", "install_family", "organism_width", "shipped_organisms"]

_MEMBER = re.compile(r"organism-d(\d+)")


def organism_width(path: str | Path) -> int:
    """The width (``hidden_size``) of the HF model directory ``path``."""
    return int(json.loads((Path(path) / "config.json").read_text())["hidden_size"])


def shipped_organisms(data_dir: str | Path | None = None) -> dict[str, Path]:
    """``{name: directory}`` of the organisms under ``data_dir`` (default: lenskit's data,
    see :func:`~lenskit.models.loading.data_path`), narrowest first: every
    ``organisms/organism-d<width>`` with a ``config.json``, then ``organism`` itself."""
    root = Path(data_dir) if data_dir is not None else data_path()
    found: list[tuple[int, str, Path]] = []
    members = root / "organisms"
    if members.is_dir():
        for d in members.iterdir():
            if _MEMBER.fullmatch(d.name) and (d / "config.json").is_file():
                found.append((organism_width(d), d.name, d))
    found.sort()
    out = {name: path for _, name, path in found}
    if (root / "organism" / "config.json").is_file():
        out["organism"] = root / "organism"
    return out


def dense_siblings(data_dir: str | Path | None = None) -> list[str]:
    """The shipped siblings narrower than ``organism``, narrowest first: the models the default
    study evaluates dense beside the pruned organism (the dense-scaling comparison). Empty
    when no organism is shipped."""
    shipped = shipped_organisms(data_dir)
    if "organism" not in shipped:
        return []
    widest = organism_width(shipped["organism"])
    return [name for name, path in shipped.items()
            if name != "organism" and organism_width(path) < widest]


def install_family(members: dict[int, str | Path], data_dir: str | Path) -> dict[str, Path]:
    """Copy trained family members (``{width: model directory}``) into the data layout that
    :func:`~lenskit.models.loading.organism_path` reads: the widest to ``data_dir/organism``,
    the others to ``data_dir/organisms/organism-d<width>``; returns ``{name: directory}``.

    Checks first that every directory is a HF model of the width it is given under, and that
    all share one world (``world.json``); existing directories of those names are replaced.
    """
    if len(members) < 1:
        raise UsageError("install_family needs at least one member")
    worlds = set()
    for width, src in members.items():
        src = Path(src)
        if not (src / "config.json").is_file() or not (src / "world.json").is_file():
            raise UsageError(f"{src} is not a trained organism (config.json and world.json "
                             "expected)")
        if organism_width(src) != width:
            raise UsageError(f"{src} has width {organism_width(src)}, given as {width}")
        world = json.loads((src / "world.json").read_text())
        worlds.add(json.dumps([world.get(k) for k in ("seed", "memorised", "facts",
                                                       "popularity")]))
    if len(worlds) != 1:
        raise UsageError("family members must share one world; their world.json differ")
    data = Path(data_dir)
    widest = max(members)
    out: dict[str, Path] = {}
    for width, src in sorted(members.items()):
        name = "organism" if width == widest else f"organism-d{width}"
        dest = data / "organism" if width == widest else data / "organisms" / name
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        out[name] = dest
    return out
