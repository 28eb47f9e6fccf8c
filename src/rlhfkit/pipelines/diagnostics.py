"""What the quickstart's report shows beyond win-rates: the seeds' tables with this run's numbers, and
the reward-KL frontier.

    reward_by_style(rm, prompts)          the reward model's mean score per response style, beside gold
    rationales(preferences_file)          a few of the panel's judgments with their reasons and criteria
    frontier_points(...)                  gold and proxy reward against KL to SFT, for every method

The frontier puts every policy on one picture (Gao et al. 2023's over-optimisation plot): PPO along its
training (its saved checkpoints), each DPO round, and best-of-n sampling from SFT for n = 1, 2, 4, ...
The policies' KL is the k1 Monte-Carlo estimate of `rlhfkit eval` on their own samples; best-of-n's is
exact for best-of-n over m SFT samples per prompt (`rlhfkit.math.stats.best_of_n_on_samples`), with
the analytic bound log n - (n-1)/n kept beside it.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlhfkit.data.records import load_records
from rlhfkit.data.tokenization import render_prompt
from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.judges.reward_spec import load_reward
from rlhfkit.math.ops import best_of_n_kl
from rlhfkit.math.stats import best_of_n_on_samples
from rlhfkit.models.loading import default_device, load_causal_lm
from rlhfkit.models.sampler import SamplingParams, sample
from rlhfkit.tasks import assistant


def reward_by_style(reward_model: Path, prompts: list[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """For each of the built-in task's response styles: the reward model's mean (normalised) score of
    one response per prompt in that style, the gold rubric's mean, and how many responses (seed 001's
    "Reward Score" table, with this run's reward model)."""
    rng = random.Random(seed)
    proxy, gold = load_reward(str(reward_model)), load_reward("gold")
    table = {}
    for style in assistant.STYLES:
        responses = [assistant.response(p, style, rng) for p in prompts]
        table[style] = {"reward": statistics.mean(proxy(prompts, responses)),
                        "gold": statistics.mean(gold(prompts, responses)), "n": len(responses)}
    return table


def rationales(preferences: Path, k: int = 6) -> list[dict[str, Any]]:
    """Up to `k` exported judgments (one per prompt) that the panel agreed on most, with the rationale
    and rubric criteria the annotators gave."""
    rows = [json.loads(line) for line in preferences.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("rationale")]
    rows.sort(key=lambda r: -(r.get("margin") or 0.0))  # stable: file order among equals
    picked, prompts = [], set()
    for row in rows:
        if row["prompt"] not in prompts:
            prompts.add(row["prompt"])
            picked.append({key: row.get(key) for key in ("prompt", "chosen", "rejected", "rationale", "criteria")})
        if len(picked) == k:
            break
    return picked


def best_of_n_points(sft: Path, reward_model: Path, prompts: list[Any], ns: list[int], max_new_tokens: int,
                     seed: int) -> list[dict[str, Any]]:
    """Best-of-n from SFT for each n in `ns`: max(ns) samples per prompt, scored once by the reward model
    (the selector) and gold; the expected gold and proxy of the kept response and the exact KL of
    best-of-n over those samples, averaged over prompts."""
    m = max(ns)
    device = default_device()
    model, tokenizer = load_causal_lm(str(sft))
    model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    texts = [render_prompt(tokenizer, p) for p in prompts for _ in range(m)]
    completions: list[str] = []
    for s in range(0, len(texts), 256):
        completions += sample(model, tokenizer, texts[s:s + 256], SamplingParams(max_new_tokens=max_new_tokens),
                              generator).completions
    asked = [p for p in prompts for _ in range(m)]
    proxy, gold = load_reward(str(reward_model))(asked, completions), load_reward("gold")(asked, completions)
    points = []
    for n in ns:
        kls, golds, proxies = [], [], []
        for i in range(len(prompts)):
            rewards = proxy[i * m:(i + 1) * m]
            probs, kl = best_of_n_on_samples(rewards, n)
            kls.append(kl)
            golds.append(sum(p * g for p, g in zip(probs, gold[i * m:(i + 1) * m])))
            proxies.append(sum(p * r for p, r in zip(probs, rewards)))
        points.append({"policy": f"best_of_{n}", "kl": statistics.mean(kls), "kl_bound": best_of_n_kl(n),
                       "gold": statistics.mean(golds), "proxy": statistics.mean(proxies)})
    return points


def frontier_points(sft: Path, reward_model: Path, policies: dict[str, Path], num_prompts: int, ns: list[int],
                    max_new_tokens: int, seed: int, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Gold and proxy against KL to SFT: `policies` (name -> checkpoint, e.g. ppo-step-20, dpo-round-1),
    each evaluated on `num_prompts` held-out prompts against one shared SFT sample, then best-of-n."""
    side = ReferenceSide()
    points = []
    for name, checkpoint in policies.items():
        log(f"frontier: {name}")
        result = run_eval(EvalConfig(policy=str(checkpoint), reference=str(sft), reward_model=str(reward_model),
                                     num_prompts=num_prompts, probes=False, seed=seed,
                                     max_new_tokens=max_new_tokens), side)
        points.append({"policy": name, "kl": result["kl_to_reference"], "gold": result["policy_gold"],
                       "proxy": result["policy_proxy"]})
    prompts = [r["prompt"] for r in load_records("builtin:assistant", "prompts", split="eval",
                                                 builtin_size=num_prompts, seed=seed)]
    log(f"frontier: best-of-n for n = {', '.join(map(str, ns))}")
    return points + best_of_n_points(sft, reward_model, prompts, ns, max_new_tokens, seed)
