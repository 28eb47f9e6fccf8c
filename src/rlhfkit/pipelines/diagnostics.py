"""What the quickstart's report shows beyond win-rates: the seeds' tables with this run's numbers, and
the reward-KL frontier.

    reward_by_style(rm, prompts)          the reward model's mean score per response style, beside gold
    rationales(preferences_file)          a few of the panel's judgments with their reasons and criteria
    frontier_points(...)                  gold and proxy reward against KL to SFT, for every method

The frontier puts every policy on one picture (Gao et al. 2023's over-optimisation plot): PPO along its
training (its saved checkpoints), each DPO round, and best-of-n sampling from SFT for n = 1, 2, 4, ...
The policies' KL is the k1 Monte-Carlo estimate of `rlhfkit eval` on their own samples; best-of-n's is
exact for best-of-n over m SFT samples per prompt (`rlhfkit.math.stats.best_of_n_on_samples`), with
the analytic bound log n - (n-1)/n kept beside it. Best-of-n costs no sampling of its own: its m
samples per prompt are those the evaluation drew from SFT already (the reference responses every
policy is compared with, and best-of-n's candidates).
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.judges.reward_spec import load_reward
from rlhfkit.math.ops import best_of_n_kl
from rlhfkit.math.stats import best_of_n_on_samples
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


def best_of_n_points(side: ReferenceSide, reward_spec: str, ns: list[int]) -> list[dict[str, Any]]:
    """Best-of-n from SFT for each n in `ns`, from the SFT samples an evaluation has already drawn and
    scored (`side`: its reference responses, plus best-of-n's candidates when that evaluation shared
    it): m samples per prompt in all, the reward model picks; the expected gold and proxy of the kept
    response and the exact KL of best-of-n over those m samples, averaged over prompts."""
    prompts, gold = side.prompts, load_reward("gold")
    k, c = len(side.responses) // len(prompts), len(side.candidates) // len(prompts)

    def scores(texts: list[str], per_prompt: int, known: dict[str, list[float]], spec: str) -> list[float]:
        return known[spec] if spec in known else load_reward(spec)([p for p in prompts for _ in range(per_prompt)], texts)

    proxy_ref, gold_ref = scores(side.responses, k, side.scores, reward_spec), scores(side.responses, k, side.scores, "gold")
    proxy_more = scores(side.candidates, c, side.candidate_scores, reward_spec) if c else []
    gold_more = gold([p for p in prompts for _ in range(c)], side.candidates) if c else []
    points = []
    for n in (n for n in ns if n <= k + c):
        kls, golds, proxies = [], [], []
        for i in range(len(prompts)):
            rewards = proxy_ref[i * k:(i + 1) * k] + proxy_more[i * c:(i + 1) * c]
            probs, kl = best_of_n_on_samples(rewards, n)
            kls.append(kl)
            golds.append(sum(p * g for p, g in zip(probs, gold_ref[i * k:(i + 1) * k] + gold_more[i * c:(i + 1) * c])))
            proxies.append(sum(p * r for p, r in zip(probs, rewards)))
        points.append({"policy": f"best_of_{n}", "kl": statistics.mean(kls), "kl_bound": best_of_n_kl(n),
                       "gold": statistics.mean(golds), "proxy": statistics.mean(proxies), "prompts": len(prompts),
                       "samples_per_prompt": k + c})
    return points


def frontier_points(sft: Path, reward_model: Path, policies: dict[str, Path], num_prompts: int, max_new_tokens: int,
                    seed: int, side: ReferenceSide, evaluated: dict[str, dict[str, Any]],
                    log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Gold and proxy against KL to SFT: `policies` (name -> checkpoint, e.g. ppo-step-20, dpo-round-1),
    each evaluated on the first `num_prompts` held-out prompts against one shared SFT sample unless
    `evaluated` has its evaluation already (the final policies: the quickstart's own, on all its
    prompts); then best-of-n from the SFT samples of `side` (n = 1, 2, 4, ... up to what it holds)."""
    own_side, points = ReferenceSide(), []
    for name, checkpoint in policies.items():
        if name in evaluated:
            result = evaluated[name]
        else:
            log(f"frontier: {name}")
            result = run_eval(EvalConfig(policy=str(checkpoint), reference=str(sft), reward_model=str(reward_model),
                                         num_prompts=num_prompts, probes=False, seed=seed,
                                         max_new_tokens=max_new_tokens), own_side)
        points.append({"policy": name, "kl": result["kl_to_reference"], "gold": result["policy_gold"],
                       "proxy": result["policy_proxy"], "prompts": result["prompts"]})
    m = (len(side.responses) + len(side.candidates)) // len(side.prompts)
    ns = [2 ** i for i in range(m.bit_length()) if 2 ** i <= m]
    log(f"frontier: best-of-n for n = {', '.join(map(str, ns))} from the evaluation's {m} SFT samples per prompt")
    return points + best_of_n_points(side, str(reward_model), ns)
