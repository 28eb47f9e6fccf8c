"""`rlhfkit sample`: responses from a checkpoint for a prompts file, one JSONL line per response.

    rlhfkit sample --model runs/sft --data builtin:assistant --num-samples 4 --out runs/sft/samples.jsonl

Each output line is `{"prompt", "completion", "model", "index"}` (index: which of the K samples).
On the built-in task the gold rubric's mean score per criterion is printed too, so a look at a
fresh checkpoint tells what it has learned.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhfkit.data.records import load_records, write_jsonl
from rlhfkit.data.tokenization import located_error, render_prompt
from rlhfkit.errors import ConfigError
from rlhfkit.models.loading import default_device, load_causal_lm, resolve_dtype
from rlhfkit.models.sampler import SamplingParams, sample
from rlhfkit.tasks import assistant


@dataclass
class SampleConfig:
    """Sample responses from a checkpoint."""

    model: str = "runs/sft"
    """Checkpoint folder or hub id to sample from."""
    data: str = "builtin:assistant"
    """Prompts: a .jsonl file of {"prompt"} records, or builtin:assistant (its held-out prompts)."""
    out: str = "samples.jsonl"
    """Where to write the responses (JSONL)."""
    split: str = "eval"
    """For builtin data: which prompts, train or eval."""
    num_prompts: int = 32
    """How many prompts to take from built-in data (all the lines of a file)."""
    num_samples: int = 1
    """Responses per prompt."""
    max_new_tokens: int = 96
    """Longest response in tokens."""
    temperature: float = 1.0
    """Sampling temperature (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches this."""
    top_k: int = 0
    """Keep only the k most likely tokens (0 = off)."""
    batch_size: int = 128
    """Prompts generated together (a repeated prompt counts once per sample); larger batches decode faster
    per response, at the cost of memory (docs/sft.md)."""
    max_length: int = 256
    """Longest prompt in tokens."""
    seed: int = 0
    """Sampling seed."""
    dtype: str = "auto"
    """fp32 on CPU; bf16 on GPUs that have it."""

    def validate(self) -> None:
        if self.num_samples < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("--num-samples, --max-new-tokens and --batch-size must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError("--temperature must be >= 0 and --top-p in (0, 1]")


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], config: SampleConfig) -> list[str]:
    """Completions from the KV-cache sampler (rlhfkit.models.sampler), `batch_size` prompts at a time."""
    params = SamplingParams(config.max_new_tokens, config.temperature, config.top_p, config.top_k)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    out: list[str] = []
    for s in range(0, len(prompts), config.batch_size):
        out.extend(sample(model, tokenizer, prompts[s:s + config.batch_size], params, generator).completions)
    return out


def run_sample(config: SampleConfig) -> Path:
    records = load_records(config.data, "prompts", split=config.split, builtin_size=config.num_prompts, seed=config.seed)
    device = default_device()
    model, tokenizer = load_causal_lm(config.model, dtype=config.dtype)
    model.to(device=device, dtype=resolve_dtype(config.dtype, device)).eval()
    prompts = [render_prompt(tokenizer, r["prompt"]) for r in records]
    for i, text in enumerate(prompts):
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= config.max_length:
            raise located_error(records.location(i), f"the prompt is longer than --max-length {config.max_length} tokens")
    rows = []
    for index in range(config.num_samples):
        config_k = dataclasses.replace(config, seed=config.seed + index)
        for record, completion in zip(records, generate(model, tokenizer, prompts, config_k)):
            rows.append({"prompt": record["prompt"], "completion": completion, "model": config.model, "index": index})
    write_jsonl(config.out, rows)
    print(f"wrote {len(rows)} responses to {config.out}")
    if config.data.startswith("builtin:assistant"):
        scores = [assistant.score(r["prompt"], r["completion"]) for r in rows]
        means = {c: statistics.mean(getattr(s, c) for s in scores) for c in (*assistant.CRITERIA, "total")}
        print("gold rubric (mean over responses): " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()))
    return Path(config.out)
