"""Peak memory of LoRA PPO against full PPO with its reference copy, each in its own process.

    python bench/lora_memory.py                       # random Llama, GPT-2-small width (~113M parameters)
    python bench/lora_memory.py --hidden 1024 --layers 32 --intermediate 4096 --json out.json   # ~0.5B, GPU

The model is a random Llama of the given shape with the tiny default's 2,048-token tokenizer, saved to
a temporary folder; each mode then runs `rlhfkit ppo` (gold reward, rloo, the same settings) in a fresh
child process, and the child's peak resident set size (`getrusage`'s ru_maxrss) is its figure: weights,
gradients, optimizer state, activations and the torch runtime together. Full PPO holds the policy, a
frozen reference copy, gradients and two AdamW moments of every weight; LoRA holds one copy of the
weights (the reference is the adapters switched off) and trains only the adapters. On a GPU the peak
of `torch.cuda.max_memory_allocated` is reported too. Printed as a ratio against the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def build_model(folder: Path, hidden: int, layers: int, intermediate: int) -> int:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from rlhfkit.models.loading import build_tiny

    _, tokenizer = build_tiny()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                         num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def child(args: argparse.Namespace) -> None:
    """One PPO run in this process; prints its peak memory as JSON on the last line."""
    import torch

    from rlhfkit.trainers.ppo import PPOConfig, train_ppo

    started = time.perf_counter()
    train_ppo(PPOConfig(model=args.model, out=args.out, reward="gold", max_steps=args.steps, prompts_per_step=4,
                        group_size=2, max_new_tokens=args.new_tokens, minibatch_size=8, ppo_epochs=1,
                        lora_r=args.lora_r, progress=False, save_every=10_000))
    peak = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": time.perf_counter() - started}
    if torch.cuda.is_available():
        peak["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        params = build_model(model, args.hidden, args.layers, args.intermediate)
        print(f"random Llama: {params / 1e6:.1f}M parameters ({args.layers} layers, width {args.hidden}); "
              f"PPO {args.steps} steps, 8 episodes of {args.new_tokens} new tokens per step")
        results = {"parameters": params, "lora_r": args.lora_r, "steps": args.steps}
        for mode, rank in (("full", 0), ("lora", args.lora_r)):
            cmd = [sys.executable, __file__, "--child", "--model", str(model), "--out", str(Path(tmp) / mode),
                   "--lora-r", str(rank), "--steps", str(args.steps), "--new-tokens", str(args.new_tokens)]
            run = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
            if run.returncode != 0:
                sys.exit(f"{mode} run failed:\n{run.stderr[-3000:]}")
            results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{mode:>4}: peak RSS {results[mode]['rss_mib']:8.0f} MiB"
                  + (f", CUDA peak {results[mode]['cuda_peak_mib']:8.0f} MiB" if "cuda_peak_mib" in results[mode] else "")
                  + f"  ({results[mode]['seconds']:.0f} s)")
        results["rss_ratio"] = results["lora"]["rss_mib"] / results["full"]["rss_mib"]
        line = f"LoRA / full peak RSS: {results['rss_ratio']:.2f}x"
        if "cuda_peak_mib" in results["full"]:
            results["cuda_ratio"] = results["lora"]["cuda_peak_mib"] / results["full"]["cuda_peak_mib"]
            line += f"; CUDA peak: {results['cuda_ratio']:.2f}x"
        print(line)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
