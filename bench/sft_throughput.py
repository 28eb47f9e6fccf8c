"""SFT training throughput of rlhfkit, and how close it gets to this machine's fp32 matmul peak.

What it measures, all in one process:
  1) the fp32 matmul peak of this machine: the best of several timed `torch.mm` of two 2048x2048 fp32
     matrices (2 * 2048^3 FLOP each), with the thread count torch uses for training;
  2) `train_sft` on the built-in assistant task for --steps optimizer steps; the first --warmup steps and
     the last step (held-out evaluation and the final checkpoint run inside it) are left out of the timing;
  3) the peak again, after training (the machine is shared: the better of the two readings is the baseline).

It prints, for the timed steps:
  - tokens/s three ways: completion tokens (what the SFT loss is normalised by, rlhfkit's own
    `tokens_per_s` column), real tokens (prompt + completion, no padding), padded tokens (batch x width,
    what the matmuls actually process);
  - achieved FLOP/s = 6 x N x (real tokens/s), N = every parameter counted once (the tied embedding is
    also the output projection, whose matmul is real work); 6 = 2 (forward multiply-add) + 4 (backward).
    The attention-score FLOPs (12 x layers x T x width per token) and the padding are not counted, so
    this is "useful" FLOP/s; the padded-token figure shows what padding costs;
  - that FLOP/s as a share of the measured matmul peak.
Each figure twice: mean (all timed tokens / all timed seconds) and median step (the median over steps
of tokens/seconds), the latter robust to other jobs taking the CPU away for a few steps.

Run it:
    .venv/bin/python bench/sft_throughput.py                       # tiny model, 60 steps (~1 min idle, 2 min busy)
    .venv/bin/python bench/sft_throughput.py --steps 200 --json sft.json
    .venv/bin/python bench/sft_throughput.py --model runs/sft      # any causal-LM checkpoint

Leaves out on purpose: a comparison with another library (see dpo_rm_vs_trl.py), GPUs and mixed
precision (fp32 on CPU only), data loading and tokenization (done before the first step), and
multi-process runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch


def matmul_peak(size: int = 2048, repeats: int = 7) -> float:
    """Best-of-`repeats` fp32 FLOP/s of one (size, size) @ (size, size) torch.mm."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # first call: thread pool start-up and allocation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def step_token_counts(config, steps: int) -> list[dict[str, int]]:
    """Completion / real / padded tokens of each optimizer step's global batch, the batches rebuilt
    exactly as `rlhfkit.trainers.loop.fit` draws them (one process, no accumulation by default)."""
    from rlhfkit.data.records import train_and_held_out
    from rlhfkit.data.tokenization import encode_demonstrations, global_batches, split_micro_batches
    from rlhfkit.models.loading import load_tokenizer

    records, _ = train_and_held_out(config.data, config.eval_data, "demonstrations", builtin_size=config.builtin_size,
                                    eval_fraction=config.eval_fraction, seed=config.seed)
    examples = encode_demonstrations(records, load_tokenizer(config.model), config.max_length)
    lengths = [len(e) for e in examples]
    global_batch = config.batch_size * config.grad_accum
    per_epoch = len(global_batches(lengths, global_batch, config.seed, 0, config.group_by_length))
    counts = []
    for step in range(steps):
        epoch, index = divmod(step, per_epoch)
        ids = global_batches(lengths, global_batch, config.seed, epoch, config.group_by_length)[index]
        micro = split_micro_batches(ids, config.grad_accum)  # each micro-batch is padded to its longest row
        counts.append({"completion": sum(examples[i].completion_tokens for i in ids),
                       "real": sum(lengths[i] for i in ids),
                       "padded": sum(len(m) * max(lengths[i] for i in m) for m in micro)})
    return counts


