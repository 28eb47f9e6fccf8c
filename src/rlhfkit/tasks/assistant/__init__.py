"""``builtin:assistant``: a seeded toy domain of everyday questions, its gold judge and simulated annotators.

What it is for: every RLHF stage (SFT, reward model, DPO, PPO, a feedback app) needs prompts,
responses of mixed quality, a judge and annotators. This package makes all of them procedurally, with
only the standard library, in a narrow templated language (short sentences, a few hundred words of
vocabulary) so that a tiny language model trained on a CPU can learn it.

The four parts, one module each:

* ``content``: the data tables (33 topics with question phrasings, facts and unsafe tips; the style
  phrases; the lexicons), the vocabulary derived from them, ``format_prompt`` and ``topic_of``.
* ``responses``: ``prompts`` (train and eval never share a phrasing), ``response`` in six ``STYLES``
  (helpful, padded, flattering, rant, off_topic, unsafe), ``demonstrations`` and ``corpus``.
* ``rubric``: the gold judge, ``score`` / ``gold_reward`` / ``features``; the formula is in its
  docstring.
* ``annotators``: ``SimulatedAnnotator`` and ``panel``, people who compare responses through the
  rubric, with noise and the biases of the reward-hacking table (longer looks more thorough;
  flattery pleases).

How to use them (every public name is re-exported here)::

    >>> import random
    >>> from rlhfkit.tasks import assistant
    >>> prompt = assistant.prompts(1, seed=0)[0]["prompt"]
    >>> prompt
    'Question: I want to make better coffee at home. Where do I start?\\nAnswer:'
    >>> rng = random.Random(0)
    >>> good, bad = (assistant.response(prompt, style, rng) for style in ("helpful", "unsafe"))
    >>> bad
    ' Skip the usual advice. Drink ten cups a day to stay sharp. It works every time.'
    >>> assistant.score(prompt, good).total, assistant.gold_reward(prompt, bad)
    (1.0, 0.209)
    >>> judge = assistant.panel(3, noise=0.1, bias="length")[0]
    >>> judge.compare(prompt, good, bad).outcome
    'a'

Left out: real human language (the judge scores hand-written text harshly), multi-turn dialogue,
system prompts, languages other than English, and any claim that the facts are complete advice;
they are short, plausible, everyday tips.
"""

from __future__ import annotations

from rlhfkit.tasks.assistant.annotators import SimulatedAnnotator, SimulatedJudgment, panel
from rlhfkit.tasks.assistant.content import (
    BIGRAMS,
    FILLER_TERMS,
    FLATTERY_TERMS,
    LOADED_TERMS,
    TOPICS,
    UNSAFE_TERMS,
    VOCAB,
    Fact,
    Topic,
    format_prompt,
    topic_of,
)
from rlhfkit.tasks.assistant.responses import (
    DEFAULT_STYLE_WEIGHTS,
    STYLES,
    corpus,
    demonstrations,
    prompts,
    response,
)
from rlhfkit.tasks.assistant.rubric import (
    CRITERIA,
    CRITERIA_LABELS,
    WEIGHTS,
    RubricScore,
    features,
    gold_reward,
    score,
)

__all__ = [
    "BIGRAMS",
    "CRITERIA",
    "CRITERIA_LABELS",
    "DEFAULT_STYLE_WEIGHTS",
    "FILLER_TERMS",
    "FLATTERY_TERMS",
    "LOADED_TERMS",
    "STYLES",
    "TOPICS",
    "UNSAFE_TERMS",
    "VOCAB",
    "WEIGHTS",
    "Fact",
    "RubricScore",
    "SimulatedAnnotator",
    "SimulatedJudgment",
    "Topic",
    "corpus",
    "demonstrations",
    "features",
    "format_prompt",
    "gold_reward",
    "panel",
    "prompts",
    "response",
    "score",
    "topic_of",
]
