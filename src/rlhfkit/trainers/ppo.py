"""Online RL from a reward: PPO with RLOO / GRPO / REINFORCE / GAE advantages and a KL penalty.

Each step samples responses from the policy, scores them with a judge, and takes a few clipped
policy-gradient epochs on them (Schulman et al. 2017; Ziegler et al. 2019; Ouyang et al. 2022):

    r_t = -beta * KL_t  (+ score on the response's last real token)      rlhfkit.math.ops.kl_shaped_rewards
    L   = ppo_policy_loss (+ vf_coef * ppo_value_loss for gae)            rlhfkit.math.losses.online_rl_loss

Run it:
    rlhfkit ppo --model runs/sft --reward gold --out runs/ppo
    rlhfkit ppo --model runs/sft --reward runs/rm --advantage gae
    accelerate launch --num_processes 2 -m rlhfkit ppo ...   # each process samples its own prompts

Advantages (--advantage): rloo and grpo compare the `group_size` responses to one prompt;
reinforce subtracts the batch mean; gae learns a value head (one Linear on the last hidden state).
All the math is in rlhfkit.math; this file wires it together: `train_ppo` is the loop, one numbered
step per line of the recipe, and each step is a function below it.

The reference is a second frozen copy of --model; with --lora-r it is the policy itself with its
adapters switched off (peft's `disable_adapter`), so a run holds one copy of the weights.

Leaves out on purpose: a separate critic model, reward whitening. Generation can go through vLLM
(`--sampler vllm`, rlhfkit.models.vllm_sampler) where it is installed.
"""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from rlhfkit.data.records import detect_kind, load_records
from rlhfkit.data.tokenization import collate, encode_demonstrations, encode_preferences, render_prompt
from rlhfkit.errors import ConfigError, RlhfkitError
from rlhfkit.judges.reward_spec import Scorer, load_reward
from rlhfkit.math.losses import online_rl_loss
from rlhfkit.math.ops import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    grpo_advantages,
    kl_estimate,
    kl_shaped_rewards,
    masked_mean,
    rloo_advantages,
    whiten,
)
from rlhfkit.models.forward import (
    completion_logprobs,
    packed_response_logprobs,
    response_inputs,
    supports_shared_prompt,
)
from rlhfkit.models.loading import load_causal_lm
from rlhfkit.models.sampler import SampleOutput, SamplingParams, sample
from rlhfkit.models.vllm_sampler import VLLMSampler
from rlhfkit.trainers.loop import (
    TrainConfig,
    TrainingRun,
    adamw,
    adapt,
    default_lr,
    lr_schedule,
    make_accelerator,
    seed_everything,
)
from rlhfkit.trainers.sft import token_nll_sum

TINY_LR, PRETRAINED_LR = 2e-4, 1e-6
KL_HORIZON = 10_000


@dataclass
class PPOConfig(TrainConfig):
    """Online RL: sample from the policy, score with a judge, update with the PPO clipped loss."""

    FLAG_HINTS: ClassVar[dict[str, str]] = {"--batch-size": "--minibatch-size", "--epochs": "--ppo-epochs"}

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
    minibatch_size: int = 16
    """Responses per PPO minibatch: each --ppo-epochs pass takes ceil(responses per step / minibatch-size)
    optimizer steps; also the chunk size of the reference model's no-grad forward."""
    max_length: int = 256
    """Longest --ptx-data example in tokens (longer completions are truncated, longer prompts are an error)."""
    log_every: int = 1
    """Write a metrics.jsonl line every this many steps."""

    shared_prompt: bool = True
    """grpo / rloo: each group's responses share one forward of their prompt (one packed row per prompt, the
    responses masked from each other), in the reference pass and the update, whose minibatches then hold
    whole groups; log-probs as with separate sequences, up to float round-off. gae and reinforce (one
    response per prompt) never pack."""

    sampler: Literal["builtin", "vllm"] = "builtin"
    """Who generates: rlhfkit's KV-cache sampler, or vLLM in this process (needs vLLM installed and a model
    folder; starts slowly; the trainer recomputes the rollout log-probs and logs vllm_logprob_gap)."""

    def validate(self) -> None:
        super().validate()
        if self.max_steps is None:
            raise ConfigError("--max-steps is required: ppo has no epochs over a fixed data set")
        if self.sampler == "vllm" and self.lora_r:
            raise ConfigError("--sampler vllm does not take a LoRA policy (--lora-r): use the built-in sampler")
        if self.sampler == "vllm" and self.model == "tiny":
            raise ConfigError("--sampler vllm starts vLLM from a checkpoint folder or hub id; --model tiny is built "
                              "in memory: save it first (rlhfkit sft --out DIR) and pass --model DIR")
        if self.advantage in ("grpo", "rloo") and self.group_size < 2:
            raise ConfigError(f"--group-size must be at least 2 for --advantage {self.advantage}, got {self.group_size}")
        for name in ("prompts_per_step", "max_new_tokens", "ppo_epochs", "builtin_size", "minibatch_size"):
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
    kind = detect_kind(path, ("demonstrations", "preferences"))
    records = load_records(path, kind)
    if kind == "demonstrations":
        return encode_demonstrations(records, tokenizer, max_length)
    return [chosen for chosen, _ in encode_preferences(records, tokenizer, max_length)]


