"""Inter-annotator agreement: Krippendorff's α (nominal) and leave-one-out agreement with the majority.

Pure functions over `annotations`: a list of `(unit, annotator, label)` triples, where a unit is one
comparison (a pair of responses of a task) and a label is a hashable value ("first", "second",
"tie", "both_bad"). Units with fewer than two labels carry no agreement information and are ignored.

    krippendorff_alpha_nominal(annotations)   1 = perfect, 0 = chance, < 0 = systematic disagreement
    loo_majority_agreement(annotations)       (overall, per annotator): how often a held-out label
                                              matches the mode of the other labels on the same unit,
                                              as AlpacaFarm reports human agreement

Run the hand-derived checks: `pytest tests/feedback/test_agreement.py`.
Left out: interval/ordinal α, bootstrap confidence intervals, Cohen's/Fleiss' κ.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable

Annotation = tuple[Hashable, Hashable, Hashable]  # (unit, annotator, label)


def group_by_unit(annotations: Iterable[Annotation]) -> dict[Hashable, list[tuple[Hashable, Hashable]]]:
    """unit -> [(annotator, label), ...] for the units that at least two annotators labelled."""
    units: dict[Hashable, list[tuple[Hashable, Hashable]]] = defaultdict(list)
    for unit, annotator, label in annotations:
        units[unit].append((annotator, label))
    return {u: v for u, v in units.items() if len(v) >= 2}


def krippendorff_alpha_nominal(annotations: Iterable[Annotation]) -> float | None:
    """α = 1 − D_o / D_e with the nominal distance; None when it is undefined (no variation at all).

    Coincidences: o_ck = Σ_u (number of ordered pairs of labels (c, k) from different annotators in
    unit u) / (m_u − 1); n_c = Σ_k o_ck; n = Σ_c n_c. Then
        α = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c · n_k         (Krippendorff 2011, eq. for nominal data)
    """
    units = group_by_unit(annotations)
    coincidence: Counter = Counter()
    for labelled in units.values():
        m = len(labelled)
        counts = Counter(label for _, label in labelled)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                coincidence[c, k] += pairs / (m - 1)
    totals: Counter = Counter()
    for (c, _k), value in coincidence.items():
        totals[c] += value
    n = sum(totals.values())
    observed = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n <= 1 or expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def loo_majority_agreement(annotations: Iterable[Annotation]) -> tuple[float | None, dict[Hashable, float]]:
    """Mean agreement of each label with the mode of the *other* labels on its unit.

    When the other labels have several modes, a label that is one of m modes scores 1/m (the chance
    that a random tie-break agrees), so a split 1-1 among the others counts one half.
    Returns (over all labels, {annotator: over that annotator's labels}).
    """
    scores: list[float] = []
    per_annotator: dict[Hashable, list[float]] = defaultdict(list)
    for labelled in group_by_unit(annotations).values():
        for i, (annotator, label) in enumerate(labelled):
            others = Counter(lab for j, (_, lab) in enumerate(labelled) if j != i)
            top = max(others.values())
            modes = [lab for lab, count in others.items() if count == top]
            score = 1.0 / len(modes) if label in modes else 0.0
            scores.append(score)
            per_annotator[annotator].append(score)
    overall = sum(scores) / len(scores) if scores else None
    return overall, {a: sum(s) / len(s) for a, s in per_annotator.items()}


def disagreement(labels: list[Hashable]) -> float:
    """1 − (share of the most common label): 0 when everyone agrees, 0.5 for a 1-1 split."""
    if not labels:
        return 0.0
    return 1.0 - max(Counter(labels).values()) / len(labels)
