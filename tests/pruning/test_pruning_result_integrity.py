"""A saved PruneResult carries a checksum: a truncated or altered file is refused with one
message naming it and what to do, from the API and from ``lenskit export``, and nothing is
written; files saved before the checksum existed still load."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lenskit.cli import main
from lenskit.errors import CorruptFileError, UsageError
from lenskit.models import load_model
from lenskit.pruning import PruneResult, prune


@pytest.fixture(scope="module")
def saved(tiny_dirs, tmp_path_factory):
    model = load_model(tiny_dirs["llama"])
    result = prune(model, "magnitude", 0.4, apply=False)
    path = result.save(tmp_path_factory.mktemp("result") / "r.safetensors")
    return result, path


def _flip(data: bytes, n: int, seed: int = 0) -> bytes:
    """``data`` with ``n`` bytes of its tensor section (after the JSON header) inverted."""
    start = 8 + struct.unpack("<Q", data[:8])[0]
    pos = np.random.default_rng(seed).choice(np.arange(start, len(data)), n, replace=False)
    out = bytearray(data)
    for p in pos:
        out[p] ^= 0xFF
    return bytes(out)


def test_the_checksum_is_stored_and_an_intact_file_loads(saved):
    result, path = saved
    with safe_open(str(path), framework="pt") as f:
        assert len(f.metadata()["sha256"]) == 64
    back = PruneResult.load(path)
    assert back.params_removed == result.params_removed
    for name, m in result.masks.items():
        assert torch.equal(back.masks[name], m)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_result_is_refused_by_the_api(saved, tmp_path, damage):
    _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[: len(data) * 2 // 3] if damage == "truncated" else _flip(data, 1000))
    with pytest.raises(CorruptFileError) as e:
        PruneResult.load(bad)
    msg = str(e.value)
    assert str(bad) in msg and "prune again" in msg and "\n" not in msg
    assert e.value.path == str(bad)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_export_of_a_damaged_result_writes_nothing(saved, tiny_dirs, tmp_path, capsys, damage):
    _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else _flip(data, 1000))
    out = tmp_path / "out"
    code = main(["export", str(bad), "--model", str(tiny_dirs["llama"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert str(bad) in err and "damaged" in err and "prune again" in err
    assert "unexpected" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_result_saved_without_a_checksum_still_loads(saved, tmp_path):
    """Files written before the checksum existed have none: read without the check."""
    result, path = saved
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    del meta["sha256"]
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=meta)
    back = PruneResult.load(old)
    assert back.config == result.config and back.params_removed == result.params_removed


def test_a_changed_metadata_entry_is_caught(saved, tmp_path):
    """The checksum covers the metadata too: a config edited by hand is refused."""
    _, path = saved
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    target = json.loads(meta["target"])
    target = {k: 0.9 for k in target}
    meta["target"] = json.dumps(target)
    edited = tmp_path / "edited.safetensors"
    save_file(tensors, str(edited), metadata=meta)
    with pytest.raises(CorruptFileError, match="checksum"):
        PruneResult.load(edited)


def test_a_directory_or_run_directory_is_explained(saved, tiny_dirs, tmp_path, capsys):
    with pytest.raises(UsageError, match="is a directory, not a pruning result"):
        PruneResult.load(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"format": "lenskit-run/2"}))
    code = main(["export", str(run), "--model", str(tiny_dirs["llama"]),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(run) in err and "holds result tables, not masks" in err
    assert "lenskit export RUN_DIR --cell ID --out DIR" in err and "without --model" in err
    assert not (tmp_path / "out").exists()
