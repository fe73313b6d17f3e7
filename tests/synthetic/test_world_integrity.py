"""world.json carries a checksum; a truncated, altered or foreign file is refused with one
message naming it and what to do (the API and a sweep over an organism directory)."""

from __future__ import annotations

import json
import shutil

import pytest

from lenskit.cli import main
from lenskit.errors import CorruptFileError
from lenskit.models import organism_path
from lenskit.synthetic.world import World, build_world


def _check(err: CorruptFileError, path) -> None:
    msg = str(err)
    assert str(path) in msg and "lenskit organism train" in msg and "\n" not in msg
    assert err.path == str(path)


def test_a_saved_world_carries_its_checksum(tmp_path):
    w = build_world(2, popularity="zipf")
    w.save(tmp_path / "world.json")
    assert len(json.loads((tmp_path / "world.json").read_text())["sha256"]) == 64
    assert World.load(tmp_path / "world.json") == w


@pytest.mark.parametrize("damage", ["truncated", "altered", "a list", "no relations"])
def test_a_damaged_world_is_named(tmp_path, damage):
    path = tmp_path / "world.json"
    build_world(1).save(path)
    text = path.read_text()
    data = json.loads(text)
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "altered":  # valid JSON, one fact changed by hand
        name = next(iter(data["facts"]))
        rel = next(iter(data["facts"][name]))
        data["facts"][name][rel] = "Atlantis"
        path.write_text(json.dumps(data))
    elif damage == "a list":
        path.write_text("[1, 2]")
    else:
        del data["relations"], data["sha256"]
        path.write_text(json.dumps(data))
    with pytest.raises(CorruptFileError) as e:
        World.load(path)
    _check(e.value, path)


def test_a_world_saved_before_checksums_still_loads(tmp_path):
    """Worlds saved before the checksum existed (the shipped world of earlier versions) are
    read without the check; the shipped world carries one."""
    data = json.loads((organism_path() / "world.json").read_text())
    assert "sha256" in data
    del data["sha256"]
    path = tmp_path / "world.json"
    path.write_text(json.dumps(data))
    world = World.load(path)
    assert world.memorised == data["memorised"] and world.facts == data["facts"]


def test_a_sweep_over_an_organism_with_a_truncated_world_names_it(tmp_path, capsys):
    model = tmp_path / "organism"
    shutil.copytree(organism_path(), model,
                    ignore=shutil.ignore_patterns("train_log.jsonl"))
    world = model / "world.json"
    world.write_text(world.read_text()[:500])
    code = main(["sweep", "--model", str(model), "--methods", "magnitude", "--sparsities",
                 "0.5", "--scopes", "attn", "--set", "matched=false", "--no-figures",
                 "--threads", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert str(world) in err and "damaged" in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "error:" in ln]) == 1
    assert not (tmp_path / "run" / "cells").exists()
