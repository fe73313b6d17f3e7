"""Mutation testing of lenskit's core, one module at a time against its own tests (mutmut).

Each target is mutated in a scratch copy of the working tree (``--workdir``, default
``/tmp/lenskit-mutate``) with a ``[tool.mutmut]`` section written for it alone, so a module's
mutants run only the test files that are meant to catch them and a run takes minutes on one
core. mutmut keeps its results in the scratch copy: a re-run re-tests only changed functions.

Usage::

    python tools/mutate.py                      # every target
    python tools/mutate.py selection stats      # some targets (names below)
    python tools/mutate.py --list               # the targets and their tests
    python tools/mutate.py thresholds --only '*x_compute_thresholds__mutmut_*'  # a part

Prints one line per target (killed / survived / other, and the score) and the diff of every
surviving mutant; ``--json FILE`` also writes the counts and the surviving mutants' names.
The surviving mutants of the last run and why each is harmless, or which test now kills it,
are recorded in MUTANTS.md. Runs outside CI (``make mutate``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# target -> (module to mutate, the test files that check it)
TARGETS: dict[str, tuple[str, list[str]]] = {
    "selection": ("lenskit/pruning/selection.py", ["tests/pruning/test_pruning_selection.py"]),
    "stats": ("lenskit/stats.py", ["tests/test_stats.py"]),
    "sparsegpt": ("lenskit/pruning/sparsegpt.py", ["tests/pruning/test_pruning_sparsegpt.py"]),
    # statistics: GroupStats' tests (in selection's file), the block walker against plain
    # HF forward passes (walker), its memory, early stops and sweeps (statistics), and the
    # references' sequential pipeline; a few seconds in all (tiny models)
    "statistics": ("lenskit/pruning/statistics.py",
                   ["tests/pruning/test_pruning_selection.py",
                    "tests/pruning/test_pruning_walker.py",
                    "tests/pruning/test_pruning_memory.py",
                    "tests/pruning/test_pruning_statistics.py",
                    "tests/pruning/test_pruning_reference.py"]),
    "calibration": ("lenskit/pruning/calibration.py",
                    ["tests/pruning/test_pruning_calibration.py",
                     "tests/pruning/test_pruning_calibration_default.py"]),
    "masks": ("lenskit/models/masks.py", ["tests/models/test_masks.py"]),
    "scoring": ("lenskit/tasks/scoring.py",
                ["tests/tasks/test_scoring.py", "tests/tasks/test_scoring_paths.py",
                 "tests/tasks/test_scoring_windows.py", "tests/tasks/test_scoring_backends.py"]),
    "thresholds": ("lenskit/results/thresholds.py",
                   ["tests/results/test_thresholds.py", "tests/results/test_chance.py"]),
    "integrity": ("lenskit/rundir/integrity.py", ["tests/rundir/test_integrity.py"]),
    "store": ("lenskit/rundir/store.py", ["tests/rundir/test_store.py"]),
}

# Targets whose tests are slow run only some functions' mutants (mutmut name globs): for
# scoring, the prefix cache, the merged caches and the decoding loops that use them, the
# scoring of the prompt pass (first token, gold rank, log-probability), and (the second part,
# the last seven globs) the perplexity windows' scorer and the backends' constructors, their
# logits at positions, the bridge's full logits and the cache read from an output: together
# every function of the module.
ONLY: dict[str, list[str]] = {
    "scoring": ["*xǁHFBackendǁhidden__mutmut_*", "*xǁHFBackendǁprefill__mutmut_*",
                "*xǁHFBackendǁprefix_state__mutmut_*", "*xǁPrefixStateǁexpanded__mutmut_*",
                "*x__decode_cached__mutmut_*", "*x__merge_caches__mutmut_*",
                "*x__select_rows__mutmut_*", "*x__cache_tensors__mutmut_*",
                "*x__set_cache_tensors__mutmut_*", "*x__prompt_pass__mutmut_*",
                "*x__score_rows__mutmut_*", "*x_score_qa__mutmut_*", "*x__qa_batch__mutmut_*",
                "*x__decode_rerun__mutmut_*", "*x_prefill_chunks__mutmut_*",
                "*x__pass_cost__mutmut_*", "*xǁHFBackendǁlogits__mutmut_*",
                "*xǁHFBackendǁstep__mutmut_*", "*x__gather__mutmut_*",
                "*x_score_windows__mutmut_*", "*xǁHFBackendǁ__init____mutmut_*",
                "*xǁHFBackendǁ_cache_of__mutmut_*", "*xǁHFBackendǁlogits_at__mutmut_*",
                "*xǁBridgeBackendǁ__init____mutmut_*", "*xǁBridgeBackendǁlogits_at__mutmut_*",
                "*xǁBridgeBackendǁfull_logits__mutmut_*"],
}

# Extra pytest arguments per target: integrity's sweep test (a model sweep per mutant) is
# left to `make test`; its other tests check the same code paths on synthetic cells.
EXTRA_ARGS: dict[str, list[str]] = {
    "integrity": ["-k", "not test_sweep_recomputes_a_truncated_cell"],
    # thresholds: the real-evaluation test (a tiny model evaluated per mutant) is left to
    # `make test`; the hand-made frames check the same code
    "thresholds": ["-k", "not test_real_evaluation_rows_instances_and_bootstrap"],
    # scoring: the plain-HF oracle and the prefix-cache equality tests on gpt2 (learned
    # absolute positions) and llama (rotary, grouped-query attention), the merged-cache step
    # test on every family, the caches' two layouts, the LM heads of five families and the
    # chunking optimum; the gpt_neox and opt cases and the end-to-end evaluate() tests (the
    # same code paths, several seconds each on a shared core) are left to `make test`; the
    # second part's tests (test_scoring_windows.py, test_scoring_backends.py, ~2 s in all):
    # the perplexity windows against plain HF cross-entropy (HF backend, bridge, overlapping
    # windows with a BOS), both backends' logits at positions against the full logits (gpt2,
    # llama, Llama-4's text model), the pass-cost model and the cache's argument names
    "scoring": ["-k", "((test_score_qa_equals_plain_hf_forward_passes "
                      "or test_prefix_cache_equals_uncached_decoding) and (gpt2 or llama)) "
                      "or test_a_prefix_needs or test_hidden_keeps_a_cache "
                      "or test_merged_caches_step_like_one_pass or test_prefill_chunks "
                      "or test_caches_in_the_layout_before "
                      "or test_logits_equal_the_models_own_heads "
                      "or test_a_probe_sees_every_prompt_pass_and_no_decoding_step "
                      "or test_token_id_0_is_generated "
                      "or test_score_windows_ or test_hf_logits_at_equal "
                      "or test_bridge_logits_at_and_full_logits "
                      "or test_pass_cost_is_the_documented_cpu_model "
                      "or test_the_cache_is_passed_and_read"],
}

PYTEST_ARGS = ["-p", "no:randomly", "-p", "no:cacheprovider", "-n", "0", "-q", "-x"]
# mutmut's exit codes -> status (mutmut.stats.status_by_exit_code)
KILLED = {1, 3}
SURVIVED = {0}


def copy_tree(dest: Path) -> None:
    """Copy the working tree's tracked and untracked-but-not-ignored files to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists() or out.read_bytes() != src.read_bytes():
            shutil.copy2(src, out)


