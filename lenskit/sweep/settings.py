"""Every setting of a sweep config, declared once: how a value typed in a file or on the
command line converts (its kind), where it sits in a config file (a top-level key or a
table), whether it changes results, and its ``lenskit sweep`` flag.

From this table come the conversions of :mod:`lenskit.sweep.config.overrides`, the tables a
config file may hold, the flags of ``lenskit sweep`` and their translation into settings
(:mod:`lenskit.cli.sweep`), and the settings a run directory lets change between sessions
(the plan records them in its :class:`lenskit.rundir.RunConfig`). The dataclasses
:class:`~lenskit.sweep.config.SweepConfig` and
:class:`~lenskit.sweep.config.CalibrationConfig` hold the defaults and Python types; an
import-time check keeps their fields and this table the same.

This module imports nothing but the standard library, so the command line builds its parser
from it without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CALIBRATION_SETTINGS", "SETTINGS", "TABLE_KINDS", "Flag", "Setting",
           "setting_kinds", "steady_settings", "sweep_flags"]

#: Kinds whose values are tables in a config file (``[calibration]``, ``[method_kwargs.X]``).
TABLE_KINDS: tuple[str, ...] = ("calibration", "kwargs")


@dataclass(frozen=True)
class Flag:
    """A ``lenskit sweep`` option that sets one setting.

    Attributes:
        name: the option, e.g. ``"--methods"``.
        many: how it takes several values: ``"+"`` (one option, several words) or
            ``"append"`` (the option repeated); None for one value.
        join: the separator the values are joined with into one setting value (scopes and
            task specs hold commas, so they are joined with ``";"``).
        choices, help: as in :meth:`argparse.ArgumentParser.add_argument`.
    """

    name: str
    help: str | None = None
    many: str | None = None
    join: str = ","
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        """The attribute argparse stores the value under."""
        return self.name.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Setting:
    """One setting of a sweep config.

    Attributes:
        name: the key (a field of the config dataclass).
        kind: how a typed value converts (see :func:`lenskit.sweep.config.overrides.convert`):
            ``str``, ``int``, ``float``, ``bool`` (``?`` appended: may be unset, None),
            ``list[str]``, ``list[int]``, ``sparsities``, ``scopes``, ``pairs``, ``specs``,
            or a table: ``calibration``, ``kwargs``.
        changes_results: False for settings that only say where and how a sweep runs; a run
            directory resumes under other values of them.
        flag: the ``lenskit sweep`` option that sets it (None: ``--set key=value`` only).
    """

    name: str
    kind: str
    changes_results: bool = True
    flag: Flag | None = None


#: The settings of :class:`~lenskit.sweep.config.SweepConfig`, in its fields' order (which
#: is also the order of their options in ``lenskit sweep --help``).
SETTINGS: tuple[Setting, ...] = (
    Setting("name", "str"),
    Setting("models", "list[str]", flag=Flag(
        "--model", "model to sweep (repeat for several): hub name, local dir, organism",
        many="append")),
    Setting("dense_models", "list[str]"),
    Setting("device", "str", flag=Flag(
        "--device", "auto (cuda, else mps, else cpu; the default), cpu, cuda, cuda:N, mps")),
    Setting("dtype", "str", flag=Flag(
        "--dtype", "weights' precision: float32 (default), bfloat16, float16 (statistics and "
        "SparseGPT stay float32)")),
    Setting("device_map", "str", flag=Flag(
        "--device-map", "none (default) or auto: spread each model's layers over the GPUs "
        "(needs accelerate)")),
    Setting("methods", "list[str]", flag=Flag(
        "--methods", "random magnitude wanda sparsegpt", many="+")),
    Setting("sparsities", "sparsities", flag=Flag("--sparsities", "e.g. 0.1 0.3 0.5", many="+")),
    Setting("scopes", "scopes", flag=Flag(
        "--scopes", "e.g. all attn mlp 'attn.q,k@0-3'", many="+", join=";")),
    Setting("structures", "list[str]"),
    Setting("allocations", "list[str]"),
    Setting("matched", "bool"),
    Setting("matched_pairs", "pairs"),
    Setting("suite", "specs", flag=Flag(
        "--suite", "task specs by name instead of the model's default suite, e.g. "
        "'triviaqa:n=500,path=/data/triviaqa-rc' fn_linear (see lenskit tasks)", many="+",
        join=";", metavar="SPEC")),
    Setting("tasks", "list[str]", flag=Flag(
        "--tasks", "task names of the suite (default: all)", many="+")),
    Setting("task_size", "str", flag=Flag("--task-size", choices=("small", "full"))),
    Setting("seeds", "list[int]", flag=Flag("--seeds", many="+")),
    Setting("calibration", "calibration"),
    Setting("batch_size", "int"),
    Setting("out_dir", "str", changes_results=False, flag=Flag(
        "--out", "run directory (default: runs/default)")),
    Setting("method_kwargs", "kwargs"),
    Setting("allocation_kwargs", "kwargs"),
    Setting("executor", "str", changes_results=False, flag=Flag(
        "--executor", "where cells run: local (this process, the default) or ray (actors of "
        "a Ray cluster; pip install 'lenskit[ray]')", choices=("local", "ray"))),
    Setting("address", "str?", changes_results=False, flag=Flag(
        "--address", "Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: "
        "start a local one)")),
    Setting("workers", "int?", changes_results=False, flag=Flag(
        "--workers", "Ray workers, one model each (default: as many as the cluster fits at "
        "num_cpus/num_gpus each, see --set)")),
    Setting("num_cpus", "float", changes_results=False),
    Setting("num_gpus", "float", changes_results=False),
)

#: The settings of the ``[calibration]`` table (:class:`~lenskit.sweep.config.CalibrationConfig`).
CALIBRATION_SETTINGS: tuple[Setting, ...] = (
    Setting("n_samples", "int"),
    Setting("seq_len", "int"),
    Setting("source", "str"),
    Setting("sequential", "bool"),
)


def setting_kinds(settings: tuple[Setting, ...] = SETTINGS) -> dict[str, str]:
    """Setting name -> kind."""
    return {s.name: s.kind for s in settings}


def steady_settings() -> tuple[str, ...]:
    """The settings that do not change results (a run resumes under other values)."""
    return tuple(s.name for s in SETTINGS if not s.changes_results)


def sweep_flags() -> tuple[Setting, ...]:
    """The settings that have a ``lenskit sweep`` option, in help order."""
    return tuple(s for s in SETTINGS if s.flag is not None)
