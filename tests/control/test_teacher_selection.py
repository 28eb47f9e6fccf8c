"""The synthetic teacher (B-Pref's imperfections) and segment-pair selection through the project's
query selection: expected values derived by hand."""

from __future__ import annotations

import math
import typing

import numpy as np
import pytest

from rlhfkit.control.loop import ControlConfig
from rlhfkit.control.reward import RewardEnsemble, Segment
from rlhfkit.control.teacher import Teacher, myopic_returns
from rlhfkit.math.selection import STRATEGIES, select, strategy_scores


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


def test_segment_pairs_are_selected_by_the_projects_query_selection():
    """Segment pairs go through rlhfkit.math.selection as (members K, responses 2) summed rewards.
    Pair 0: both members give equal sums -> p = 1/2 each, BALD = H(1/2) - H(1/2) = 0.
    Pair 1: member sums (2, 0) and (0, 2) -> p_1 = sigmoid(2) = 0.8808, p_2 = 0.1192, mean 1/2;
    H(1/2) = ln 2 = 0.6931, H(0.8808) = 0.8808 * 0.1269 + 0.1192 * 2.1269 = 0.3653, BALD = 0.3278.
    Pair 2: both (1, 0): they agree, BALD = 0. So pair 1 is asked first; `disagreement` (std over
    members of the gap: 2 and -2 -> 2; 0 for the others) picks it too."""
    sums = [[[0.0, 0.0], [0.0, 0.0]], [[2.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [1.0, 0.0]]]
    bald = strategy_scores("bald", sums)
    assert bald == pytest.approx([0.0, 0.3278, 0.0], abs=1e-4)
    assert select(bald, 1) == [1]
    assert strategy_scores("disagreement", sums) == pytest.approx([0.0, 2.0, 0.0])


def test_the_reward_ensembles_pair_sums_are_its_bradley_terry_logits():
    """`pair_sums` (P, K, 2) are each member's summed rewards of the two segments: their difference's
    sigmoid is `pair_probs` (K, P), and the config offers exactly math.selection's strategies."""
    rng = np.random.default_rng(0)
    seg = [Segment(rng.normal(size=(5, 3)).astype(np.float32), rng.uniform(-2, 2, (5, 1)).astype(np.float32),
                   np.zeros(5, np.float32)) for _ in range(4)]
    model = RewardEnsemble(3, 1, np.array([-2.0]), np.array([2.0]), members=3)
    sums = model.pair_sums(seg[:2], seg[2:])
    assert sums.shape == (2, 3, 2)
    raw = model.member_rewards(model.inputs(seg[0].obs, seg[0].actions)).sum(-1).detach().numpy()  # (K,)
    assert sums[0, :, 0] == pytest.approx(raw, rel=1e-5)
    assert model.pair_probs(seg[:2], seg[2:]) == pytest.approx(1 / (1 + np.exp(sums[..., 1] - sums[..., 0])).T)
    assert set(typing.get_args(typing.get_type_hints(ControlConfig)["selection"])) == set(STRATEGIES)
