"""`rlhfkit eval`: is the policy better than its reference, and is it gaming its reward?

    rlhfkit eval --policy runs/dpo --reference runs/sft --out runs/dpo/eval.json
    rlhfkit eval --policy runs/ppo --reference runs/sft --reward-model runs/rm     # proxy beside gold
    rlhfkit eval --policy runs/sft --reference runs/sft --best-of 4 --selector runs/rm   # best-of-n baseline

On held-out prompts, one response per prompt from the policy and --reference-samples from the
reference, then:
  - win-rate of the policy over the reference, judged by the gold rubric (built-in task), a reward
    model, or any `module:function(prompt, completion) -> float`; ties count one half; each policy
    response is compared with every reference response to its prompt and the prompt's outcome is
    the mean of those comparisons (the same quantity as one-to-one, with less sampling noise); a 95%
    confidence interval from the normal approximation over prompts;
  - sequence-level KL(policy || reference) estimated on the policy's own samples:
    mean over responses of sum_t [log pi(y_t) - log ref(y_t)] (the k1 estimator, unbiased);
  - mean response length in tokens, distinct-1 and distinct-2 (share of unique n-grams), and the share
    of responses that say a sentence twice (`repetition_rate`: the repetition hack as a policy does it);
  - the proxy reward (a reward model: what was optimized) beside the gold reward, so that
    over-optimization — proxy up, gold down — shows.

Best-of-n (--best-of N): the simplest baseline — no training, N samples per prompt from the
reference, the one the --selector (a reward spec, usually the reward model) likes best is kept. Its
KL to the reference is analytic, log N - (N-1)/N (an upper bound; rlhfkit.math.ops.best_of_n_kl).
Judges and selectors are reward specs: gold, a reward-model folder, module:function, or a weighted
sum of them (rlhfkit.judges.reward_spec).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlhfkit.data.records import load_records
from rlhfkit.data.tokenization import render_prompt
from rlhfkit.errors import ConfigError
from rlhfkit.evaluation.probes import probe_reward, repetition_rate
from rlhfkit.judges.reward_spec import Scorer, load_reward
from rlhfkit.math.ops import best_of_n_kl
from rlhfkit.math.stats import distinct_n, win_rate
from rlhfkit.models.forward import completion_logprobs, response_inputs
from rlhfkit.models.loading import default_device, load_causal_lm
from rlhfkit.models.sampler import SamplingParams, sample


@dataclass
class EvalConfig:
    """Compare a policy with a reference policy on held-out prompts."""

    policy: str = "runs/dpo"
    """Checkpoint to evaluate."""
    reference: str = "runs/sft"
    """Checkpoint to compare against (usually the SFT model)."""
    data: str = "builtin:assistant"
    """Held-out prompts: a .jsonl file of {"prompt"} records, or builtin:assistant (its eval split)."""
    judge: str = "gold"
    """Who decides the win-rate: gold (the built-in rubric), a reward-model folder, or module:function."""
    reward_model: str | None = None
    """A reward model scored beside gold: the proxy that was optimized."""
    num_prompts: int = 128
    """Prompts to evaluate on (built-in data)."""
    max_new_tokens: int = 96
    """Longest response."""
    temperature: float = 1.0
    """Sampling temperature of both policies."""
    reference_samples: int = 1
    """Reference responses per prompt that each policy response is compared with (more: a tighter interval)."""
    batch_size: int = 64
    """Prompts sampled together."""
    best_of: int = 1
    """Best-of-n: sample this many responses per prompt from the policy and keep the one --selector scores highest."""
    selector: str | None = None
    """Reward spec that picks the best of --best-of (default: --reward-model)."""
    probes: bool = True
    """With --reward-model: probe it on the policy's samples with the reward-hacking table's edits
    (repetition, flattery, overconfidence, length: a filler sentence; rlhfkit.evaluation.probes)."""
    probe_models: list[str] = field(default_factory=list)
    """More reward models to probe on the same policy samples (e.g. the plain and the hardened one side by
    side): reward_probes_by_model in the result, one entry per folder."""
    seed: int = 0
    """Sampling seed."""
    out: str | None = None
    """Write the metrics here as JSON (default: print only)."""


@dataclass
class ReferenceSide:
    """The reference's responses to one prompt set (`k` per prompt, prompt-major) and their token counts.

    Pass an empty one to `run_eval` and it is filled; pass it to the next `run_eval` (same reference
    checkpoint, prompts and --reference-samples) and that evaluation compares its policy with the same
    reference responses instead of sampling new ones: several policies then face one baseline (a
    paired comparison), and the reference is sampled once.
    """

    checkpoint: str = ""
    prompts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)  # judge spec -> score of each response
    # a best-of-n evaluation that shares this side leaves its candidates here: n more of the reference's
    # responses per prompt (prompt-major) and the selector's score of each, {selector spec: scores}
    candidates: list[str] = field(default_factory=list)
    candidate_scores: dict[str, list[float]] = field(default_factory=dict)


@torch.no_grad()
def sequence_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, tokens: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """(B,) summed log-prob of the generated tokens under `model` (temperature 1), teacher-forced."""
    fwd = completion_logprobs(model, **response_inputs(prompt_ids, prompt_mask, tokens, mask))
    return (fwd.logprobs.view(tokens.shape) * mask).sum(-1)


def best_of_n(model, tokenizer, prompts: list[Any], rendered: list[str], params, generator, n: int,
              selector) -> tuple[list[str], list[int], list[str], list[float]]:
    """For each prompt, the highest-scoring of `n` samples by `selector` (first on ties) and its token
    length; then all `n` samples per prompt (prompt-major) and their scores."""
    out = sample(model, tokenizer, [t for t in rendered for _ in range(n)], params, generator)
    scores = selector([p for p in prompts for _ in range(n)], out.completions)
    lengths = out.mask.sum(-1).tolist()
    picked = [max(range(i * n, (i + 1) * n), key=lambda j: scores[j]) for i in range(len(prompts))]
    return ([out.completions[j] for j in picked], [int(lengths[j]) for j in picked], out.completions,
            [float(x) for x in scores])


def check_config(config: EvalConfig) -> None:
    """Refuse settings that cannot work, before any model is loaded."""
    if config.best_of < 1 or config.reference_samples < 1:
        raise ConfigError(f"--best-of and --reference-samples must be at least 1, got {config.best_of} and "
                          f"{config.reference_samples}")
    if config.best_of > 1 and not (config.selector or config.reward_model):
        raise ConfigError("--best-of needs --selector (or --reward-model) to pick the best response")
    if config.best_of > 1 and Path(config.policy).resolve() != Path(config.reference).resolve():
        raise ConfigError("--best-of samples the reference itself (its KL is analytic): give the same "
                          f"checkpoint as --policy and --reference, not {config.policy} and {config.reference}")


def check_shared_side(side: ReferenceSide, config: EvalConfig, prompts: list[str]) -> None:
    if (side.checkpoint != config.reference or side.prompts != prompts
            or len(side.responses) != config.reference_samples * len(prompts)):
        raise ConfigError(f"the shared reference responses are {side.checkpoint}'s, {len(side.responses)} for "
                          f"{len(side.prompts)} prompts; this evaluation needs {config.reference}'s, "
                          f"{config.reference_samples} for each of its {len(prompts)} prompts, and the same prompts "
                          f"(--data, --num-prompts, --seed)")


@dataclass
class Samples:
    """Both sides' responses, in the order sampled: the policy's one per prompt, the reference's k per prompt."""

    policy: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)
    policy_lengths: list[int] = field(default_factory=list)
    reference_lengths: list[int] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)  # per policy response: sum_t log pi - log ref (k1)
    candidates: list[str] = field(default_factory=list)  # best-of-n: every sample, n per prompt
    candidate_scores: list[float] = field(default_factory=list)  # and the selector's score of each


