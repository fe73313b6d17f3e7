"""GPU check: the study's cells on a GPU give the CPU's numbers; pruning time and memory of a
1B-parameter Llama; SparseGPT at LLaMA-7B layer shapes against the reference loop structure.

Run on one GPU (no network; sized to finish in under 5 minutes on one H100/H200-class GPU)::

    python -m benchmarks.gpu_check              # prints a markdown block for BENCHMARKS.md
    python -m benchmarks.gpu_check --smoke      # tiny sizes on the CPU (seconds; CI runs it)

On a machine without transformer-lens (lenskit loads models as TransformerLens bridges),
install lenskit and the wheels carried over first, without the network::

    pip install --no-index --no-deps transformer_lens-*.whl <its other missing wheels>
    pip install --no-deps --no-build-isolation .      # lenskit itself, organisms included
    python -m benchmarks.gpu_check --out gpu_check.md

Sections (every ratio is measured in the same run):

1. **Organism cells, GPU against CPU**: the shipped organism pruned (Wanda, SparseGPT,
   magnitude at 50% of a scope) and evaluated on its small suite, once on the CPU and once on
   the GPU, both float32: mask agreement and the largest difference of any metric.
2. **A random-weight Llama of about 1B block parameters** (d_model 2048, d_ffn 5632, 21
   layers, grouped-query attention) with 128 x 2048 random calibration tokens: sequential
   SparseGPT and sequential Wanda over all sites, in float32 and bfloat16: seconds, peak GPU
   memory (``torch.cuda.max_memory_allocated``) and the time against one calibration forward
   pass of the whole model at the same dtype (target: at most 2x).
3. **SparseGPT at LLaMA-7B layer shapes** (W 4096x4096 and 11008x4096, 128 x 2048 inputs of
   width 4096): lenskit's statistics + prune against the reference loop structure
   (:mod:`lenskit.pruning.reference`: the Hessian one sequence at a time, the per-column
   loop), and both reconstruction errors (target: >= 5x at equal error).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from lenskit.models import load_model, make_tiny_model, model_info, pruned
from lenskit.pruning import CalibrationData, Pruner, default_calibration
from lenskit.pruning.reference import reference_hessian, reference_sparsegpt
from lenskit.pruning.sparsegpt import factor_hessian, sparsegpt_prune
from lenskit.pruning.statistics import GroupStats
from lenskit.pruning.structure import parse_structure
from lenskit.tasks import default_suite, evaluate_suite

SPARSITY = 0.5


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the full check and ``--smoke``."""

    cells: tuple[tuple[str, str], ...]  # (method, scope) of the organism cells
    n_tasks: int | None  # organism tasks evaluated (None: the whole small suite)
    llama: dict  # make_tiny_model arguments
    cal: tuple[int, int]  # calibration n_samples, seq_len
    batch: int  # calibration sequences per forward pass
    layers: tuple[tuple[int, int], ...]  # (out, in) SparseGPT layer shapes
    layer_tokens: tuple[int, int]  # (n_seq, seq_len) of the layer inputs


FULL = Sizes(cells=(("wanda", "attn"), ("sparsegpt", "mlp"), ("magnitude", "all")),
             n_tasks=None,
             llama=dict(d_model=2048, n_layers=21, n_heads=16, d_ffn=5632, n_ctx=2048),
             cal=(128, 2048), batch=8, layers=((4096, 4096), (11008, 4096)),
             layer_tokens=(128, 2048))
SMOKE = Sizes(cells=(("wanda", "attn"),), n_tasks=1,
              llama=dict(d_model=64, n_layers=2, n_heads=4, d_ffn=176, n_ctx=64),
              cal=(4, 32), batch=2, layers=((96, 64),), layer_tokens=(4, 32))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}"


def resident_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a"
    return f"{torch.cuda.memory_allocated(device) / 2**30:.1f}"


# ---- 1. organism cells ------------------------------------------------------------------

