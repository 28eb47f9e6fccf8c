"""Direct preference optimization: learn from preference pairs without a reward model.

    L_DPO = -log sigma( beta * [ (log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x)) ] )
    (Rafailov et al. 2023); --loss-type ipo | hinge | robust select the variants in rlhfkit.math.losses.dpo_loss.

Run it:
    rlhfkit dpo --model runs/sft --data preferences.jsonl --out runs/dpo
    accelerate launch --num_processes 2 -m rlhfkit dpo ...

How it is fast and lean:
  - the reference log-probs are computed once, before training, with the starting weights (or
    --ref-model), and kept as two numbers per pair: no reference model in memory during updates
    (with --lora-r: the same model with its adapters switched off);
  - chosen and rejected responses go through the model together, in one backward pass, sorted by
    length and cut into --length-groups forward passes, each padded only to its own longest response
    (chosen and rejected often differ in length, so one pass padded to the longest wastes tokens;
    docs/dpo.md has the padding measured on the built-in task);
  - logits are computed only where a completion token is predicted (not over prompts or padding),
    and log-probs come from a logsumexp-gather there (no full log-softmax).
Metrics: loss, implicit-reward accuracy and margin, chosen/rejected implicit rewards, and the mean
policy-vs-reference log-ratio per response (a proxy of the KL the policy has moved).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from accelerate.utils import gather_object

from rlhfkit.data.records import train_and_held_out
from rlhfkit.data.tokenization import IGNORE, Example, collate, encode_preferences
from rlhfkit.errors import ConfigError
from rlhfkit.math.losses import dpo_loss
from rlhfkit.models.forward import (
    completion_logprobs,
    length_groups,
    shared_prompt_logprobs,
    supports_shared_prompt,
)
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

TINY_LR, PRETRAINED_LR = 1e-4, 5e-7
REF_BATCH_SCALE, REF_LOGITS_BYTES = 4, 2**29  # the reference pass's chunks: at most 4x the batch, 512 MiB of logits


@dataclass
class DPOConfig(SupervisedConfig):
    """Direct preference optimization on {"prompt", "chosen", "rejected"} pairs."""

    out: str = "runs/dpo"
    """Output folder: the final policy (HF checkpoint), checkpoints/, metrics.jsonl."""
    ref_model: str | None = None
    """Reference model for the log-ratios; default: the starting weights of --model."""
    beta: float = 0.1
    """Strength of the implicit KL constraint (higher stays closer to the reference)."""
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust"] = "sigmoid"
    """DPO (sigmoid), IPO, SLiC hinge, or noise-robust DPO."""
    label_smoothing: float = 0.0
    """Assumed share of flipped labels (sigmoid: conservative DPO; robust: robust DPO)."""
    sft_coef: float = 0.0
    """Weight of a per-token NLL term on the chosen response (RPO, Pang et al. 2024); 0 leaves it out."""
    builtin_size: int = 2000
    """Number of preference pairs generated when --data is builtin:assistant."""
    length_groups: int = 2
    """Forward passes per micro-batch: its chosen and rejected responses, sorted by length, are cut into
    this many groups, each padded only to its own longest response (less padding, smaller passes; 1: one
    pass padded to the longest response). The results differ only by float round-off."""
    shared_prompt: bool = True
    """Run each pair's prompt through the model once: one packed row of prompt, chosen and rejected, the
    two responses masked from each other (rlhfkit.models.forward.packed_logprobs), so the prompt's tokens
    are not computed twice. Off (or for models whose attention takes no custom mask, such as
    flash-attention, or pairs without a common prompt): chosen and rejected as two full sequences. The
    results differ only by float round-off."""

    def validate(self) -> None:
        super().validate()
        if self.beta <= 0:
            raise ConfigError(f"--beta must be positive, got {self.beta}")
        if self.length_groups < 1:
            raise ConfigError(f"--length-groups must be at least 1, got {self.length_groups}")


def sequence_logps(model, examples: list[Example], pad_id: int, device, groups: int = 1) -> torch.Tensor:
    """(N,) sum of log p(token) over each example's completion tokens.

    The examples are sorted by length and cut into `groups` forward passes of similar lengths, each
    right-padded to its own longest example; the results come back in the order of `examples`.
    """
    cuts = length_groups([len(e) for e in examples], groups)  # shortest first
    parts = [group_logps(model, [examples[i] for i in cut], pad_id, device) for cut in cuts]
    order = [i for cut in cuts for i in cut]
    return torch.cat(parts)[torch.argsort(torch.tensor(order, device=device))]  # back in the order of `examples`


def pair_logps(model, pairs: list[tuple[Example, Example]], pad_id: int, device, groups: int = 1,
               shared_prompt: bool = False) -> torch.Tensor:
    """(n, 2) summed completion log-probs of each pair's (chosen, rejected).

    With `shared_prompt` (and a model that can: `supports_shared_prompt`), each pair is one packed row,
    its prompt computed once for both responses; the rows are sorted by length and cut into `groups`
    passes. Otherwise, and for pairs whose two sequences do not start with the same prompt tokens,
    `sequence_logps` on the 2n full sequences.
    """
    n = len(pairs)
    split = [prompt_split(c, r) for c, r in pairs] if shared_prompt and supports_shared_prompt(model) else None
    if split is None or any(s is None for s in split):
        return sequence_logps(model, [p[0] for p in pairs] + [p[1] for p in pairs], pad_id, device, groups).view(2, n).T
    responses = [s[1] for s in split] + [s[2] for s in split]
    sums = shared_prompt_logprobs(model, [s[0] for s in split], responses, list(range(n)) * 2, pad_id, groups)
    return sums.view(2, n).T


def prompt_split(chosen: Example, rejected: Example) -> tuple[list[int], list[int], list[int]] | None:
    """(prompt, chosen response, rejected response) token ids, or None when the two do not share a
    non-empty prompt (the tokens before the first scored label)."""
    p = next((t for t, label in enumerate(chosen.labels) if label != IGNORE), len(chosen))
    if p == 0 or p >= len(rejected) or chosen.input_ids[:p] != rejected.input_ids[:p] \
            or rejected.labels[p - 1] != IGNORE or IGNORE in chosen.labels[p:] or IGNORE in rejected.labels[p:]:
        return None
    return chosen.input_ids[:p], chosen.input_ids[p:], rejected.input_ids[p:]


def group_logps(model, examples: list[Example], pad_id: int, device) -> torch.Tensor:
    """(n,) summed completion log-probs of one padded forward pass (rlhfkit.models.forward)."""
    batch = collate(examples, pad_id)
    return completion_logprobs(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                               batch["labels"]).row_sums()


@torch.no_grad()
def reference_logps(model, pairs: list[tuple[Example, Example]], pad_id: int, batch_size: int, acc,
                    groups: int = 1, shared_prompt: bool = False) -> torch.Tensor:
    """(P, 2) reference log-probs of (chosen, rejected), computed once; work split across processes.

    Without gradients there is room for more rows per pass: the pairs go shortest first (little padding)
    in chunks of up to REF_BATCH_SCALE x batch_size pairs, as long as a chunk's kept logits (scored
    positions x vocabulary, fp32) stay under REF_LOGITS_BYTES."""
    model.eval()
    mine = sorted(range(acc.process_index, len(pairs), acc.num_processes),
                  key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    vocab = int(getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
    longest = max((len(c) + len(r) for c, r in pairs), default=1)
    fits = REF_LOGITS_BYTES // max(1, 4 * vocab * longest)
    batch_size = max(batch_size, min(REF_BATCH_SCALE * batch_size, fits))
    values: list[tuple[int, float, float]] = []
    for s in range(0, len(mine), batch_size):
        ids = mine[s:s + batch_size]
        with acc.autocast():
            logps = pair_logps(model, [pairs[i] for i in ids], pad_id, acc.device, groups, shared_prompt).float().cpu()
        values += [(i, chosen, rejected) for i, (chosen, rejected) in zip(ids, logps.tolist())]
    out = torch.zeros(len(pairs), 2)
    for i, chosen, rejected in (gather_object(values) if acc.num_processes > 1 else values):
        out[i, 0], out[i, 1] = chosen, rejected
    model.train()
    return out


def train_dpo(config: DPOConfig, on_step=None) -> Path:
    """Run DPO; return the output folder (a HF causal-LM checkpoint)."""
    out = Path(config.out)
    acc = make_accelerator(config)
    seed_everything(config.seed)

    # 1) data, validated and tokenized before training
    train_records, eval_records = train_and_held_out(config.data, config.eval_data, "preferences",
                                                     builtin_size=config.builtin_size,
                                                     eval_fraction=config.eval_fraction, seed=config.seed)
    model, tokenizer = load_causal_lm(config.model, dtype="fp32", seed=config.seed, load_in_4bit=config.load_in_4bit)
    model, saved = adapt(config, model, "causal", acc)  # --gradient-checkpointing, --lora-r
    pairs = encode_preferences(train_records, tokenizer, config.max_length)
    held = encode_preferences(eval_records, tokenizer, config.max_length) if eval_records else []
    pad_id = tokenizer.pad_token_id

    # 2) reference log-probs, once (the reference model is freed before training starts)
    if config.ref_model:
        reference, _ = load_causal_lm(config.ref_model, dtype="fp32")
        reference = reference.to(acc.device)
    else:
        reference = model.to(acc.device)
    adapters_off = saved.disable_adapter() if saved is not model and not config.ref_model else nullcontext()
    with adapters_off:  # --lora-r: the reference is the starting weights, the same model without its adapters
        ref = reference_logps(reference, pairs, pad_id, config.batch_size, acc, config.length_groups,
                              config.shared_prompt)
        ref_held = (reference_logps(reference, held, pad_id, config.batch_size, acc, config.length_groups,
                                    config.shared_prompt) if held else None)
    del reference

    lr = default_lr(config, model, TINY_LR, PRETRAINED_LR)
    optimizer = adamw(model.parameters(), lr, config.weight_decay)
    model, optimizer = acc.prepare(model, optimizer)

    def pair_stats(model, chosen_rejected: list[tuple[Example, Example]], ref_logps: torch.Tensor):
        n = len(chosen_rejected)
        logps = pair_logps(model, chosen_rejected, pad_id, acc.device, config.length_groups,
                           config.shared_prompt).float().T.reshape(-1)  # (2n,): chosen..., rejected...
        ref_logps = ref_logps.to(acc.device)
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            logps[:n], logps[n:], ref_logps[:, 0], ref_logps[:, 1],
            beta=config.beta, loss_type=config.loss_type, label_smoothing=config.label_smoothing)
        if config.sft_coef > 0:  # mean NLL per chosen token, added to each pair's loss
            tokens = torch.tensor([p[0].completion_tokens for p in chosen_rejected], device=acc.device,
                                  dtype=logps.dtype)
            losses = losses - config.sft_coef * logps[:n] / tokens
        log_ratio = (logps.detach() - torch.cat([ref_logps[:, 0], ref_logps[:, 1]])).view(2, n).mean(0)
        stats = {"reward_accuracy": (chosen_rewards > rejected_rewards).float().sum(),
                 "reward_margin": (chosen_rewards - rejected_rewards).sum(),
                 "chosen_reward": chosen_rewards.sum(), "rejected_reward": rejected_rewards.sum(),
                 "log_ratio": log_ratio.sum()}
        return losses.sum(), stats

    def loss(model, ids: list[int]):
        return pair_stats(model, [pairs[i] for i in ids], ref[ids])

    @torch.no_grad()
    def evaluate(model) -> dict[str, float]:
        sums: dict[str, float] = {}
        for s in range(0, len(held), config.batch_size):
            total, stats = pair_stats(model, held[s:s + config.batch_size], ref_held[s:s + config.batch_size])
            for key, value in {"loss": total, **stats}.items():
                sums[key] = sums.get(key, 0.0) + value.item()
        return {k: v / len(held) for k, v in sums.items()}

    objective = Objective(lengths=[len(c) + len(r) for c, r in pairs], weight=len, loss=loss,
                          evaluate=evaluate if held else None, unit="pairs")

    # 3) the loop (rlhfkit.trainers.loop.fit)
    record = fit(config, acc, model, tokenizer, optimizer, objective, "dpo", lr, on_step, inner=lambda m: saved)
    if acc.is_main_process:
        summary = (f"dpo done: {record.get('step', 0)} steps, loss {record.get('loss', float('nan')):.3f}, "
                   f"reward accuracy {record.get('reward_accuracy', float('nan')):.2f}")
        if "eval_reward_accuracy" in record:
            summary += f", held-out reward accuracy {record['eval_reward_accuracy']:.2f}"
        print(f"{summary}; saved to {out}")
    return out
