"""The organism's model card: measured, not written by hand.

``write_card(model_dir)`` scores the organism on its full task suite (dense), runs a sweep
of pruning curves (attention-only, FFW-only, all; Wanda and magnitude) on its small suite,
and renders ``README.md`` in the model directory from those numbers and the training
record (``training.json``, ``train_log.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lenskit.models import load_model
from lenskit.organism.family import family_config, icl_stage_config
from lenskit.sweep.config import load_config
from lenskit.sweep.runner import run_sweep
from lenskit.synthetic.functions import FunctionSpec, sample_function_instances
from lenskit.synthetic.world import BUCKETS, World
from lenskit.tasks import evaluate_suite, organism_suite

__all__ = ["bucket_rows", "measure_card", "nearest_neighbour_accuracy", "render_card",
           "target_rows", "write_card"]

CARD_SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# The dense model's targets (issue 5): task-kind prefix or exact key -> (metric, bound, sense).
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("closed-book fact recall", "closed_book/em", 0.90, ">="),
    ("open-book QA", "open_book/em", 0.90, ">="),
    ("overriding QA: follows the context", "overriding/em", 0.85, ">="),
    ("in-context function learning (best task, K=2)", "fn_*/em", 0.75, ">="),
)
_HEADLINE = ("em", "memorised_rate", "perplexity")


def measure_card(model_dir: str | Path, run_dir: str | Path, *,
                 methods: tuple[str, ...] | list[str] = ("wanda", "magnitude"),
                 progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Dense scores on the full suite, and the pruning sweep's results and thresholds.

    The sweep is resumable in ``run_dir`` like any other.
    """
    model = load_model(model_dir)
    dense = evaluate_suite(model, organism_suite(model, size="full", seed=0),
                           batch_size=64).summary()
    cfg = load_config(None, {
        "name": "organism-card", "models": str(model_dir), "methods": ",".join(methods),
        "sparsities": ",".join(map(str, CARD_SPARSITIES)), "scopes": "all;attn;mlp",
        "matched": "true", "out_dir": str(run_dir),
    })
    out = run_sweep(cfg, progress=progress, echo=lambda _: None)
    return dense, out.results, out.thresholds


def target_rows(dense: pd.DataFrame) -> list[dict]:
    """Each target with the measured value and whether it is met (``fn_*`` takes the best
    function-learning task)."""
    rows = []
    em = dense[dense["metric"] == "em"].set_index("task")["value"]
    buckets = [f"closed_book_{b}" for b in BUCKETS]
    for label, key, bound, sense in TARGETS:
        task, metric = key.split("/")
        if task == "closed_book" and all(b in em.index for b in buckets):
            # A near-capacity (popularity) world is not meant to hold every fact: its
            # target is that recall follows exposure, head above torso above tail.
            vals = [float(em[b]) for b in buckets]
            rows.append({"target": "closed-book recall follows popularity (near capacity)",
                         "required": "head > torso > tail",
                         "measured": " > ".join(_pct(v) for v in vals),
                         "met": "yes" if vals[0] > vals[1] > vals[2] else "**no**"})
            continue
        sel = dense[dense["metric"] == metric]
        if task.endswith("*"):
            sel = sel[sel["task"].str.startswith(task[:-1])]
            value = float(sel["value"].max()) if len(sel) else float("nan")
        else:
            # A popularity world has one closed-book task per bucket: the target is their
            # mean (each bucket holds a third of the entities).
            exact = sel[sel["task"] == task]
            sel = exact if len(exact) else sel[sel["task"].str.startswith(task + "_")]
            value = float(sel["value"].mean()) if len(sel) else float("nan")
        met = value >= bound if sense == ">=" else value <= bound
        rows.append({"target": label, "required": f"{sense} {_pct(bound)}",
                     "measured": _pct(value), "met": "yes" if met else "**no**"})
    return rows


