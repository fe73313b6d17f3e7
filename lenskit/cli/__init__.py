"""The ``lenskit`` command line: it only composes the library's packages.

Each command imports the packages it needs inside its handler, so that ``lenskit --help``
and argument errors answer without loading torch; imports still flow one way (the CLI is
the top layer, see ``tests/test_layering.py``).

This module builds the parser and maps errors to exit codes; the handlers live by concern:
:mod:`~lenskit.cli.sweep` (sweep, merge, export), :mod:`~lenskit.cli.runs` (thresholds,
figures, report, doctor), :mod:`~lenskit.cli.models` (sites, families, tasks, templates),
:mod:`~lenskit.cli.organism` (organism train, family, card), :mod:`~lenskit.cli.trace` (causal
tracing) and :mod:`~lenskit.cli.common` (argument
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
from lenskit.cli.models import cmd_families, cmd_sites, cmd_tasks, cmd_templates
from lenskit.cli.organism import cmd_organism_card, cmd_organism_family, cmd_organism_train
from lenskit.cli.runs import cmd_doctor, cmd_figures, cmd_report, cmd_thresholds
from lenskit.cli.sweep import cmd_export, cmd_merge, cmd_sweep
from lenskit.cli.trace import cmd_trace
from lenskit.errors import LenskitError, SweepTerminated, UsageError

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
    _add_setting_flags(sw)
    sw.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="any other setting, e.g. calibration.n_samples=64 (repeatable)")
    sw.add_argument("--force", action="store_true",
                    help="delete what lenskit wrote in the run directory and start again (not "
                         "needed to grow a run: a larger grid computes only its new cells)")
    sw.add_argument("--no-figures", action="store_true",
                    help="skip the figures and the HTML report (lenskit figures / lenskit "
                         "report make them later)")
    sw.add_argument("--dry-run", action="store_true", help="list the cells and stop")
    sw.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    sw.set_defaults(func=cmd_sweep)

    ex = sub.add_parser(
        "export", help="write a pruned model (a cell of a run, or a saved result) as a plain "
                       "Hugging Face model directory",
        description="lenskit export RUN_DIR --cell ID --out DIR re-prunes cell ID of a sweep's "
                    "run directory exactly as the run recorded it (same model, calibration "
                    "data, seed and mode), checks that the masks remove as many weights as "
                    "recorded (the achieved sparsity), and writes config, tokenizer and "
                    "model.safetensors to DIR, loadable by "
                    "transformers.AutoModelForCausalLM.from_pretrained(DIR) (lm-evaluation-"
                    "harness, vLLM) without lenskit. `lenskit export RESULT --model MODEL "
                    "--out DIR` applies a result saved by PruneResult.save instead.")
    ex.add_argument("source", metavar="RUN_DIR|RESULT",
                    help="a run directory (with --cell), or a file written by PruneResult.save "
                         "(with --model)")
    ex.add_argument("--cell", help="the cell to export: its id or a unique prefix (`lenskit "
                                   "sweep CONFIG --dry-run` lists them)")
    ex.add_argument("--model", help="with a saved result: the model it was made for (hub "
                                    "name, local dir, organism, .gguf)")
    ex.add_argument("--out", required=True, help="the directory to write (new or empty)")
    ex.add_argument("--device", default=None,
                    help="where to prune and apply (default: the run's device; cpu for a "
                         "saved result)")
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
                   help="hub name, local HF directory, .gguf file or 'organism' (default)")
    s.add_argument("--scope", default="all",
                   help="selection: all, attn, mlp, attn.q,k, mlp@0-3 ... (default: all)")
    s.set_defaults(func=cmd_sites)

    fa = sub.add_parser("families", help="print the table of model families lenskit supports "
                        "(the README's table)")
    fa.set_defaults(func=cmd_families)

    tk = sub.add_parser("tasks", help="list the named tasks and their parameters")
    tk.set_defaults(func=cmd_tasks)

    tp = sub.add_parser("templates", help="dense accuracy per prompt template on held-out items",
                        description="Evaluate the unpruned model on the 'select' part of each "
                                    "QA task once per template, to choose a template before "
                                    "a sweep (which evaluates the 'eval' part).")
    tp.add_argument("--model", required=True,
                    help="hub name, local HF directory, .gguf file or 'organism'")
    tp.add_argument("--task", action="append", required=True,
                    help="task spec, e.g. countries_capital_closed_book:n=50 (repeatable)")
    tp.add_argument("--templates", nargs="+", default=["qa", "question_answer", "cloze"])
    tp.add_argument("--batch-size", type=int, default=32)
    tp.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    tp.set_defaults(func=cmd_templates)

    tr = sub.add_parser(
        "trace", help="causal tracing: which layer's FFW / attention carries each fact",
        description="Corrupt the subject of each fact question (Gaussian noise on its "
                    "embeddings, 3x their std, as ROME; or a counterfactual subject), restore "
                    "one site's clean output at one token, and measure how much of the "
                    "answer's probability comes back. Writes OUT/traces/ (rows in the maps' "
                    "schema, per-prompt probabilities, a record); OUT may be a sweep's run "
                    "directory, whose report then shows the traces.")
    tr.add_argument("model", nargs="?", default="organism",
                    help="hub name, local HF directory, .gguf file or 'organism' (default)")
    tr.add_argument("--out", required=True, help="run directory (traces go to OUT/traces)")
    tr.add_argument("--tasks", nargs="+",
                    help="QA task names of the model's suite (default: its closed-book tasks)")
    tr.add_argument("--n", type=int_at_least(1), default=50,
                    help="prompts per task, a seeded subset (default: %(default)s)")
    tr.add_argument("--kinds", nargs="+", default=["resid", "attn", "mlp"],
                    help="sites: resid attn mlp head (default: resid attn mlp)")
    tr.add_argument("--positions", nargs="+", default=["subject_last", "last"],
                    help="subject_first subject_last subject last all "
                         "(default: subject_last last)")
    tr.add_argument("--window", type=int_at_least(1), default=1,
                    help="restore attn/mlp outputs of this many layers together (ROME: 10)")
    tr.add_argument("--corruption", choices=("noise", "counterfactual"), default="noise")
    tr.add_argument("--corrupt", choices=("subject", "answer"), default="subject",
                    help="the span corrupted: the subject, or the answer stated in the "
                         "passage (open-book, overriding)")
    tr.add_argument("--noise", type=positive, default=3.0,
                    help="noise std in units of the subject embeddings' std (default: 3)")
    tr.add_argument("--n-noise", type=int_at_least(1), default=3,
                    help="noise samples per prompt (default: %(default)s)")
    tr.add_argument("--n-bootstrap", type=int_at_least(0), default=1000)
    tr.add_argument("--batch-size", type=int_at_least(1), default=64,
                    help="rows (sites x prompts x noise samples) per forward")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--name", default="trace", help="tells several traces of a run apart")
    tr.add_argument("--top", type=int_at_least(1), default=5, help="sites printed per task")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--threads", default="auto",
                    help="torch threads: N, or auto = the cores not busy at start (default: auto)")
    tr.set_defaults(func=cmd_trace)

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
    t.add_argument("--curriculum-style", choices=("phased", "mixed"), default="phased",
                   help="phased: every function document of a stage in its mode; mixed: drawn "
                        "per document, short prompts first, lookups kept after the curriculum "
                        "(default: %(default)s)")
    t.add_argument("--init-from", default=None, metavar="MODEL_DIR",
                   help="start from this organism's weights (a second stage: fresh optimizer "
                        "and schedule; same width, layers and world; default: random)")
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
        description="Train the near-capacity organism family: the members (organism-d64, "
                    "organism-d72, ...) one after the other, each resumable from its "
                    "checkpoints. Run the same command again to resume; finished members are "
                    "skipped.")
    fam.add_argument("--root", default="runs/organism-family",
                     help="one run directory per member under it (default: %(default)s)")
    fam.add_argument("--widths", type=int_at_least(8), nargs="+", default=None,
                     help="d_model of each member, in training order (default: 64 72 96)")
    fam.add_argument("--steps", type=int_at_least(1), default=None,
                     help="training steps of every member (its first stage) (default: 9000)")
    fam.add_argument("--icl-steps", type=int_at_least(0), default=0,
                     help="steps of an optional second stage (in-context function learning "
                          "from the first stage's model, for members narrower than 64; "
                          "default: %(default)s, none)")
    fam.add_argument("--threads", type=int_at_least(1), default=1,
                     help="torch threads (default: %(default)s)")
    fam.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                     help="(default: %(default)s)")
    fam.add_argument("--eval-every", type=int_at_least(0), default=1000,
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


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """The options of ``lenskit sweep`` that set a config setting, from their declaration
    (:mod:`lenskit.sweep.settings`, which loads without torch)."""
    from lenskit.sweep.settings import sweep_flags

    for setting in sweep_flags():
        flag = setting.flag
        kwargs: dict = {"help": flag.help, "choices": flag.choices, "metavar": flag.metavar}
        if flag.many == "append":
            kwargs["action"] = "append"
        elif flag.many:
            kwargs["nargs"] = flag.many
        parser.add_argument(flag.name, **{k: v for k, v in kwargs.items() if v is not None})


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
    except UsageError as err:  # bad input: a config value, a flag, an argument
        if args.debug:
            raise
        print(f"lenskit: error: {_message(err)}", file=sys.stderr)
        return 2
    except (OSError, LenskitError, MemoryError) as err:  # a file, run directory, model or memory
        if args.debug:
            raise
        print(f"lenskit: error: {_message(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug (a plain ValueError or KeyError too): one line, the
        # traceback on request; bad input is a UsageError, raised where the input enters
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
