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
  - mean response length in tokens, distinct-1 and distinct-2 (share of unique n-grams);
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
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlhfkit.errors import ConfigError


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


def load_judge(spec: str) -> Callable[[list[Any], list[str]], list[float]]:
    """A batch scorer `(prompts, completions) -> scores`; `spec` as in rlhfkit.judges.reward_spec (sums allowed)."""
    from rlhfkit.judges.reward_spec import load_reward

    return load_reward(spec)


def win_rate(policy_scores: list[float], reference_scores: list[float] | list[list[float]]) -> dict[str, float]:
    """Share of comparisons the policy wins (ties 1/2), with a 95% normal-approximation CI over prompts.

    `reference_scores[i]` is one score or a list of scores (several reference responses to prompt i);
    prompt i's outcome is the mean of its comparisons, and the interval treats prompts as the samples.
    """
    groups = [r if isinstance(r, list) else [r] for r in reference_scores]
    if len(groups) != len(policy_scores) or not all(groups):
        raise ValueError("win_rate needs one policy score and at least one reference score per prompt")
    comparisons = [[1.0 if a > b else 0.5 if a == b else 0.0 for b in refs]
                   for a, refs in zip(policy_scores, groups)]
    outcomes = [sum(c) / len(c) for c in comparisons]
    n = len(outcomes)
    mean = sum(outcomes) / n
    half = 1.96 * (statistics.pstdev(outcomes) / math.sqrt(n) if n > 1 else 0.0)
    return {"win_rate": mean, "ci_low": max(0.0, mean - half), "ci_high": min(1.0, mean + half), "n": n,
            "comparisons": sum(len(c) for c in comparisons), "ties": sum(c.count(0.5) for c in comparisons)}


def distinct_n(texts: list[str], n: int) -> float:
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


