"""rlhfkit against TRL on a model of realistic width: a random Llama of about 113M parameters (GPT-2-small
width), where both sides run the same `transformers` forward and backward and only real savings count.

The model: 12 layers, width 768, 12 heads, MLP 3,072, the tiny tokenizer's 2,048-token vocabulary, tied
embeddings (114.8M parameters, 113.2M without the embedding), random weights from seed 0 (no hub
download), saved once under ~/.cache/rlhfkit/bench/; fp32 on the CPU, the threads torch picks unless
--threads. Each side of each job runs in a process of its own, so the peak resident memory (that process's
`ru_maxrss`, through `peak_memory.run_with_peak`, so not floored by this process's size) is that side's alone; the sides alternate, who goes first alternates too.

The jobs, each delegated to the benchmark that already makes that comparison like for like (their
docstrings say exactly what is the same on both sides and what is timed):
  - DPO (`dpo_rm_vs_trl.py --model M --side S --only dpo`): --dpo-steps steps of --dpo-batch pairs,
    max length 256, the first 2 steps and the last one untimed; reference log-probs precomputed on both
    sides; headline pairs/s = batch / median step time;
  - online RL (`online_rl_vs_trl.py --model M --only grpo|trl`): --rl-steps RL steps of
    --rl-prompts prompts x 4 responses, at most --max-new-tokens new tokens (a random model rarely stops
    early, so responses run to the limit on both sides), one pass in minibatches of 8, beta 0.05 with a
    reference forward on both; the first 2 steps and the last untimed; headline episodes/s;
  - SFT (`sft_throughput.py --model M`): rlhfkit alone, tokens/s and the share of the fp32 matmul
    peak measured in the same process; FLOPs = 6 x N x real tokens with N the parameters without the
    input embedding (what the issue asks; with tied embeddings this leaves the output projection out,
    which undercounts the work by about 1.4% here).

Run it:
    .venv/bin/python bench/scale_vs_trl.py                       # all three jobs, one run per side (~20 min)
    .venv/bin/python bench/scale_vs_trl.py --only dpo grpo --repeats 2 --json scale.json

Leaves out on purpose: start-up and the whole command (whole_command_vs_trl.py does those on the tiny
model), GPUs, mixed precision, LoRA (lora_memory.py), multi-process runs, a trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_memory import run_with_peak

BENCH = Path(__file__).resolve().parent
SHAPE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
             num_key_value_heads=12, max_position_embeddings=1024, tie_word_embeddings=True)


def random_llama(seed: int = 0) -> Path:
    """The 113M random Llama with the tiny tokenizer, saved once (cached)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlhfkit" / "bench"
    out = cache / f"llama-113m-random-seed{seed}"
    if (out / "config.json").exists():
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlhfkit.models.loading import build_tiny

    _, tokenizer = build_tiny(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **SHAPE)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def child(argv: list[str], json_path: Path, env: dict) -> tuple[dict, float, float]:
    """Run one benchmark process; (its JSON, its peak RSS in MiB, wall seconds)."""
    start = time.perf_counter()
    code, peak_mib, output = run_with_peak([sys.executable, *argv, "--json", str(json_path)], env,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if code != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{output[-3000:]}")
    return json.loads(json_path.read_text()), peak_mib, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=["dpo", "grpo", "sft"], default=["dpo", "grpo", "sft"])
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (alternating)")
    parser.add_argument("--threads", type=int, help="torch threads for every side (default: torch's choice)")
    parser.add_argument("--dpo-steps", type=int, default=11, help="DPO steps (2 warm-up, the last untimed)")
    parser.add_argument("--dpo-batch", type=int, default=8)
    parser.add_argument("--rl-steps", type=int, default=7, help="RL steps (2 warm-up, the last untimed)")
    parser.add_argument("--rl-prompts", type=int, default=4, help="prompts per RL step (x 4 responses)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--sft-steps", type=int, default=13, help="SFT steps (2 warm-up, the last untimed)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = random_llama()
    threads = ["--threads", str(args.threads)] if args.threads else []
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1")
    jobs = {
        "dpo": ({"rlhfkit": ["--side", "rlhfkit"], "TRL": ["--side", "trl"]},
                [str(BENCH / "dpo_rm_vs_trl.py"), "--model", str(model), "--only", "dpo", "--steps",
                 str(args.dpo_steps), "--warmup", "2", "--batch-size", str(args.dpo_batch), "--max-length", "256"]),
        "grpo": ({"rlhfkit": ["--only", "grpo"], "TRL": ["--only", "trl"]},
                 [str(BENCH / "online_rl_vs_trl.py"), "--model", str(model), "--steps", str(args.rl_steps),
                  "--warmup", "2", "--prompts-per-step", str(args.rl_prompts), "--group-size", "4",
                  "--max-new-tokens", str(args.max_new_tokens), "--ppo-epochs", "1", "--batch-size", "8"]),
        "sft": ({"rlhfkit": []},
                [str(BENCH / "sft_throughput.py"), "--model", str(model), "--steps", str(args.sft_steps),
                 "--warmup", "2", "--batch-size", "16", "--max-length", "256"]),
    }
    results: dict = {"model": str(model), "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.only:
            sides, base = jobs[job]
            runs: dict[str, list] = {side: [] for side in sides}
            for r in range(args.repeats):
                names = list(sides)
                for side in names[r % len(names):] + names[:r % len(names)]:
                    out, peak, wall = child(base + sides[side] + threads, Path(tmp) / f"{job}-{side}-{r}.json", env)
                    runs[side].append({"result": out, "peak_rss_mib": peak, "wall_s": wall})
                    print(f"{job} {side} run {r + 1}: {headline(job, side, out):.3f} {UNIT[job]}, peak RSS "
                          f"{peak:.0f} MiB, {wall:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
            results[job] = summary(job, runs)
    print(f"\n{model.name}: rlhfkit vs TRL, fp32 CPU, threads {args.threads or 'default'}")
    for job in args.only:
        r = results[job]
        line = f"  {job:4s} rlhfkit {r['rlhfkit']:.3f} {UNIT[job]}, peak {r['peak_rss_mib']['rlhfkit']:.0f} MiB"
        if "TRL" in r:
            line += (f"; TRL {r['TRL']:.3f}, peak {r['peak_rss_mib']['TRL']:.0f} MiB; rlhfkit/TRL speed "
                     f"{r['ratio']:.2f}x, memory {r['memory_ratio']:.2f}x")
        else:
            line += f"; {100 * r['share_of_peak']:.1f}% of the fp32 matmul peak ({r['peak_gflops']:.0f} GFLOP/s)"
        print(line)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


UNIT = {"dpo": "pairs/s", "grpo": "episodes/s", "sft": "real tokens/s"}


def headline(job: str, side: str, out: dict) -> float:
    if job == "dpo":
        return out["dpo"]["rlhfkit" if side == "rlhfkit" else "trl"]["pairs_per_s"]
    if job == "grpo":
        return out["rlhfkit grpo" if side == "rlhfkit" else "TRL grpo"]["episodes_per_s"]
    return out["real_tokens_per_s_median_step"]


def summary(job: str, runs: dict[str, list]) -> dict:
    out = {side: statistics.median(headline(job, side, run["result"]) for run in rs) for side, rs in runs.items()}
    out["peak_rss_mib"] = {side: max(run["peak_rss_mib"] for run in rs) for side, rs in runs.items()}
    out["runs"] = runs
    if "TRL" in runs:
        out["ratio"] = out["rlhfkit"] / out["TRL"]
        out["memory_ratio"] = out["peak_rss_mib"]["rlhfkit"] / out["peak_rss_mib"]["TRL"]
    else:
        sft = runs["rlhfkit"][0]["result"]
        n, peak = sft["non_embedding_params"], sft["matmul_peak_flops"]
        out["share_of_peak"] = statistics.median(6 * n * run["result"]["real_tokens_per_s_median_step"] / peak
                                                 for run in runs["rlhfkit"])
        out["peak_gflops"] = peak / 1e9
    return out


if __name__ == "__main__":
    main()
