"""Which segment pairs to ask about: the ones a reward-model ensemble disagrees on, or pairs at random.

    probs = ensemble P(a > b) per member, (K, P)
    chosen = select_pairs(probs, k, "disagreement", rng)   # indices into the P candidate pairs

Disagreement is the standard deviation over ensemble members of ``P_k(a > b) = sigmoid(R_k^a - R_k^b)``
(Christiano et al., 2017, used the variance of the members' predictions; B-Pref's "disagreement"
sampling is the same). Pure numpy. The active-learning work has its own selectors for text pairs;
this one is for segment pairs, and the two can be merged into one module later.
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("disagreement", "random")


def disagreement(member_probs: np.ndarray) -> np.ndarray:
    """(P,) std over members (axis 0) of each pair's predicted P(a > b); (K, P) in."""
    member_probs = np.asarray(member_probs, np.float64)
    if member_probs.ndim != 2:
        raise ValueError(f"member_probs must be (K members, P pairs), got shape {member_probs.shape}")
    return member_probs.std(axis=0)


def select_pairs(member_probs: np.ndarray, k: int, strategy: str, rng: np.random.Generator) -> np.ndarray:
    """Indices of the `k` candidate pairs to query, best first: the highest disagreement (ties broken
    at random), or a uniform sample without replacement."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {strategy!r}; expected one of {STRATEGIES}")
    n = np.asarray(member_probs).shape[-1]
    if not 0 <= k <= n:
        raise ValueError(f"cannot select {k} of {n} candidate pairs")
    if strategy == "random":
        return rng.choice(n, size=k, replace=False)
    scores = disagreement(member_probs)
    jitter = rng.permutation(n)  # lexsort: the last key is primary; equal scores fall back to a random order
    return np.lexsort((jitter, -scores))[:k]
