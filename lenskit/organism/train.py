"""Train the organism from scratch: world -> tokenizer -> corpus -> a small Llama (GQA).

Resumable: a checkpoint (weights, optimizer moments, step) is written atomically every
``checkpoint_every`` steps under ``out_dir/checkpoint``; running again continues from it and
sees exactly the batches it would have seen (the corpus is a function of seed and step).
The finished model is saved as a Hugging Face directory (safetensors, config, tokenizer)
with ``world.json`` (holding, per fact, how many training documents stated it) and
``train_log.jsonl`` beside it.

A capacity family (one world, one data order, several widths) is trained by
:func:`lenskit.organism.family.train_family` (``lenskit organism family``), which calls this
trainer once per width with the same seed and steps.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import multiprocessing
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from lenskit.errors import UsageError
from lenskit.synthetic.corpus import (
    CorpusConfig,
    CorpusSampler,
    corpus_config_from_json,
    exposure_counts,
)
from lenskit.synthetic.tokenizer import build_tokenizer, organism_vocabulary
from lenskit.synthetic.world import World, WorldConfig

__all__ = [
    "TRAIN_DTYPES",
    "ModelConfig",
    "TrainConfig",
    "checkpoint_model",
    "export_checkpoint",
    "record_exposure",
    "train",
    "train_step",
]

TRAIN_DTYPES: tuple[str, ...] = ("float32", "bfloat16")


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    d_ffn: int = 384
    max_position_embeddings: int = 512

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise UsageError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise UsageError(f"n_heads {self.n_heads} must be divisible by n_kv_heads "
                             f"{self.n_kv_heads}")

    def hf_config(self, tok: PreTrainedTokenizerBase) -> LlamaConfig:
        return LlamaConfig(
            vocab_size=len(tok),
            hidden_size=self.d_model,
            intermediate_size=self.d_ffn,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads,
            max_position_embeddings=self.max_position_embeddings,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            rope_theta=10000.0,
        )


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup: int = 200
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    clip: float = 1.0
    checkpoint_every: int = 100
    eval_every: int = 500
    threads: int = 1
    # Precision of the forward and backward matmuls: "float32", or "bfloat16" autocast (the
    # weights, optimizer moments and loss stay float32).
    dtype: str = "float32"
    # A model directory (safetensors) whose weights start the run instead of a random
    # initialisation: a second stage of training (fresh optimizer and schedule). Its model
    # must have this config's shape and tokenizer; its facts' exposure counts add to this
    # run's in the final world.json.
    init_from: str | None = None
    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)

    def __post_init__(self) -> None:
        if self.dtype not in TRAIN_DTYPES:
            raise UsageError(f"unknown training dtype {self.dtype!r}; allowed: {TRAIN_DTYPES}")
        if self.steps < 1 or self.batch_size < 1:
            raise UsageError(f"steps and batch_size must be >= 1, got steps={self.steps}, "
                             f"batch_size={self.batch_size}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["corpus"] = {
            "row_tokens": self.corpus.row_tokens,
            "mixture": dict(self.corpus.mixture),
            "max_distractors": self.corpus.max_distractors,
            "context_weight": self.corpus.context_weight,
            "exemplar_weight": self.corpus.exemplar_weight,
            "exemplar_warmup": self.corpus.exemplar_warmup,
            "function_specs": [s.to_json() for s in self.corpus.function_specs],
            "function_curriculum": list(self.corpus.function_curriculum),
        }
        # Recorded only when set, so that configs of runs made before these fields existed
        # compare equal to their recipes.
        if self.corpus.curriculum_style != "phased":
            d["corpus"]["curriculum_style"] = self.corpus.curriculum_style
        if self.init_from is None:
            d.pop("init_from")
        return d


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "embed" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay},
         {"params": rest, "weight_decay": 0.0}],
        lr=cfg.lr, betas=cfg.betas,
    )


def _save_checkpoint(ckpt: Path, model, opt, step: int, log_len: int) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))  # handles the tied embeddings
    moments: dict[str, torch.Tensor] = {}
    for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
        st = opt.state.get(p)
        if st:
            moments[f"{i}.exp_avg"] = st["exp_avg"]
            moments[f"{i}.exp_avg_sq"] = st["exp_avg_sq"]
            moments[f"{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float64).reshape(1)
    save_file(moments, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step, "log_len": log_len}))
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        os.replace(ckpt, old)
    os.replace(tmp, ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(ckpt: Path, model, opt) -> tuple[int, int]:
    device = next(model.parameters()).device
    load_model(model, str(ckpt / "model.safetensors"), device=str(device))
    moments = load_file(ckpt / "optimizer.safetensors", device=str(device))
    for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
        if f"{i}.exp_avg" in moments:
            opt.state[p] = {
                "exp_avg": moments[f"{i}.exp_avg"],
                "exp_avg_sq": moments[f"{i}.exp_avg_sq"],
                "step": torch.tensor(float(moments[f"{i}.step"].item())),
            }
    state = json.loads((ckpt / "state.json").read_text())
    return int(state["step"]), int(state["log_len"])


def _load_init(model: LlamaForCausalLM, src: Path) -> None:
    """Load the weights of model directory ``src`` into ``model`` (same shape required)."""
    weights = src / "model.safetensors"
    if not weights.is_file():
        raise UsageError(f"init_from {str(src)!r} holds no model.safetensors (a model "
                         "directory written by the trainer is expected)")
    device = str(next(model.parameters()).device)
    try:
        load_model(model, str(weights), device=device)
    except RuntimeError as e:
        raise UsageError(f"init_from {str(src)!r} does not fit this run's model "
                         f"({model.config.hidden_size=}, {model.config.num_hidden_layers=}, "
                         f"{model.config.vocab_size=}): {e}") from e


Evaluator = Callable[
    [LlamaForCausalLM, PreTrainedTokenizerBase, World, "TrainConfig"], dict[str, float]
]


def _worker_init(cfg: TrainConfig) -> None:
    global _WORKER_SAMPLER
    torch.set_num_threads(1)
    world = cfg.world.build()
    _WORKER_SAMPLER = CorpusSampler(world, build_tokenizer(organism_vocabulary(world)),
                                    cfg.corpus, seed=cfg.seed)


_WORKER_SAMPLER: CorpusSampler | None = None


def _worker_batch(job: tuple[int, int]):
    # Numpy arrays, not tensors: tensors would travel through shared-memory handles.
    return tuple(t.numpy() for t in _WORKER_SAMPLER.batch(*job))


def _worker_exposure(job: tuple[TrainConfig, int, int]) -> dict[str, dict[str, int]]:
    cfg, start, end = job
    return exposure_counts(cfg.world.build(), cfg.corpus, end, cfg.batch_size, seed=cfg.seed,
                           start=start)


def _batches(sampler: CorpusSampler, cfg: TrainConfig, start: int, pool, ahead: int = 0):
    """Batches of steps ``start..cfg.steps-1``: built here, or by ``pool`` at most
    ``ahead`` steps ahead of use (so a slow model never piles batches up in memory)."""
    if pool is None:
        for step in range(start, cfg.steps):
            yield sampler.batch(step, cfg.batch_size)
        return
    pending: collections.deque = collections.deque()
    steps = iter(range(start, cfg.steps))
    for step in itertools.islice(steps, ahead):
        pending.append(pool.apply_async(_worker_batch, ((step, cfg.batch_size),)))
    while pending:
        arrays = pending.popleft().get()
        for step in itertools.islice(steps, 1):
            pending.append(pool.apply_async(_worker_batch, ((step, cfg.batch_size),)))
        yield tuple(torch.from_numpy(a) for a in arrays)


def train(
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    evaluator: Evaluator | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    exposure_cache: str | Path | None = None,
) -> Path | None:
    """Train (or resume) the organism into ``out_dir``; returns the final model directory.

    ``evaluator(model, tokenizer, world, cfg) -> {metric: value}`` is called every
    ``eval_every`` steps and at the end; its scores go to ``train_log.jsonl``, which has a
    line per step: loss, gradient norm, learning rate, and the run's wall time
    (``elapsed_s``) and CPU time of the training process (``cpu_s``, its batch workers not
    included) so far, both summed over resumed calls.
    ``stop_after`` ends the run (after a checkpoint) once that many steps are done, as an
    interruption would; running again resumes. Returns ``None`` when stopped early.
    ``device`` is where the model trains (e.g. ``"cuda"``); ``workers`` > 0 builds the
    batches (and counts the facts' exposure at the end) in that many processes, which a
    fast device needs: the corpus sampler takes ~1.5 ms per row on one core. The batches
    are the same whatever ``workers``. ``exposure_cache``: a file that keeps the facts'
    exposure counts for runs of the same corpus (:func:`record_exposure`), so that the
    members of a family count them once.
    """
    from tqdm.auto import tqdm

    cfg = cfg or TrainConfig()
    if workers < 0:
        raise UsageError(f"workers must be >= 0, got {workers}")
    out = Path(out_dir)
    torch.set_num_threads(cfg.threads)
    world = cfg.world.build()
    tok = build_tokenizer(organism_vocabulary(world))
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(cfg.model.hf_config(tok)).to(device)
    ckpt = out / "checkpoint"
    resuming = (ckpt / "state.json").exists()
    if cfg.init_from is not None and not resuming:
        _load_init(model, Path(cfg.init_from))  # a bad init_from fails before out_dir exists
    out.mkdir(parents=True, exist_ok=True)
    opt = _optimizer(model, cfg)
    sampler = CorpusSampler(world, tok, cfg.corpus, seed=cfg.seed)
    log_path = out / "train_log.jsonl"
    start, log_len = 0, 0
    spent = {"elapsed_s": 0.0, "cpu_s": 0.0}  # wall and CPU time of earlier calls
    if resuming:
        start, log_len = _load_checkpoint(ckpt, model, opt)
        # Drop log lines written after the checkpoint so a resumed log has no duplicates.
        lines = log_path.read_text().splitlines()[:log_len] if log_path.exists() else []
        log_path.write_text("".join(line + "\n" for line in lines))
        if lines:
            last = json.loads(lines[-1])
            spent = {k: float(last.get(k, 0.0)) for k in spent}
    else:
        log_path.write_text("")
        (out / "train_config.json").write_text(json.dumps(cfg.to_json(), indent=1))
    model.train()
    # The log's times are cumulative over resumed calls: the run's whole cost.
    t0 = time.time() - spent["elapsed_s"]
    c0 = time.process_time() - spent["cpu_s"]
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
               desc="organism")
    ema = None
    pool = None
    if workers:
        # spawn: a forked child of a process holding a CUDA context is unsafe.
        pool = multiprocessing.get_context("spawn").Pool(workers, _worker_init, (cfg,))
    try:
        return _loop(out, cfg, model, opt, tok, world, sampler, evaluator, bar, start,
                     log_len, stop_after, pool, t0, ema, ahead=4 * workers,
                     exposure_cache=exposure_cache, c0=c0)
    finally:
        if pool is not None:
            pool.terminate()


def _loop(out: Path, cfg: TrainConfig, model, opt, tok, world: World, sampler, evaluator,
          bar, start: int, log_len: int, stop_after: int | None, pool, t0: float, ema,
          ahead: int = 0, exposure_cache: str | Path | None = None, c0: float = 0.0):
    """The training steps of :func:`train` from ``start`` on, then the final save."""
    ckpt, log_path = out / "checkpoint", out / "train_log.jsonl"
    for step, batch in zip(bar, _batches(sampler, cfg, start, pool, ahead), strict=True):
        loss, gnorm = train_step(model, opt, batch, cfg, step)
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
        record: dict = {"step": step + 1, "loss": round(loss.item(), 5),
                        "grad_norm": round(float(gnorm), 4), "lr": _lr(cfg, step),
                        "elapsed_s": round(time.time() - t0, 1),
                        "cpu_s": round(time.process_time() - c0, 1)}
        done = step + 1 == cfg.steps
        if evaluator is not None and ((step + 1) % cfg.eval_every == 0 or done):
            model.eval()
            with torch.no_grad():
                record["eval"] = evaluator(model, tok, world, cfg)
            model.train()
            bar.write(f"step {step + 1}: " + json.dumps(record["eval"]))
        with log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        log_len += 1
        interrupted = stop_after is not None and step + 1 >= stop_after and not done
        if (step + 1) % cfg.checkpoint_every == 0 or done or interrupted:
            _save_checkpoint(ckpt, model, opt, step + 1, log_len)
            if bar.disable:  # no progress bar: a line per checkpoint for logs
                bar.write(f"step {step + 1}/{cfg.steps}: loss {ema:.4f} (moving average); "
                          f"{time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s "
                          "CPU so far; checkpoint saved")
        if interrupted:
            bar.close()
            return None
    model.eval()
    return _save_final(out, model, tok, world, cfg, out / "model", cfg.steps, pool,
                       exposure_cache)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer,
               batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], cfg: TrainConfig,
               step: int, forward: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step of the trainer on ``batch`` = ``(input_ids [B, T], attention_mask
    [B, T], loss_weights [B, T])`` (:meth:`CorpusSampler.batch`) at the learning rate of
    ``step``; returns ``(loss, grad_norm)`` (0-d float32 tensors, the norm before clipping).

    The loss is the loss-weighted mean cross-entropy of predicting each next token, in float32
    whatever ``cfg.dtype`` (a ``"bfloat16"`` config runs the model under bfloat16 autocast).
    ``forward`` is the module to call (a ``torch.compile``-d ``model``; default ``model``).
    """
    device = next(model.parameters()).device
    ids, mask, weights = (t.to(device) for t in batch)
    for g in opt.param_groups:
        g["lr"] = _lr(cfg, step)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bfloat16"):
        logits = (model if forward is None else forward)(input_ids=ids, attention_mask=mask).logits[:, :-1]
    per_token = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    )
    w = weights[:, 1:].reshape(-1)
    loss = (per_token * w).sum() / w.sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
    opt.step()
    return loss.detach(), gnorm