def ptx_indices(n: int, seed: str):
    """0..n-1 over and over, each pass in a fresh seeded order."""
    rng = random.Random(seed)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        yield from order


# sequence-level advantage estimators: (B,) total rewards, group size -> (B,) advantages
SEQUENCE_ADVANTAGES = {
    "grpo": grpo_advantages,
    "rloo": rloo_advantages,
    "reinforce": lambda total, group_size: total - total.mean(),
}


def response_forward(model, batch: dict[str, torch.Tensor], temperature: float, value_head=None,
                     packed: bool = False):
    """Teacher-forced log-probs (B, T), logits (B, T, V) and values (B, T) or None of the response tokens
    (rlhfkit.models.forward.completion_logprobs: only the T positions that predict a response token
    are projected onto the vocabulary). `packed` (no value head): a group's prompt is computed once
    (packed_response_logprobs), and the log-probs and logits are 0 after each response's end."""
    if packed:
        logprobs, logits = packed_response_logprobs(model, batch["prompt_ids"], batch["prompt_mask"], batch["tokens"],
                                                    batch["mask"], temperature, return_logits=True)
        return logprobs, logits, None
    inputs = response_inputs(batch["prompt_ids"], batch["prompt_mask"], batch["tokens"], batch["mask"])
    fwd = completion_logprobs(model, **inputs, temperature=temperature, return_logits=True,
                              return_hidden=value_head is not None)
    b, t = batch["tokens"].shape
    values = value_head(fwd.hidden.float()).squeeze(-1).view(b, t) if value_head is not None else None
    return fwd.logprobs.view(b, t), fwd.logits.view(b, t, -1), values


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut a minibatch to its own longest response and longest (left-padded) prompt: less padding to compute."""
    width = int(batch["mask"].sum(-1).max().item())
    start = int((batch["prompt_mask"].sum(0) == 0).sum().item())  # prompt columns that are padding in every row
    prompt_keys = ("prompt_ids", "prompt_mask")  # every other 2-D entry is (B, T) over response tokens
    return {k: v[:, start:] if k in prompt_keys else v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


@torch.no_grad()
def rollout_forward(model, batch: dict[str, torch.Tensor], temperature: float, size: int, value_head=None,
                    packed: bool = False):
    """`response_forward` of a whole rollout without gradients, in length-sorted chunks of `size`
    rows, each trimmed to its own longest response and prompt: (B, T) log-probs and values or None.
    `packed` (no value head): one packed row per prompt, in length-sorted passes of about `size` responses."""
    if packed:
        passes = -(-len(batch["mask"]) // size)
        logprobs, _ = packed_response_logprobs(model, batch["prompt_ids"], batch["prompt_mask"], batch["tokens"],
                                               batch["mask"], temperature, groups=passes)
        return logprobs.float() * batch["mask"], None
    logprobs = torch.zeros_like(batch["mask"], dtype=torch.float32)
    values = torch.zeros_like(batch["mask"], dtype=torch.float32) if value_head is not None else None
    order = torch.argsort(batch["mask"].sum(-1))
    for index in order.split(size):
        chunk = trim({k: v[index] for k, v in batch.items()})
        inputs = response_inputs(chunk["prompt_ids"], chunk["prompt_mask"], chunk["tokens"], chunk["mask"])
        fwd = completion_logprobs(model, **inputs, temperature=temperature, return_hidden=value_head is not None)
        b, width = chunk["tokens"].shape
        logprobs[index, :width] = fwd.logprobs.view(b, width).float() * chunk["mask"]
        if values is not None:
            values[index, :width] = value_head(fwd.hidden.float()).squeeze(-1).view(b, width).float()
    return logprobs, values


def minibatches(lengths: torch.Tensor, size: int, by_length: bool, group: int = 1) -> list[torch.Tensor]:
    """Index sets of one pass over a step's episodes, in random order. With `by_length`, episodes of
    similar response length share a minibatch (ties broken at random), so trimmed minibatches carry
    little padding; every episode is still used once per pass. With `group` > 1 (a divisor of `size`)
    the units are whole groups of `group` consecutive episodes (one prompt's responses, lengths summed):
    a minibatch then holds each of its prompts' responses together."""
    units = lengths.view(-1, group).sum(-1) if group > 1 else lengths
    order = torch.randperm(len(units))
    if by_length:
        order = order[torch.argsort(units[order], stable=True)]
    chunks = list(order.split(size // group))
    if group > 1:
        chunks = [(c[:, None] * group + torch.arange(group)).flatten() for c in chunks]
    return [chunks[i] for i in torch.randperm(len(chunks))]


def packs(rl: OnlineRL) -> bool:
    """Whether this run scores each group's responses on one shared prompt pass (--shared-prompt)."""
    return rl.config.shared_prompt and rl.group > 1 and rl.value_head is None and supports_shared_prompt(rl.model)


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


@dataclass
class OnlineRL:
    """Everything a PPO run holds between steps (made once by `setup`)."""

    config: PPOConfig
    acc: Any
    prompts: list[Any]
    judge: Scorer
    gold: Scorer | None
    model: Any
    reference: Any
    value_head: Any
    tokenizer: Any
    group: int
    kl_ctl: Any
    lr: float
    run: TrainingRun
    sampling: SamplingParams
    ptx: list = field(default_factory=list)
    ptx_order: Any = None
    saved: Any = None
    """What checkpoints save: the policy, or with --lora-r the peft model around it (whose adapters are switched
    off for the reference's log-probs, `reference` being None)."""
    vllm: Any = None
    """--sampler vllm: the VLLMSampler generating for this run (rlhfkit.models.vllm_sampler)."""
    vllm_gap: float = 0.0
    """--sampler vllm: mean |vLLM's log-prob - the trainer's| over this step's response tokens."""


def setup(config: PPOConfig, acc) -> OnlineRL:
    """0. prompts, judge, policy, frozen reference, value head, optimizer, schedule, loop state."""
    if acc.distributed_type == "FSDP":  # each process's sampler stops at its own time; FSDP's forwards are collective
        raise ConfigError("rlhfkit ppo does not run under FSDP; use DDP (accelerate launch --multi_gpu), with --lora-r "
                          "for one copy of the weights")
    records = load_records(config.data, "prompts", split="train", builtin_size=config.builtin_size, seed=config.seed)
    prompts = [r["prompt"] for r in records.rows][acc.process_index::acc.num_processes]
    if not prompts:
        raise ConfigError(f"{len(records)} prompts cannot be shared among {acc.num_processes} processes")
    judge = load_reward(config.reward)
    gold = load_reward("gold") if config.data.startswith("builtin:assistant") and config.reward != "gold" else None
    model, tokenizer = load_causal_lm(config.model, dtype="fp32", seed=config.seed, load_in_4bit=config.load_in_4bit)
    model, saved = adapt(config, model, "causal", acc)  # --gradient-checkpointing, --lora-r
    reference = None  # --lora-r: the policy with its adapters off
    if saved is model:
        reference, _ = load_causal_lm(config.model, dtype="fp32", seed=config.seed)
        reference.to(acc.device).eval().requires_grad_(False)
    value_head = torch.nn.Linear(model.config.hidden_size, 1) if config.advantage == "gae" else None
    group = config.group_size if config.advantage in ("grpo", "rloo") else 1
    kl_ctl = (AdaptiveKLController(config.kl_coef, config.adaptive_kl_target, KL_HORIZON)
              if config.adaptive_kl_target else FixedKLController(config.kl_coef))

    lr = default_lr(config, model, TINY_LR, PRETRAINED_LR)
    params = list(model.parameters()) + (list(value_head.parameters()) if value_head is not None else [])
    optimizer = adamw(params, lr, config.weight_decay)
    episodes = config.prompts_per_step * group
    updates_per_step = config.ppo_epochs * -(-episodes // config.minibatch_size)
    scheduler = lr_schedule(optimizer, config.max_steps * updates_per_step, config.warmup_ratio, config.min_lr_ratio)
    if value_head is not None:
        model, value_head, optimizer = acc.prepare(model, value_head, optimizer)
    else:
        model, optimizer = acc.prepare(model, optimizer)
    sampling = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
    ptx = ptx_examples(config.ptx_data, tokenizer, config.max_length) if config.ptx_coef > 0 else []
    run = TrainingRun(config, acc, "ppo", model, tokenizer, optimizer, scheduler, config.max_steps, params=params,
                      inner=lambda m: saved)
    vllm = None
    if config.sampler == "vllm":
        precision = {"bf16": "bfloat16", "fp16": "float16"}.get(str(acc.mixed_precision), "float32")  # the trainer's
        vllm = VLLMSampler(config.model, tokenizer, config.max_length + config.max_new_tokens, config.seed, precision)
    return OnlineRL(config, acc, prompts, judge, gold, model, reference, value_head, tokenizer, group, kl_ctl, lr,
                    run, sampling, ptx, ptx_indices(len(ptx), f"ptx:{config.seed}:{acc.process_index}"), saved, vllm)


def rollout(rl: OnlineRL, step: int) -> tuple[list[Any], SampleOutput]:
    """1. sample: this step's prompts, each `group` times in a row (the layout grpo/rloo expect)."""
    config, acc = rl.config, rl.acc
    texts = [rl.prompts[i] for i in step_prompts(len(rl.prompts), config.prompts_per_step, step, config.seed)]
    texts = [p for p in texts for _ in range(rl.group)]
    generator = torch.Generator(device=acc.device).manual_seed(config.seed + 1 + step * acc.num_processes
                                                               + acc.process_index)
    policy = acc.unwrap_model(rl.model).eval()
    if rl.vllm is not None:  # --sampler vllm: the current weights in, then generate there
        rl.vllm.push_weights(policy)
        seed = config.seed + 1 + step * acc.num_processes + acc.process_index
        return texts, rl.vllm.sample([render_prompt(rl.tokenizer, p) for p in texts], rl.sampling, seed, acc.device)
    with acc.autocast():  # the precision the update computes its ratios in
        out = sample(policy, rl.tokenizer, [render_prompt(rl.tokenizer, p) for p in texts], rl.sampling, generator,
                     return_hidden=rl.value_head is not None)
    return texts, out


def score(config: PPOConfig, judge: Scorer, texts: list[Any], out: SampleOutput, device) -> tuple[torch.Tensor, torch.Tensor]:
    """2. score: the judge on the full response (raw), plus the EOS and length penalties (shaped)."""
    raw = torch.tensor(judge(texts, out.completions), dtype=torch.float32, device=device)
    scores = raw - config.length_penalty * out.mask.float().sum(-1)
    if config.missing_eos_penalty is not None:
        scores = scores + config.missing_eos_penalty * (~out.finished).float()
    return raw, scores


def experience(rl: OnlineRL, out: SampleOutput, scores: torch.Tensor, beta: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """3. reference log-probs  4. rewards with KL  5. advantages: one batch of (B, T) tensors for the
    update, and each response's sequence KL (B,)."""
    config, acc = rl.config, rl.acc
    mask = out.mask.float()  # (B, T)
    batch = {"prompt_ids": out.prompt_ids, "prompt_mask": out.prompt_mask, "tokens": out.tokens, "mask": mask}
    # the sampler's log-probs (and, for gae, the hidden states a value head reads) are the
    # rollout-time policy's: no second policy forward is needed
    old_logprobs, old_values = out.logprobs.float() * mask, None
    if rl.vllm is not None:  # vLLM's log-probs are checked, not trusted: the trainer's own forward gives them
        with acc.autocast():
            policy = acc.unwrap_model(rl.model)
            head = acc.unwrap_model(rl.value_head) if rl.value_head is not None else None
            mine, old_values = rollout_forward(policy, batch, config.temperature, config.minibatch_size, head)
        rl.vllm_gap = float(((mine - old_logprobs).abs() * mask).sum() / mask.sum().clamp(min=1))
        old_logprobs = mine
        old_values = old_values * mask if old_values is not None else None
    elif rl.value_head is not None:
        with torch.no_grad():
            old_values = acc.unwrap_model(rl.value_head)(out.hidden).squeeze(-1) * mask
    with acc.autocast(), rl.saved.disable_adapter() if rl.reference is None else nullcontext():
        reference = rl.reference if rl.reference is not None else acc.unwrap_model(rl.model)
        ref_logprobs, _ = rollout_forward(reference, batch, config.temperature, config.minibatch_size, packed=packs(rl))
    kl = kl_estimate(old_logprobs, ref_logprobs, config.kl_estimator)  # (B, T)
    sequence_kl = (kl * mask).sum(-1)  # (B,)

    reward_beta = beta if config.kl_in_reward else 0.0
    rewards, totals = kl_shaped_rewards(scores, mask, kl, reward_beta)  # (B, T), (B,)

    if config.advantage == "gae":
        advantages, returns = gae(rewards, old_values, mask, config.gamma, config.lam)
    else:
        advantages = SEQUENCE_ADVANTAGES[config.advantage](totals, rl.group)[:, None] * mask
        returns = torch.zeros_like(advantages)
    if config.whiten_advantages:
        advantages = whiten(advantages, mask)
    batch.update(old_logprobs=old_logprobs, ref_logprobs=ref_logprobs, advantages=advantages, returns=returns)
    if old_values is not None:
        batch["old_values"] = old_values
    return batch, sequence_kl


def ptx_nll(rl: OnlineRL) -> torch.Tensor:
    """PPO-ptx: the mean NLL of a few --ptx-data examples, cycled in a seeded order."""
    chunk = collate([rl.ptx[next(rl.ptx_order)] for _ in range(rl.config.ptx_batch_size)], rl.tokenizer.pad_token_id)
    with rl.acc.autocast():
        nll_sum, n_tokens = token_nll_sum(rl.model, {k: v.to(rl.acc.device) for k, v in chunk.items()})
    return nll_sum / max(n_tokens, 1)


def update(rl: OnlineRL, batch: dict[str, torch.Tensor], beta: float) -> tuple[dict[str, float], float]:
    """6. --ppo-epochs passes over shuffled minibatches; returns the mean of each statistic over the
    updates, and the learning rate the step started with.

    Each minibatch's loss is a mean over its own tokens; weighting it by its share of the step's tokens
    gives every token the same weight however the minibatches are cut (length-grouped ones hold very
    different token counts)."""
    config, acc = rl.config, rl.acc
    mask = batch["mask"]
    lengths = mask.sum(-1)
    tokens_per_minibatch = mask.sum() / -(-len(mask) // config.minibatch_size)
    rl.model.train()
    lr_used = rl.run.scheduler.get_last_lr()[0]  # the rate this step starts with
    sums: dict[str, float] = {}
    n_updates = 0
    packed = packs(rl)
    group = rl.group if packed and config.minibatch_size % rl.group == 0 else 1
    for _ in range(config.ppo_epochs):
        for index in minibatches(lengths.cpu(), config.minibatch_size, config.group_by_length, group):
            mb = trim({k: v[index.to(acc.device)] for k, v in batch.items()})
            with acc.autocast():
                logprobs, logits, values = response_forward(rl.model, mb, config.temperature, rl.value_head, packed)
                loss, stats = online_rl_loss(
                    logprobs, mb["old_logprobs"], mb["advantages"], mb["mask"], config.clip_range,
                    values=values, old_values=mb.get("old_values") if values is not None else None,
                    returns=mb["returns"] if values is not None else None, value_clip_range=config.value_clip_range,
                    vf_coef=config.vf_coef, ref_logprobs=mb["ref_logprobs"],
                    kl_coef=0.0 if config.kl_in_reward else beta)
                with torch.no_grad():
                    stats["entropy"] = masked_mean(entropy_from_logits(logits), mb["mask"])
            if not torch.isfinite(loss):
                raise RlhfkitError(f"the ppo loss became {loss.item()} at step {rl.run.step + 1}; lower --lr "
                                   f"(now {rl.lr})")
            scaled = loss * (mb["mask"].sum() / tokens_per_minibatch)
            if rl.ptx:
                nll = ptx_nll(rl)
                scaled = scaled + config.ptx_coef * nll
                stats["ptx_nll"] = nll.detach()
            acc.backward(scaled)
            rl.run.optimizer_step()
            for key, value in {"loss": loss, **stats}.items():
                sums[key] = sums.get(key, 0.0) + value.item()
            n_updates += 1
    return {k: v / n_updates for k, v in sums.items()}, lr_used


def step_record(rl: OnlineRL, texts: list[Any], out: SampleOutput, raw: torch.Tensor, sequence_kl: torch.Tensor,
                means: dict[str, float], beta: float, lr_used: float, seen: int) -> dict[str, Any]:
    """7. the step's metrics.jsonl line: means over every process's episodes."""
    acc, device = rl.acc, rl.acc.device
    logged = {"score": raw.mean(), "kl": sequence_kl.mean(), "response_length": out.mask.float().sum(-1).mean(),
              **{k: torch.tensor(v, device=device) for k, v in means.items()}}
    if rl.vllm is not None:
        logged["vllm_logprob_gap"] = torch.tensor(rl.vllm_gap, device=device)
    if rl.gold is not None:
        logged["gold"] = torch.tensor(rl.gold(texts, out.completions), device=device).float().mean()
    elif rl.config.reward == "gold":
        logged["gold"] = raw.mean()
    keys = [k for k in logged if k not in ("ratio_mean", "value_clip_fraction")]
    values = acc.reduce(torch.stack([logged[k].float() for k in keys]), "mean").tolist()
    return {"step": rl.run.step + 1, **dict(zip(keys, values)), "kl_coef": beta, "lr": lr_used,
            "episodes_per_s": rl.run.per_second(seen)}


def train_ppo(config: PPOConfig, on_step=None) -> Path:
    """Run PPO; return the output folder (a HF causal-LM checkpoint)."""
    config.validate()
    acc = make_accelerator(config)
    seed_everything(config.seed)
    rl = setup(config, acc)  # 0. prompts, judge, policy, reference, value head, optimizer
    state = rl.run.resume()
    if state:
        if rl.value_head is not None:
            acc.unwrap_model(rl.value_head).load_state_dict(state["value_head"])
        rl.kl_ctl.value = state["kl_coef"]

    seen, first, record = 0, {}, {}
    while rl.run.step < config.max_steps:
        texts, out = rollout(rl, rl.run.step)  # 1. sample
        raw, scores = score(config, rl.judge, texts, out, acc.device)  # 2. score (+ EOS and length penalties)
        beta = rl.kl_ctl.value
        batch, sequence_kl = experience(rl, out, scores, beta)  # 3. reference  4. rewards with KL  5. advantages
        means, lr_used = update(rl, batch, beta)  # 6. PPO epochs over minibatches
        rl.kl_ctl.update(acc.reduce(sequence_kl.mean(), "mean").item(), len(texts) * acc.num_processes)
        seen += len(texts) * acc.num_processes
        record = step_record(rl, texts, out, raw, sequence_kl, means, beta, lr_used, seen)  # 7. log, checkpoint
        first = first or record
        extra = {"kl_coef": rl.kl_ctl.value}
        if rl.value_head is not None:
            extra["value_head"] = acc.unwrap_model(rl.value_head).state_dict()
        rl.run.end_step(record, extra, postfix={"score": f"{record['score']:.3f}", "kl": f"{record['kl']:.3f}"})
        if on_step is not None:
            on_step(rl.run.step, record)

    rl.run.finish()
    if acc.is_main_process and record:
        print(f"ppo done: {rl.run.step} steps; score {first['score']:.2f} -> {record['score']:.2f}, "
              f"KL {record['kl']:.2f} nats; saved to {config.out}")
    return Path(config.out)
