"""Aggregating several annotators' labels of one comparison: majority vote and Dawid–Skene.

Input: `votes`, a list of `(unit, annotator, label)` with labels "first", "second", "tie",
"both_bad" (a unit is one pair of responses; "first" means its first response is better).
Output per unit: an `Aggregate` — the winning label, a soft label `p_first` = P(first is better |
first or second is better), and the votes behind it.

    majority(votes, tie_policy="drop")   most common label; an even first/second split follows the
                                         tie policy: "drop" (no label) or "random" (a seeded coin)
    dawid_skene(votes)                   EM over per-annotator confusion matrices (Dawid & Skene 1979):
                                         annotators who agree with the consensus get more weight,
                                         ones who answer at random get almost none

Dawid–Skene is written here (about 40 lines of EM) rather than taken from crowd-kit, which would pull
pandas and scikit-learn into the web app's dependencies for one function.
Left out: GLAD / MACE, per-item difficulty, priors on the confusion matrices beyond add-ε smoothing.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

PREFERENCES = ("first", "second")
TIE_POLICIES = ("drop", "random")

Vote = tuple[Hashable, Hashable, str]  # (unit, annotator, label)


@dataclass
class Aggregate:
    label: str | None  # "first" | "second" | "tie" | "both_bad" | None (dropped by the tie policy)
    p_first: float  # soft label: P(first better) among first/second; 0.5 when there is no information
    votes: Counter = field(default_factory=Counter)


def _by_unit(votes: Iterable[Vote]) -> dict[Hashable, list[tuple[Hashable, str]]]:
    units: dict[Hashable, list[tuple[Hashable, str]]] = defaultdict(list)
    for unit, annotator, label in votes:
        units[unit].append((annotator, label))
    return units


def majority(votes: Iterable[Vote], tie_policy: str = "drop", seed: int = 0) -> dict[Hashable, Aggregate]:
    """Plurality label per unit. Ties between "first" and "second" follow `tie_policy`;
    any other tie at the top (e.g. first vs tie) gives no label under either policy."""
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie policy {tie_policy!r} is not one of {', '.join(TIE_POLICIES)}")
    rng = random.Random(seed)
    out = {}
    for unit, labelled in _by_unit(votes).items():
        counts = Counter(label for _, label in labelled)
        top = max(counts.values())
        leaders = sorted(label for label, c in counts.items() if c == top)
        pref = counts["first"] + counts["second"]
        p_first = counts["first"] / pref if pref else 0.5
        if len(leaders) == 1:
            label = leaders[0]
        elif leaders == sorted(PREFERENCES) and tie_policy == "random":
            label = rng.choice(PREFERENCES)
        else:
            label = None
        out[unit] = Aggregate(label, p_first, counts)
    return out


@dataclass
class DawidSkene:
    posteriors: dict[Hashable, dict[str, float]]  # unit -> class -> probability
    confusion: dict[Hashable, dict[str, dict[str, float]]]  # annotator -> true class -> label -> prob
    priors: dict[str, float]
    iterations: int


def dawid_skene(votes: Iterable[Vote], max_iter: int = 100, tol: float = 1e-6, smoothing: float = 0.01) -> DawidSkene:
    """EM for the Dawid–Skene model, initialised from the majority's vote shares.

    # M step: prior_c = mean_u T[u, c];  confusion[a][c][l] ∝ ε + Σ_u T[u, c] · [a labelled u as l]
    # E step: T[u, c] ∝ prior_c · Π_{(a, l) on u} confusion[a][c][l]
    """
    units = _by_unit(votes)
    classes = sorted({label for labelled in units.values() for _, label in labelled})
    annotators = sorted({a for labelled in units.values() for a, _ in labelled}, key=str)
    # 0) initialise each unit's class distribution with its vote shares
    posterior = {}
    for unit, labelled in units.items():
        counts = Counter(label for _, label in labelled)
        posterior[unit] = {c: counts[c] / len(labelled) for c in classes}
    iteration = 0
    priors: dict[str, float] = {}
    confusion: dict[Hashable, dict[str, dict[str, float]]] = {}
    while iteration < max_iter:
        iteration += 1
        # 1) M step: class priors and each annotator's confusion matrix
        priors = {c: sum(p[c] for p in posterior.values()) / len(posterior) for c in classes}
        counts = {a: {c: dict.fromkeys(classes, smoothing) for c in classes} for a in annotators}
        for unit, labelled in units.items():
            for annotator, label in labelled:
                for c in classes:
                    counts[annotator][c][label] += posterior[unit][c]
        confusion = {a: {c: {lab: v / sum(row.values()) for lab, v in row.items()} for c, row in rows.items()}
                     for a, rows in counts.items()}
        # 2) E step: posterior over the true class of each unit, in log space
        change = 0.0
        for unit, labelled in units.items():
            logp = {c: math.log(max(priors[c], 1e-300)) + sum(math.log(confusion[a][c][lab]) for a, lab in labelled)
                    for c in classes}
            top = max(logp.values())
            norm = sum(math.exp(v - top) for v in logp.values())
            new = {c: math.exp(v - top) / norm for c, v in logp.items()}
            change = max(change, max(abs(new[c] - posterior[unit][c]) for c in classes))
            posterior[unit] = new
        if change < tol:
            break
    return DawidSkene(posterior, confusion, priors, iteration)


def dawid_skene_aggregate(votes: Iterable[Vote], tie_policy: str = "drop", seed: int = 0) -> dict[Hashable, Aggregate]:
    """Dawid–Skene posteriors as `Aggregate`s: the most probable class; an exact first/second tie
    follows the tie policy like `majority`."""
    votes = list(votes)
    model = dawid_skene(votes)
    rng = random.Random(seed)
    out = {}
    for unit, labelled in _by_unit(votes).items():
        post = model.posteriors[unit]
        pref = post.get("first", 0.0) + post.get("second", 0.0)
        p_first = post.get("first", 0.0) / pref if pref > 0 else 0.5
        best = max(post.values())
        leaders = sorted(c for c, p in post.items() if math.isclose(p, best, rel_tol=1e-9))
        if len(leaders) == 1:
            label = leaders[0]
        elif leaders == sorted(PREFERENCES) and tie_policy == "random":
            label = rng.choice(PREFERENCES)
        else:
            label = None
        out[unit] = Aggregate(label, p_first, Counter(label for _, label in labelled))
    return out


METHODS = {"majority": majority, "dawid-skene": dawid_skene_aggregate}