def organism_cells(device: torch.device, sizes: Sizes) -> tuple[dict, dict]:
    """Masks and metric values of each cell (and of the dense model) on ``device``."""
    model = load_model("organism", device=device)
    suite = default_suite(model, "small", 0)
    if sizes.n_tasks is not None:
        suite = dict(list(suite.items())[:sizes.n_tasks])
    cal = default_calibration(model, n_samples=32, seq_len=64, seed=0)
    masks, values = {}, {}

    def metrics(label: str) -> None:
        s = evaluate_suite(model, suite, batch_size=64).summary(n_bootstrap=0)
        for row in s.itertuples():
            values[(label, row.task, row.metric)] = float(row.value)

    metrics("dense")
    for method, scope in sizes.cells:
        r = Pruner(model, method, scope=scope, calibration=cal).prune(SPARSITY, apply=False)
        masks[(method, scope)] = {n: m.cpu() for n, m in r.masks.items()}
        with torch.no_grad(), pruned(model, r.masks, r.weights):
            metrics(f"{method} {scope}")
    return masks, values


def check_organism(device: torch.device, sizes: Sizes) -> list[str]:
    cpu_masks, cpu_values = organism_cells(torch.device("cpu"), sizes)
    dev_masks, dev_values = organism_cells(device, sizes)
    lines = ["| cell | mask agreement | max metric difference |", "|---|---|---|"]
    for cell in cpu_masks:
        total = sum(m.numel() for m in cpu_masks[cell].values())
        same = sum(int((m == dev_masks[cell][n]).sum()) for n, m in cpu_masks[cell].items())
        label = f"{cell[0]} {cell[1]}"
        diff = max(abs(v - dev_values[k]) for k, v in cpu_values.items() if k[0] == label)
        lines.append(f"| {label} 50% | {same / total:.6f} | {diff:.2e} |")
    dense = max(abs(v - dev_values[k]) for k, v in cpu_values.items() if k[0] == "dense")
    lines.append(f"| dense | - | {dense:.2e} |")
    return lines


# ---- 2. a 1B Llama ----------------------------------------------------------------------

def forward_pass(model, tokens: torch.Tensor, batch: int) -> None:
    hf = model_info(model).hf
    device = next(hf.parameters()).device
    with torch.no_grad():
        for i in range(0, tokens.shape[0], batch):
            hf(input_ids=tokens[i:i + batch].to(device), use_cache=False)


def check_llama(device: torch.device, sizes: Sizes, workdir: Path) -> list[str]:
    path = make_tiny_model("llama", workdir / "llama", **sizes.llama)
    lines = ["| dtype | method | seconds | forward pass (s) | x forward | <= 2x | model GiB "
             "| peak GiB |", "|---|---|---|---|---|---|---|---|"]
    n, seq = sizes.cal
    gen = torch.Generator().manual_seed(0)
    for dtype in ("float32", "bfloat16"):
        model = load_model(path, device=device, dtype=dtype)
        info = model_info(model)
        if dtype == "float32":
            lines.insert(0, f"Block parameters: {info.total_params / 1e6:,.0f} M "
                            f"({info.n_layers} layers); calibration {n} x {seq} tokens.\n")
        vocab = int(info.hf.get_input_embeddings().num_embeddings)
        cal = CalibrationData.from_tokens(torch.randint(vocab, (n, seq), generator=gen))
        forward_pass(model, cal.tokens[:sizes.batch], sizes.batch)  # warm-up (kernels)
        _, fwd = timed(lambda m=model, c=cal: forward_pass(m, c.tokens, sizes.batch), device)
        resident = resident_gib(device)  # the model's weights (and buffers)
        for method in ("sparsegpt", "wanda"):
            pruner = Pruner(model, method, calibration=cal, mode="sequential",
                            batch_size=sizes.batch)
            peak_reset(device)
            _, secs = timed(lambda p=pruner: p.prune(SPARSITY, apply=False), device)
            ratio = secs / fwd
            lines.append(f"| {dtype} | {method} sequential | {secs:.2f} | {fwd:.2f} | "
                         f"{ratio:.2f} | {'yes' if ratio <= 2 else 'no'} | {resident} | "
                         f"{peak_gib(device)} |")
        # Free this dtype's model before the next one is loaded (peaks must not include it).
        del pruner, model, info
        gc.collect()
        peak_reset(device)
    return lines


