"""The organism family: one world, one data order, several widths, trained in sequence.

A family is the near-capacity study organism: a zipf world of many facts (most entities in a
long tail seen in few documents), and members that differ only in width (``d_model``, with
``d_ffn = 3 * d_model``), so that the narrower members hold fewer facts. Every member has
the same seed, hence the same world, the same batches in the same order and the same
training length; only its initialisation's shapes differ.

:func:`train_family` trains the members one after the other into ``root/<member>``
(``organism-d64``, ``organism-d72``, ...), each resumable from its checkpoint: running it
again continues the member that was interrupted and skips those already finished
(``root/<member>/model`` exists), so one command trains or resumes the whole family. The
facts' exposure counts, the same for every member, are counted once
(``root/exposure.json``).

Each member trains in one stage of 9,000 steps (:func:`family_config`) on a mixed corpus
that states the world's facts and asks about them (closed-book, 30% of the documents) and
teaches in-context reading (open-book, overriding and the function curriculum, 70%); the
members (widths 64, 72 and 96) learn all of it inside that stage (BENCHMARKS.md, "Organism
family: the shipped family"). Not every run does: r4's d80 stalled at open-book 88%, and the
narrower d32 and d48 read below target (open-book 86-88%). For narrow members an optional
second stage (:func:`icl_stage_config`, ``stage2=`` of :func:`train_family`, ``--icl-steps``
of ``lenskit organism family``) continues from the first stage's model, with a fresh
optimizer, on a corpus in which half the documents are function prompts on the "mixed"
curriculum, into ``root/<member>/icl``; such a member is the second stage's model, and its
``world.json`` counts the documents of both stages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from lenskit.errors import UsageError
from lenskit.organism.train import Evaluator, ModelConfig, TrainConfig, train
from lenskit.synthetic.corpus import CorpusConfig
from lenskit.synthetic.world import WorldConfig

__all__ = ["FAMILY_STEPS", "FAMILY_WIDTHS", "ICL_STEPS", "family_config", "icl_stage_config",
           "member_name", "train_family"]

# The family's widths, narrowest first (the order they train in: a complete member soonest).
FAMILY_WIDTHS: tuple[int, ...] = (64, 72, 96)
FAMILY_STEPS: int = 9_000

# The family's world: 2,500 memorised entities x 4 relations = 10,000 facts, popularity zipf
# (exponent 1), two-word names, 200 cities (BENCHMARKS.md: its cost and the pilot numbers).
FAMILY_WORLD = WorldConfig(seed=0, n_memorised=2_500, n_held_out=2_000, n_unseen=200,
                           n_cities=200, popularity="zipf", zipf_exponent=1.0, name_words=2)
# The mixed corpus with the function curriculum inside it: exemplars repeated until step 300,
# queries copied from an exemplar until 600, next to one until 1,000, fresh after that. Fact
# documents are 30% of it, so that the tail is stated too rarely to be held at every width
# (BENCHMARKS.md, "Organism family: the shipped family").
FAMILY_CORPUS = CorpusConfig(
    mixture={"statements": 0.2, "closed_book": 0.1, "open_book": 0.25, "overriding": 0.2,
             "function": 0.25},
    exemplar_weight=1.0,
    function_curriculum=(300, 600, 1000),
)


# The optional second stage, not part of the shipped recipe (its members learn everything in
# the first; a narrower family may need it): half function documents on the "mixed"
# curriculum (repeat to step 1,000, lookup to 1,600, nearest neighbour to 2,200, then the
# tasks with lookups kept in the mix); the rest keeps stating facts and asking in-context QA.
ICL_STEPS: int = 3_200
ICL_CORPUS = replace(
    FAMILY_CORPUS,
    mixture={"statements": 0.2, "closed_book": 0.1, "open_book": 0.1, "overriding": 0.1,
             "function": 0.5},
    function_curriculum=(1000, 1600, 2200), curriculum_style="mixed",
)


def member_name(d_model: int) -> str:
    """The name a family member is loaded by: ``organism-d<width>``."""
    return f"organism-d{d_model}"


def family_config(d_model: int, steps: int = FAMILY_STEPS, *, world: WorldConfig = FAMILY_WORLD,
                  corpus: CorpusConfig = FAMILY_CORPUS, seed: int = 0, threads: int = 1,
                  dtype: str = "float32", eval_every: int = 1000,
                  checkpoint_every: int = 100, n_layers: int = 4, batch_size: int = 32,
                  warmup: int = 200) -> TrainConfig:
    """The training config of the family member of width ``d_model`` (``d_ffn`` 3x, 4 layers,
    4 query and 2 key-value heads; batch 32 x 192 tokens; AdamW lr 2e-3, warm-up 200,
    cosine to 5%)."""
    if d_model < 8 or d_model % 8:
        # 4 heads of an even size (rotary embeddings rotate pairs of dimensions)
        raise UsageError(f"d_model must be a multiple of 8 (4 heads of even size), got "
                         f"{d_model}")
    model = ModelConfig(d_model=d_model, n_layers=n_layers, n_heads=4, n_kv_heads=2,
                        d_ffn=3 * d_model)
    return TrainConfig(seed=seed, steps=steps, threads=threads, dtype=dtype,
                       eval_every=eval_every, checkpoint_every=checkpoint_every,
                       batch_size=batch_size, warmup=warmup,
                       world=replace(world, seed=seed), model=model, corpus=corpus)


def icl_stage_config(d_model: int, init_from: str | Path, steps: int = ICL_STEPS, *,
                     corpus: CorpusConfig = ICL_CORPUS, **kwargs) -> TrainConfig:
    """The second-stage config of the member of width ``d_model``: ``steps`` steps from the
    model directory ``init_from`` (the member's first stage), fresh AdamW at lr 1e-3 (warm-up
    100, cosine to 5%), on ``corpus``; ``kwargs`` as :func:`family_config` (threads, dtype,
    eval_every, ...)."""
    base = family_config(d_model, steps, corpus=corpus, **kwargs)
    return replace(base, warmup=100, lr=1e-3, init_from=str(Path(init_from).resolve()))


def train_family(root: str | Path, widths: Sequence[int] = FAMILY_WIDTHS,
                 config: Callable[[int], TrainConfig] = family_config,
                 stage2: Callable[[int, Path], TrainConfig] | None = None,
                 evaluator: Evaluator | None = None, progress: bool = False,
                 log: Callable[[str], None] = print) -> dict[str, Path]:
    """Train (or resume) every member of ``widths``, in that order, into ``root/<member>``;
    returns ``{member: final model directory}``.

    ``config(width)`` gives a member's first-stage :class:`TrainConfig` (default
    :func:`family_config`); ``stage2(width, first_stage_model_dir)`` an optional second stage
    (for example :func:`icl_stage_config`), trained into ``root/<member>/icl``; with the
    default ``None`` the member is the first stage's model. The members must share the world,
    corpus, seed and steps of each stage (checked before anything is trained). A finished stage
    (``.../model/config.json``) is skipped; an interrupted one resumes from its checkpoint,
    and a run directory started with another config is refused. ``log`` gets one line per
    stage start and end (with its wall time).
    """
    if not widths or len(set(widths)) != len(widths):
        raise UsageError(f"widths must be distinct and not empty, got {list(widths)}")
    root = Path(root)
    cfgs = {member_name(w): config(w) for w in widths}
    _check_shared(cfgs)
    if stage2 is not None:
        # checked before the first stage trains: a bad second stage fails in seconds
        _check_shared({name: stage2(w, root / name / "model")
                       for name, w in zip(cfgs, widths, strict=True)}, ignore=("init_from",))
    out: dict[str, Path] = {}
    for (name, cfg), width in zip(cfgs.items(), widths, strict=True):
        final = _train_stage(root / name, cfg, name, evaluator, progress, log,
                             root / "exposure.json")
        if stage2 is not None:
            final = _train_stage(root / name / "icl", stage2(width, final), f"{name} (icl)",
                                 evaluator, progress, log, root / "exposure-icl.json")
        out[name] = final
    return out


def _check_shared(cfgs: dict[str, TrainConfig], ignore: tuple[str, ...] = ()) -> None:
    keys = ("world", "corpus", "seed", "steps", "batch_size")
    shared = {name: json.dumps({k: v for k, v in c.to_json().items()
                                if k in keys and k not in ignore}, sort_keys=True)
              for name, c in cfgs.items()}
    if len(set(shared.values())) != 1:
        raise UsageError("family members must share world, corpus, seed, steps and batch "
                         f"size; their configs differ: {shared}")


def _train_stage(run: Path, cfg: TrainConfig, name: str, evaluator: Evaluator | None,
                 progress: bool, log: Callable[[str], None], exposure_cache: Path) -> Path:
    """Train (or resume, or skip when finished) one stage of one member into ``run``."""
    final = run / "model"
    if (final / "config.json").exists():
        log(f"{name}: finished ({final})")
        return final
    _check_same_config(run, cfg)
    t0 = time.time()
    log(f"{name}: training d_model={cfg.model.d_model} for {cfg.steps} steps into {run}")
    result = train(run, cfg, evaluator=evaluator, progress=progress,
                   exposure_cache=exposure_cache)
    if result is None:  # only with stop_after, which this never passes
        raise RuntimeError(f"{name} stopped before its last step")
    log(f"{name}: done in {time.time() - t0:.0f} s ({result})")
    return result


def _check_same_config(run: Path, cfg: TrainConfig) -> None:
    """Refuse to resume a run directory that was started with another config."""
    recorded = run / "train_config.json"
    if not recorded.exists():
        return
    old = json.loads(recorded.read_text())
    new = json.loads(json.dumps(cfg.to_json()))
    # threads and evaluation change speed, not the model: a resume may change them ("compile"
    # is a setting of earlier versions).
    keep = {k: v for k, v in old.items() if k not in ("threads", "compile", "eval_every")}
    want = {k: v for k, v in new.items() if k not in ("threads", "compile", "eval_every")}
    if keep != want:
        diff = sorted(k for k in set(keep) | set(want) if keep.get(k) != want.get(k))
        raise UsageError(f"{run} was started with another config (differs in {diff}); "
                         "resume it with the same settings or choose another root")
