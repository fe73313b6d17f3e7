"""Commands about models and tasks: ``sites`` (a model's prunable sites), ``families`` (the
supported model families, as the README's table), ``tasks`` (the named tasks) and
``templates`` (dense accuracy per prompt template)."""

from __future__ import annotations

import argparse

from lenskit.cli.common import set_threads
from lenskit.errors import UsageError

__all__ = ["cmd_families", "cmd_sites", "cmd_tasks", "cmd_templates"]


def cmd_families(args: argparse.Namespace) -> int:
    from lenskit.models.families import family_table

    print(family_table(), end="")
    return 0


def cmd_sites(args: argparse.Namespace) -> int:
    from lenskit.models import load_model, model_info
    from lenskit.models.loading import ModelLoadError, check_spec

    try:
        check_spec(args.model)
    except ModelLoadError as err:
        raise UsageError(str(err)) from None
    model = load_model(args.model)
    info = model_info(model)
    sel = info.select(args.scope)
    print(f"{info.spec}: {info.arch.name}, {info.n_layers} layers, "
          f"{info.total_params:,} block-linear parameters")
    width = max([22] + [len(s.name) + 1 for s in sel])
    print(f"{'site':<{width}}{'shape (out, in)':>18}{'params':>12}  heads  input hook")
    for s in sel:
        heads = f"{s.n_heads}x{s.head_dim}" if s.n_heads else "-"
        print(f"{s.name:<{width}}{s.shape!s:>18}{s.numel:>12,}  {heads:<5}  "
              f"{s.input_hook or '-'}")
    print(f"selection {args.scope!r}: {len(sel)} sites, {sel.n_params:,} parameters "
          f"({sel.fraction:.1%} of block linears)")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from lenskit.tasks import describe_tasks

    print(describe_tasks())
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from lenskit.models import load_model
    from lenskit.models.loading import ModelLoadError, check_spec
    from lenskit.tasks.select import format_template_report, template_report

    try:
        check_spec(args.model)
    except ModelLoadError as err:
        raise UsageError(str(err)) from None
    set_threads(args)
    model = load_model(args.model)
    print(format_template_report(template_report(model, args.task, args.templates,
                                                 batch_size=args.batch_size)))
    return 0