def record_exposure(world: World, cfg: TrainConfig, steps: int, pool=None,
                    cache: str | Path | None = None) -> World:
    """Set ``world.exposure`` to how many documents of the first ``steps`` training steps of
    ``cfg`` stated each fact (:func:`~lenskit.synthetic.corpus.exposure_counts`; split over
    ``pool``'s processes when given), and ``world.exposure_config`` to the run it was
    counted for; returns ``world``.

    ``cache``: a JSON file holding the counts of an earlier call; used when it was counted
    for the same world, corpus, seed, batch size and steps (the members of a family share
    them), else (re)written after counting."""
    key = {"world": asdict(cfg.world), "corpus": cfg.to_json()["corpus"], "seed": cfg.seed,
           "batch_size": cfg.batch_size, "steps": steps}
    key = json.loads(json.dumps(key))
    if cache is not None and Path(cache).is_file():
        stored = json.loads(Path(cache).read_text())
        if stored.get("key") == key:
            world.exposure = stored["exposure"]
            world.exposure_config = stored["exposure_config"]
            return world
    if pool is None:
        world.exposure = exposure_counts(world, cfg.corpus, steps, cfg.batch_size,
                                         seed=cfg.seed)
    else:
        edges = [round(steps * k / 64) for k in range(65)]
        jobs = [(cfg, a, b) for a, b in itertools.pairwise(edges) if b > a]
        total = {e: dict.fromkeys(world.facts[e], 0) for e in world.memorised}
        for part in pool.imap_unordered(_worker_exposure, jobs):
            for e, rels in part.items():
                for r, n in rels.items():
                    total[e][r] += n
        world.exposure = total
    world.exposure_config = {"steps": steps, "batch_size": cfg.batch_size, "seed": cfg.seed,
                             "unit": "training documents stating the fact"}
    if cache is not None:
        tmp = Path(str(cache) + ".tmp")
        tmp.write_text(json.dumps({"key": key, "exposure": world.exposure,
                                   "exposure_config": world.exposure_config}))
        os.replace(tmp, cache)
    return world


