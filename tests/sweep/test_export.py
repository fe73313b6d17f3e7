"""`lenskit export RUN_DIR --cell ID --out DIR` end to end on a tiny run of the shipped
organism: the cell is re-pruned as recorded and written as a plain HF directory."""

import hashlib
import json
import shutil

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from lenskit.cli import main
from lenskit.models import model_info
from lenskit.rundir.store import RunStore
from lenskit.sweep.config import load_config
from lenskit.sweep.export import CellNotReproducedError, find_cell, reprune_cell
from lenskit.sweep.runner import run_sweep


@pytest.fixture(scope="module")
def organism_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    cfg = load_config(None, {
        "models": "organism", "dense_models": "", "methods": "sparsegpt,wanda",
        "sparsities": "0.3,0.6", "scopes": "attn;mlp", "matched": "true",
        "tasks": "open_book", "task_size": "small", "out_dir": str(out), "batch_size": "64",
        "calibration.n_samples": "8", "calibration.seq_len": "64",
        "calibration.sequential": "true",
    })
    return run_sweep(cfg, progress=False, echo=lambda _: None)


def _cell(results, method, scope, sparsity, allocation="uniform"):
    rows = results[(results.method == method) & (results.scope == scope)
                   & (results.allocation == allocation)
                   & ((results.target_sparsity - sparsity).abs() < 1e-9)]
    if allocation == "matched":
        rows = results[(results.method == method) & (results.allocation == "matched")]
        rows = rows[rows.cell_id == rows.sort_values("target_sparsity").cell_id.iloc[-1]]
    assert rows.cell_id.nunique() == 1
    return rows.iloc[0]


def test_export_a_sweep_cell_in_one_command(organism_run, tmp_path):
    run_dir = organism_run.run_dir
    row = _cell(organism_run.results, "sparsegpt", "mlp", 0.6)
    out = tmp_path / "hf"
    assert main(["export", str(run_dir), "--cell", row.cell_id[:8], "--out", str(out)]) == 0
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    # the weights zeroed in the exported model are the run's recorded count
    zeros = sum(int((p == 0).sum()) for n, p in exported.named_parameters()
                if ".mlp." in n and n.endswith("proj.weight"))
    assert zeros == row.params_removed
    record = json.loads((out / "lenskit_pruning.json").read_text())
    assert record["run"]["cell_id"] == row.cell_id
    assert record["run"]["recorded"] == record["run"]["reproduced"] == {
        "params_removed": int(row.params_removed),
        "achieved_sparsity": float(row.achieved_sparsity)}
    assert record["run"]["mode"] == "sequential" and record["config"]["seed"] == 0
    # the exported model computes what lenskit's re-pruned model computes
    model, result, _ = reprune_cell(run_dir, row.cell_id)
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    with torch.no_grad(), result.applied(model):
        want = model_info(model).hf(input_ids=ids).logits
    with torch.no_grad():
        got = exported(input_ids=ids).logits
    assert torch.equal(got, want)
    # a non-empty output directory is refused before anything is loaded
    assert main(["export", str(run_dir), "--cell", row.cell_id, "--out", str(out)]) == 2


def test_every_pruned_cell_reproduces_its_recorded_sparsity(organism_run):
    results = organism_run.results
    for cid in results[results.method != "dense"].cell_id.unique():
        row = results[results.cell_id == cid].iloc[0]
        _, result, record = reprune_cell(organism_run.run_dir, cid)
        assert result.masks.n_pruned == row.params_removed, record["label"]
        assert record["recorded"] == record["reproduced"]
    assert set(results.allocation) == {"uniform", "matched"}  # matched cells included


def test_export_refuses_what_it_cannot_reproduce(organism_run, tmp_path):
    run_dir = organism_run.run_dir
    store = RunStore(run_dir)
    dense = organism_run.results[organism_run.results.method == "dense"].cell_id.iloc[0]
    with pytest.raises(ValueError, match="is the dense model"):
        reprune_cell(run_dir, dense)
    with pytest.raises(ValueError, match=r"'zzzz' is not a finished cell.*its cells:"):
        find_cell(store, "zzzz")
    assert main(["export", str(run_dir), "--cell", "zzzz", "--out", str(tmp_path / "x")]) == 2
    # a run whose recorded count differs (another model, another calibration...) is an error
    row = _cell(organism_run.results, "wanda", "attn", 0.3)
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cell_file = copy / "cells" / f"{row.cell_id}.parquet"
    df = pd.read_parquet(cell_file)
    df["params_removed"] += 1
    df["remaining_params"] -= 1
    df.to_parquet(cell_file)
    # record the edited file's hash as if lenskit had written it (else it is refused as
    # corrupt before export can compare the counts)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    digest = hashlib.sha256(cell_file.read_bytes()).hexdigest()
    manifest["cells"][row.cell_id]["sha256"] = digest
    manifest.setdefault("files", {})[f"cells/{row.cell_id}.parquet"] = digest
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CellNotReproducedError, match="but the run recorded"):
        reprune_cell(copy, row.cell_id)
    # without --cell, the source is a saved result and needs --model
    assert main(["export", str(run_dir), "--out", str(tmp_path / "y")]) == 2
