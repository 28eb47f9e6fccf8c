"""Online RL from a reward: PPO with RLOO / GRPO / REINFORCE / GAE advantages and a KL penalty.

Each step samples responses from the policy, scores them with a judge, and takes a few clipped
policy-gradient epochs on them (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022):

    r_t = -beta * KL_t  (+ score on the response's last real token)
    L   = ppo_policy_loss(logprobs, old_logprobs, A, mask)  (+ vf_coef * ppo_value_loss for gae)

Run it:
    rlhfkit ppo --model runs/sft --reward gold --out runs/ppo
    rlhfkit ppo --model runs/sft --reward runs/rm --advantage gae
    accelerate launch --num_processes 2 -m rlhfkit ppo ...   # each process samples its own prompts

Advantages (--advantage): rloo and grpo compare the `group_size` responses to one prompt;
reinforce subtracts the batch mean; gae learns a value head (one Linear on the last hidden state).
All the math is in rlhfkit.math.ops and rlhfkit.math.losses; this file only wires it together.

Leaves out on purpose: a separate critic model, reward whitening, generation with vLLM, LoRA
adapters as the reference (the reference is a second frozen copy of --model).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from rlhfkit.errors import ConfigError, RlhfkitError
from rlhfkit.math.losses import ppo_policy_loss, ppo_value_loss
from rlhfkit.math.ops import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    grpo_advantages,
    kl_estimate,
    masked_mean,
    rloo_advantages,
    token_logprobs,
    whiten,
)
from rlhfkit.trainers.loop import (
    Checkpointer,
    MetricsLog,
    TrainConfig,
    default_lr,
    lr_schedule,
    make_accelerator,
    progress_bar,
    save_final,
    seed_everything,
    write_config,
)

TINY_LR, PRETRAINED_LR = 2e-4, 1e-6  # tiny: measured on the quickstart (3e-5 barely moved it)
KL_HORIZON = 10_000


@dataclass
class PPOConfig(TrainConfig):
    """Online RL: sample from the policy, score with a judge, update with the PPO clipped loss."""

    out: str = "runs/ppo"
    """Output folder: the final policy (HF checkpoint), checkpoints/, metrics.jsonl, config.yaml."""
    reward: str = "gold"
    """Who scores responses: gold, a reward-model folder, module:function, or a weighted sum ("0.8*runs/rm + 0.2*gold")."""
    advantage: Literal["grpo", "rloo", "reinforce", "gae"] = "rloo"
    """Advantage estimator: group-relative (grpo), leave-one-out (rloo), batch-mean baseline, or GAE with a value head."""
    group_size: int = 4
    """Responses sampled per prompt (grpo and rloo; the other estimators sample one)."""
    prompts_per_step: int = 8
    """Prompts per step on each process."""
    max_new_tokens: int = 48
    """Longest response in tokens."""
    temperature: float = 1.0
    """Sampling temperature; the log-probs of the update use the same temperature."""
    kl_coef: float = 0.05
    """beta: weight of the KL(policy || reference) penalty."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"
    """Per-token KL estimator of the penalty and of the logged KL (Schulman's k1, k2, k3)."""
    kl_in_reward: bool = True
    """Put -beta * KL into the per-token reward; otherwise add beta * k3 KL to the loss (GRPO-style)."""
    adaptive_kl_target: float | None = None
    """Target sequence KL of an adaptive beta (Ziegler et al. 2019); unset keeps beta fixed."""
    ppo_epochs: int = 2
    """Passes of optimisation over each step's responses."""
    clip_range: float = 0.2
    """PPO clip epsilon of the probability ratio."""
    value_clip_range: float = 0.2
    """Clip of the value prediction around its rollout-time value (gae)."""
    vf_coef: float = 0.1
    """Weight of the value loss (gae)."""
    gamma: float = 1.0
    """Discount factor (gae)."""
    lam: float = 0.95
    """GAE lambda."""
    missing_eos_penalty: float | None = -1.0
    """Added to the score of a response that never emitted EOS (unset: no penalty)."""
    length_penalty: float = 0.0
    """Subtracted from the score per response token."""
    whiten_advantages: bool = True
    """Normalise the advantages to zero mean and unit variance over the batch's tokens."""
    ptx_data: str | None = None
    """Text to keep the policy on (InstructGPT's PPO-ptx): a JSONL file of demonstrations, or of preference
    pairs, whose chosen responses are used; every update adds --ptx-coef x their per-token NLL."""
    ptx_coef: float = 0.0
    """Weight of the --ptx-data NLL term; 0 leaves it out."""
    ptx_batch_size: int = 8
    """--ptx-data examples per update."""
    builtin_size: int = 512
    """Number of prompts generated when --data is builtin:assistant."""
    max_steps: int | None = 40
    """Steps (sample, score, update) to run."""
    batch_size: int = 16
    """Responses per PPO minibatch: each epoch takes ceil(responses per step / batch-size) optimizer steps."""
    log_every: int = 1
    """Write a metrics.jsonl line every this many steps."""

    def validate(self) -> None:
        super().validate()
        if self.max_steps is None:
            raise ConfigError("--max-steps is required: ppo has no epochs over a fixed data set")
        if self.advantage in ("grpo", "rloo") and self.group_size < 2:
            raise ConfigError(f"--group-size must be at least 2 for --advantage {self.advantage}, got {self.group_size}")
        for name in ("prompts_per_step", "max_new_tokens", "ppo_epochs", "builtin_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ConfigError(f"--temperature must be positive (greedy sampling has no policy gradient), "
                              f"got {self.temperature}")
        if self.kl_coef < 0:
            raise ConfigError(f"--kl-coef must be >= 0, got {self.kl_coef}")
        if self.clip_range <= 0 or self.value_clip_range <= 0:
            raise ConfigError("--clip-range and --value-clip-range must be positive")
        if self.ptx_coef < 0 or self.ptx_batch_size < 1:
            raise ConfigError(f"--ptx-coef must be >= 0 and --ptx-batch-size >= 1, got {self.ptx_coef} and "
                              f"{self.ptx_batch_size}")
        if self.ptx_coef > 0 and not self.ptx_data:
            raise ConfigError(f"--ptx-coef {self.ptx_coef} needs --ptx-data (demonstrations or preference pairs)")