@torch.no_grad()
def sequence_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, tokens: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """(B,) summed log-prob of the generated tokens under `model` (temperature 1), teacher-forced."""
    from rlhfkit.math.ops import token_logprobs

    ids = torch.cat([prompt_ids, tokens], 1)
    attention = torch.cat([prompt_mask, mask], 1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
    p = prompt_ids.shape[1]
    logps = token_logprobs(logits[:, p - 1:-1].float(), tokens)  # (B, T)
    return (logps * mask).sum(-1)


def best_of_n(model, tokenizer, prompts: list[Any], rendered: list[str], params, generator, n: int,
              selector) -> tuple[list[str], list[int]]:
    """For each prompt, the highest-scoring of `n` samples by `selector` (first on ties), and its token length."""
    from rlhfkit.models.sampler import sample

    out = sample(model, tokenizer, [t for t in rendered for _ in range(n)], params, generator)
    scores = selector([p for p in prompts for _ in range(n)], out.completions)
    lengths = out.mask.sum(-1).tolist()
    picked = [max(range(i * n, (i + 1) * n), key=lambda j: scores[j]) for i in range(len(prompts))]
    return [out.completions[j] for j in picked], [int(lengths[j]) for j in picked]


def run_eval(config: EvalConfig, reference_side: ReferenceSide | None = None) -> dict[str, Any]:
    from rlhfkit.data.records import load_records
    from rlhfkit.models.loading import load_causal_lm
    from rlhfkit.models.sampler import SamplingParams, sample
    from rlhfkit.data.tokenization import render_prompt

    selector_spec = config.selector or config.reward_model
    if config.best_of < 1 or config.reference_samples < 1:
        raise ConfigError(f"--best-of and --reference-samples must be at least 1, got {config.best_of} and "
                          f"{config.reference_samples}")
    if config.best_of > 1 and not selector_spec:
        raise ConfigError("--best-of needs --selector (or --reward-model) to pick the best response")
    if config.best_of > 1 and Path(config.policy).resolve() != Path(config.reference).resolve():
        raise ConfigError("--best-of samples the reference itself (its KL is analytic): give the same "
                          f"checkpoint as --policy and --reference, not {config.policy} and {config.reference}")
    records = load_records(config.data, "prompts", split="eval", builtin_size=config.num_prompts, seed=config.seed)
    judge = load_judge(config.judge)
    proxy = load_judge(config.reward_model) if config.reward_model else None
    gold = load_judge("gold") if config.data.startswith("builtin:assistant") else None
    selector = load_judge(selector_spec) if config.best_of > 1 else None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    policy, tokenizer = load_causal_lm(config.policy)
    reference, _ = load_causal_lm(config.reference)
    policy.to(device).eval()
    reference.to(device).eval()
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)
    prompts = [r["prompt"] for r in records]
    texts = [render_prompt(tokenizer, p) for p in prompts]
    k = config.reference_samples
    reuse = reference_side is not None and bool(reference_side.responses)
    if reuse and (reference_side.checkpoint != config.reference or reference_side.prompts != prompts
                  or len(reference_side.responses) != k * len(prompts)):
        side = reference_side
        raise ConfigError(f"the shared reference responses are {side.checkpoint}'s, {len(side.responses)} for "
                          f"{len(side.prompts)} prompts; this evaluation needs {config.reference}'s, {k} for each "
                          f"of its {len(prompts)} prompts, and the same prompts (--data, --num-prompts, --seed)")

    result: dict[str, Any] = {"policy": config.policy, "reference": config.reference, "judge": config.judge,
                              "prompts": len(prompts)}
    samples: dict[str, list[str]] = {"policy": [], "reference": []}
    kl, lengths, reference_lengths = [], [], []
    generator = torch.Generator(device=device).manual_seed(config.seed)
    for s in range(0, len(texts), config.batch_size):
        chunk = texts[s:s + config.batch_size]
        if selector is not None:
            best, best_lengths = best_of_n(policy, tokenizer, prompts[s:s + config.batch_size], chunk, params,
                                           generator, config.best_of, selector)
            samples["policy"] += best
            lengths += best_lengths
        else:
            out = sample(policy, tokenizer, chunk, params, generator)
            samples["policy"] += out.completions
            lengths += out.mask.sum(-1).tolist()
            own = sequence_logprobs(policy, out.prompt_ids, out.prompt_mask, out.tokens, out.mask)
            ref = sequence_logprobs(reference, out.prompt_ids, out.prompt_mask, out.tokens, out.mask)
            kl += (own - ref).tolist()
        if not reuse:
            ref_out = sample(reference, tokenizer, [t for t in chunk for _ in range(k)], params, generator)
            samples["reference"] += ref_out.completions
            reference_lengths += ref_out.mask.sum(-1).tolist()
    if reuse:
        samples["reference"], reference_lengths = list(reference_side.responses), list(reference_side.lengths)
    elif reference_side is not None:
        reference_side.checkpoint, reference_side.prompts = config.reference, prompts
        reference_side.responses, reference_side.lengths = samples["reference"], reference_lengths

    asked = {"policy": prompts, "reference": [p for p in prompts for _ in range(k)]}  # the prompt of each sample
    memo: dict[str, dict[str, list[float]]] = {"policy": {}, "reference": {}}
    if reference_side is not None:  # a shared reference side keeps its scores for the next policy
        memo["reference"] = reference_side.scores

    def scored(name: str, spec: str, scorer) -> list[float]:
        """Each scorer runs once per side (the judge's scores serve where gold or the proxy is the judge)."""
        kept = memo[name]
        if spec not in kept:
            kept[spec] = scorer(asked[name], samples[name])
        return kept[spec]

    scores = {name: scored(name, config.judge, judge) for name in samples}
    gold_scores = {name: scored(name, "gold", gold) for name in samples} if gold is not None else None
    proxy_scores = ({name: scored(name, config.reward_model, proxy) for name in samples}
                    if proxy is not None else None)
    by_prompt = [scores["reference"][i * k:(i + 1) * k] for i in range(len(prompts))]
    result.update(win_rate(scores["policy"], by_prompt))
    if selector is not None:
        from rlhfkit.math.ops import best_of_n_kl

        result["best_of"], result["selector"] = config.best_of, selector_spec
        result["kl_to_reference"] = best_of_n_kl(config.best_of)  # analytic (an upper bound)
    else:
        result["kl_to_reference"] = sum(kl) / len(kl)
    result["length"] = sum(lengths) / len(lengths)
    result["distinct_1"], result["distinct_2"] = distinct_n(samples["policy"], 1), distinct_n(samples["policy"], 2)
    result["reference_length"] = sum(reference_lengths) / len(reference_lengths)
    result["reference_distinct_2"] = distinct_n(samples["reference"][::k], 2)  # as many texts as the policy's
    for name in samples:
        result[f"{name}_judge_score"] = statistics.mean(scores[name])
        if gold_scores is not None:
            result[f"{name}_gold"] = statistics.mean(gold_scores[name])
        if proxy_scores is not None:
            result[f"{name}_proxy"] = statistics.mean(proxy_scores[name])
    if proxy is not None and config.probes:
        from rlhfkit.evaluation.probes import probe_reward

        result["reward_probes"] = probe_reward(proxy, prompts, samples["policy"], gold=gold,
                                               base=proxy_scores["policy"],
                                               base_gold=gold_scores["policy"] if gold_scores else None)
    result["examples"] = [{"prompt": p, "policy": a, "reference": b}  # the first reference response of each
                          for p, a, b in list(zip(prompts, samples["policy"], samples["reference"][::k]))[:8]]
    line = (f"win-rate of {config.policy} over {config.reference} ({config.judge}): {result['win_rate']:.3f} "
            f"[{result['ci_low']:.3f}, {result['ci_high']:.3f}] on {result['n']} prompts"
            f"{f' x {k} reference responses' if k > 1 else ''}; "
            f"KL {result['kl_to_reference']:.2f} nats; length {result['length']:.1f} tokens")
    print(line)
    for name, probe in result.get("reward_probes", {}).items():
        gold_part = f", gold {probe['gold_delta']:+.3f}" if "gold_delta" in probe else ""
        print(f"  reward-model probe {name}: prefers the edited response {probe['prefers_hacked']:.0%} of the time "
              f"(reward {probe['reward_delta']:+.3f}{gold_part})")
    if config.out:
        Path(config.out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.out).write_text(json.dumps(result, indent=2))
    return result
