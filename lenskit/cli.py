"""The ``lenskit`` command line: it only composes the library's packages.

Each command imports the packages it needs inside its handler, so that ``lenskit --help``
and argument errors answer without loading torch; imports still flow one way (the CLI is
the top layer, see ``tests/test_layering.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lenskit.errors import LenskitError, RunDirectoryError, SweepTerminated, UsageError

__all__ = ["main"]


def _quiet() -> None:
    # No blanket warnings filter: loading, pruning and evaluating the supported families
    # raise no Python warnings (checked with -W always), so any warning that appears is
    # news (lenskit's own, e.g. answers tokenised alone, are meant to be read). Library
    # log chatter and download bars are silenced instead.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    for name in ("transformers", "transformer_lens", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resolve_threads(value: str | int) -> int:
    """Torch threads for a command: an integer >= 1, or ``"auto"`` = the cores not already
    busy when the command starts (cpu count minus the 1-minute load average, at least 1).

    Why not torch's default (every core): on a shared machine, threads spinning on cores
    that another job holds slow small-model work down by up to 10x (measured here).
    """
    if str(value) == "auto":
        cores = os.cpu_count() or 1
        try:
            busy = round(os.getloadavg()[0])
        except OSError:  # not available on this platform
            busy = 0
        return max(1, cores - busy)
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"--threads must be an integer >= 1 or 'auto', got {value!r}")
    return n


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (the error names the value)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (0.05 = 5%)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"must be a fraction in (0, 1), e.g. 0.05 for a 5% drop; got {text!r}")
    return value


def _set_threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(resolve_threads(args.threads))


def _cmd_sites(args: argparse.Namespace) -> int:
    from lenskit.models import load_model, model_info
    from lenskit.models.loading import ModelLoadError, resolve_spec

    try:
        resolve_spec(args.model)
    except ModelLoadError as err:
        raise UsageError(str(err)) from None
    model = load_model(args.model)
    info = model_info(model)
    sel = info.select(args.scope)
    print(f"{info.spec}: {info.arch.name}, {info.n_layers} layers, "
          f"{info.total_params:,} block-linear parameters")
    print(f"{'site':<22}{'shape (out, in)':>18}{'params':>12}  heads  input hook")
    for s in sel:
        heads = f"{s.n_heads}x{s.head_dim}" if s.n_heads else "-"
        print(f"{s.name:<22}{s.shape!s:>18}{s.numel:>12,}  {heads:<5}  {s.input_hook}")
    print(f"selection {args.scope!r}: {len(sel)} sites, {sel.n_params:,} parameters "
          f"({sel.fraction:.1%} of block linears)")
    return 0


def _cmd_organism_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lenskit.organism.train import TrainConfig, train
    from lenskit.synthetic.world import WorldConfig

    cfg = TrainConfig()
    model = replace(cfg.model, d_model=args.d_model, d_ffn=args.d_ffn or 3 * args.d_model,
                    n_layers=args.layers)
    corpus = replace(cfg.corpus, exemplar_weight=args.exemplar_weight,
                     function_curriculum=tuple(args.function_curriculum or ()))
    world = {k: v for k, v in (("popularity", args.popularity),
                               ("zipf_exponent", args.zipf_exponent),
                               ("n_memorised", args.n_entities),
                               ("n_held_out", args.n_held_out), ("n_cities", args.n_cities),
                               ("name_words", args.name_words)) if v is not None}
    cfg = replace(cfg, seed=args.seed, steps=args.steps, threads=args.threads,
                  eval_every=args.eval_every, model=model, corpus=corpus,
                  world=replace(WorldConfig(), seed=args.seed, **world))
    evaluator = None
    if args.eval_every > 0:
        from lenskit.organism.monitor import task_evaluator

        evaluator = task_evaluator()
    final = train(args.out, cfg, evaluator=evaluator, progress=True, device=args.device,
                  workers=args.workers)
    print(f"organism saved to {final}")
    return 0


def _positive(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _steps_triple(text: str) -> tuple[int, int, int]:
    """``"1800,3150,5400"`` -> three non-decreasing step numbers."""
    try:
        steps = tuple(int(v) for v in text.split(","))
    except ValueError:
        steps = ()
    if len(steps) != 3 or min(steps) < 0 or list(steps) != sorted(steps):
        raise argparse.ArgumentTypeError(
            f"expected three non-decreasing steps REPEAT,LOOKUP,NEAR, got {text!r}")
    return steps


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    for flag, key in (("model", "models"), ("methods", "methods"), ("sparsities", "sparsities"),
                      ("scopes", "scopes"), ("tasks", "tasks"), ("seeds", "seeds"),
                      ("out", "out_dir"), ("task_size", "task_size"), ("device", "device"),
                      ("dtype", "dtype"), ("device_map", "device_map"), ("suite", "suite"),
                      ("executor", "executor"), ("address", "address"), ("workers", "workers")):
        value = getattr(args, flag, None)
        if value:
            out[key] = ";".join(value) if key in ("scopes", "suite") else (
                ",".join(value) if isinstance(value, list) else value)
    for item in args.set or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _cmd_sweep(args: argparse.Namespace) -> int:
    from lenskit.study.integrity import check_inside
    from lenskit.study.preflight import load_sweep_config, preflight
    from lenskit.study.runner import run_sweep

    cfg = load_sweep_config(args.config, _overrides(args))
    _set_threads(args)
    cells = cfg.cells()
    if args.dry_run:
        preflight(cfg)  # a real run checks the same in run_sweep, before touching --out
    print(f"sweep {cfg.name!r}: {len(cells)} cells ({', '.join(cfg.models)}; "
          f"{', '.join(cfg.methods)}; scopes {', '.join(cfg.scopes)}) -> {cfg.out_dir}")
    if args.dry_run:
        for c in cells:
            print(f"  {c.cell_id}  {c.label}")
        return 0
    outcome = run_sweep(cfg, force=args.force)
    if not args.no_figures:
        from lenskit.plots import make_figures

        inst = outcome.instances
        check_inside(outcome.run_dir, Path(outcome.run_dir) / "figures")
        paths = make_figures(outcome.results, Path(outcome.run_dir) / "figures",
                             instances=inst if len(inst) else None,
                             thresholds=outcome.thresholds)
        if paths:
            print(f"figures: {Path(outcome.run_dir) / 'figures'} ({len(paths)} files)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from lenskit.models import load_model
    from lenskit.pruning import PruneResult, export_pruned

    model = load_model(args.model, device=args.device)
    result = PruneResult.load(args.result, model)
    out = export_pruned(model, result, args.out)
    print(f"exported {result!r} to {out}")
    return 0


def _cmd_thresholds(args: argparse.Namespace) -> int:
    from lenskit.study.comparison import format_study_comparison, study_comparison
    from lenskit.study.lock import check_not_locked
    from lenskit.study.thresholds import compute_thresholds, format_thresholds, tasks_at_chance

    store = _existing_run(args.run_dir)
    check_not_locked(store.dir, "writing the threshold tables")
    inst = store.instances()
    results = _pruned_results(store)
    thr = compute_thresholds(results, inst if len(inst) else None,
                             tolerances=sorted({*args.tolerance, 0.02, 0.05, 0.1}))
    store.write_table("thresholds", thr)
    at_chance = tasks_at_chance(results)
    cmp = study_comparison(thr, at_chance)
    store.write_table("study_comparison", cmp)
    for tol in args.tolerance:
        print(format_thresholds(thr, tolerance=tol, at_chance=at_chance))
    print(format_study_comparison(cmp))
    print(f"tables: {store.tables_dir}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from lenskit.plots import make_figures
    from lenskit.study.integrity import check_inside
    from lenskit.study.lock import check_not_locked

    store = _existing_run(args.run_dir)
    if not args.out:
        check_not_locked(store.dir, "writing figures into it (or pass --out DIR)")
        check_inside(store.dir, store.figures_dir)
    inst = store.instances()
    out = args.out or store.figures_dir
    paths = make_figures(_pruned_results(store), out, instances=inst if len(inst) else None,
                         formats=tuple(args.formats))
    print(f"{len(paths)} files written to {out}")
    for p in paths:
        print(f"  {p}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from lenskit.study.merge import merge_runs

    store = merge_runs(args.runs, args.out)
    print(f"merged {len(args.runs)} runs into {store.dir}: {len(store.done_ids())} cells; "
          f"`lenskit thresholds {store.dir}` computes their thresholds")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from lenskit.plots import write_report

    _existing_run(args.run_dir)
    path = write_report(args.run_dir, args.out)
    print(f"report written to {path} (self-contained; open it in a browser, offline)")
    return 0


def _existing_run(run_dir: str):
    from pathlib import Path

    from lenskit.study.store import RunStore

    if not (Path(run_dir) / "manifest.json").is_file():
        raise UsageError(f"{run_dir} is not a lenskit run directory (no manifest.json); "
                         f"run `lenskit sweep --out {run_dir}` first")
    store = RunStore(run_dir)
    store.manifest()  # a damaged manifest is reported now, naming the file
    return store


def _pruned_results(store):
    """The run's results, refusing a run without any pruned cell (nothing to compare)."""
    results = store.results()
    if not (results["method"] != "dense").any():
        raise RunDirectoryError(
            f"{store.dir} has no pruned cells yet ({len(store.done_ids())} dense cell(s) "
            "done): thresholds and figures need them; resume the sweep with "
            f"`lenskit sweep --out {store.dir}` (same options as before)", store.dir)
    return results