def ptx_examples(path: str, tokenizer, max_length: int) -> list:
    """--ptx-data as token ids: demonstrations as they are, preference pairs by their chosen response."""
    from rlhfkit.data.records import load_records
    from rlhfkit.data.tokenization import encode_demonstrations
    from rlhfkit.trainers.dpo import encode_pairs

    first = ""
    if str(path).endswith(".jsonl") and Path(path).is_file():  # its first record says which kind it holds
        with open(path) as handle:
            first = next((line for line in handle if line.strip()), "")
    if '"chosen"' not in first:
        return encode_demonstrations(load_records(path, "demonstrations"), tokenizer, max_length)
    return [chosen for chosen, _ in encode_pairs(load_records(path, "preferences"), tokenizer, max_length)]


def ptx_indices(n: int, seed: str):
    """0..n-1 over and over, each pass in a fresh seeded order."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


def token_rewards(scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """(B, T) per-token rewards: -kl_coef * kl on every real token, plus the score on the last one.

    The score lands on each row's last real token (the EOS, or the last token of a truncated
    response), never on padding; padding gets reward 0 whatever `kl` holds there. By hand:
    mask [[1, 1, 1, 0]], score 2, kl [.1, .2, .3, 9], kl_coef .5 -> [-.05, -.1, 2 - .15, 0].

    Args:
        scores: (B,) sequence scores.
        mask: (B, T) 1 for real response tokens.
        kl: (B, T) per-token KL estimates.
        kl_coef: beta (0 to leave the KL out of the reward).

    Raises:
        RlhfkitError: a row with no real token (its score would have nowhere to go).
    """
    real = mask.bool()
    if not real.any(-1).all():
        raise RlhfkitError("a response has no tokens: its score cannot be placed on a token")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(real, positions, -1).argmax(-1)  # (B,) index of the last real token
    rewards = torch.where(real, -kl_coef * kl, torch.zeros_like(kl))
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards


# sequence-level advantage estimators: (B,) total rewards, group size -> (B,) advantages
SEQUENCE_ADVANTAGES = {
    "grpo": grpo_advantages,
    "rloo": rloo_advantages,
    "reinforce": lambda total, group_size: total - total.mean(),
}


def response_forward(model, batch: dict[str, torch.Tensor], temperature: float, value_head=None):
    """Teacher-forced log-probs (B, T), logits (B, T, V) and values (B, T) or None of the response tokens.

    Only the T positions that predict a response token go through the vocabulary projection
    (`logits_to_keep`, where the model takes it): the prompt positions' logits are never needed.
    """
    ids = torch.cat([batch["prompt_ids"], batch["tokens"]], 1)  # (B, P+T)
    attention = torch.cat([batch["prompt_mask"], batch["mask"].long()], 1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    t = batch["tokens"].shape[1]
    from rlhfkit.models.sampler import takes_logits_to_keep

    extra = {"logits_to_keep": t + 1} if takes_logits_to_keep(model) else {}
    out = model(input_ids=ids, attention_mask=attention, position_ids=positions,
                output_hidden_states=value_head is not None, **extra)
    logits = out.logits[:, -t - 1:-1].float() / temperature  # (B, T, V): position t predicts token t
    logprobs = token_logprobs(logits, batch["tokens"])
    values = value_head(out.hidden_states[-1][:, -t - 1:-1].float()).squeeze(-1) if value_head is not None else None
    return logprobs, logits, values


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut a minibatch to its own longest response and longest (left-padded) prompt: less padding to compute."""
    width = int(batch["mask"].sum(-1).max().item())
    start = int((batch["prompt_mask"].sum(0) == 0).sum().item())  # prompt columns that are padding in every row
    prompt_keys = ("prompt_ids", "prompt_mask")  # every other 2-D entry is (B, T) over response tokens
    return {k: v[:, start:] if k in prompt_keys else v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


@torch.no_grad()
def rollout_forward(model, batch: dict[str, torch.Tensor], temperature: float, size: int, value_head=None):
    """`response_forward` of a whole rollout without gradients, in length-sorted chunks of `size`
    rows, each trimmed to its own longest response and prompt: (B, T) log-probs and values or None."""
    logprobs = torch.zeros_like(batch["mask"], dtype=torch.float32)
    values = torch.zeros_like(batch["mask"], dtype=torch.float32) if value_head is not None else None
    order = torch.argsort(batch["mask"].sum(-1))
    for index in order.split(size):
        chunk = trim({k: v[index] for k, v in batch.items()})
        chunk_logprobs, _, chunk_values = response_forward(model, chunk, temperature, value_head)
        width = chunk_logprobs.shape[1]
        logprobs[index, :width] = chunk_logprobs.float() * chunk["mask"]
        if values is not None:
            values[index, :width] = chunk_values.float()
    return logprobs, values


def minibatches(lengths: torch.Tensor, size: int, by_length: bool) -> list[torch.Tensor]:
    """Index sets of one pass over a step's episodes, in random order. With `by_length`, episodes of
    similar response length share a minibatch (ties broken at random), so trimmed minibatches carry
    little padding; every episode is still used once per pass."""
    order = torch.randperm(len(lengths))
    if by_length:
        order = order[torch.argsort(lengths[order], stable=True)]
    chunks = list(order.split(size))
    return [chunks[i] for i in torch.randperm(len(chunks))]


def step_prompts(pool_size: int, per_step: int, step: int, seed: int) -> list[int]:
    """Indices of this step's prompts: a fresh seeded shuffle of the pool per pass, so resuming at
    `step` picks up exactly where the run stopped."""
    picked = []
    for k in range(step * per_step, (step + 1) * per_step):
        epoch, offset = divmod(k, pool_size)
        order = list(range(pool_size))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        picked.append(order[offset])
    return picked


def train_ppo(config: PPOConfig, on_step=None) -> Path:
    """Run PPO; return the output folder (a HF causal-LM checkpoint)."""

    from rlhfkit.data.records import load_records
    from rlhfkit.evaluation.evaluate import load_judge
    from rlhfkit.models.loading import load_causal_lm
    from rlhfkit.models.sampler import SamplingParams, sample
    from rlhfkit.data.tokenization import collate, render_prompt
    from rlhfkit.trainers.sft import token_nll_sum

    config.validate()
    out = Path(config.out)
    acc = make_accelerator(config)
    seed_everything(config.seed)

    # 0. prompts, judge, policy, frozen reference, value head, optimizer
    records = load_records(config.data, "prompts", split="train", builtin_size=config.builtin_size, seed=config.seed)
    prompts = [r["prompt"] for r in records.rows][acc.process_index::acc.num_processes]
    if not prompts:
        raise ConfigError(f"{len(records)} prompts cannot be shared among {acc.num_processes} processes")
    judge = load_judge(config.reward)
    gold = load_judge("gold") if config.data.startswith("builtin:assistant") and config.reward != "gold" else None
    model, tokenizer = load_causal_lm(config.model, dtype="fp32", seed=config.seed)
    reference, _ = load_causal_lm(config.model, dtype="fp32", seed=config.seed)
    reference.to(acc.device).eval().requires_grad_(False)
    value_head = torch.nn.Linear(model.config.hidden_size, 1) if config.advantage == "gae" else None
    group = config.group_size if config.advantage in ("grpo", "rloo") else 1
    kl_ctl = (AdaptiveKLController(config.kl_coef, config.adaptive_kl_target, KL_HORIZON)
              if config.adaptive_kl_target else FixedKLController(config.kl_coef))

    lr = default_lr(config, model, TINY_LR, PRETRAINED_LR)
    params = list(model.parameters()) + (list(value_head.parameters()) if value_head is not None else [])
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    episodes = config.prompts_per_step * group
    updates_per_step = config.ppo_epochs * -(-episodes // config.batch_size)
    scheduler = lr_schedule(optimizer, config.max_steps * updates_per_step, config.warmup_ratio, config.min_lr_ratio)
    if value_head is not None:
        model, value_head, optimizer = acc.prepare(model, value_head, optimizer)
    else:
        model, optimizer = acc.prepare(model, optimizer)
    sampling = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
    ptx = ptx_examples(config.ptx_data, tokenizer, config.max_length) if config.ptx_coef > 0 else []
    ptx_order = ptx_indices(len(ptx), f"ptx:{config.seed}:{acc.process_index}")

    # resume from the newest checkpoint (as common.fit does)
    checkpoints = Checkpointer(out, config.save_total_limit, acc)
    step = 0
    latest = checkpoints.latest() if config.resume else None
    if latest is not None:
        state = checkpoints.resume(latest, acc.unwrap_model(model), optimizer, scheduler)
        if value_head is not None:
            acc.unwrap_model(value_head).load_state_dict(state["value_head"])
        kl_ctl.value = state["kl_coef"]
        step = state["step"]
        if acc.is_main_process:
            print(f"resuming from {latest} (step {step} of {config.max_steps})")
    if acc.is_main_process:
        write_config(config, out)
    log = MetricsLog(out / "metrics.jsonl", acc.is_main_process, resume_step=step)
    bar = progress_bar(config.max_steps, step, config.progress and acc.is_main_process, "ppo")

    started, seen = time.perf_counter(), 0
    first: dict[str, Any] = {}
    record: dict[str, Any] = {}
    while step < config.max_steps:
        # 1. sample: each prompt `group` times in a row (the layout grpo/rloo expect)
        step_texts = [prompts[i] for i in step_prompts(len(prompts), config.prompts_per_step, step, config.seed)]
        step_texts = [p for p in step_texts for _ in range(group)]
        generator = torch.Generator(device=acc.device).manual_seed(
            config.seed + 1 + step * acc.num_processes + acc.process_index)
        policy = acc.unwrap_model(model).eval()
        with acc.autocast():  # the precision the update computes its ratios in
            rollout = sample(policy, tokenizer, [render_prompt(tokenizer, p) for p in step_texts], sampling,
                             generator, return_hidden=value_head is not None)
        mask = rollout.mask.float()  # (B, T)
        lengths = mask.sum(-1)  # (B,)

        # 2. score: the judge on the full response, plus the EOS and length penalties
        raw_scores = torch.tensor(judge(step_texts, rollout.completions), dtype=torch.float32, device=acc.device)
        scores = raw_scores - config.length_penalty * lengths
        if config.missing_eos_penalty is not None:
            scores = scores + config.missing_eos_penalty * (~rollout.finished).float()

        # 3. reference log-probs, teacher-forced at the sampling temperature
        batch = {"prompt_ids": rollout.prompt_ids, "prompt_mask": rollout.prompt_mask, "tokens": rollout.tokens,
                 "mask": mask}
        # the sampler's log-probs (and, for gae, the hidden states a value head reads) are the
        # rollout-time policy's: no second policy forward is needed
        old_logprobs, old_values = rollout.logprobs.float() * mask, None
        if value_head is not None:
            with torch.no_grad():
                old_values = acc.unwrap_model(value_head)(rollout.hidden).squeeze(-1) * mask
        with acc.autocast():
            ref_logprobs, _ = rollout_forward(reference, batch, config.temperature, config.batch_size)
        kl = kl_estimate(old_logprobs, ref_logprobs, config.kl_estimator)  # (B, T)
        sequence_kl = (kl * mask).sum(-1)  # (B,)
        beta = kl_ctl.value

        # 4. rewards with KL
        reward_beta = beta if config.kl_in_reward else 0.0
        rewards = token_rewards(scores, mask, kl, reward_beta)  # (B, T)

        # 5. advantages
        if config.advantage == "gae":
            advantages, returns = gae(rewards, old_values, mask, config.gamma, config.lam)
        else:
            total = scores - reward_beta * sequence_kl  # (B,) = sum_t r_t
            advantages = SEQUENCE_ADVANTAGES[config.advantage](total, group)[:, None] * mask
            returns = torch.zeros_like(advantages)
        if config.whiten_advantages:
            advantages = whiten(advantages, mask)
        batch.update(old_logprobs=old_logprobs, ref_logprobs=ref_logprobs, advantages=advantages, returns=returns)
        if old_values is not None:
            batch["old_values"] = old_values

        # 6. PPO epochs over shuffled minibatches. Each minibatch's loss is a mean over its own tokens;
        # weighting it by its share of the step's tokens gives every token the same weight however the
        # minibatches are cut (length-grouped ones hold very different token counts)
        tokens_per_minibatch = mask.sum() / -(-len(step_texts) // config.batch_size)
        model.train()
        lr_used = scheduler.get_last_lr()[0]  # the rate this step starts with
        sums: dict[str, float] = {}
        n_updates = 0
        for _ in range(config.ppo_epochs):
            for index in minibatches(lengths.cpu(), config.batch_size, config.group_by_length):
                mb = trim({k: v[index.to(acc.device)] for k, v in batch.items()})
                with acc.autocast():
                    logprobs, logits, values = response_forward(model, mb, config.temperature, value_head)
                    loss, stats = ppo_policy_loss(logprobs, mb["old_logprobs"], mb["advantages"], mb["mask"],
                                                  config.clip_range)
                    if values is not None:
                        value_loss, value_stats = ppo_value_loss(values, mb["old_values"], mb["returns"], mb["mask"],
                                                                 config.value_clip_range)
                        loss = loss + config.vf_coef * value_loss
                        stats.update(value_stats)
                    if not config.kl_in_reward and beta > 0:
                        kl_loss = masked_mean(kl_estimate(logprobs, mb["ref_logprobs"], "k3"), mb["mask"])
                        loss = loss + beta * kl_loss
                    with torch.no_grad():
                        stats["entropy"] = masked_mean(entropy_from_logits(logits), mb["mask"])
                if not torch.isfinite(loss):
                    raise RlhfkitError(f"the ppo loss became {loss.item()} at step {step + 1}; lower --lr (now {lr})")
                scaled = loss * (mb["mask"].sum() / tokens_per_minibatch)
                if ptx:  # PPO-ptx: the mean NLL of a few --ptx-data examples, cycled in a seeded order
                    chunk = collate([ptx[next(ptx_order)] for _ in range(config.ptx_batch_size)],
                                    tokenizer.pad_token_id)
                    with acc.autocast():
                        nll_sum, n_tokens = token_nll_sum(model, {k: v.to(acc.device) for k, v in chunk.items()})
                    nll = nll_sum / max(n_tokens, 1)
                    scaled = scaled + config.ptx_coef * nll
                    stats["ptx_nll"] = nll.detach()
                acc.backward(scaled)
                if config.max_grad_norm > 0:
                    acc.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                for key, value in {"loss": loss, **stats}.items():
                    sums[key] = sums.get(key, 0.0) + value.item()
                n_updates += 1
        kl_ctl.update(acc.reduce(sequence_kl.mean(), "mean").item(), len(step_texts) * acc.num_processes)
        step += 1
        seen += len(step_texts) * acc.num_processes

        # 7. log / checkpoint
        logged = {"score": raw_scores.mean(), "kl": sequence_kl.mean(), "response_length": lengths.mean(),
                  **{k: torch.tensor(v / n_updates, device=acc.device) for k, v in sums.items()}}
        if gold is not None:
            logged["gold"] = torch.tensor(gold(step_texts, rollout.completions), device=acc.device).float().mean()
        elif config.reward == "gold":
            logged["gold"] = raw_scores.mean()
        keys = [k for k in logged if k not in ("ratio_mean", "value_clip_fraction")]
        means = acc.reduce(torch.stack([logged[k].float() for k in keys]), "mean").tolist()
        record = {"step": step, **dict(zip(keys, means)), "kl_coef": beta,
                  "lr": lr_used, "episodes_per_s": seen / (time.perf_counter() - started)}
        first = first or record
        if step % config.log_every == 0 or step == config.max_steps:
            log.write(record)
        bar.update(1)
        bar.set_postfix(score=f"{record['score']:.3f}", kl=f"{record['kl']:.3f}")
        if step % config.save_every == 0 or step == config.max_steps:
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "kl_coef": kl_ctl.value}
            if value_head is not None:
                state["value_head"] = acc.unwrap_model(value_head).state_dict()
            checkpoints.save(step, model, tokenizer, state)
        if on_step is not None:
            on_step(step, record)
    bar.close()

    save_final(model, tokenizer, out, acc)
    if acc.is_main_process and record:
        print(f"ppo done: {step} steps; score {first['score']:.2f} -> {record['score']:.2f}, "
              f"KL {record['kl']:.2f} nats; saved to {out}")
    return out
