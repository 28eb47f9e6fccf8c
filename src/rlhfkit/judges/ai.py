"""AI judges behind one interface: a prompt, 2..K responses and a principle in; a probability for each
response (a soft label) and, where the backend can write one, a short rationale out.

    judge = load_judge("runs/judge")                       # a local transformers chat model (judges.local)
    judge = load_judge("http://127.0.0.1:8000/v1", model="my-model")   # an OpenAI-compatible server (judges.http)
    verdicts = judge.judge_many([Query(prompt, [a, b], principle)])
    verdicts[0].probabilities, verdicts[0].order_disagreement

How every backend asks (`judge_messages`): one user message holding the principle's comparison
question, the prompt and the responses labelled A, B, ..., and asking for one letter. Each query is
asked twice, with the responses in the given order and reversed, and the two answers are averaged,
so a judge's preference for a position cancels; `order_disagreement` is 1 when the two orders pick
different responses (the judge's own inconsistency), else 0.

This module is torch-free and imports nothing of the built-in task: a judge sees only the text a
person would see.

A second way to ask, for judges trained to grade (the embedded judge, `grade_messages`): each response
is shown alone under the principle's question and graded 1-6; the grades become probabilities
(`grades_verdict`). It needs one pass per response, like the two orders of a pair.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Protocol

from rlhfkit.errors import RlhfkitError
from rlhfkit.judges.constitution import Principle

LABELS = string.ascii_uppercase
MAX_RESPONSES = 8
#: The grading scale of `grade_messages`, worst to best: one digit each.
GRADES = "123456"


class JudgeError(RlhfkitError):
    """A judge could not answer: its server is down or timed out, or it answered something that is not a choice."""


@dataclass(frozen=True)
class Query:
    """One comparison to judge."""

    prompt: str
    responses: tuple[str, ...] | list[str]
    principle: Principle


@dataclass
class Verdict:
    """A judge's answer to one `Query`, in the query's order of responses."""

    probabilities: list[float]  # one per response, summing to 1
    rationale: str = ""
    order_disagreement: float = 0.0  # 1: the two presentation orders picked different responses

    @property
    def choice(self) -> int:
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.choice]


class Judge(Protocol):
    name: str

    def judge_many(self, queries: list[Query]) -> list[Verdict]: ...


def check_query(query: Query) -> None:
    k = len(query.responses)
    if not 2 <= k <= MAX_RESPONSES:
        raise ValueError(f"a judge compares 2 to {MAX_RESPONSES} responses, got {k}")


def judge_messages(query: Query, order: list[int]) -> list[dict[str, str]]:
    """The chat messages asking for a choice among `query.responses` shown in `order`."""
    shown = "\n".join(f"[{LABELS[i]}] {' '.join(query.responses[j].split())}" for i, j in enumerate(order))
    letters = ", ".join(LABELS[: len(order)])
    content = (f"{query.principle.compare}\n[Prompt] {' '.join(query.prompt.split())}\n{shown}\n"
               f"Reply with one letter: {letters}.")
    return [{"role": "user", "content": content}]


def grade_messages(query: Query, index: int) -> list[dict[str, str]]:
    """The chat messages asking for a grade of `query.responses[index]` alone, on the principle's question."""
    content = (f"[Prompt] {' '.join(query.prompt.split())}\n[A] {' '.join(query.responses[index].split())}\n"
               f"{query.principle.compare}\n"
               f"How well does [A] fit that question, from 1 (not at all) to {GRADES[-1]} (fully)? Reply with one digit.")
    return [{"role": "user", "content": content}]


def grades_verdict(expected: list[float], temperature: float) -> Verdict:
    """A verdict from each response's expected grade g_i: probabilities softmax(g / temperature), so for
    two responses P(first) = sigmoid((g_1 - g_2) / temperature) (Bradley-Terry with the grades as scores).
    Grading sees one response at a time, so there is no presentation order to disagree."""
    top = max(expected)
    weights = [math.exp((g - top) / temperature) for g in expected]
    total = sum(weights)
    return Verdict([w / total for w in weights])


def presentation_orders(k: int) -> list[list[int]]:
    """The two orders every query is asked in: as given, and reversed."""
    return [list(range(k)), list(reversed(range(k)))]


def combine_orders(per_order: list[list[float]], orders: list[list[int]], rationale: str = "") -> Verdict:
    """Average the label probabilities of each presentation order, mapped back to the query's order.

    `per_order[o][i]` is the probability of label i (the response shown i-th) in order `orders[o]`.
    """
    k = len(orders[0])
    total = [0.0] * k
    picks = []
    for probs, order in zip(per_order, orders):
        norm = sum(probs) or 1.0
        for shown, response in enumerate(order):
            total[response] += probs[shown] / norm / len(orders)
        picks.append(order[max(range(k), key=probs.__getitem__)])
    return Verdict(total, rationale, float(len(set(picks)) > 1))


def load_judge(spec: str, **options) -> Judge:
    """A judge from `spec`: an http(s):// URL of an OpenAI-compatible server (judges.http), else a
    local chat-model checkpoint (judges.local). `options` go to the backend's constructor."""
    if spec.startswith(("http://", "https://")):
        from rlhfkit.judges.http import HttpJudge

        return HttpJudge(spec, **options)
    from rlhfkit.judges.local import LocalJudge

    return LocalJudge(spec, **options)
