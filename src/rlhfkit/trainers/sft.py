"""Supervised fine-tuning (stage 1): next-token cross-entropy on the completion tokens only.

    L_SFT = - sum_t log p_theta(y_t | x, y_<t)      summed over completion tokens, averaged per token

Run it:
    rlhfkit sft --model tiny --data builtin:assistant --out runs/sft
    accelerate launch --num_processes 2 -m rlhfkit sft ...    # same result, data split across processes

The loop is written out (no `transformers.Trainer`): 1) load and check all data  2) model and
optimizer  3) resume from the newest checkpoint  4) for each global batch: split into
micro-batches per process and accumulation step, forward, backward, clip, step  5) log, evaluate,
checkpoint  6) save the final HF checkpoint into --out.

The loss is normalised by the number of completion tokens in the whole *global* batch (every
micro-batch of every process), so gradient accumulation and any number of processes give the same
update as one big batch in one process.

With --lora-r only LoRA adapters are trained (rlhfkit.models.lora) and --out holds the adapter in
peft's format; `rlhfkit merge` turns it into full weights.

Leaves out on purpose: sequence packing across examples (length grouping gives most of its gain
on short chat data without cross-example attention masks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlhfkit.data.records import train_and_held_out
from rlhfkit.data.tokenization import Example, collate, encode_demonstrations
from rlhfkit.models.forward import completion_logprobs
from rlhfkit.models.loading import load_causal_lm
from rlhfkit.trainers.loop import (
    Objective,
    SupervisedConfig,
    adamw,
    adapt,
    default_lr,
    fit,
    make_accelerator,
    seed_everything,
)

TINY_LR, PRETRAINED_LR = 2e-3, 2e-5


@dataclass
class SFTConfig(SupervisedConfig):
    """Supervised fine-tuning on demonstrations (prompt/completion or messages)."""

    out: str = "runs/sft"
    """Output folder: the final HF checkpoint, checkpoints/, metrics.jsonl, config.yaml."""
    epochs: float = 4.0
    """Passes over the training data (ignored when --max-steps is set); 4 suits the tiny model, which starts
    from random weights; 1-3 is usual for a pretrained one."""
    builtin_size: int = 3000
    """Number of demonstrations generated when --data is builtin:assistant."""


def token_nll_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token NLL over the completion tokens of a collated batch, and how many were summed."""
    forward = completion_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return -forward.logprobs.sum(), len(forward.logprobs)


@torch.no_grad()
def evaluate(model, examples: list[Example], batch_size: int, pad_id: int, accelerator) -> float:
    """Mean token NLL on held-out examples, the examples split across processes."""
    model.eval()
    total = torch.zeros(2, device=accelerator.device)
    mine = examples[accelerator.process_index::accelerator.num_processes]
    for s in range(0, len(mine), batch_size):
        batch = {k: v.to(accelerator.device) for k, v in collate(mine[s:s + batch_size], pad_id).items()}
        with accelerator.autocast():
            nll, n = token_nll_sum(model, batch)
        total += torch.stack([nll.float(), torch.tensor(float(n), device=accelerator.device)])
    total = accelerator.reduce(total, "sum")
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def train_sft(config: SFTConfig, on_step: Callable[[int, dict[str, Any]], None] | None = None) -> Path:
    """Run SFT and return the output folder, which then holds a plain HF checkpoint."""
    out = Path(config.out)
    acc = make_accelerator(config)
    seed_everything(config.seed)

    # 1) data: every record validated and tokenized before training starts
    train_records, eval_records = train_and_held_out(config.data, config.eval_data, "demonstrations",
                                                     builtin_size=config.builtin_size,
                                                     eval_fraction=config.eval_fraction, seed=config.seed)
    model, tokenizer = load_causal_lm(config.model, dtype="fp32", seed=config.seed, load_in_4bit=config.load_in_4bit)
    model, saved = adapt(config, model, "causal", acc)  # --gradient-checkpointing, --lora-r
    train = encode_demonstrations(train_records, tokenizer, config.max_length)
    held_out = encode_demonstrations(eval_records, tokenizer, config.max_length) if eval_records else []
    truncated = sum(e.truncated for e in train)
    if acc.is_main_process and truncated:
        print(f"note: {truncated} of {len(train)} completions were truncated to --max-length {config.max_length}")

    lr = default_lr(config, model, TINY_LR, PRETRAINED_LR)
    optimizer = adamw(model.parameters(), lr, config.weight_decay, betas=(0.9, 0.95))
    model, optimizer = acc.prepare(model, optimizer)
    pad_id = tokenizer.pad_token_id

    # 2) the objective: summed token NLL, normalised by the global batch's completion tokens
    def loss(model, ids: list[int]):
        batch = {k: v.to(acc.device) for k, v in collate([train[i] for i in ids], pad_id).items()}
        nll, _ = token_nll_sum(model, batch)
        return nll, {}

    objective = Objective(
        lengths=[len(e) for e in train],
        weight=lambda ids: sum(train[i].completion_tokens for i in ids),
        loss=loss,
        unit="tokens",
        evaluate=(lambda model: {"loss": evaluate(model, held_out, config.batch_size, pad_id, acc)}) if held_out else None,
    )

    # 3) the loop (rlhfkit.trainers.loop.fit): resume, accumulate, clip, step, log, checkpoint, save
    record = fit(config, acc, model, tokenizer, optimizer, objective, "sft", lr, on_step, inner=lambda m: saved)
    if acc.is_main_process:
        summary = f"sft done: {record.get('step', 0)} steps, final loss {record.get('loss', float('nan')):.3f}"
        if "eval_loss" in record:
            summary += f", eval loss {record['eval_loss']:.3f}"
        print(f"{summary}; model saved to {out}")
    return out
