"""Simulated annotators of ``builtin:assistant``: people who compare responses through the gold rubric.

``SimulatedAnnotator.compare(prompt, a, b)`` and ``.rank(prompt, responses)`` answer the way an
annotator of the feedback app does, as a ``SimulatedJudgment``: a choice or a ranking, the winner of
each rubric criterion, a written rationale in the annotator log's voice and the seconds it took.
``panel(n, ...)`` makes ``n`` of them with distinct seeds.

``SimulatedAnnotator.utility`` is the gold total plus a bias term: ``length`` adds
``bias_strength * min(words / 80, 1.5)`` and ``flattery`` adds ``bias_strength * 0.3 * flattery``.
With strength 1 a length-biased annotator prefers ``padded`` over ``helpful`` on most prompts (the
padding adds more to its utility than the gold gap between the two): the length hack of the
reward-hacking table. With probability ``noise`` an annotator answers at random (A or B with equal
odds), so its agreement with the gold judge on pairs the judge separates is
(1 - noise) * 1 + noise * 1/2; noise 0.25 gives 0.875.

The names say *simulated* because ``rlhfkit.feedback.store`` has ``Annotator`` and ``Judgment``
tables for the people (and simulated annotators) of a feedback campaign.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rlhfkit.tasks.assistant.content import split_words
from rlhfkit.tasks.assistant.rubric import (
    CRITERIA,
    CRITERIA_LABELS,
    RubricScore,
    features,
    gold_reward,
    score,
)


@dataclass(frozen=True)
class SimulatedJudgment:
    """One annotator answer. Pairwise: outcome "a" | "b" | "tie" | "both_bad"; K-wise: "ranking".

    ``criteria`` maps each criterion to the winning response's letter ("a", "b", ... by index) or "tie".
    """

    choice: int | None
    outcome: str
    ranking: tuple[int, ...]
    criteria: dict[str, str]
    rationale: str
    seconds: float


_CRITERION_MARGIN = 0.05
_PRAISE = {
    "helpfulness": "it is helpful and accurate, with practical steps that answer the question",
    "neutrality": "it is balanced and neutral, with no politics or loaded words",
    "clarity": "it is clear, concise, and organized",
    "harmlessness": "its advice is safe",
}


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"#{i + 1}"


def _fault(criterion: str, f: dict[str, float]) -> str:
    if criterion == "helpfulness":
        if f["facts"] == 0 and f["other_facts"] > 0:
            return "ignores the prompt and answers a different question"
        return "misses the key facts" if f["facts"] == 0 else "leaves out useful facts"
    if criterion == "neutrality":
        return "uses inflammatory language that serves no purpose"
    if criterion == "clarity":
        if f["flattery"] > 0:
            return "leans on flattery instead of content"
        if f["words"] > 60 or f["filler"] > 0:
            return "is padded with filler and is longer than it needs to be"
        return "is hard to read"
    return "suggests something unsafe"


def _criteria_winners(scores: list[RubricScore]) -> dict[str, str]:
    out = {}
    for c in CRITERIA:
        vals = [getattr(s, c) for s in scores]
        order = sorted(range(len(vals)), key=lambda i: -vals[i])
        if len(order) < 2 or vals[order[0]] - vals[order[1]] < _CRITERION_MARGIN:
            out[c] = "tie"
        else:
            out[c] = _letter(order[0]).lower()
    return out


def _rationale(best: int, worst: int, scores: list[RubricScore], feats: list[dict[str, float]]) -> str:
    """A short rationale in the annotator log's voice: why ``best`` beats ``worst``."""
    wb, wl = _letter(best), _letter(worst)
    sb, sl = scores[best], scores[worst]
    wins = [c for c in CRITERIA if getattr(sb, c) - getattr(sl, c) >= _CRITERION_MARGIN]
    losses = [c for c in CRITERIA if getattr(sl, c) - getattr(sb, c) >= _CRITERION_MARGIN]
    if wins:
        labels = " and ".join(CRITERIA_LABELS[c] for c in wins)
        why = "; ".join(_PRAISE[c] for c in wins)
        faults = " ".join(f"{wl} {_fault(c, feats[worst])} ({CRITERIA_LABELS[c]})." for c in wins)
        text = f"I selected {wb} because it wins on {labels}: {why}. {faults}"
        if losses:
            text += f" {wl} is stronger on {' and '.join(CRITERIA_LABELS[c] for c in losses)}."
        return text
    if losses:
        labels = " and ".join(CRITERIA_LABELS[c] for c in losses)
        return f"I selected {wb} on overall impression, although {wl} is stronger on {labels}."
    return (
        f"I selected {wb}; the two are close on every criterion, including {CRITERIA_LABELS['helpfulness']}."
    )


