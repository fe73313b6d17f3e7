"""The organism family: one world, one data order, several widths, trained in sequence.

A family is the near-capacity study organism: a zipf world of many facts (most entities in a
long tail seen in few documents), and members that differ only in width (``d_model``, with
``d_ffn = 3 * d_model``), so that the narrower members hold fewer facts. Every member has
the same seed, hence the same world, the same batches in the same order and the same
training length; only its initialisation's shapes differ.

:func:`train_family` trains the members one after the other into ``root/<member>``
(``organism-d32``, ``organism-d48``, ...), each resumable from its checkpoint: running it
again continues the member that was interrupted and skips those already finished
(``root/<member>/model`` exists), so one command trains or resumes the whole family. The
facts' exposure counts, the same for every member, are counted once
(``root/exposure.json``).
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

__all__ = ["FAMILY_STEPS", "FAMILY_WIDTHS", "family_config", "member_name", "train_family"]

# The family's widths, narrowest first (the order they train in: a complete member soonest).
FAMILY_WIDTHS: tuple[int, ...] = (32, 48, 64)
FAMILY_STEPS: int = 12_000

# The family's world: 2,500 memorised entities x 4 relations = 10,000 facts, popularity zipf
# (exponent 1), two-word names, 200 cities (BENCHMARKS.md: its cost and the pilot numbers).
FAMILY_WORLD = WorldConfig(seed=0, n_memorised=2_500, n_held_out=2_000, n_unseen=200,
                           n_cities=200, popularity="zipf", zipf_exponent=1.0, name_words=2)
# The mixed corpus with the function curriculum inside it: exemplars repeated until step 300,
# queries copied from an exemplar until 600, next to one until 1,000, fresh after that.
FAMILY_CORPUS = CorpusConfig(
    mixture={"statements": 0.3, "closed_book": 0.2, "open_book": 0.2, "overriding": 0.1,
             "function": 0.2},
    exemplar_weight=1.0,
    function_curriculum=(300, 600, 1000),
)


def member_name(d_model: int) -> str:
    """The name a family member is loaded by: ``organism-d<width>``."""
    return f"organism-d{d_model}"


def family_config(d_model: int, steps: int = FAMILY_STEPS, *, world: WorldConfig = FAMILY_WORLD,
                  corpus: CorpusConfig = FAMILY_CORPUS, seed: int = 0, threads: int = 1,
                  dtype: str = "float32", eval_every: int = 2000,
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


def train_family(root: str | Path, widths: Sequence[int] = FAMILY_WIDTHS,
                 config: Callable[[int], TrainConfig] = family_config,
                 evaluator: Evaluator | None = None, progress: bool = False,
                 log: Callable[[str], None] = print) -> dict[str, Path]:
    """Train (or resume) every member of ``widths``, in that order, into ``root/<member>``;
    returns ``{member: final model directory}``.

    ``config(width)`` gives a member's :class:`TrainConfig` (default :func:`family_config`);
    the members must share the world, corpus, seed and steps (checked before anything is
    trained). A finished member (``root/<member>/model/config.json``) is skipped; an
    interrupted one resumes from its checkpoint. ``log`` gets one line per member start and
    end (with its wall time).
    """
    if not widths or len(set(widths)) != len(widths):
        raise UsageError(f"widths must be distinct and not empty, got {list(widths)}")
    cfgs = {member_name(w): config(w) for w in widths}
    shared = {name: json.dumps({k: v for k, v in c.to_json().items()
                                if k in ("world", "corpus", "seed", "steps", "batch_size")},
                               sort_keys=True)
              for name, c in cfgs.items()}
    if len(set(shared.values())) != 1:
        raise UsageError("family members must share world, corpus, seed, steps and batch "
                         f"size; their configs differ: {shared}")
    out: dict[str, Path] = {}
    root = Path(root)
    for name, cfg in cfgs.items():
        run = root / name
        final = run / "model"
        if (final / "config.json").exists():
            log(f"{name}: finished ({final})")
            out[name] = final
            continue
        _check_same_config(run, cfg)
        t0 = time.time()
        log(f"{name}: training d_model={cfg.model.d_model} for {cfg.steps} steps into {run}")
        result = train(run, cfg, evaluator=evaluator, progress=progress,
                       exposure_cache=root / "exposure.json")
        if result is None:  # only with stop_after, which this never passes
            raise RuntimeError(f"{name} stopped before its last step")
        log(f"{name}: done in {time.time() - t0:.0f} s ({result})")
        out[name] = result
    return out


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