def bucket_rows(world, dense: pd.DataFrame) -> list[dict]:
    """Closed-book recall per popularity bucket of a zipf world (empty for a uniform one):
    entities, facts, training exposure per fact (median and range, when recorded) and the
    dense exact match of ``closed_book_{bucket}``."""
    buckets = world.buckets
    if buckets is None:
        return []
    rows = []
    for b in BUCKETS:
        ents = [e for e in world.memorised if buckets[e] == b]
        if not ents:
            continue
        sel = dense[(dense["task"] == f"closed_book_{b}") & (dense["metric"] == "em")]
        row = {"bucket": b, "entities": len(ents), "facts": sum(len(world.facts[e])
                                                                  for e in ents),
               "share of documents": _pct(sum(world.popularity[e] for e in ents))}
        if world.exposure is not None:
            import numpy as np

            n = np.array([c for e in ents for c in world.exposure[e].values()])
            row["exposure per fact (median, min-max)"] = \
                f"{int(np.median(n))} ({int(n.min())}-{int(n.max())})"
        row["closed-book EM"] = _pct(float(sel["value"].iloc[0])) if len(sel) else "n/a"
        rows.append(row)
    return rows


def nearest_neighbour_accuracy(spec, n: int = 1000, seed: int = 5) -> float:
    """Accuracy of a 1-nearest-neighbour rule (Euclidean, ties to the first exemplar) that
    labels each query with its closest exemplar's label: how much the prompts of ``spec``
    (a :class:`~lenskit.synthetic.functions.FunctionSpec`) reveal without any learning."""
    import numpy as np

    hits = []
    for inst in sample_function_instances(spec, n, seed):
        x = np.asarray(inst.exemplars_x, dtype=float).reshape(len(inst.exemplars_x), -1)
        q = np.asarray(inst.query_x, dtype=float).reshape(1, -1)
        hits.append(inst.exemplars_y[int(((x - q) ** 2).sum(1).argmin())] == inst.label)
    return float(np.mean(hits))


def _world_flags(w: dict) -> str:
    """The ``lenskit organism train`` flags that rebuild a recorded world config."""
    flags = (("popularity", "--popularity", "uniform"), ("zipf_exponent", "--zipf-exponent", 1.0),
             ("n_memorised", "--n-entities", 120), ("n_held_out", "--n-held-out", 400),
             ("n_cities", "--n-cities", 40), ("name_words", "--name-words", 1))
    return "".join(f" {flag} {w[k]:g}" if isinstance(w[k], float) else f" {flag} {w[k]}"
                   for k, flag, default in flags if k in w and w[k] != default)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


_SPEED = ("threads", "compile", "eval_every", "checkpoint_every", "init_from")


def _same_recipe(a: dict, b: dict) -> bool:
    a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
    return ({k: v for k, v in a.items() if k not in _SPEED}
            == {k: v for k, v in b.items() if k not in _SPEED})


def _reproduce(tc: dict, d_flag: str, ew: float, name: str, stage2: dict | None = None) -> str:
    """The command that trains this organism again: ``lenskit organism family`` for a member
    of the family recipe (:func:`lenskit.organism.family.family_config`, and
    :func:`~lenskit.organism.family.icl_stage_config` for its second stage ``stage2``), else
    ``lenskit organism train`` with the flags of its (first-stage) config ``tc``."""

    width = tc["model"]["d_model"]
    if width % 8 == 0:
        fam = family_config(width, steps=tc["steps"], seed=tc["seed"]).to_json()
        icl = None if stage2 is None else icl_stage_config(
            width, "model", steps=stage2["steps"], seed=stage2["seed"]).to_json()
        if _same_recipe(fam, tc) and (stage2 is None or _same_recipe(icl, stage2)):
            steps = (f"--steps {tc['steps']} --icl-steps "
                     f"{0 if stage2 is None else stage2['steps']}")
            return (f"`lenskit organism family {steps} --root runs` (the family recipe, "
                    f"`lenskit.organism.family`; this is its member `organism-d{width}`, "
                    f"alone: `--widths {width}`)")
    then = "" if stage2 is None else (
        "; then its second stage, `lenskit.organism.train` with `TrainConfig(init_from=...)` "
        "as recorded in `training.json`")
    return (f"`lenskit organism train --steps {tc['steps']} --seed {tc['seed']}{d_flag}\n"
            f"  --exemplar-weight {ew:g} --out runs/{name}`{then}")


