"""Who compares two trajectory segments when no person does: a synthetic teacher that knows the true
reward, perfect by default, with the imperfections of B-Pref's simulated teachers as options
(Lee et al., 2021, "B-Pref: Benchmarking Preference-Based Reinforcement Learning").

    teacher = Teacher(beta=inf, myopia=1.0, mistake=0.0, equal=0.0)     # the oracle
    labels = teacher.label(true_rewards_a, true_rewards_b, rng)        # (P,) in {1, 0, 0.5}

For a pair of segments with per-step true rewards ``r^a, r^b`` of length H:

    R^x      = sum_t myopia^(H - 1 - t) r^x_t         (myopia < 1 weighs the last steps most)
    tie      if |R^a - R^b| < equal * mean_pairs(|R^a| + |R^b|) / 2       -> label 0.5
    P(a > b) = sigmoid(beta * (R^a - R^b))            (beta = inf: the higher return always wins)
    label    = 1 with probability P(a > b), else 0; then flipped with probability `mistake`

Label 1 means "a is better", 0 "b is better", 0.5 "equally good". Pure numpy; no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def myopic_returns(rewards: np.ndarray, myopia: float) -> np.ndarray:
    """``sum_t myopia^(H-1-t) r_t`` over the last axis of (P, H) rewards: the return a teacher who
    remembers the end of a segment best would see (myopia = 1: the plain sum)."""
    horizon = rewards.shape[-1]
    weights = myopia ** np.arange(horizon - 1, -1, -1, dtype=np.float64)
    return (np.asarray(rewards, np.float64) * weights).sum(-1)


@dataclass
class Teacher:
    """A simulated teacher over segment pairs (see the module docstring for the formulas)."""

    beta: float = math.inf
    """Rationality: inf always prefers the higher return; a finite value samples from Bradley-Terry."""
    myopia: float = 1.0
    """Discount on earlier steps within a segment (1: none)."""
    mistake: float = 0.0
    """Probability that an answer is flipped."""
    equal: float = 0.0
    """Ties below this fraction of the mean absolute segment return (0: never a tie)."""

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"teacher beta must be > 0, got {self.beta}")
        if not 0 < self.myopia <= 1:
            raise ValueError(f"teacher myopia must be in (0, 1], got {self.myopia}")
        if not 0 <= self.mistake < 0.5:
            raise ValueError(f"teacher mistake must be in [0, 0.5), got {self.mistake}")
        if self.equal < 0:
            raise ValueError(f"teacher equal must be >= 0, got {self.equal}")

    def label(self, rewards_a: np.ndarray, rewards_b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Labels (P,) for segment pairs with per-step true rewards (P, H) each."""
        ret_a, ret_b = myopic_returns(rewards_a, self.myopia), myopic_returns(rewards_b, self.myopia)
        diff = ret_a - ret_b
        if math.isinf(self.beta):
            labels = (diff > 0).astype(np.float64) + 0.5 * (diff == 0)
        else:
            p_a = 1.0 / (1.0 + np.exp(-np.clip(self.beta * diff, -60, 60)))
            labels = (rng.random(len(diff)) < p_a).astype(np.float64)
        flip = rng.random(len(diff)) < self.mistake
        labels = np.where(flip, 1.0 - labels, labels)
        if self.equal > 0:
            scale = np.mean((np.abs(ret_a) + np.abs(ret_b)) / 2)
            labels = np.where(np.abs(diff) < self.equal * scale, 0.5, labels)
        return labels