def write_config(dest: Path, module: str, tests: list[str], extra: list[str]) -> None:
    """Replace any ``[tool.mutmut]`` of the copied pyproject with this target's section."""
    path = dest / "pyproject.toml"
    text = re.sub(r"\n\[tool\.mutmut\][^\[]*", "\n", path.read_text())
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["lenskit"]\n'
        f"only_mutate = [{json.dumps(module)}]\n"
        'also_copy = ["data", "examples", "tests"]\n'
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS + extra)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
    )
    path.write_text(text + section)


def run_target(name: str, workdir: Path, show: bool, rerun: bool = False) -> dict:
    module, tests = TARGETS[name]
    missing = [t for t in tests if not (ROOT / t).exists()]
    tests = [t for t in tests if t not in missing]
    if not tests:
        raise SystemExit(f"{name}: none of its test files exist: {missing}")
    dest = workdir / name
    dest.mkdir(parents=True, exist_ok=True)
    copy_tree(dest)
    write_config(dest, module, tests, EXTRA_ARGS.get(name, []))
    # mutmut runs the tests from its own copy (mutants/tests): refresh it, so that a re-run
    # after new tests runs them (an old copy would silently test the old tests)
    shutil.rmtree(dest / "mutants" / "tests", ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONPATH="")
    meta = dest / "mutants" / (module + ".meta")
    select = ONLY.get(name, [])
    if rerun and meta.exists():
        # mutmut keeps earlier verdicts; name the survivors (and the untested) to try them
        # again against the tests as they are now (new tests are mapped first)
        old = json.loads(meta.read_text())["exit_code_by_key"]
        select = sorted(k for k, v in old.items() if v in (0, 33)) or select
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *select]
    proc = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True)
    (dest / "mutmut-run.log").write_text(proc.stdout + proc.stderr)
    if not meta.exists():
        raise SystemExit(f"{name}: mutmut wrote no results (see {dest / 'mutmut-run.log'})")
    codes = {k: v for k, v in json.loads(meta.read_text())["exit_code_by_key"].items()
             if v is not None and (name not in ONLY
                                   or any(fnmatch.fnmatch(k, g) for g in ONLY[name]))}
    survived = sorted(k for k, v in codes.items() if v in SURVIVED)
    other = {k: v for k, v in codes.items() if v not in SURVIVED | KILLED}
    killed = sum(v in KILLED for v in codes.values())
    diffs = {}
    if show and survived:
        # one process for all diffs (``mutmut show`` per mutant would start Python each time)
        code = ("import json, sys\n"
                "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
                "names = json.load(sys.stdin)\n"
                "print(json.dumps({k: get_diff_for_mutant(k, path=sys.argv[1])"
                " for k in names}))\n")
        out = subprocess.run([sys.executable, "-c", code, module], cwd=dest, env=env,
                             input=json.dumps(survived), capture_output=True, text=True)
        diffs = json.loads(out.stdout) if out.returncode == 0 else {}
    return {"module": module, "tests": tests, "total": len(codes), "killed": killed,
            "survived": survived, "other": other, "diffs": diffs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("targets", nargs="*", help=f"among {', '.join(TARGETS)} (default: all)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lenskit-mutate"))
    ap.add_argument("--json", type=Path, help="write the counts and survivors here")
    ap.add_argument("--list", action="store_true", help="print the targets and exit")
    ap.add_argument("--no-diffs", action="store_true", help="do not print survivors' diffs")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="run only the last run's survivors again (after new tests)")
    ap.add_argument("--only", nargs="+", metavar="GLOB",
                    help="run only the mutants whose names match these mutmut name globs "
                         "(e.g. '*x_threshold_from_curve__mutmut_*'), in place of the "
                         "target's default selection: a part of a large module")
    args = ap.parse_args(argv)
    if args.list:
        for name, (module, tests) in TARGETS.items():
            only = f"  (only {' '.join(ONLY[name])})" if name in ONLY else ""
            print(f"{name:12s} {module}  <- {' '.join(tests)}{only}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; allowed: {list(TARGETS)}")
    if args.only:
        for name in args.targets or list(TARGETS):
            ONLY[name] = list(args.only)
    results = {}
    for name in args.targets or list(TARGETS):
        res = run_target(name, args.workdir, show=not args.no_diffs,
                         rerun=args.rerun_survivors)
        results[name] = res
        score = res["killed"] / max(1, res["total"])
        print(f"{name:12s} {res['module']}: {res['total']} mutants, {res['killed']} killed, "
              f"{len(res['survived'])} survived, {len(res['other'])} other "
              f"(score {score:.1%})", flush=True)
        for k, v in res["other"].items():
            print(f"    {k}: exit code {v}")
        for k in res["survived"]:
            print(res["diffs"].get(k) or f"    survived: {k}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    return 1 if any(r["survived"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
