"""Rewards and judges: one spelling for "who scores a response", used by `ppo`, `eval` and best-of-n.

A spec is one source or a weighted sum of sources joined by `+`:

    gold                          the built-in task's rubric (rlhfkit.tasks.assistant.gold_reward)
    runs/rm                       a reward-model folder (normalised with its reward_stats.json)
    mypackage.rewards:brevity     any importable `function(prompt, completion) -> float`
    0.8*runs/rm + 0.2*gold        a weighted sum (weights are plain decimals; a term without one weighs 1)
    runs/rm + -0.01*rlhfkit.judges.reward_spec:word_count     a reward model with a length penalty

A scorer (`Scorer`) takes `(prompts, completions)` lists and returns one float per pair: online RL's
reward, evaluation's judge and proxy, best-of-n's selector and the reward-model probes all take one.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlhfkit.errors import ConfigError
from rlhfkit.models.reward_model import RewardScorer
from rlhfkit.tasks import assistant

Scorer = Callable[[list[Any], list[str]], list[float]]

_WEIGHTED = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE]-?\d+)?)\s*\*\s*(.+?)\s*$")


def word_count(prompt: Any, completion: str) -> float:
    """Words in the completion: with a negative weight, the seeds' first reward-hacking fix (a length penalty)."""
    return float(len(completion.split()))


def parse_reward_spec(spec: str) -> list[tuple[float, str]]:
    """`"0.8*runs/rm + gold"` -> [(0.8, "runs/rm"), (1.0, "gold")].

    Raises:
        ConfigError: an empty spec or term, or a weight that is not a number.
    """
    if not spec or not spec.strip():
        raise ConfigError("the reward spec is empty: give gold, a reward-model folder, or module:function")
    terms = []
    for raw in spec.split("+"):
        if not raw.strip():
            raise ConfigError(f"reward spec {spec!r} has an empty term (two '+' in a row, or a '+' at an end)")
        match = _WEIGHTED.match(raw)
        if match:
            terms.append((float(match.group(1)), match.group(2)))
        elif "*" in raw:
            raise ConfigError(f"reward term {raw.strip()!r} in {spec!r}: the weight before '*' is not a number")
        else:
            terms.append((1.0, raw.strip()))
    return terms


def _load_source(source: str) -> Scorer:
    if source == "gold":
        return lambda prompts, completions: [assistant.gold_reward(p, c) for p, c in zip(prompts, completions)]
    if Path(source).is_dir():
        scorer = RewardScorer(source)
        return lambda prompts, completions: scorer(prompts, completions).tolist()
    module_name, _, func_name = source.partition(":")
    if not func_name:
        raise ConfigError(f"reward {source!r} is not gold, an existing reward-model folder, or module:function")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import reward {source!r}: {exc}") from None
    if not callable(func):
        raise ConfigError(f"reward {source!r} is not callable")
    return lambda prompts, completions: [float(func(p, c)) for p, c in zip(prompts, completions)]


def load_reward(spec: str) -> Scorer:
    """A batch scorer for `spec` (see the module docstring); every source is loaded before it returns."""
    terms = [(weight, _load_source(source)) for weight, source in parse_reward_spec(spec)]
    if len(terms) == 1 and terms[0][0] == 1.0:
        return terms[0][1]

    def weighted(prompts: list[Any], completions: list[str]) -> list[float]:
        total = [0.0] * len(completions)
        for weight, scorer in terms:
            for i, value in enumerate(scorer(prompts, completions)):
                total[i] += weight * value
        return total

    return weighted