def _cost(log: list[dict], first_stage: dict | None = None) -> str:
    """The training's measured CPU time (both stages' when ``first_stage``, the first
    stage's record in a second stage's ``training.json``), when its logs record it."""
    if not log or "cpu_s" not in log[-1]:
        return ""
    cpu, wall = log[-1]["cpu_s"], log[-1]["elapsed_s"]
    split = ""
    if first_stage is not None and "cpu_s" in first_stage.get("time", {}):
        t = first_stage["time"]
        split = (f"; first stage {t['cpu_s'] / 3600:.2f}, second {cpu / 3600:.2f}")
        cpu, wall = cpu + t["cpu_s"], wall + t["elapsed_s"]
    return (f"\n- Cost: {cpu / 3600:.2f} core-hours of CPU time for the training "
            f"process{split} ({wall / 3600:.1f} h wall, summed over resumed runs).")


def render_card(model_dir: str | Path, dense: pd.DataFrame, results: pd.DataFrame,
                thresholds: pd.DataFrame) -> str:
    """The card as markdown."""
    d = Path(model_dir)
    world = World.load(d / "world.json")
    meta = json.loads((d / "training.json").read_text())
    # A two-stage member: the card describes the first stage's recipe, then the second's.
    first = meta.get("first_stage")
    tc, tc2 = (first["train_config"], meta["train_config"]) if first else \
        (meta["train_config"], None)
    log = [json.loads(line) for line in (d / "train_log.jsonl").open()] \
        if (d / "train_log.jsonl").exists() else []
    hours = log[-1]["elapsed_s"] / 3600 if log else float("nan")
    if first and "elapsed_s" in first.get("time", {}):
        hours += first["time"]["elapsed_s"] / 3600
    m, c = tc["model"], tc["corpus"]

    dense_rows = dense[dense["metric"].isin(_HEADLINE)].copy()
    dense_rows["value"] = [f"{v:.3f}" if mt == "perplexity" else _pct(v)
                           for v, mt in zip(dense_rows["value"], dense_rows["metric"], strict=True)]
    dense_rows["95% CI"] = [
        f"{lo:.3f}-{hi:.3f}" if mt == "perplexity" else f"{_pct(lo)}-{_pct(hi)}"
        for lo, hi, mt in zip(dense_rows["ci_low"], dense_rows["ci_high"], dense_rows["metric"],
                              strict=True)]
    dense_table = _table(dense_rows[["task", "category", "metric", "value", "95% CI", "n"]])

    em = results[(results["metric"] == "em") & (results["allocation"] == "uniform")]
    curves = []
    for (method, scope), g in em[em["method"] != "dense"].groupby(["method", "scope"], sort=False):
        p = g.pivot_table(index="task", columns="target_sparsity", values="value")
        base = em[em["method"] == "dense"].set_index("task")["value"]
        p.insert(0, 0.0, base.reindex(p.index))
        p.columns = [f"{round(100 * s)}%" for s in p.columns]
        p = (100 * p).round(1).reset_index()
        curves.append(f"**{method}, {scope}** (exact match %, by sparsity of the scope)\n\n"
                      + _table(p))
    thr = thresholds[(thresholds["tolerance"] == 0.05) & (thresholds["metric"] == "em")
                     & (thresholds["allocation"] == "uniform")]
    thr_table = ""
    if len(thr):
        t = thr.assign(cell=[(">=" if cz else "") + f"{round(100 * v)}%"
                             for v, cz in zip(thr["threshold"], thr["censored"], strict=True)])
        t = t.pivot_table(index=["method", "task"], columns="scope", values="cell",
                          aggfunc="first").reset_index()
        thr_table = _table(t)
    target_table = target_rows(dense)
    targets = _table(pd.DataFrame(target_table))
    icl_missed = any(r["met"] != "yes" for r in target_table
                     if r["target"].startswith("in-context function"))
    icl_note = ""
    if icl_missed:
        nn = ", ".join(f"{_pct(nearest_neighbour_accuracy(FunctionSpec.from_json(fs)))} "
                       f"(D={fs['n_dims']})" for fs in c["function_specs"])
        icl_note = (
            "\nThe function-learning target is **not met**: the model gives one label to "
            f"every query (chance). A 1-nearest-neighbour rule on the same prompts scores {nn}, "
            "so the prompts carry the answer; comparing numbers in context did not emerge "
            "within this CPU budget (transformers that learn such functions in context are "
            "trained for far longer, e.g. 500k steps in Garg et al. 2022). The in-context "
            "side of the study is carried by open-book and overriding QA; run the function "
            "tasks on real models (`fn_linear`, `fn_mlp`, `fn_tree` by name, or "
            "`lenskit.tasks.study_function_specs`).\n")
    d_flag = f" --d-model {m['d_model']}" if m["d_model"] != 128 else ""
    d_flag += _world_flags(tc.get("world", {}))
    phases, curriculum = c.get("function_curriculum") or [], ""
    if phases:
        d_flag += " --function-curriculum " + ",".join(map(str, phases))
        curriculum = (f"; function-learning curriculum: exemplars repeated until step "
                      f"{phases[0]}, query = an exemplar until {phases[1]}, next to one "
                      f"(nearest-neighbour label) until {phases[2]}")
    popularity = ""
    by_bucket = bucket_rows(world, dense)
    if by_bucket:
        zipf = tc.get("world", {}).get("zipf_exponent", 1.0)
        popularity = (
            f"- Popularity: zipf, exponent {zipf:g} (the entity of rank r is the subject of "
            "a fact-stating document with probability proportional to r^-s); buckets are "
            "terciles of the rank. Closed-book recall by bucket (dense; exposure = training "
            "documents that stated the fact):\n\n" + _table(pd.DataFrame(by_bucket)) + "\n")
    ew = c.get("exemplar_weight", c.get("context_weight", 0.1))
    fn_specs = "; ".join(
        f"{s['kind']} D={s['n_dims']} N={s['n_exemplars']} K={s['n_classes']} "
        f"inputs in [-{s['value_range']:g}, {s['value_range']:g}], margin {s['margin']:g}"
        for s in c["function_specs"])
    mixture = ", ".join(f"{k} {v:g}" for k, v in c["mixture"].items())
    second = ""
    if tc2 is not None:
        c2 = tc2["corpus"]
        p2 = c2.get("function_curriculum") or [0, 0, 0]
        second = (
            f"\n- Second stage (in-context function learning), from the first stage's model: "
            f"{tc2['steps']:,} steps, fresh AdamW lr {tc2['lr']:g} (warm-up {tc2['warmup']}, "
            f"cosine); mixture: {', '.join(f'{k} {v:g}' for k, v in c2['mixture'].items())}; "
            f"the function curriculum drawn per document "
            f"(`{c2.get('curriculum_style', 'phased')}`): 4-8 exemplars listed twice until "
            f"step {p2[0]}, then mostly lookups until {p2[1]}, mostly nearest-neighbour "
            f"queries (6-12 exemplars) until {p2[2]}, then the tasks with 15% lookups and "
            f"20% nearest-neighbour queries kept in the mix. Exposure counts cover both "
            f"stages.")
    name = d.name if d.name.startswith("organism") else "organism"
    return f"""# The lenskit organism{"" if name == "organism" else f" ({name})"}

A {m['n_layers']}-layer Llama (grouped-query attention: {m['n_heads']} query heads,
{m['n_kv_heads']} key-value heads; d_model {m['d_model']}; SwiGLU FFW {m['d_ffn']}; tied
embeddings; {meta['n_parameters']:,} parameters), trained from scratch here on a synthetic
world so that the whole lenskit study runs offline on a laptop CPU. It holds facts it can only
recall from its weights and answers questions it can only answer by reading its context, the
two abilities Jin et al. (2023) contrast.

Load it with `lenskit.load_model("{name}")`; its tasks are `lenskit.tasks.organism_suite`.

## The world (seed {world.seed})
- {len(world.memorised)} memorised entities x {len(world.relations)} relations
  ({', '.join(r.name for r in world.relations)}) = **{world.n_facts} facts**, stated in
  {len(world.relations[0].statements)} paraphrase templates per relation and asked as
  `Q: what is the capital of Brirul?\\nA:`; value sets of
  {', '.join(str(len(r.values)) for r in world.relations)} values.
- {len(world.held_out)} held-out names that only appear in passages with freshly drawn values
  (open-book), {len(world.unseen)} names never seen in training; overriding passages give a
  memorised entity a counterfactual value.
{popularity}- In-context function learning: {fn_specs}; labels follow the inputs directly (`3 foo`).
- Word-level tokenizer of {len(json.loads((d / 'tokenizer.json').read_text())['model']['vocab'])}
  tokens (HF format).

## Training
- {tc['steps']:,} steps{"" if tc2 is None else " (first stage)"} of {tc['batch_size']} rows x up to {c['row_tokens']} tokens (documents
  packed after `<bos>`); document mixture: {mixture}.
- AdamW lr {tc['lr']:g} (warm-up {tc['warmup']}, cosine to {tc['min_lr_ratio']:g}x), betas
  {tuple(tc['betas'])}, weight decay {tc['weight_decay']:g}, clip {tc['clip']:g}; loss weight 1
  on answer tokens (fact values, answers after `A:`, the function query's label),
  {ew:g} on the function exemplars' labels after the {c.get('exemplar_warmup', 4)}th, and
  {c.get('context_weight', 0.1):g} on every other token{curriculum}.{second}
- Seed {tc['seed']} (world, data order and initialisation); {hours:.1f} h wall time on
  {meta['hardware']} (a shared machine; torch {meta['torch']}).
- Reproduce: {_reproduce(tc, d_flag, ew, d.name, tc2)}
  (resumes if interrupted); `train_log.jsonl` has the losses and task scores during training{
  "" if tc2 is None else " (of the second stage)"}.{_cost(log, first)}

## Targets
{targets}
{icl_note}
## Dense scores (full suite; 95% bootstrap CIs)
{dense_table}

## Under pruning (small suite; unstructured, uniform per matrix; Wanda calibrated on 32 x 128
tokens of the training corpus)
Fact recall is closed-book; open-book, overriding and function learning are in-context.

{(chr(10) * 2).join(curves)}

### Largest sparsity within 5% of dense (exact match)
{thr_table}

Regenerate this card with `lenskit organism card`.
"""


def write_card(model_dir: str | Path, run_dir: str | Path | None = None,
               progress: bool = True,
               methods: tuple[str, ...] | list[str] = ("wanda", "magnitude")) -> Path:
    """Measure and write ``model_dir/README.md`` and ``scores.json``; returns the card's
    path. ``methods`` are the pruning methods of the card's sweep."""
    d = Path(model_dir)
    run = Path(run_dir) if run_dir else Path("runs") / f"card-{d.name}"
    dense, results, thresholds = measure_card(d, run, methods=methods, progress=progress)
    path = d / "README.md"
    path.write_text(render_card(d, dense, results, thresholds))
    # The same dense scores, machine-readable: the tests check the shipped model against them.
    scores = {f"{r.task}/{r.metric}": {"value": float(r.value), "ci_low": float(r.ci_low),
                                        "ci_high": float(r.ci_high), "n": int(r.n)}
              for r in dense.itertuples()}
    (d / "scores.json").write_text(json.dumps({"suite": "organism_suite(size='full', seed=0)",
                                               "scores": scores}, indent=1))
    return path
