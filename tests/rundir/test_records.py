"""What a run directory is given to record: RunConfig and CellOutput, and the writer that
attaches baselines to evaluated cells (RunWriter.write_outputs)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from results.frames import make_row

from lenskit.results import RESULT_COLUMNS
from lenskit.rundir import CellOutput, RunConfig, RunStore
from lenskit.sweep import default_config


def _output(method: str, sparsity: float, values: dict[str, float], seed: int = 0
            ) -> CellOutput:
    """An evaluated cell of model "m" (baselines NaN, as a worker yields it)."""
    rows = pd.DataFrame([make_row(value=v, method=method, sparsity=sparsity, task=t,
                                  scope="attn", seed=seed) for t, v in values.items()],
                        columns=list(RESULT_COLUMNS))
    dense = pd.DataFrame([make_row(value=0.0, method="dense", seed=seed)])
    return CellOutput(cell_id=rows["cell_id"].iloc[0], dense_id=dense["cell_id"].iloc[0],
                      model="m", rows=rows, seconds=0.5, label=f"{method} {sparsity}",
                      identity={"method": method, "sparsity": sparsity, "kw": ("a", 1)},
                      weights={"fingerprint": "f1"}, device={"device": "cpu"})


def test_run_config_of_a_sweep_config_keeps_its_json_form_and_history():
    cfg = default_config()
    run = RunConfig.of(cfg)
    assert run.settings == json.loads(json.dumps(cfg.to_dict()))
    assert "out_dir" in run.settings and "out_dir" not in run.history
    assert "executor" not in run.history and run.history["methods"] == cfg.methods
    assert RunConfig.of(run) is run
    with pytest.raises(TypeError, match="SweepConfig or a mapping"):
        RunConfig.of(["not", "a", "config"])


def test_cell_output_holds_json_form_of_its_records():
    out = _output("wanda", 0.5, {"t": 0.4})
    assert out.identity["kw"] == ["a", 1]  # a tuple reads back from JSON as a list
    assert not out.is_dense
    dense = _output("dense", 0.0, {"t": 0.8})
    assert dense.is_dense


def test_write_outputs_attaches_baselines_and_waits_for_the_dense_cell(tmp_path):
    dense = _output("dense", 0.0, {"t": 0.8, "u": 0.5})
    pruned = [_output("wanda", s, {"t": 0.8 * (1 - s), "u": 0.25}) for s in (0.2, 0.6)]
    written = []
    with RunStore.open(tmp_path / "run", {"name": "records"}) as writer:
        # pruned cells first (another worker still evaluates the dense one): they wait
        writer.write_outputs([*pruned, dense], written.append)
    assert [o.cell_id for o in written] == [dense.cell_id, *(p.cell_id for p in pruned)]
    store = RunStore(tmp_path / "run")
    res = store.results()
    assert (res["baseline"] == res["task"].map({"t": 0.8, "u": 0.5})).all()
    wanda = res[res["method"] == "wanda"].set_index(["target_sparsity", "task"])
    assert wanda.loc[(0.6, "t"), "relative_drop"] == pytest.approx(0.6)
    assert wanda.loc[(0.2, "u"), "relative_drop"] == pytest.approx(0.5)
    m = store.run_manifest()
    assert m.models["m"] == {"fingerprint": "f1"} and m.devices["m"] == {"device": "cpu"}
    assert m.cells[pruned[0].cell_id].cell == {"method": "wanda", "sparsity": 0.2,
                                               "kw": ["a", 1]}
    assert m.cells[pruned[0].cell_id].label == "wanda 0.2"


def test_a_later_session_takes_baselines_from_the_stored_dense_cell(tmp_path):
    dense = _output("dense", 0.0, {"t": 0.8})
    with RunStore.open(tmp_path / "run", {"name": "records"}) as writer:
        writer.write_outputs([dense])
    late = _output("wanda", 0.4, {"t": 0.2})
    with RunStore.open(tmp_path / "run", {"name": "records"}) as writer:
        writer.write_outputs([late])
    row = RunStore(tmp_path / "run").read_cell(late.cell_id).iloc[0]
    assert row["baseline"] == 0.8 and row["relative_drop"] == pytest.approx(0.75)


def test_cells_whose_dense_cell_never_comes_are_a_bug_and_not_written(tmp_path):
    orphan = _output("wanda", 0.4, {"t": 0.2})
    with RunStore.open(tmp_path / "run", {"name": "records"}) as writer:
        with pytest.raises(RuntimeError, match="without their dense baseline"):
            writer.write_outputs([orphan])
        assert not writer.done(orphan.cell_id)