def _cmd_doctor(args: argparse.Namespace) -> int:
    from lenskit.study.doctor import doctor
    from lenskit.study.store import RunStore

    report = doctor(args.run_dir)
    for line in report:
        print(f"repaired: {line}" if not line.startswith("warning") else line)
    done = len(RunStore(args.run_dir).done_ids())
    print(f"{args.run_dir}: {'healthy' if not report else f'{len(report)} problem(s) handled'}; "
          f"{done} cells done" + ("; run the same sweep again to recompute quarantined cells"
                                  if any("quarantine" in r for r in report) else ""))
    return 0


def _cmd_organism_card(args: argparse.Namespace) -> int:
    from lenskit.models import organism_path
    from lenskit.organism.card import write_card

    model_dir = args.model_dir or organism_path()
    _set_threads(args)
    path = write_card(model_dir, args.run_dir, methods=args.methods)
    print(f"model card written to {path}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from lenskit.tasks import describe_tasks

    print(describe_tasks())
    return 0


def _cmd_templates(args: argparse.Namespace) -> int:
    from lenskit.models import load_model
    from lenskit.tasks.select import format_template_report, template_report

    _set_threads(args)
    model = load_model(args.model)
    print(format_template_report(template_report(model, args.task, args.templates,
                                                 batch_size=args.batch_size)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lenskit",
        description="Layer-wise ablation studies: prune attention and FFW separately and "
                    "measure fact recall against in-context learning.",
    )
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True)

    sw = sub.add_parser(
        "sweep", help="run a sweep (default: the study on the organism); resumes if interrupted",
        description="Prune every model with every method at every sparsity and scope, evaluate "
                    "the task suite, and write tidy results, thresholds and figures to a run "
                    "directory. With no arguments: the default study on the shipped organism "
                    "(examples/sweep_default.toml). Run the same command again to resume.")
    sw.add_argument("config", nargs="?", help="a TOML (or YAML) sweep config")
    sw.add_argument("--model", action="append",
                    help="model to sweep (repeat for several): hub name, local dir, organism")
    sw.add_argument("--methods", nargs="+", help="random magnitude wanda sparsegpt")
    sw.add_argument("--sparsities", nargs="+", help="e.g. 0.1 0.3 0.5")
    sw.add_argument("--scopes", nargs="+", help="e.g. all attn mlp 'attn.q,k@0-3'")
    sw.add_argument("--suite", nargs="+", metavar="SPEC",
                    help="task specs by name instead of the model's default suite, e.g. "
                         "'triviaqa:n=500,path=/data/triviaqa-rc' fn_linear (see lenskit tasks)")
    sw.add_argument("--tasks", nargs="+", help="task names of the suite (default: all)")
    sw.add_argument("--task-size", choices=("small", "full"))
    sw.add_argument("--seeds", nargs="+")
    sw.add_argument("--out", help="run directory (default: runs/default)")
    sw.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="any other setting, e.g. calibration.n_samples=64 (repeatable)")
    sw.add_argument("--force", action="store_true",
                    help="delete what lenskit wrote in the run directory and start again (not "
                         "needed to grow a run: a larger grid computes only its new cells)")
    sw.add_argument("--no-figures", action="store_true", help="skip the figures")
    sw.add_argument("--dry-run", action="store_true", help="list the cells and stop")
    sw.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    sw.add_argument("--device", help="auto (cuda, else mps, else cpu; the default), cpu, "
                                     "cuda, cuda:N, mps")
    sw.add_argument("--dtype", help="weights' precision: float32 (default), bfloat16, float16 "
                                    "(statistics and SparseGPT stay float32)")
    sw.add_argument("--device-map", help="none (default) or auto: spread each model's layers "
                                         "over the GPUs (needs accelerate)")
    sw.add_argument("--executor", choices=("local", "ray"),
                    help="where cells run: local (this process, the default) or ray (actors of "
                         "a Ray cluster; pip install 'lenskit[ray]')")
    sw.add_argument("--address", help="Ray cluster to join: auto, HOST:PORT or "
                                      "ray://HOST:10001 (default: start a local one)")
    sw.add_argument("--workers", help="Ray workers, one model each (default: as many as the "
                                      "cluster fits at num_cpus/num_gpus each, see --set)")
    sw.set_defaults(func=_cmd_sweep)

    ex = sub.add_parser(
        "export", help="write a pruned model as a plain Hugging Face model directory",
        description="Apply a saved pruning result (PruneResult.save: masks and SparseGPT's "
                    "updated weights) to MODEL and write config, tokenizer and "
                    "model.safetensors to OUT, loadable by "
                    "transformers.AutoModelForCausalLM.from_pretrained(OUT). Sweep run "
                    "directories do not store masks, so export works from a saved result "
                    "only: re-prune the cell with lenskit.prune(...) and save it.")
    ex.add_argument("result", help="a file written by PruneResult.save")
    ex.add_argument("--model", required=True,
                    help="the model the result was made for: hub name, local dir, organism")
    ex.add_argument("--out", required=True, help="the directory to write")
    ex.add_argument("--device", default="cpu", help="where to apply it (default: cpu)")
    ex.set_defaults(func=_cmd_export)

    th = sub.add_parser("thresholds", help="print the largest sparsity each task survives")
    th.add_argument("run_dir")
    th.add_argument("--tolerance", type=_fraction, nargs="+", default=[0.05],
                    help="relative drop(s) allowed (default: 0.05)")
    th.set_defaults(func=_cmd_thresholds)

    mg = sub.add_parser("merge", help="merge run directories of the same models into one",
                        description="Copy every cell of RUN_A, RUN_B... into a new run "
                                    "directory. Cells shared by the runs must agree (identical "
                                    "dense rows are one); a disagreement is an error.")
    mg.add_argument("runs", nargs="+", metavar="RUN", help="run directories (two or more)")
    mg.add_argument("--out", required=True, help="the new run directory")
    mg.set_defaults(func=_cmd_merge)

    fg = sub.add_parser("figures", help="make the paper figures of a run directory")
    fg.add_argument("run_dir")
    fg.add_argument("--out", help="folder for the figures (default: RUN_DIR/figures)")
    fg.add_argument("--formats", nargs="+", default=["svg", "png", "pdf"])
    fg.set_defaults(func=_cmd_figures)

    dr = sub.add_parser("doctor", help="check a run directory and repair what can be repaired",
                        description="Quarantine corrupt cell files (the next resume recomputes "
                                    "them), rebuild a damaged manifest, delete temporary files "
                                    "of killed writers, and say what was done.")
    dr.add_argument("run_dir")
    dr.set_defaults(func=_cmd_doctor)

    rp = sub.add_parser("report", help="write one self-contained interactive HTML page of a run")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="HTML file (default: RUN_DIR/report.html)")
    rp.set_defaults(func=_cmd_report)

    s = sub.add_parser("sites", help="load a model and list its prunable sites")
    s.add_argument("model", nargs="?", default="organism",
                   help="hub name, local HF directory or 'organism' (default)")
    s.add_argument("--scope", default="all",
                   help="selection: all, attn, mlp, attn.q,k, mlp@0-3 ... (default: all)")
    s.set_defaults(func=_cmd_sites)

    tk = sub.add_parser("tasks", help="list the named tasks and their parameters")
    tk.set_defaults(func=_cmd_tasks)

    tp = sub.add_parser("templates", help="dense accuracy per prompt template on held-out items",
                        description="Evaluate the unpruned model on the 'select' part of each "
                                    "QA task once per template, to choose a template before "
                                    "a sweep (which evaluates the 'eval' part).")
    tp.add_argument("--model", required=True, help="hub name, local HF directory or 'organism'")
    tp.add_argument("--task", action="append", required=True,
                    help="task spec, e.g. countries_capital_closed_book:n=50 (repeatable)")
    tp.add_argument("--templates", nargs="+", default=["qa", "question_answer", "cloze"])
    tp.add_argument("--batch-size", type=int, default=32)
    tp.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    tp.set_defaults(func=_cmd_templates)

    org = sub.add_parser("organism", help="the small model trained here on a synthetic world")
    osub = org.add_subparsers(dest="organism_command", required=True)
    t = osub.add_parser("train", help="train an organism from scratch (resumes if interrupted)")
    t.add_argument("--out", default="runs/organism", help="run directory (default: %(default)s)")
    t.add_argument("--steps", type=_int_at_least(1), default=3000, help="(default: %(default)s)")
    t.add_argument("--exemplar-weight", type=float, default=0.5,
                   help="loss weight of in-context exemplar labels after the 4th "
                        "(default: %(default)s)")
    t.add_argument("--d-model", type=_int_at_least(1), default=128, help="width (default: %(default)s)")
    t.add_argument("--d-ffn", type=_int_at_least(1), default=None, help="FFW width (default: 3 x d-model)")
    t.add_argument("--layers", type=_int_at_least(1), default=4)
    t.add_argument("--seed", type=int, default=0, help="seeds the world, data and init")
    t.add_argument("--threads", type=_int_at_least(1), default=1,
                   help="torch threads (1 is fastest when another job holds a core)")
    t.add_argument("--eval-every", type=_int_at_least(0), default=500,
                   help="evaluate the task suite every N steps (0: never)")
    t.add_argument("--function-curriculum", type=_steps_triple, default=None,
                   metavar="REPEAT,LOOKUP,NEAR",
                   help="function-learning curriculum: exemplars repeated until step REPEAT, "
                        "query = an exemplar until LOOKUP, next to one until NEAR (default: none)")
    t.add_argument("--device", default="cpu",
                   help="where the model trains, e.g. cuda (default: %(default)s)")
    t.add_argument("--workers", type=_int_at_least(0), default=0,
                   help="processes that build the batches ahead (0: in the trainer); a GPU "
                        "needs several, the corpus takes ~1.5 ms per row on one core")
    w = t.add_argument_group("world (default: the shipped organism's world)")
    w.add_argument("--popularity", choices=("uniform", "zipf"), default=None,
                   help="how often each memorised entity is drawn into training documents "
                        "(default: uniform)")
    w.add_argument("--zipf-exponent", type=_positive, default=None,
                   help="exponent s of the zipf law: rank r drawn with weight r^-s (default: 1)")
    w.add_argument("--n-entities", type=_int_at_least(1), default=None,
                   help="memorised entities; 4 facts each (default: 120)")
    w.add_argument("--n-held-out", type=_int_at_least(1), default=None,
                   help="held-out names for open-book passages (default: 400)")
    w.add_argument("--n-cities", type=_int_at_least(1), default=None,
                   help="values of the capital relation (default: 40)")
    w.add_argument("--name-words", type=int, choices=(1, 2), default=None,
                   help="words per name: 2 draws given and family names from two small pools, "
                        "for large worlds (default: 1)")
    t.set_defaults(func=_cmd_organism_train)
    cd = osub.add_parser("card", help="measure an organism and write its model card")
    cd.add_argument("model_dir", nargs="?", help="organism directory (default: data/organism)")
    cd.add_argument("--run-dir", help="where the card's pruning sweep goes "
                                      "(default: runs/card-<name>)")
    cd.add_argument("--methods", nargs="+", default=["wanda", "magnitude"],
                    help="pruning methods of the card's sweep (default: %(default)s)")
    cd.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    cd.set_defaults(func=_cmd_organism_card)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lenskit`` command."""
    _quiet()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SweepTerminated as err:
        if args.debug:
            raise
        print(f"\nlenskit: terminated (signal {err.signum}); run the same command again to "
              "resume", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\nlenskit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, KeyError) as err:  # bad input (UsageError and ConfigError included)
        if args.debug:
            raise
        print(f"lenskit: error: {_message(err)}", file=sys.stderr)
        return 2
    except (OSError, LenskitError, MemoryError) as err:  # a file, run directory, model or memory
        if args.debug:
            raise
        print(f"lenskit: error: {_message(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug: still one line, the traceback on request
        if args.debug:
            raise
        print(f"lenskit: error: unexpected {type(err).__name__}: {_message(err)} "
              "(run with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


def _message(err: BaseException) -> str:
    """The error's message; a single-problem list (ConfigError) on one line."""
    problems = getattr(err, "problems", None)
    if isinstance(problems, list) and len(problems) == 1:
        return f"invalid sweep config: {problems[0]}"
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    if isinstance(err, OSError) and err.filename and str(err.filename) not in str(err):
        return f"{err.strerror or err}: {err.filename}"
    return str(err)


if __name__ == "__main__":
    raise SystemExit(main())
