"""Statistics of evaluation, on plain Python numbers (no torch): win-rate, calibration, correlation.

    win_rate(policy_scores, reference_scores)   share of comparisons won (ties 1/2), 95% interval over prompts
    expected_calibration_error(prob_chosen)     ECE of a reward model's preference probabilities
    calibration_bins(prob_chosen)               the reliability diagram behind it
    pearson(xs, ys)                             linear correlation (reward vs length, the first hacking sign)
    distinct_n(texts, n)                        share of unique word n-grams (diversity of samples)
    best_of_n_on_samples(rewards, n)            best-of-n over m samples of a prompt: pick probabilities, KL
"""

from __future__ import annotations

import math
import statistics


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


def calibration_bins(prob_chosen: list[float], bins: int = 10) -> list[dict[str, float]]:
    """Reliability diagram of predicted preference probabilities p = sigma(r_c - r_r), symmetrised.

    Each pair predicts the side it favours with confidence max(p, 1-p) and is right when p > 0.5;
    pairs fall into `bins` equal-width confidence bins over [0.5, 1] (the last one closed). Returns
    the non-empty bins as {"confidence": mean confidence, "accuracy": share right, "n": pairs}.
    """
    conf = [max(p, 1 - p) for p in prob_chosen]
    correct = [1.0 if p > 0.5 else 0.0 for p in prob_chosen]
    out = []
    for b in range(bins):
        lo, hi = 0.5 + 0.5 * b / bins, 0.5 + 0.5 * (b + 1) / bins
        idx = [i for i, c in enumerate(conf) if lo <= c < hi or (b == bins - 1 and c == hi)]
        if idx:
            out.append({"confidence": sum(conf[i] for i in idx) / len(idx),
                        "accuracy": sum(correct[i] for i in idx) / len(idx), "n": len(idx)})
    return out


def expected_calibration_error(prob_chosen: list[float], bins: int = 10) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over the bins of `calibration_bins`."""
    if not prob_chosen:
        return float("nan")
    return sum(b["n"] * abs(b["accuracy"] - b["confidence"]) for b in calibration_bins(prob_chosen, bins)) / len(
        prob_chosen)


def pearson(xs: list[float], ys: list[float]) -> float:
    """Pearson's r of two equally long lists; NaN with fewer than two points or a constant list."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sx, sy = math.sqrt(sum((x - mx) ** 2 for x in xs)), math.sqrt(sum((y - my) ** 2 for y in ys))
    return sxy / (sx * sy) if sx > 0 and sy > 0 else float("nan")


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all n-grams of `texts` (0 when there are none)."""
    grams = [tuple(words[i:i + n]) for words in (t.split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def best_of_n_on_samples(rewards: list[float], n: int) -> tuple[list[float], float]:
    """Best-of-n over the empirical distribution of `rewards` (m samples of one prompt, equally likely):
    n draws with replacement, the highest reward kept, ties shared equally among the tied samples.

    With the distinct reward levels v_1 < ... < v_L held by c_l samples and C_l = c_1 + ... + c_l,
    the kept level is l with probability P_l = (C_l / m)^n - (C_{l-1} / m)^n, each of its samples with
    P_l / c_l, and KL(best-of-n || the m samples) = sum_l P_l log(m P_l / c_l). It is 0 for n = 1 and
    at most log n - (n-1)/n (the analytic bound, `rlhfkit.math.ops.best_of_n_kl`) as m grows with
    distinct rewards; ties (the same response drawn twice) lower it.

    Returns:
        (the probability of keeping each sample, in the order of `rewards`; the KL in nats).
    """
    m = len(rewards)
    if m == 0 or n < 1:
        raise ValueError(f"best-of-n needs at least one sample and n >= 1, got {m} samples and n = {n}")
    levels = sorted(set(rewards))
    counts = {v: rewards.count(v) for v in levels}
    level_prob, below, kl = {}, 0, 0.0
    for v in levels:
        upto = below + counts[v]
        level_prob[v] = (upto / m) ** n - (below / m) ** n
        if level_prob[v] > 0:
            kl += level_prob[v] * math.log(m * level_prob[v] / counts[v])
        below = upto
    return [level_prob[r] / counts[r] for r in rewards], kl