def parameter_counts(model_name: str) -> tuple[int, int]:
    """(all parameters counted once, non-embedding parameters)."""
    from rlhfkit.models.loading import load_causal_lm

    model, _ = load_causal_lm(model_name, dtype="fp32")
    total = sum(p.numel() for p in model.parameters())  # .parameters() yields a tied weight once
    return total, total - model.get_input_embeddings().weight.numel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="`tiny` or a causal-LM checkpoint folder")
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps to run")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--builtin-size", type=int, default=3000, help="demonstrations generated for the task")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < args.warmup + 3:
        parser.error("--steps must be at least --warmup + 3 (warm-up steps, timed steps, the last step)")

    from rlhfkit.trainers.sft import SFTConfig, train_sft

    threads = torch.get_num_threads()
    load_before = os.getloadavg()[0]
    peak_before = matmul_peak()

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(model=args.model, data="builtin:assistant", out=out, max_steps=args.steps,
                           batch_size=args.batch_size, max_length=args.max_length, builtin_size=args.builtin_size,
                           progress=False, save_every=10**9, log_every=10**9)
        train_sft(config, on_step=lambda step, record: stamps.append(time.perf_counter()))
    peak_after = matmul_peak()
    peak = max(peak_before, peak_after)
    load_average = (load_before, os.getloadavg()[0])

    # stamps[k] is taken at the end of step k+1: the timed window is steps warmup+1 .. steps-1
    first, last = args.warmup, args.steps - 1
    step_seconds = [stamps[k] - stamps[k - 1] for k in range(first, last)]
    counts = step_token_counts(config, args.steps)[first:last]
    n_params, n_non_embedding = parameter_counts(args.model)
    kinds = ("completion", "real", "padded")
    # mean: all timed tokens / all timed seconds; median step: robust to other jobs stealing the CPU
    mean = {kind: sum(c[kind] for c in counts) / sum(step_seconds) for kind in kinds}
    median = {kind: statistics.median(c[kind] / t for c, t in zip(counts, step_seconds)) for kind in kinds}
    flops = {name: 6 * n_params * rates["real"] for name, rates in (("mean", mean), ("median", median))}
    results = {
        "model": args.model, "params": n_params, "non_embedding_params": n_non_embedding,
        "steps": args.steps, "timed_steps": last - first, "batch_size": args.batch_size,
        "max_length": args.max_length, "torch_threads": threads, "seconds_timed": sum(step_seconds),
        "step_seconds": step_seconds,
        **{f"{kind}_tokens_per_s": mean[kind] for kind in kinds},
        **{f"{kind}_tokens_per_s_median_step": median[kind] for kind in kinds},
        "achieved_flops": flops["mean"], "achieved_flops_median_step": flops["median"],
        "matmul_peak_flops": peak, "matmul_peak_before": peak_before, "matmul_peak_after": peak_after,
        "fraction_of_peak": flops["mean"] / peak, "fraction_of_peak_median_step": flops["median"] / peak,
        "load_average_1min": load_average,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {threads} torch threads, torch {torch.__version__}",
    }

    print(f"\nSFT throughput: model {args.model} ({n_params:,} parameters, tied embedding counted once; "
          f"{n_non_embedding:,} non-embedding), batch {args.batch_size}, max length {args.max_length}, fp32, "
          f"{threads} torch threads; steps {first + 1}..{last} of {args.steps} timed; 1-min load average "
          f"{load_average[0]:.1f} before, {load_average[1]:.1f} after")
    rows = [
        ("step time (ms)", 1000 * sum(step_seconds) / len(step_seconds), 1000 * statistics.median(step_seconds)),
        ("completion tokens/s (the SFT loss's tokens)", mean["completion"], median["completion"]),
        ("real tokens/s (prompt + completion, no padding)", mean["real"], median["real"]),
        ("padded tokens/s (batch x width)", mean["padded"], median["padded"]),
        ("achieved GFLOP/s = 6 x params x real tokens/s", flops["mean"] / 1e9, flops["median"] / 1e9),
        ("fp32 matmul peak GFLOP/s (2048^3 mm, best of 7)", peak / 1e9, peak / 1e9),
        ("share of peak (%)", 100 * flops["mean"] / peak, 100 * flops["median"] / peak),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"  {'':<{width}}  {'mean':>10}  {'median step':>12}")
    for name, a, b in rows:
        print(f"  {name:<{width}}  {a:>10,.1f}  {b:>12,.1f}")
    print(f"  (matmul peak before training {peak_before / 1e9:.1f}, after {peak_after / 1e9:.1f} GFLOP/s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
