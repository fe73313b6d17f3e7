"""Does an organism in training do in-context lookup yet? Label accuracy of a run's latest
checkpoint on each mode of the function curriculum and on fresh queries.

The family's function tasks ask for a label of a fresh query given N labelled exemplars
(``fn_linear_d1_n16_k2``: 16 exemplars on -9..9, two labels). A model learns that in stages
(``benchmarks/icl_curriculum.py``): first exact-match lookup (the query is one of the
exemplars: copy its label), then the nearest exemplar, then fresh queries. This scores each
stage on the run's own function specs and prompt format, so a run whose function tasks sit
at chance can be told apart: no lookup at all (nothing to build on) or lookup without
generalisation. Modes (:func:`lenskit.synthetic.corpus.curriculum_prompt`):

- ``repeat``: the exemplars twice, the query one of them;
- ``lookup``: the query one of the exemplars;
- ``near``: the query one unit from an exemplar, labelled as its nearest exemplar;
- ``fresh``: the task itself (the query a new input, labelled by the function).

Score: the share of prompts whose next-token logit is higher for the right label than for
the other one (two labels, chance 50%), on ``--n`` functions per spec (seeded). One torch
thread; reads the checkpoint only, so it can watch a run that is still training::

    OMP_NUM_THREADS=1 python -m benchmarks.function_modes RUN_DIR [RUN_DIR ...] --n 100
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lenskit.organism.train import checkpoint_model
from lenskit.synthetic.corpus import curriculum_prompt
from lenskit.synthetic.functions import sample_function_instances

MODES = ("repeat", "lookup", "near", "fresh")


def mode_accuracy(run_dir: str, n: int = 100, seed: int = 7) -> dict[str, float | int]:
    """``{"step": step, "d<D>/<mode>": accuracy}`` of the latest checkpoint of ``run_dir``
    for each function spec of its corpus (D = input dimensions) and each mode."""
    model, tok, cfg, step = checkpoint_model(run_dir)
    rng = np.random.default_rng(seed)
    out: dict[str, float | int] = {"step": step}
    for spec in cfg.corpus.function_specs:
        labels = [tok.convert_tokens_to_ids(s) for s in spec.labels[: spec.n_classes]]
        instances = sample_function_instances(spec, n, seed=seed)
        for mode in MODES:
            right = 0
            for inst in instances:
                if mode == "fresh":
                    prompt, answer = inst.prompt, inst.answer
                else:
                    prompt, answer = curriculum_prompt(spec, inst, mode, rng)
                ids = [tok.bos_token_id, *tok(prompt, add_special_tokens=False)["input_ids"]]
                with torch.no_grad():
                    logits = model(torch.tensor([ids])).logits[0, -1, labels]
                right += spec.labels[int(logits.argmax())] == answer
            out[f"d{spec.n_dims}/{mode}"] = right / n
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="organism run directories (with checkpoint/)")
    ap.add_argument("--n", type=int, default=100, help="functions per spec and mode")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for run in args.runs:
        print(json.dumps({"run": run, **mode_accuracy(run, args.n, args.seed)}), flush=True)


if __name__ == "__main__":
    main()
