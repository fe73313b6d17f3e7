"""Builders of small hand-made tidy result frames for the analysis tests."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from lenskit.results.schema import KIND_CATEGORY, RESULT_COLUMNS, attach_baselines

MODEL_PARAMS = 1000
SCOPE_PARAMS = {"all": 1000, "attn": 250, "mlp": 750}


def make_row(*, value: float, sparsity: float = 0.0, method: str = "wanda",
             model: str = "m", scope: str = "all", task: str = "t", kind: str = "closed_book",
             metric: str = "em", seed: int = 0, structure: str = "unstructured",
             allocation: str = "uniform", ci: tuple[float, float] | None = None,
             n: int = 100) -> dict:
    """One schema row; parameter counts follow from the scope and sparsity."""
    if method == "dense":
        scope, sparsity = "all", 0.0
    removed = round(sparsity * SCOPE_PARAMS[scope])
    key = f"{model}|{method}|{structure}|{allocation}|{scope}|{sparsity:.6f}|{seed}"
    return {
        "model": model, "model_params": MODEL_PARAMS, "method": method,
        "structure": structure, "allocation": allocation, "scope": scope,
        "target_sparsity": sparsity, "achieved_sparsity": removed / SCOPE_PARAMS[scope],
        "params_removed": removed, "remaining_params": MODEL_PARAMS - removed,
        "task": task, "kind": kind, "category": KIND_CATEGORY[kind], "metric": metric,
        "value": value, "n": n,
        "ci_low": float("nan") if ci is None else ci[0],
        "ci_high": float("nan") if ci is None else ci[1],
        "seed": seed, "baseline": float("nan"), "relative_drop": float("nan"),
        "cell_id": hashlib.sha256(key.encode()).hexdigest()[:12],
    }


def curve(dense: float, points: dict[float, float], **keys) -> list[dict]:
    """Rows of a dense baseline plus a pruned curve {sparsity: value} sharing ``keys``."""
    dense_keys = {k: v for k, v in keys.items() if k in ("model", "task", "kind", "metric",
                                                          "seed", "n")}
    rows = [make_row(value=dense, method="dense", **dense_keys)]
    for s, v in points.items():
        rows.append(make_row(value=v, sparsity=s, **keys))
    return rows


def frame(*row_lists: list[dict]) -> pd.DataFrame:
    """Concatenate rows, drop repeated dense rows, fill baselines."""
    rows = [r for rl in row_lists for r in rl]
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    df = df.drop_duplicates(["cell_id", "task", "metric"]).reset_index(drop=True)
    return attach_baselines(df)



def synthetic_cell(i: int, n_instances: int = 200) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Cell ``i`` of a deterministic synthetic sweep: (cell_id, result rows, instance rows).

    Cell 0 is the dense model; the others prune scope attn/mlp at sparsity 0.05 * i. Used to
    exercise the store (resume after SIGKILL) without a model.
    """
    rng = np.random.default_rng(i)
    scope = "all" if i == 0 else ("attn", "mlp")[i % 2]
    rows, inst = [], []
    for task, kind in (("facts", "closed_book"), ("copy", "open_book")):
        correct = (rng.random(n_instances) < 0.9 - 0.05 * i).astype(float)
        rows.append(make_row(value=float(correct.mean()), sparsity=round(0.05 * i, 6),
                             method="dense" if i == 0 else "wanda", scope=scope, task=task,
                             kind=kind, n=n_instances))
        inst.append(pd.DataFrame({"task": task, "metric": "em",
                                  "instance_id": [f"{task}-{j}" for j in range(n_instances)],
                                  "value": correct}))
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    cell_id = df["cell_id"].iloc[0]
    instances = pd.concat(inst, ignore_index=True).assign(cell_id=cell_id, weight=1.0)
    return cell_id, df, instances
