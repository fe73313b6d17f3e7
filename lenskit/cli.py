"""The ``lenskit`` command line: it only composes the library's packages."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

__all__ = ["main"]


def _quiet() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import logging

    for name in ("transformers", "transformer_lens", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _cmd_sites(args: argparse.Namespace) -> int:
    from lenskit.models import load_model, model_info

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

    from lenskit.organism.train import ModelConfig, TrainConfig, WorldConfig, train

    cfg = TrainConfig()
    model = replace(cfg.model, d_model=args.d_model, d_ffn=args.d_ffn or 3 * args.d_model,
                    n_layers=args.layers)
    cfg = replace(cfg, seed=args.seed, steps=args.steps, threads=args.threads,
                  eval_every=args.eval_every, model=model,
                  world=replace(WorldConfig(), seed=args.seed))
    evaluator = None
    if args.eval_every > 0:
        from lenskit.organism.monitor import task_evaluator

        evaluator = task_evaluator()
    final = train(args.out, cfg, evaluator=evaluator, progress=True)
    print(f"organism saved to {final}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lenskit",
        description="Layer-wise ablation studies: prune attention and FFW separately and "
                    "measure fact recall against in-context learning.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sites", help="load a model and list its prunable sites")
    s.add_argument("model", nargs="?", default="organism",
                   help="hub name, local HF directory or 'organism' (default)")
    s.add_argument("--scope", default="all",
                   help="selection: all, attn, mlp, attn.q,k, mlp@0-3 ... (default: all)")
    s.set_defaults(func=_cmd_sites)

    org = sub.add_parser("organism", help="the small model trained here on a synthetic world")
    osub = org.add_subparsers(dest="organism_command", required=True)
    t = osub.add_parser("train", help="train an organism from scratch (resumes if interrupted)")
    t.add_argument("--out", default="runs/organism", help="run directory (default: %(default)s)")
    t.add_argument("--steps", type=int, default=8000)
    t.add_argument("--d-model", type=int, default=128, help="width (default: %(default)s)")
    t.add_argument("--d-ffn", type=int, default=None, help="FFW width (default: 3 x d-model)")
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--seed", type=int, default=0, help="seeds the world, data and init")
    t.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest when another job holds a core)")
    t.add_argument("--eval-every", type=int, default=500,
                   help="evaluate the task suite every N steps (0: never)")
    t.set_defaults(func=_cmd_organism_train)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lenskit`` command."""
    _quiet()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"lenskit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlenskit: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