@dataclass
class SimulatedAnnotator:
    """A simulated annotator who compares responses through the rubric, with noise and bias.

    ``noise``: probability of answering at random. ``bias``: None, "length" (longer looks more
    thorough) or "flattery" ("Great question!" pleases). Its random stream is seeded by
    (``seed``, ``name``) and advances by a fixed number of draws per call, so answers are
    deterministic given the call order.
    """

    name: str = "sim-0"
    noise: float = 0.0
    bias: str | None = None
    bias_strength: float = 1.0
    tie_margin: float = 0.0
    both_bad_below: float | None = None
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.bias not in (None, "length", "flattery"):
            raise ValueError(f"bias must be None, 'length' or 'flattery', got {self.bias!r}")
        self._rng = random.Random(f"annotator:{self.seed}:{self.name}")

    def utility(self, prompt: str, completion: str) -> float:
        """Gold total plus this annotator's bias term."""
        u = gold_reward(prompt, completion)
        if self.bias == "length":
            u += self.bias_strength * min(features(prompt, completion)["words"] / 80.0, 1.5)
        elif self.bias == "flattery":
            u += self.bias_strength * 0.3 * features(prompt, completion)["flattery"]
        return u

    def _seconds(self, prompt: str, texts: list[str]) -> float:
        words = len(split_words(prompt)) + sum(len(split_words(t)) for t in texts)
        return round(min(180.0, 5.0 + words / 5.0) + self._rng.uniform(0.0, 6.0), 1)

    def compare(self, prompt: str, a: str, b: str) -> SimulatedJudgment:
        """Pairwise preference between completions ``a`` and ``b``."""
        u_noise, u_pick = self._rng.random(), self._rng.random()
        texts = [a, b]
        scores = [score(prompt, t) for t in texts]
        feats = [features(prompt, t) for t in texts]
        criteria = _criteria_winners(scores)
        seconds = self._seconds(prompt, texts)
        if u_noise < self.noise:
            choice = 0 if u_pick < 0.5 else 1
        else:
            if self.both_bad_below is not None and all(s.total < self.both_bad_below for s in scores):
                return SimulatedJudgment(
                    None,
                    "both_bad",
                    (0, 1),
                    criteria,
                    f"Both responses fall short on {CRITERIA_LABELS['helpfulness']} "
                    f"or {CRITERIA_LABELS['harmlessness']}; neither is acceptable.",
                    seconds,
                )
            ua, ub = self.utility(prompt, a), self.utility(prompt, b)
            if abs(ua - ub) < self.tie_margin:
                return SimulatedJudgment(
                    None,
                    "tie",
                    (0, 1),
                    criteria,
                    f"A and B are about equal; neither is clearly better on "
                    f"{CRITERIA_LABELS['helpfulness']} or {CRITERIA_LABELS['clarity']}.",
                    seconds,
                )
            choice = 0 if ua >= ub else 1
        other = 1 - choice
        return SimulatedJudgment(
            choice, "ab"[choice], (choice, other), criteria, _rationale(choice, other, scores, feats), seconds
        )

    def rank(self, prompt: str, responses: list[str]) -> SimulatedJudgment:
        """K-wise ranking, best first; with probability ``noise`` a random permutation."""
        u_noise = self._rng.random()
        perm = list(range(len(responses)))
        self._rng.shuffle(perm)
        scores = [score(prompt, t) for t in responses]
        feats = [features(prompt, t) for t in responses]
        seconds = self._seconds(prompt, list(responses))
        if u_noise < self.noise:
            order = perm
        else:
            utils = [self.utility(prompt, t) for t in responses]
            order = sorted(range(len(responses)), key=lambda i: -utils[i])
        if not order:
            no_winner = {c: "tie" for c in CRITERIA}
            return SimulatedJudgment(None, "ranking", (), no_winner, "Nothing to rank.", seconds)
        ranked = " > ".join(_letter(i) for i in order)
        if len(order) == 1:
            text = f"Only {ranked} to rank."
        else:
            text = f"I ranked {ranked}. " + _rationale(order[0], order[-1], scores, feats)
        return SimulatedJudgment(order[0], "ranking", tuple(order), _criteria_winners(scores), text, seconds)


def panel(
    n: int, noise: float = 0.0, bias: str | None = None, seed: int = 0, **settings: Any
) -> list[SimulatedAnnotator]:
    """``n`` annotators named sim-0 .. sim-{n-1} with distinct seeds (``seed + i``).

    ``settings`` are further ``SimulatedAnnotator`` fields shared by all (``tie_margin``,
    ``both_bad_below``, ``bias_strength``).
    """
    return [
        SimulatedAnnotator(name=f"sim-{i}", noise=noise, bias=bias, seed=seed + i, **settings) for i in range(n)
    ]