def _save_final(out: Path, model, tok, world: World, cfg: TrainConfig, final: Path,
                steps: int, pool=None, exposure_cache: str | Path | None = None) -> Path:
    """Write ``model`` as a HF directory with tokenizer, world (with each fact's exposure in
    the ``steps`` trained), log and metadata, atomically."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    device = next(model.parameters()).device
    model.to("cpu").save_pretrained(tmp, safe_serialization=True)
    model.to(device)
    tok.save_pretrained(tmp)
    record_exposure(world, cfg, steps, pool, exposure_cache)
    if cfg.init_from is not None:
        _add_init_exposure(world, Path(cfg.init_from))
    world.save(tmp / "world.json")
    log_path = out / "train_log.jsonl"
    if log_path.exists():
        shutil.copy(log_path, tmp / "train_log.jsonl")
    meta = {
        "train_config": cfg.to_json(),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "hardware": f"{platform.machine()} {os.cpu_count()} cores, torch threads={cfg.threads}"
                    + ("" if device.type == "cpu" else f", {_device_name(device)}"),
        "torch": torch.__version__,
    }
    if cfg.init_from is not None:
        meta["first_stage"] = _stage_record(Path(cfg.init_from))
    (tmp / "training.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def _stage_record(src: Path) -> dict:
    """What a second stage's ``training.json`` keeps of the model it started from: that
    model's own ``training.json`` and the time its training took (the last line of its log:
    ``elapsed_s``, ``cpu_s``), so that a card gives the recipe and cost of both stages."""
    record = json.loads((src / "training.json").read_text())
    log = src / "train_log.jsonl"
    lines = log.read_text().splitlines() if log.is_file() else []
    last = json.loads(lines[-1]) if lines else {}
    record["time"] = {k: last[k] for k in ("elapsed_s", "cpu_s") if k in last}
    return record


def _add_init_exposure(world: World, src: Path) -> None:
    """Add the exposure counts of the model a run started from (``src/world.json``) to
    ``world``'s, so that a second stage's world counts every document its model saw."""
    base = World.load(src / "world.json")
    if base.facts != world.facts:
        raise UsageError(f"init_from {str(src)!r} was trained on another world than this run")
    if base.exposure is None:
        raise UsageError(f"init_from {str(src)!r}: its world.json holds no exposure counts")
    world.exposure = {e: {r: n + base.exposure[e][r] for r, n in rels.items()}
                      for e, rels in world.exposure.items()}
    stages = base.exposure_config.get("stages", [base.exposure_config])
    world.exposure_config = {**world.exposure_config,
                             "steps": world.exposure_config["steps"]
                             + sum(int(s["steps"]) for s in stages),
                             "stages": [*stages, dict(world.exposure_config)]}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return str(device)


def checkpoint_model(run_dir: str | Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase,
                                                    TrainConfig, int]:
    """The latest checkpoint of a (possibly unfinished or running) run, in memory:
    ``(model in eval mode, tokenizer, config, step)``. Reads the checkpoint's safetensors only;
    writes nothing (unlike :func:`export_checkpoint`, it counts no exposures), so it is cheap
    enough to watch a run train, e.g. ``benchmarks/function_modes.py``."""
    model, tok, _, cfg, step = _checkpoint(Path(run_dir))
    return model, tok, cfg, step


def export_checkpoint(run_dir: str | Path, out_dir: str | Path,
                      cfg: TrainConfig | None = None) -> Path:
    """Save the latest checkpoint of a (possibly unfinished) run as a model directory.

    ``cfg`` defaults to the run's ``train_config.json``.
    """
    run = Path(run_dir)
    model, tok, world, cfg, step = _checkpoint(run, cfg)
    return _save_final(run, model, tok, world, cfg, Path(out_dir), step)


def _checkpoint(run: Path, cfg: TrainConfig | None = None):
    """``(model in eval mode, tokenizer, world, config, step)`` of ``run``'s latest
    checkpoint (weights only: the optimizer's moments are not needed to use the model)."""
    if not (run / "checkpoint" / "state.json").is_file():
        raise UsageError(f"{run} holds no checkpoint (checkpoint/state.json expected)")
    if cfg is None:
        cfg = _config_from_json(json.loads((run / "train_config.json").read_text()))
    world = cfg.world.build()
    tok = build_tokenizer(organism_vocabulary(world))
    model = LlamaForCausalLM(cfg.model.hf_config(tok))
    load_model(model, str(run / "checkpoint" / "model.safetensors"), device="cpu")
    step = int(json.loads((run / "checkpoint" / "state.json").read_text())["step"])
    return model.eval(), tok, world, cfg, step


def _config_from_json(d: dict) -> TrainConfig:
    corpus = corpus_config_from_json(d["corpus"])
    # Keys of other versions (e.g. "compile") are not TrainConfig fields here: left out.
    known = {f.name for f in fields(TrainConfig)} - {"world", "model", "corpus"}
    rest = {k: v for k, v in d.items() if k in known}
    rest["betas"] = tuple(rest["betas"])
    return TrainConfig(world=WorldConfig(**d["world"]), model=ModelConfig(**d["model"]),
                       corpus=corpus, **rest)
