"""Pre-flight checks of a sweep: everything that can be checked before a run directory is
created or a model is loaded.

:func:`preflight` reads each model's ``config.json`` (not its weights) to check the layers
that scopes name, builds the task names of each model's suite the way the runner does
(:func:`lenskit.tasks.default_suite`) to check ``tasks``, and checks the calibration source.
A mistake then costs a second and leaves nothing on disk, instead of failing after the
manifest is written (which would make the corrected command look like a different run).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lenskit.errors import UsageError
from lenskit.models.gguf import GGUFError, gguf_n_layers, is_gguf
from lenskit.models.loading import ModelLoadError, resolve_spec
from lenskit.models.offline import offline, offline_setting
from lenskit.models.sites import Selection
from lenskit.pruning.calibration_sources import CalibrationSource
from lenskit.sweep.config import Cell, ConfigError, SweepConfig
from lenskit.tasks import countries_suite, function_spec_name, organism_suite, study_function_specs

__all__ = ["preflight", "suite_task_names"]

# A calibration source with one of these endings (or a path separator) is meant as a file.
_FILE_SUFFIXES = (".txt", ".text", ".jsonl", ".json", ".csv", ".md", ".gz")


def _n_layers(path: str, local: bool) -> int:
    """Transformer blocks of the model at ``path``, from its config alone (no weights)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, local_files_only=local or offline())
    n = getattr(config, "num_hidden_layers", None)
    if not isinstance(n, int):
        raise UsageError(f"{path}: config.json has no layer count (num_hidden_layers)")
    return n


def suite_task_names(path: str | None, size: str = "small", seed: int = 0) -> list[str]:
    """Task names of the suite the runner builds for the model at ``path`` (a local
    directory, or None for a hub model): the organism's own suite when the directory holds
    ``world.json``, else the countries tasks, the study's function tasks and perplexity."""

    if path is not None and (Path(path) / "world.json").is_file():
        return list(organism_suite(path, size=size, seed=seed))
    return [*countries_suite(size, seed),
            *(function_spec_name(s) for s in study_function_specs()), "perplexity"]


def _check_model(cfg: SweepConfig, spec: str, scopes: list[str], problems: list[str],
                 unknown_tasks: dict[tuple[str, tuple[str, ...]], list[str]]) -> None:
    try:
        if is_gguf(spec):  # a quantised file: its header says how many blocks it has
            path, local, n_layers = None, False, gguf_n_layers(spec)
        else:
            path, local = resolve_spec(spec)
    except (ModelLoadError, GGUFError) as err:
        problems.append(f"model {spec!r}: {err}")
        return
    try:
        if path is not None:
            n_layers = _n_layers(path, local)
    except (OSError, ValueError) as err:
        setting = offline_setting()
        where = (f"{setting} is set and it is not in the local cache" if setting
                 else type(err).__name__)
        problems.append(f"model {spec!r}: cannot read its config ({where}); pass a local "
                        "model directory, a reachable hub name, or 'organism'")
        return
    for scope in scopes:
        layers = Selection.parse(scope).layers or ()
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad:
            problems.append(f"scope {scope!r}: layer(s) {bad} out of range for model {spec!r}, "
                            f"which has {n_layers} layers (0-{n_layers - 1})")
    # With ``suite`` specs the names are known once the tasks are built (a function task is
    # named by its parameters); the specs themselves were checked by the config.
    if cfg.tasks != ["default"] and not cfg.suite:
        names = tuple(suite_task_names(path if local else None, cfg.task_size, cfg.seeds[0]))
        for t in cfg.tasks:
            if t not in names:
                unknown_tasks.setdefault((t, names), []).append(spec)


def _check_calibration(source: CalibrationSource, problems: list[str]) -> None:
    # the config parsed the source when it was set (and refused it then if it was bad)
    if source.kind != "hub":
        return
    path = Path(source).expanduser()
    if path.exists():
        problems.append(f"calibration.source {source!r} is a directory; pass a text file, "
                        "c4:PATH, wikitext2:PATH, a hub dataset name, or 'default'")
    elif (source.startswith((".", "/", "~")) or source.count("/") > 1
          or source.lower().endswith(_FILE_SUFFIXES)):
        problems.append(f"calibration.source {source!r}: no such file; pass an existing text "
                        "file, c4:PATH, wikitext2:PATH, a hub dataset name, or 'default'")
    elif offline():
        problems.append(f"calibration.source {source!r} is not a file, and {offline_setting()} "
                        "is set, so it cannot be fetched as a hub dataset; pass a text file, "
                        "c4:PATH, wikitext2:PATH, 'random' or 'default'")


def preflight(cfg: SweepConfig, cells: Sequence[Cell] | None = None) -> None:
    """Check ``cfg`` (valid: see :meth:`SweepConfig.validate`) against the models' configs,
    their task suites and the calibration source; raise one :class:`ConfigError` listing
    every problem. ``cells`` are ``cfg.cells()`` (expanded here when not given). Loads no
    weights and writes nothing."""
    problems: list[str] = []
    unknown_tasks: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    if cells is None:
        cells = cfg.cells()
    scopes = cfg.scopes_needed()
    for spec in dict.fromkeys(c.model for c in cells):
        _check_model(cfg, spec, scopes, problems, unknown_tasks)
    for (task, names), specs in unknown_tasks.items():
        problems.append(f"unknown task {task!r} for model {', '.join(map(repr, specs))}; "
                        f"its suite has: {', '.join(names)}")
    if any(not c.is_dense for c in cells):
        _check_calibration(cfg.calibration.source, problems)  # parsed: cfg is valid
    if problems:
        raise ConfigError(problems)