# ---- 3. SparseGPT at LLaMA-7B layer shapes ------------------------------------------------

def rel_error(w: torch.Tensor, w_new: torch.Tensor, gram: torch.Tensor) -> float:
    """``||(W - W') X^T|| / ||W X^T||`` from the Gram matrix ``X^T X``."""
    dw = (w - w_new).double()
    g = gram.double()
    wd = w.double()
    return float(((dw @ g) * dw).sum().sqrt() / ((wd @ g) * wd).sum().sqrt())


def check_layers(device: torch.device, sizes: Sizes) -> list[str]:
    lines = ["| W (out x in) | lenskit s | reference s | speed-up | lenskit error | "
             "reference error | >= 5x, error <= reference + 2% |", "|---|---|---|---|---|---|---|"]
    n_seq, seq = sizes.layer_tokens
    structure = parse_structure("unstructured")
    for rows, cols in sizes.layers:
        g = torch.Generator(device=device).manual_seed(rows + cols)
        # LLM-like inputs: a low-rank common part, noise, log-normal feature scales
        x = torch.randn(n_seq * seq, 64, device=device, generator=g) @ \
            (torch.randn(64, cols, device=device, generator=g) / 8)
        x += 0.5 * torch.randn(n_seq * seq, cols, device=device, generator=g)
        x *= torch.exp(0.8 * torch.randn(cols, device=device, generator=g))
        x = x.reshape(n_seq, seq, cols)
        w = torch.randn(rows, cols, device=device, generator=g) / cols**0.5

        def ours(x=x, w=w, cols=cols):
            st = GroupStats(cols, "hessian", device)
            for i in range(0, n_seq, 16):
                st.add(x[i:i + 16])
            new, _ = sparsegpt_prune(w, factor_hessian(st.hessian()), SPARSITY, structure)
            return new

        def reference(x=x, w=w):
            return reference_sparsegpt(w, reference_hessian(x), SPARSITY)

        ours()  # warm-up (kernels, allocator)
        new, t_ours = timed(ours, device)
        ref, t_ref = timed(reference, device)
        gram = reference_hessian(x)
        e_ours, e_ref = rel_error(w, new, gram), rel_error(w, ref, gram)
        met = t_ref / t_ours >= 5 and e_ours <= 1.02 * e_ref
        lines.append(f"| {rows} x {cols} | {t_ours:.3f} | {t_ref:.3f} | {t_ref / t_ours:.1f}x "
                     f"| {e_ours:.4f} | {e_ref:.4f} | {'yes' if met else 'no'} |")
        del x
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes on the CPU (checks that the script runs)")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    p.add_argument("--out", help="also write the markdown block to this file")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sizes = SMOKE if args.smoke else FULL
    device = torch.device(args.device or ("cpu" if args.smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --smoke (CPU) or run it on a GPU",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    t0 = time.perf_counter()
    out = [f"### GPU check on {name} ({datetime.date.today()}, torch {torch.__version__}"
           f"{', smoke sizes' if args.smoke else ''})", "",
           "Organism cells, CPU against this device (float32, 50% sparsity):", ""]
    out += check_organism(device, sizes)
    with tempfile.TemporaryDirectory() as tmp:
        out += ["", "Random-weight Llama, sequential pruning of every site; "
                    "target: at most 2x one calibration forward pass:", ""]
        out += check_llama(device, sizes, Path(tmp))
    out += ["", "SparseGPT at LLaMA-7B layer shapes, statistics + prune; target: >= 5x the "
                "reference loop structure at equal error:", ""]
    out += check_layers(device, sizes)
    out += ["", f"(`python -m benchmarks.gpu_check`, {time.perf_counter() - t0:.0f} s in all)"]
    text = "\n".join(out)
    print("\n```markdown\n" + text + "\n```")
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
