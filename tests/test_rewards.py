"""Reward specs: parsing, weighted sums computed by hand, and clear errors for bad specs."""

from __future__ import annotations

import math

import pytest

from rlhfkit.errors import ConfigError
from rlhfkit.judges.reward_spec import load_reward, parse_reward_spec, word_count
from rlhfkit.tasks.assistant import gold_reward


def test_parse_reward_spec():
    assert parse_reward_spec("gold") == [(1.0, "gold")]
    assert parse_reward_spec(" 0.8*runs/rm + gold ") == [(0.8, "runs/rm"), (1.0, "gold")]
    assert parse_reward_spec("gold + -0.01 * rlhfkit.judges.reward_spec:word_count") == [
        (1.0, "gold"), (-0.01, "rlhfkit.judges.reward_spec:word_count")]
    assert parse_reward_spec("2e-3*gold") == [(0.002, "gold")]


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ("gold + ", "empty term"),
    ("gold ++ gold", "empty term"),
    ("half*gold", "not a number"),
    ("nosuchmodule_xyz:f", "cannot import"),
    ("rlhfkit.judges.reward_spec:nothing_here", "cannot import"),
    ("runs/does-not-exist", "not gold, an existing reward-model folder"),
])
def test_bad_reward_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_reward(spec)


def test_weighted_sum_by_hand():
    """Prompt/answer pair from the built-in task: with g = gold_reward(p, c) and w = 5 words,
    '0.5*gold + -0.1*rlhfkit.judges.reward_spec:word_count' must give 0.5 g - 0.5."""
    prompt = "How do I keep houseplants alive?"
    completion = "Water them when dry. Sunlight."
    g = gold_reward(prompt, completion)
    assert word_count(prompt, completion) == 5.0
    scorer = load_reward("0.5*gold + -0.1*rlhfkit.judges.reward_spec:word_count")
    [value] = scorer([prompt], [completion])
    assert math.isclose(value, 0.5 * g - 0.5, abs_tol=1e-12)
    assert load_reward("gold")([prompt], [completion]) == [g]
