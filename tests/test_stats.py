"""rlhfkit.math.stats, checked against values derived by hand."""

from __future__ import annotations

import math

import pytest

from rlhfkit.math.ops import best_of_n_kl
from rlhfkit.math.stats import best_of_n_on_samples, calibration_bins, expected_calibration_error, win_rate


def test_best_of_n_on_two_samples_by_hand():
    """Rewards [1, 2], n = 2: the better sample is kept unless both draws are the worse one,
    P = 1 - (1/2)^2 = 3/4; KL = 1/4 log(2 * 1/4) + 3/4 log(2 * 3/4) = 0.13081."""
    probs, kl = best_of_n_on_samples([1.0, 2.0], 2)
    assert probs == pytest.approx([0.25, 0.75])
    assert kl == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))


def test_best_of_n_ties_and_n_one():
    """n = 1 keeps the empirical distribution (KL 0). Rewards [1, 1]: one level, kept with
    probability 1, shared: [1/2, 1/2], KL log(2 * 1 / 2) = 0. Rewards [0, 1, 1], n = 2: the top level
    (2 of 3 samples) is kept with 1 - (1/3)^2 = 8/9, each of its samples 4/9; KL =
    1/9 log(3 * 1/9) + 8/9 log(3 * (8/9) / 2)."""
    probs, kl = best_of_n_on_samples([3.0, 1.0, 2.0], 1)
    assert probs == pytest.approx([1 / 3] * 3) and kl == pytest.approx(0.0)
    probs, kl = best_of_n_on_samples([1.0, 1.0], 5)
    assert probs == pytest.approx([0.5, 0.5]) and kl == pytest.approx(0.0)
    probs, kl = best_of_n_on_samples([0.0, 1.0, 1.0], 2)
    assert probs == pytest.approx([1 / 9, 4 / 9, 4 / 9])
    assert kl == pytest.approx(1 / 9 * math.log(1 / 3) + 8 / 9 * math.log(4 / 3))


def test_best_of_n_approaches_the_analytic_bound_with_many_distinct_samples():
    """With m distinct rewards the discrete KL tends to log n - (n-1)/n from below."""
    _, kl = best_of_n_on_samples([float(i) for i in range(4000)], 4)
    assert kl == pytest.approx(best_of_n_kl(4), abs=2e-3) and kl <= best_of_n_kl(4) + 1e-9
    with pytest.raises(ValueError):
        best_of_n_on_samples([], 2)


def test_calibration_bins_and_ece_by_hand():
    """p = 0.9 (right, confidence .9), p = 0.2 (predicts rejected with confidence .8: wrong, since
    p <= .5 means it favours the rejected side and is counted wrong), p = 0.6 (right, .6). Bins of
    width .05: .6, .8, .9 each alone; ECE = (|1 - .6| + |0 - .8| + |1 - .9|) / 3 = 1.3 / 3."""
    bins = calibration_bins([0.9, 0.2, 0.6])
    assert [b["n"] for b in bins] == [1, 1, 1]
    assert [round(b["confidence"], 6) for b in bins] == [0.6, 0.8, 0.9]
    assert [b["accuracy"] for b in bins] == [1.0, 0.0, 1.0]
    assert expected_calibration_error([0.9, 0.2, 0.6]) == pytest.approx(1.3 / 3)


def test_win_rate_by_hand():
    """Prompt 1: 3 beats [1, 3] -> (1 + 1/2) / 2 = .75; prompt 2: 0 loses to [1] -> 0. Mean .375."""
    result = win_rate([3.0, 0.0], [[1.0, 3.0], [1.0]])
    assert result["win_rate"] == pytest.approx(0.375) and result["comparisons"] == 3 and result["ties"] == 1
