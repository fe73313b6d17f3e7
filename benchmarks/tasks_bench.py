"""Task evaluation benchmark: ``evaluate`` against the bare forward passes it needs.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.tasks_bench`` (``--threads N``, ``--repeat R``).

Model: the shipped organism when ``data/organism`` exists, else a random tiny Llama
(d_model 128, 4 layers, 4 heads, 2 key-value heads, FFW 512) built with
:func:`lenskit.make_tiny_model` and the organism's tokenizer. Tasks: the organism's small
suite (closed-book, open-book, overriding, two function tasks: 300 prompts each).

Measured for each task in one run, all with batch size 32 and one torch thread:

- **prompt passes**: a minimal loop that runs the HF model once per batch of the
  pre-tokenised, right-padded prompts (``model(ids).logits``) and takes the argmax at each
  last real token: the least any evaluation computes (one answer token per prompt).
- **greedy loop**: a minimal greedy decoder over the same pre-tokenised prompts: the
  prompt pass with a key-value cache, then one HF call per new token until every row has
  emitted a newline or ``max_new_tokens`` is reached (the model compute that decoding the
  same answers needs, with no scoring, bookkeeping or tokenisation).
- **evaluate**: :func:`lenskit.tasks.evaluate` from a cold start (a fresh copy of the task
  set, so its tokenisation is included), and warm (tokenisation cached, as in a sweep that
  re-evaluates a task at every sparsity). It also scores the gold answer's log-probability
  and rank, builds the rows, and matches the answers.
- **rerun**: ``evaluate(..., decode="rerun")``: decoding by re-running prompt + generated
  tokens per new token instead of reusing the cache.

With random weights the model never emits a newline, so every row decodes the full
``max_new_tokens``: the worst case for decoding cost. Times are the best of ``--repeat``
interleaved rounds (wall clock; the last column uses this process's CPU time).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

from benchmarks.timing import interleaved
from lenskit.models import load_model, make_tiny_model, model_info
from lenskit.tasks import evaluate, organism_suite
from lenskit.tasks.encoding import encode_texts, pad_right, stop_token_mask
from lenskit.tasks.scoring import HFBackend


def _model(tmp: Path):
    data = Path(os.environ.get("LENSKIT_DATA", Path(__file__).resolve().parents[1] / "data"))
    if (data / "organism" / "world.json").is_file():
        return load_model("organism"), "organism (shipped)"
    path = make_tiny_model("llama", tmp / "llama", d_model=128, n_layers=4, n_heads=4,
                           d_ffn=512)
    return load_model(path), "tiny Llama d128 x 4 layers (random weights)"


def _prompt_passes(hf, rows, bs: int, pad: int) -> float:
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(rows), bs):
            ids, lengths = pad_right(rows[s : s + bs], pad)
            logits = hf(input_ids=ids).logits
            logits[torch.arange(len(ids)), lengths - 1].argmax(-1)
    return time.perf_counter() - t


def _greedy_loop(hf, rows, bs: int, pad: int, max_new: int, stop: torch.Tensor) -> float:
    """Plain HF greedy decoding with a KV cache, right padding, positions per row."""
    cache_kw = HFBackend(hf)._cache_kw
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(rows), bs):
            ids, lengths = pad_right(rows[s : s + bs], pad)
            mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
            out = hf(input_ids=ids, use_cache=True)
            nxt = out.logits[torch.arange(len(ids)), lengths - 1].argmax(-1)
            cache, done = HFBackend._cache_of(out), stop[nxt]
            for step in range(1, max_new):
                if bool(done.all()):
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
                out = hf(input_ids=nxt[:, None], attention_mask=mask,
                         position_ids=(lengths + step - 1)[:, None], use_cache=True,
                         **{cache_kw: cache})
                nxt, cache = out.logits[:, -1].argmax(-1), HFBackend._cache_of(out)
                done = done | stop[nxt]
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        model, label = _model(Path(tmp))
        info = model_info(model)
        tok, hf = info.tokenizer, info.hf
        from lenskit.synthetic.world import WorldConfig

        source = model if label.startswith("organism") else WorldConfig().build()
        tasks = [t for t in organism_suite(source, size="small", seed=0).values()
                 if t.kind != "perplexity"]
        bs, pad, r = args.batch_size, tok.pad_token_id, args.repeat
        stop = stop_token_mask(tok, hf.get_output_embeddings().weight.shape[0])
        print(f"model: {label}, {sum(p.numel() for p in hf.parameters()):,} parameters; "
              f"torch threads {args.threads}; batch size {bs}; best of {r}\n")
        print("| task | prompts | prompt tokens (mean) | max new tokens | prompt passes (s) | "
              "greedy loop (s) | evaluate cold (s) | evaluate warm (s) | rerun decoding (s) | "
              "cold / greedy loop | warm / greedy loop | cold / prompt passes | "
              "rerun / cache | cold / greedy loop (CPU time) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        tot = {"wall": {}, "cpu": {}}
        for task in tasks:
            rows = encode_texts(tok, [i.prompt for i in task.instances])
            warm_res = evaluate(model, task, batch_size=bs, n_bootstrap=0)  # warms the cache
            max_new = warm_res.meta["tasks"][task.name]["max_new_tokens"]
            wall, cpu = interleaved({
                "pp": lambda rows=rows: _prompt_passes(hf, rows, bs, pad),
                "gl": lambda rows=rows, m=max_new: _greedy_loop(hf, rows, bs, pad, m, stop),
                "cold": lambda task=task: evaluate(
                    model, dataclasses.replace(task), batch_size=bs, n_bootstrap=0),
                "warm": lambda task=task: evaluate(model, task, batch_size=bs, n_bootstrap=0),
                "rerun": lambda task=task: evaluate(
                    model, task, batch_size=bs, n_bootstrap=0, decode="rerun"),
            }, r)
            for k in wall:
                tot["wall"][k] = tot["wall"].get(k, 0.0) + wall[k]
                tot["cpu"][k] = tot["cpu"].get(k, 0.0) + cpu[k]
            mean_len = sum(len(x) for x in rows) / len(rows)
            print(_row(task.name, str(len(task)), f"{mean_len:.0f}", str(max_new), wall, cpu))
        print(_row("**all**", "", "", "", tot["wall"], tot["cpu"]))


def _row(name: str, n: str, mean_len: str, max_new: str, w: dict, c: dict) -> str:
    return (f"| {name} | {n} | {mean_len} | {max_new} | {w['pp']:.2f} | {w['gl']:.2f} | "
            f"{w['cold']:.2f} | {w['warm']:.2f} | {w['rerun']:.2f} | "
            f"{w['cold'] / w['gl']:.2f} | {w['warm'] / w['gl']:.2f} | "
            f"{w['cold'] / w['pp']:.2f} | {w['rerun'] / w['warm']:.2f} | "
            f"{c['cold'] / c['gl']:.2f} |")


if __name__ == "__main__":
    main()
