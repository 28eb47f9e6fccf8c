"""Query selection: which comparisons to ask people for, from a reward-model ensemble's scores.

Plain Python numbers in, plain numbers out (no torch, no numpy needed; numpy arrays work as input).

A *candidate* is a comparison that could be asked: K >= 2 responses to one prompt (a pair, or a
K-tuple for a ranking). Its input is `rewards[h][j]`: the reward head h of an ensemble of H heads
gives response j of the candidate (shape (H, K); H = 1 for a single reward model).

Each head turns a candidate into a Bradley-Terry / Plackett-Luce distribution over which response
is best: p_h = softmax(rewards[h]) (for a pair, p_h(first) = sigma(r_0 - r_1)). The ensemble's
prediction is their mean, p = (1/H) sum_h p_h. The strategies score a candidate, higher = ask first:

    random        a seeded uniform number: the baseline every strategy is measured against
    disagreement  mean over the candidate's pairs (i < j) of the standard deviation over heads of
                  r_h,i - r_h,j: how much the ensemble disagrees about the reward gap (as `imitation`
                  picks queries); 0 for one head
    uncertainty   H(p) / log K: the normalised entropy of the ensemble's prediction; for a pair it is
                  largest where p is nearest 1/2 (Bradley-Terry uncertainty), 1 exactly at p = 1/2
    bald          H(p) - (1/H) sum_h H(p_h): the expected information gain about the ensemble's
                  parameters from the answer (BALD, Houlsby et al. 2011), with the heads standing in
                  for posterior samples and the answer being the best response; 0 for one head

An annotator who answers at random with probability `noise` (the simulated panel's noise: A or B
with equal odds, a random permutation for a ranking) says response j is best with probability
q_h,j = (1 - noise) p_h,j + noise / K; with `noise` > 0, uncertainty and bald score that answer's
distribution (q in place of p). For a pair with noise 0.1, q = 0.05 + 0.9 sigma(gap): no head is ever
surer than 0.95, so heads that disagree with confidence count for less than with noise 0.

`select` picks a batch from the scores: the `budget` highest, optionally at most `max_per_group`
from one group (prompt), so that a batch does not ask about the same prompt twenty times.
Entropies are in nats. Left out: batch-aware acquisition (BatchBALD), similarity between prompts.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

STRATEGIES = ("random", "disagreement", "uncertainty", "bald")
"""The strategy names `strategy_scores` accepts."""

Rewards = Sequence[Sequence[float]]  # (H, K): head h's reward for response j of one candidate


def softmax(values: Sequence[float]) -> list[float]:
    """exp(v_j) / sum_k exp(v_k), computed from the maximum so it never overflows."""
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def entropy(probs: Sequence[float]) -> float:
    """-sum p log p in nats (0 log 0 = 0)."""
    return -sum(p * math.log(p) for p in probs if p > 0)


def _check(rewards: Rewards) -> tuple[int, int]:
    heads, k = len(rewards), len(rewards[0]) if len(rewards) else 0
    if heads < 1 or k < 2 or any(len(row) != k for row in rewards):
        raise ValueError(f"a candidate's rewards must be (heads >= 1, K >= 2) with one row per head; got "
                         f"{[len(row) for row in rewards]}")
    return heads, k


def _check_noise(noise: float) -> None:
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a probability in [0, 1], got {noise}")


def answer_probabilities(row: Sequence[float], noise: float = 0.0) -> list[float]:
    """q_j = (1 - noise) softmax(row)_j + noise / K: one head's probability that the annotator calls j best."""
    _check_noise(noise)
    return [(1.0 - noise) * p + noise / len(row) for p in softmax(row)]


def ensemble_probabilities(rewards: Rewards, noise: float = 0.0) -> list[float]:
    """p_j = (1/H) sum_h q_h,j: the ensemble's probability that response j is called best (q_h as in
    `answer_probabilities`; with noise 0, softmax(rewards[h]))."""
    heads, k = _check(rewards)
    per_head = [answer_probabilities(row, noise) for row in rewards]
    return [sum(p[j] for p in per_head) / heads for j in range(k)]


def disagreement(rewards: Rewards) -> float:
    """Mean over pairs i < j of the (population) std over heads of the reward gap r_h,i - r_h,j."""
    heads, k = _check(rewards)
    stds = []
    for i, j in itertools.combinations(range(k), 2):
        gaps = [row[i] - row[j] for row in rewards]
        mean = sum(gaps) / heads
        stds.append(math.sqrt(sum((g - mean) ** 2 for g in gaps) / heads))
    return sum(stds) / len(stds)


def uncertainty(rewards: Rewards, noise: float = 0.0) -> float:
    """H(p) / log K of the ensemble's prediction p: 1 when every response is equally likely best, 0 when one is sure."""
    _, k = _check(rewards)
    return entropy(ensemble_probabilities(rewards, noise)) / math.log(k)


def bald(rewards: Rewards, noise: float = 0.0) -> float:
    """H(mean_h q_h) - mean_h H(q_h): mutual information between the (noisy) answer and the head (>= 0)."""
    _, k = _check(rewards)
    expected = sum(entropy(answer_probabilities(row, noise)) for row in rewards) / len(rewards)
    return max(0.0, entropy(ensemble_probabilities(rewards, noise)) - expected)  # max: rounding below 0


SCORERS = {"disagreement": disagreement, "uncertainty": uncertainty, "bald": bald}


def strategy_scores(strategy: str, candidates: Sequence[Rewards], seed: int = 0, noise: float = 0.0) -> list[float]:
    """One score per candidate (higher: ask first). `random` ignores the rewards and draws U(0, 1)
    with `seed`, so its top-`budget` is a uniform sample. `noise`: the annotator's probability of
    answering at random, read by uncertainty and bald (disagreement is about rewards, not answers)."""
    _check_noise(noise)
    if strategy == "random":
        rng = random.Random(seed)
        return [rng.random() for _ in candidates]
    if strategy not in SCORERS:
        raise ValueError(f"unknown selection strategy {strategy!r}; pick one of {', '.join(STRATEGIES)}")
    if strategy == "disagreement":
        return [disagreement(c) for c in candidates]
    return [SCORERS[strategy](c, noise) for c in candidates]


def select(scores: Sequence[float], budget: int, groups: Sequence[object] | None = None,
           max_per_group: int = 0) -> list[int]:
    """Indices of the `budget` highest scores, best first (ties: the earlier index first).

    With `groups` (one key per candidate, e.g. its prompt) and `max_per_group` > 0, a candidate is
    skipped once its group has `max_per_group` picks: greedy selection under a per-prompt cap, which
    may return fewer than `budget` when the cap leaves too few."""
    if budget < 0 or max_per_group < 0:
        raise ValueError(f"budget and max_per_group must be >= 0, got {budget} and {max_per_group}")
    if groups is not None and len(groups) != len(scores):
        raise ValueError(f"{len(groups)} group keys for {len(scores)} scores")
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    picked: list[int] = []
    taken: dict[object, int] = {}
    for i in order:
        if len(picked) >= budget:
            break
        if groups is not None and max_per_group:
            if taken.get(groups[i], 0) >= max_per_group:
                continue
            taken[groups[i]] = taken.get(groups[i], 0) + 1
        picked.append(i)
    return picked


def candidate_tuples(n: int, k: int) -> list[tuple[int, ...]]:
    """The pool of one prompt with n responses: every k-subset of response indices, in lexicographic order."""
    return list(itertools.combinations(range(n), k))