def sample_sides(config: EvalConfig, policy, reference, tokenizer, prompts: list[str], selector: Scorer | None,
                 reuse: bool) -> Samples:
    """The policy's response to each prompt (the best of --best-of by `selector`, or one sample with its
    KL to the reference) and, unless `reuse`, --reference-samples reference responses per prompt."""
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
    texts = [render_prompt(tokenizer, p) for p in prompts]
    k, got = config.reference_samples, Samples()
    generator = torch.Generator(device=default_device()).manual_seed(config.seed)
    for s in range(0, len(texts), config.batch_size):
        chunk = texts[s:s + config.batch_size]
        if selector is not None:
            best, best_lengths, candidates, scores = best_of_n(policy, tokenizer, prompts[s:s + config.batch_size],
                                                               chunk, params, generator, config.best_of, selector)
            got.policy += best
            got.policy_lengths += best_lengths
            got.candidates += candidates
            got.candidate_scores += scores
        else:
            out = sample(policy, tokenizer, chunk, params, generator)
            got.policy += out.completions
            got.policy_lengths += out.mask.sum(-1).tolist()
            own = sequence_logprobs(policy, out.prompt_ids, out.prompt_mask, out.tokens, out.mask)
            ref = sequence_logprobs(reference, out.prompt_ids, out.prompt_mask, out.tokens, out.mask)
            got.kl += (own - ref).tolist()
        if not reuse:
            ref_out = sample(reference, tokenizer, [t for t in chunk for _ in range(k)], params, generator)
            got.reference += ref_out.completions
            got.reference_lengths += ref_out.mask.sum(-1).tolist()
    return got


