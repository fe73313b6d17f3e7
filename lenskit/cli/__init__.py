"""The ``lenskit`` command line: it only composes the library's packages.

Each command imports the packages it needs inside its handler, so that ``lenskit --help``
and argument errors answer without loading torch; imports still flow one way (the CLI is
the top layer, see ``tests/test_layering.py``).

This module builds the parser and maps errors to exit codes; the handlers live by concern:
:mod:`~lenskit.cli.sweep` (sweep, merge, export), :mod:`~lenskit.cli.runs` (thresholds,
figures, report, doctor), :mod:`~lenskit.cli.models` (sites, tasks, templates),
:mod:`~lenskit.cli.organism` (organism train, family, card) and :mod:`~lenskit.cli.common` (argument
types, threads, quiet logging). They import only the standard library at module level.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lenskit.cli.common import (
    fraction,
    int_at_least,
    positive,
    quiet,
    resolve_threads,
    steps_triple,
)
from lenskit.cli.models import cmd_sites, cmd_tasks, cmd_templates
from lenskit.cli.organism import cmd_organism_card, cmd_organism_family, cmd_organism_train
from lenskit.cli.runs import cmd_doctor, cmd_figures, cmd_report, cmd_thresholds
from lenskit.cli.sweep import cmd_export, cmd_merge, cmd_sweep
from lenskit.errors import LenskitError, SweepTerminated

__all__ = ["build_parser", "main", "resolve_threads"]


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
    sw.set_defaults(func=cmd_sweep)

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
    ex.set_defaults(func=cmd_export)

    th = sub.add_parser("thresholds", help="print the largest sparsity each task survives")
    th.add_argument("run_dir")
    th.add_argument("--tolerance", type=fraction, nargs="+", default=[0.05],
                    help="relative drop(s) allowed (default: 0.05)")
    th.set_defaults(func=cmd_thresholds)

    mg = sub.add_parser("merge", help="merge run directories of the same models into one",
                        description="Copy every cell of RUN_A, RUN_B... into a new run "
                                    "directory. Cells shared by the runs must agree (identical "
                                    "dense rows are one); a disagreement is an error.")
    mg.add_argument("runs", nargs="+", metavar="RUN", help="run directories (two or more)")
    mg.add_argument("--out", required=True, help="the new run directory")
    mg.set_defaults(func=cmd_merge)

    fg = sub.add_parser("figures", help="make the paper figures of a run directory")
    fg.add_argument("run_dir")
    fg.add_argument("--out", help="folder for the figures (default: RUN_DIR/figures)")
    fg.add_argument("--formats", nargs="+", default=["svg", "png", "pdf"])
    fg.set_defaults(func=cmd_figures)

    dr = sub.add_parser("doctor", help="check a run directory and repair what can be repaired",
                        description="Quarantine corrupt cell files (the next resume recomputes "
                                    "them), rebuild a damaged manifest, delete temporary files "
                                    "of killed writers, and say what was done.")
    dr.add_argument("run_dir")
    dr.set_defaults(func=cmd_doctor)

    rp = sub.add_parser("report", help="write one self-contained interactive HTML page of a run")
    rp.add_argument("run_dir")
    rp.add_argument("--out", help="HTML file (default: RUN_DIR/report.html)")
    rp.set_defaults(func=cmd_report)

    s = sub.add_parser("sites", help="load a model and list its prunable sites")
    s.add_argument("model", nargs="?", default="organism",
                   help="hub name, local HF directory or 'organism' (default)")
    s.add_argument("--scope", default="all",
                   help="selection: all, attn, mlp, attn.q,k, mlp@0-3 ... (default: all)")
    s.set_defaults(func=cmd_sites)

    tk = sub.add_parser("tasks", help="list the named tasks and their parameters")
    tk.set_defaults(func=cmd_tasks)

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
    tp.set_defaults(func=cmd_templates)

    org = sub.add_parser("organism", help="the small model trained here on a synthetic world")
    osub = org.add_subparsers(dest="organism_command", required=True)
    t = osub.add_parser("train", help="train an organism from scratch (resumes if interrupted)")
    t.add_argument("--out", default="runs/organism", help="run directory (default: %(default)s)")
    t.add_argument("--steps", type=int_at_least(1), default=3000, help="(default: %(default)s)")
    t.add_argument("--exemplar-weight", type=float, default=0.5,
                   help="loss weight of in-context exemplar labels after the 4th "
                        "(default: %(default)s)")
    t.add_argument("--d-model", type=int_at_least(1), default=128, help="width (default: %(default)s)")
    t.add_argument("--d-ffn", type=int_at_least(1), default=None, help="FFW width (default: 3 x d-model)")
    t.add_argument("--layers", type=int_at_least(1), default=4)
    t.add_argument("--seed", type=int, default=0, help="seeds the world, data and init")
    t.add_argument("--threads", type=int_at_least(1), default=1,
                   help="torch threads (1 is fastest when another job holds a core)")
    t.add_argument("--eval-every", type=int_at_least(0), default=500,
                   help="evaluate the task suite every N steps (0: never)")
    t.add_argument("--function-curriculum", type=steps_triple, default=None,
                   metavar="REPEAT,LOOKUP,NEAR",
                   help="function-learning curriculum: exemplars repeated until step REPEAT, "
                        "query = an exemplar until LOOKUP, next to one until NEAR (default: none)")
    t.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="matmul precision: bfloat16 autocast keeps float32 weights and loss "
                        "(default: %(default)s)")
    t.add_argument("--device", default="cpu",
                   help="where the model trains, e.g. cuda (default: %(default)s)")
    t.add_argument("--workers", type=int_at_least(0), default=0,
                   help="processes that build the batches ahead (0: in the trainer); a GPU "
                        "needs several, the corpus takes ~1.5 ms per row on one core")
    w = t.add_argument_group("world (default: the shipped organism's world)")
    w.add_argument("--popularity", choices=("uniform", "zipf"), default=None,
                   help="how often each memorised entity is drawn into training documents "
                        "(default: uniform)")
    w.add_argument("--zipf-exponent", type=positive, default=None,
                   help="exponent s of the zipf law: rank r drawn with weight r^-s (default: 1)")
    w.add_argument("--n-entities", type=int_at_least(1), default=None,
                   help="memorised entities; 4 facts each (default: 120)")
    w.add_argument("--n-held-out", type=int_at_least(1), default=None,
                   help="held-out names for open-book passages (default: 400)")
    w.add_argument("--n-cities", type=int_at_least(1), default=None,
                   help="values of the capital relation (default: 40)")
    w.add_argument("--name-words", type=int, choices=(1, 2), default=None,
                   help="words per name: 2 draws given and family names from two small pools, "
                        "for large worlds (default: 1)")
    t.set_defaults(func=cmd_organism_train)
    fam = osub.add_parser(
        "family", help="train or resume the organism family (one world, several widths)",
        description="Train the near-capacity organism family: the members (organism-d32, "
                    "organism-d48, ...) one after the other, each resumable from its "
                    "checkpoint. Run the same command again to resume; finished members are "
                    "skipped.")
    fam.add_argument("--root", default="runs/organism-family",
                     help="one run directory per member under it (default: %(default)s)")
    fam.add_argument("--widths", type=int_at_least(8), nargs="+", default=None,
                     help="d_model of each member, in training order (default: 32 48 64)")
    fam.add_argument("--steps", type=int_at_least(1), default=None,
                     help="training steps of every member (default: 12000)")
    fam.add_argument("--threads", type=int_at_least(1), default=1,
                     help="torch threads (default: %(default)s)")
    fam.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                     help="(default: %(default)s)")
    fam.add_argument("--eval-every", type=int_at_least(0), default=2000,
                     help="evaluate the small task suite every N steps (0: never; "
                          "default: %(default)s)")
    fam.set_defaults(func=cmd_organism_family)
    cd = osub.add_parser("card", help="measure an organism and write its model card")
    cd.add_argument("model_dir", nargs="?", help="organism directory (default: data/organism)")
    cd.add_argument("--run-dir", help="where the card's pruning sweep goes "
                                      "(default: runs/card-<name>)")
    cd.add_argument("--methods", nargs="+", default=["wanda", "magnitude"],
                    help="pruning methods of the card's sweep (default: %(default)s)")
    cd.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    cd.set_defaults(func=cmd_organism_card)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lenskit`` command."""
    quiet()
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
