"""The synthetic teacher (B-Pref's imperfections) and pair selection: expected values derived by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlhfkit.control.selection import disagreement, select_pairs
from rlhfkit.control.teacher import Teacher, myopic_returns


def test_myopic_returns_weigh_the_last_steps_most():
    """rewards (1, 2, 3), myopia 0.5: weights 0.5^2, 0.5^1, 0.5^0 = 0.25, 0.5, 1 -> 0.25 + 1 + 3 = 4.25;
    myopia 1 is the plain sum 6."""
    rewards = np.array([[1.0, 2.0, 3.0]])
    assert myopic_returns(rewards, 0.5) == pytest.approx([4.25])
    assert myopic_returns(rewards, 1.0) == pytest.approx([6.0])


def test_the_oracle_prefers_the_higher_return_and_ties_only_on_equal_returns():
    """Sums: a = (3, 0, 5), b = (1, 2, 5) -> labels 1 (a better), 0 (b better), 0.5 (equal)."""
    a = np.array([[1.0, 2.0], [0.0, 0.0], [2.0, 3.0]])
    b = np.array([[0.5, 0.5], [1.0, 1.0], [4.0, 1.0]])
    labels = Teacher().label(a, b, np.random.default_rng(0))
    assert labels.tolist() == [1.0, 0.0, 0.5]


def test_a_myopic_teacher_can_reverse_a_preference():
    """a = (10, 0), b = (0, 6): plain sums 10 > 6 -> a; myopia 0.5: a = 0.5*10 = 5 < b = 6 -> b."""
    a, b = np.array([[10.0, 0.0]]), np.array([[0.0, 6.0]])
    assert Teacher().label(a, b, np.random.default_rng(0)).tolist() == [1.0]
    assert Teacher(myopia=0.5).label(a, b, np.random.default_rng(0)).tolist() == [0.0]


def test_equal_preference_threshold():
    """Returns a = (10, 10), b = (9, 0): mean of (|a| + |b|)/2 over pairs = (9.5 + 5) / 2 = 7.25; with
    equal = 0.2 the threshold is 1.45: the gap 1 is a tie, the gap 10 is not."""
    a, b = np.array([[10.0], [10.0]]), np.array([[9.0], [0.0]])
    assert Teacher(equal=0.2).label(a, b, np.random.default_rng(0)).tolist() == [0.5, 1.0]


def test_a_stochastic_teacher_follows_bradley_terry_and_mistakes_flip():
    """beta = 1, return gap ln 3: P(a > b) = sigmoid(ln 3) = 3/4; with mistake 0.1 the share of 1s is
    0.75 * 0.9 + 0.25 * 0.1 = 0.7. 40,000 draws: std of the share ~ 0.0023, the tolerance 0.01 is 4 sigma."""
    n = 40_000
    a, b = np.full((n, 1), math.log(3)), np.zeros((n, 1))
    assert Teacher(beta=1.0).label(a, b, np.random.default_rng(1)).mean() == pytest.approx(0.75, abs=0.01)
    assert Teacher(beta=1.0, mistake=0.1).label(a, b, np.random.default_rng(2)).mean() == pytest.approx(0.7, abs=0.01)


@pytest.mark.parametrize("bad", [dict(beta=0.0), dict(myopia=0.0), dict(myopia=1.5), dict(mistake=0.5),
                                 dict(equal=-1.0)])
def test_teacher_refuses_settings_out_of_range(bad):
    with pytest.raises(ValueError):
        Teacher(**bad)


def test_disagreement_is_the_std_over_members():
    """Pair 0: members say 0.2 and 0.8 -> mean 0.5, std sqrt(((0.3)^2 + (0.3)^2) / 2) = 0.3;
    pair 1: 0.6 and 0.6 -> 0."""
    probs = np.array([[0.2, 0.6], [0.8, 0.6]])
    assert disagreement(probs) == pytest.approx([0.3, 0.0])


def test_select_pairs_takes_the_most_disputed_first_and_random_is_a_sample():
    """Std per pair (members 0.5/0.5, 0.1/0.9, 0.3/0.7, 0.45/0.55): 0, 0.4, 0.2, 0.05 -> order 1, 2, 3."""
    probs = np.array([[0.5, 0.1, 0.3, 0.45], [0.5, 0.9, 0.7, 0.55]])
    rng = np.random.default_rng(0)
    assert select_pairs(probs, 3, "disagreement", rng).tolist() == [1, 2, 3]
    sample = select_pairs(probs, 4, "random", rng)
    assert sorted(sample.tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown selection"):
        select_pairs(probs, 1, "entropy", rng)
    with pytest.raises(ValueError, match="cannot select 5 of 4"):
        select_pairs(probs, 5, "random", rng)