def summarize(config: EvalConfig, prompts: list[str], got: Samples, scorers: dict[str, Scorer | None],
              memo: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Win-rate, KL, length, diversity, judge / gold / proxy means of both sides, probes, examples.

    `scorers` maps "judge", "gold", "proxy" to a scorer or None; each runs once per side and spec
    (`memo[side][spec]`: the judge's scores serve where gold or the proxy is the judge)."""
    k = config.reference_samples
    samples = {"policy": got.policy, "reference": got.reference}
    asked = {"policy": prompts, "reference": [p for p in prompts for _ in range(k)]}  # the prompt of each sample
    specs = {"judge": config.judge, "gold": "gold", "proxy": config.reward_model}

    def scored(role: str) -> dict[str, list[float]] | None:
        scorer = scorers[role]
        if scorer is None:
            return None
        for name in samples:
            if specs[role] not in memo[name]:
                memo[name][specs[role]] = scorer(asked[name], samples[name])
        return {name: memo[name][specs[role]] for name in samples}

    scores, gold_scores, proxy_scores = scored("judge"), scored("gold"), scored("proxy")
    result: dict[str, Any] = {"policy": config.policy, "reference": config.reference, "judge": config.judge,
                              "prompts": len(prompts)}
    result.update(win_rate(scores["policy"], [scores["reference"][i * k:(i + 1) * k] for i in range(len(prompts))]))
    if config.best_of > 1:
        result["best_of"], result["selector"] = config.best_of, config.selector or config.reward_model
        result["kl_to_reference"] = best_of_n_kl(config.best_of)  # analytic (an upper bound)
    else:
        result["kl_to_reference"] = sum(got.kl) / len(got.kl)
    result["length"] = sum(got.policy_lengths) / len(got.policy_lengths)
    result["distinct_1"], result["distinct_2"] = distinct_n(got.policy, 1), distinct_n(got.policy, 2)
    result["reference_length"] = sum(got.reference_lengths) / len(got.reference_lengths)
    result["reference_distinct_2"] = distinct_n(got.reference[::k], 2)  # as many texts as the policy's
    result["repetition_rate"] = repetition_rate(got.policy)  # share of responses that repeat a sentence
    result["reference_repetition_rate"] = repetition_rate(got.reference[::k])
    for name in samples:
        result[f"{name}_judge_score"] = statistics.mean(scores[name])
        if gold_scores is not None:
            result[f"{name}_gold"] = statistics.mean(gold_scores[name])
        if proxy_scores is not None:
            result[f"{name}_proxy"] = statistics.mean(proxy_scores[name])
    if proxy_scores is not None and config.probes:
        result["reward_probes"] = probe_reward(scorers["proxy"], prompts, got.policy, gold=scorers["gold"],
                                               base=proxy_scores["policy"],
                                               base_gold=gold_scores["policy"] if gold_scores else None)
    if config.probe_models:
        base_gold = gold_scores["policy"] if gold_scores else None
        result["reward_probes_by_model"] = {spec: probe_reward(scorers[f"probe {spec}"], prompts, got.policy,
                                                               gold=scorers["gold"], base_gold=base_gold)
                                            for spec in config.probe_models}
    result["examples"] = [{"prompt": p, "policy": a, "reference": b}  # the first reference response of each
                          for p, a, b in list(zip(prompts, got.policy, got.reference[::k]))[:8]]
    return result


def print_result(config: EvalConfig, result: dict[str, Any]) -> None:
    k = config.reference_samples
    policy = f"best-of-{config.best_of} of {config.policy}" if config.best_of > 1 else config.policy
    print(f"win-rate of {policy} over {config.reference} ({config.judge}): {result['win_rate']:.3f} "
          f"[{result['ci_low']:.3f}, {result['ci_high']:.3f}] on {result['n']} prompts"
          f"{f' x {k} reference responses' if k > 1 else ''}; "
          f"KL {result['kl_to_reference']:.2f} nats; length {result['length']:.1f} tokens; "
          f"{result['repetition_rate']:.0%} repeat a sentence")
    for name, probe in result.get("reward_probes", {}).items():
        gold_part = f", gold {probe['gold_delta']:+.3f}" if "gold_delta" in probe else ""
        print(f"  reward-model probe {name}: prefers the edited response {probe['prefers_hacked']:.0%} of the time "
              f"(reward {probe['reward_delta']:+.3f}{gold_part})")


def run_eval(config: EvalConfig, reference_side: ReferenceSide | None = None) -> dict[str, Any]:
    """Evaluate --policy against --reference; write --out if given; return the metrics.

    1) check the settings  2) load prompts, judges and both models  3) sample both sides (or reuse the
    shared reference side)  4) score each side once per judge  5) summarise, print, write."""
    check_config(config)
    records = load_records(config.data, "prompts", split="eval", builtin_size=config.num_prompts, seed=config.seed)
    scorers = {"judge": load_reward(config.judge),
               "proxy": load_reward(config.reward_model) if config.reward_model else None,
               "gold": load_reward("gold") if config.data.startswith("builtin:assistant") else None}
    scorers |= {f"probe {spec}": load_reward(spec) for spec in config.probe_models}  # loaded now: a bad one fails early
    selector = load_reward(config.selector or config.reward_model) if config.best_of > 1 else None
    device = default_device()
    policy, tokenizer = load_causal_lm(config.policy)
    reference, _ = load_causal_lm(config.reference)
    policy.to(device).eval()
    reference.to(device).eval()
    prompts = [r["prompt"] for r in records]
    reuse = reference_side is not None and bool(reference_side.responses)
    if reuse:
        check_shared_side(reference_side, config, prompts)

    got = sample_sides(config, policy, reference, tokenizer, prompts, selector, reuse)
    if reuse:
        got.reference, got.reference_lengths = list(reference_side.responses), list(reference_side.lengths)
    elif reference_side is not None:
        reference_side.checkpoint, reference_side.prompts = config.reference, prompts
        reference_side.responses, reference_side.lengths = got.reference, got.reference_lengths
    if reference_side is not None and selector is not None:  # best-of-n samples the reference too
        reference_side.candidates = got.candidates
        reference_side.candidate_scores = {config.selector or config.reward_model: got.candidate_scores}
    # a shared reference side keeps its scores for the next policy
    memo = {"policy": {}, "reference": reference_side.scores if reference_side is not None else {}}
    result = summarize(config, prompts, got, scorers, memo)
    print_result(config, result)
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(json.dumps(result, indent=2))
    return result
