"""How fast can one decode step be? A raw `transformers` forward of one new token per row with a KV cache,
at 1, 4, 16 and 64 rows, and the weight-read rate that would explain it.

Used for the floor of the 113M GRPO job in bench/README.md: when one row's step already takes the time
of reading every weight once, more rows cost little until the matmuls become the bound, and no sampler
loop can beat that. Default model: the 113M random Llama that `scale_vs_trl.py` caches.

    .venv/bin/python bench/decode_bound.py [--model DIR] [--steps 16]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main() -> None:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlhfkit" / "bench"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(cache / "llama-113m-random-seed0"))
    parser.add_argument("--steps", type=int, default=16, help="decode steps timed per row count")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    if not (Path(args.model) / "config.json").exists():
        raise SystemExit(f"{args.model}: no model there (run bench/scale_vs_trl.py once, or pass --model)")

    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    weights_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    print(f"{args.model}: {weights_gib * 1024:.0f} MiB of weights, {torch.get_num_threads()} threads")
    for rows in args.rows:
        ids = torch.randint(5, model.config.vocab_size, (rows, 24))
        with torch.no_grad():
            out = model(ids, use_cache=True)
            cache_, token = out.past_key_values, ids[:, -1:]
            start = time.perf_counter()
            for _ in range(args.steps):
                cache_ = model(token, past_key_values=cache_, use_cache=True).past_key_values
            step = (time.perf_counter() - start) / args.steps
        print(f"rows {rows:3d}: {step * 1000:6.1f} ms a decode step = {weights_gib / step:5.1f} GiB/s of weight reads")


if __name__ == "__main__":
    main()
