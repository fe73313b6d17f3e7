"""The ``organism`` commands: ``train`` (a small model on a synthetic world), ``family``
(the near-capacity family, trained in sequence and resumable) and ``card`` (measure it and
write its model card)."""

from __future__ import annotations

import argparse

from lenskit.cli.common import set_threads

__all__ = ["cmd_organism_card", "cmd_organism_family", "cmd_organism_train"]


def cmd_organism_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lenskit.organism.train import TrainConfig, train
    from lenskit.synthetic.world import WorldConfig

    cfg = TrainConfig()
    model = replace(cfg.model, d_model=args.d_model, d_ffn=args.d_ffn or 3 * args.d_model,
                    n_layers=args.layers)
    corpus = replace(cfg.corpus, exemplar_weight=args.exemplar_weight,
                     function_curriculum=tuple(args.function_curriculum or ()),
                     curriculum_style=args.curriculum_style)
    world = {k: v for k, v in (("popularity", args.popularity),
                               ("zipf_exponent", args.zipf_exponent),
                               ("n_memorised", args.n_entities),
                               ("n_held_out", args.n_held_out), ("n_cities", args.n_cities),
                               ("name_words", args.name_words)) if v is not None}
    cfg = replace(cfg, seed=args.seed, steps=args.steps, threads=args.threads,
                  eval_every=args.eval_every, dtype=args.dtype, init_from=args.init_from,
                  model=model, corpus=corpus,
                  world=replace(WorldConfig(), seed=args.seed, **world))
    evaluator = None
    if args.eval_every > 0:
        from lenskit.organism.monitor import task_evaluator

        evaluator = task_evaluator()
    final = train(args.out, cfg, evaluator=evaluator, progress=True, device=args.device,
                  workers=args.workers)
    print(f"organism saved to {final}")
    return 0


def cmd_organism_family(args: argparse.Namespace) -> int:
    import time
    from functools import partial

    from lenskit.organism.family import (
        FAMILY_STEPS,
        FAMILY_WIDTHS,
        family_config,
        icl_stage_config,
        train_family,
    )

    settings = {"threads": args.threads, "dtype": args.dtype, "eval_every": args.eval_every}
    config = partial(family_config, steps=args.steps or FAMILY_STEPS, **settings)
    stage2 = (partial(icl_stage_config, steps=args.icl_steps, **settings) if args.icl_steps
              else None)
    evaluator = None
    if args.eval_every > 0:
        from lenskit.organism.monitor import task_evaluator

        evaluator = task_evaluator()

    def log(line: str) -> None:
        print(time.strftime("%Y-%m-%d %H:%M:%S ") + line, flush=True)

    done = train_family(args.root, args.widths or FAMILY_WIDTHS, config=config,
                        stage2=stage2, evaluator=evaluator, log=log)
    log(f"family complete: {', '.join(f'{k} -> {v}' for k, v in done.items())}")
    return 0


def cmd_organism_card(args: argparse.Namespace) -> int:
    from lenskit.models import organism_path
    from lenskit.organism.card import write_card

    model_dir = args.model_dir or organism_path()
    set_threads(args)
    path = write_card(model_dir, args.run_dir, methods=args.methods)
    print(f"model card written to {path}")
    return 0
