"""Query-selection strategies (rlhfkit.math.selection), each against values derived by hand."""

from __future__ import annotations

import math

import pytest

from rlhfkit.math.selection import (
    answer_probabilities,
    bald,
    candidate_tuples,
    disagreement,
    ensemble_probabilities,
    select,
    softmax,
    strategy_scores,
    uncertainty,
)

LN3 = math.log(3)
H_QUARTER = math.log(4) - 0.75 * LN3  # entropy of (3/4, 1/4): 0.75 ln(4/3) + 0.25 ln 4 = ln 4 - 0.75 ln 3


def test_disagreement_of_a_pair_is_the_std_of_the_reward_gap():
    """Heads give gaps 1 - 0 = 1 and 3 - 0 = 3: mean 2, population std sqrt((1 + 1) / 2) = 1.
    One head, or heads that agree on the gap (even at different offsets), disagree by 0."""
    assert disagreement([[1.0, 0.0], [3.0, 0.0]]) == pytest.approx(1.0)
    assert disagreement([[5.0, 2.0]]) == 0.0
    assert disagreement([[1.0, 0.0], [11.0, 10.0]]) == pytest.approx(0.0)


def test_disagreement_of_a_triple_is_the_mean_over_its_pairs():
    """Heads [0, 0, 0] and [1, 0, 0]: pair (0,1) gaps 0 and 1, std 0.5; pair (0,2) the same, 0.5;
    pair (1,2) gaps 0 and 0, std 0. Mean (0.5 + 0.5 + 0) / 3 = 1/3."""
    assert disagreement([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]) == pytest.approx(1 / 3)


def test_uncertainty_is_one_at_a_half_and_the_normalised_binary_entropy_elsewhere():
    """r = [ln 3, 0]: p = (3/4, 1/4), H = ln 4 - 0.75 ln 3 = 0.5623 nats, / ln 2 = 0.8113.
    Equal rewards: p = 1/2, H = ln 2, score 1. A gap of 20: p ~ 1, score ~ 0."""
    assert uncertainty([[LN3, 0.0]]) == pytest.approx(H_QUARTER / math.log(2))
    assert uncertainty([[LN3, 0.0]]) == pytest.approx(0.811278, abs=1e-6)
    assert uncertainty([[2.0, 2.0]]) == pytest.approx(1.0)
    assert uncertainty([[20.0, 0.0]]) < 1e-6
    assert uncertainty([[0.0, 0.0, 0.0]]) == pytest.approx(1.0)  # K = 3: H = ln 3, / ln 3


def test_uncertainty_uses_the_ensembles_mean_probability():
    """Heads [ln 3, 0] and [0, ln 3] predict (3/4, 1/4) and (1/4, 3/4); their mean is (1/2, 1/2): score 1."""
    assert ensemble_probabilities([[LN3, 0.0], [0.0, LN3]]) == pytest.approx([0.5, 0.5])
    assert uncertainty([[LN3, 0.0], [0.0, LN3]]) == pytest.approx(1.0)


def test_bald_separates_disagreement_from_a_coin_flip():
    """Heads [ln 3, 0] and [0, ln 3]: H(mean) = H(1/2, 1/2) = ln 2; each head's entropy is
    H(3/4, 1/4) = 0.5623; BALD = ln 2 - 0.5623 = 0.1308 nats. Heads that agree on a coin flip ([0, 0]
    twice) are as uncertain (score 1) but the answer teaches them nothing: BALD 0; so do agreeing heads."""
    assert bald([[LN3, 0.0], [0.0, LN3]]) == pytest.approx(math.log(2) - H_QUARTER)
    assert bald([[LN3, 0.0], [0.0, LN3]]) == pytest.approx(0.130812, abs=1e-6)
    assert bald([[0.0, 0.0], [0.0, 0.0]]) == 0.0
    assert bald([[LN3, 0.0], [LN3, 0.0]]) == pytest.approx(0.0, abs=1e-12)
    assert bald([[LN3, 0.0]]) == pytest.approx(0.0, abs=1e-12)  # one head: no disagreement to resolve


def test_bald_of_a_triple():
    """Heads [ln 2, 0, 0] -> (1/2, 1/4, 1/4) and [0, ln 2, 0] -> (1/4, 1/2, 1/4); the mean is
    (3/8, 3/8, 1/4). H(mean) = 2 (3/8) ln(8/3) + (1/4) ln 4; each head's H = (1/2) ln 2 + 2 (1/4) ln 4 = 1.5 ln 2.
    BALD = 0.75 ln(8/3) + 0.25 ln 4 - 1.5 ln 2 = 0.75 ln(8/3) - ln 2 = 0.042475."""
    ln2 = math.log(2)
    assert bald([[ln2, 0.0, 0.0], [0.0, ln2, 0.0]]) == pytest.approx(0.75 * math.log(8 / 3) - ln2)
    assert bald([[ln2, 0.0, 0.0], [0.0, ln2, 0.0]]) == pytest.approx(0.042475, abs=1e-6)


def test_softmax_does_not_overflow():
    assert softmax([1000.0, 0.0]) == pytest.approx([1.0, 0.0])
    assert softmax([LN3, 0.0]) == pytest.approx([0.75, 0.25])


def test_select_takes_the_highest_scores_and_keeps_the_per_group_cap():
    """Scores [0.1, 0.9, 0.5, 0.9]: order 1, 3 (tie with 1: earlier index first), 2, 0; budget 3 -> [1, 3, 2].
    Groups a, a, b, a with at most 1 per group: 1 (a), 3 skipped (a full), 2 (b), 0 skipped -> [1, 2]."""
    scores = [0.1, 0.9, 0.5, 0.9]
    assert select(scores, 3) == [1, 3, 2]
    assert select(scores, 3, groups=["a", "a", "b", "a"], max_per_group=1) == [1, 2]
    assert select(scores, 3, groups=["a", "a", "b", "a"], max_per_group=2) == [1, 3, 2]
    assert select(scores, 10) == [1, 3, 2, 0]
    assert select(scores, 0) == []
    with pytest.raises(ValueError, match="group keys"):
        select(scores, 1, groups=["a"], max_per_group=1)


def test_random_scores_are_seeded_uniform_draws():
    candidates = [[[0.0, 1.0]]] * 200
    first, again, other = (strategy_scores("random", candidates, seed=s) for s in (3, 3, 4))
    assert first == again and first != other
    assert all(0.0 <= s < 1.0 for s in first) and 0.4 < sum(first) / len(first) < 0.6


def test_strategy_scores_dispatch_and_errors():
    candidates = [[[LN3, 0.0], [0.0, LN3]], [[0.0, 0.0], [0.0, 0.0]]]
    assert strategy_scores("bald", candidates) == pytest.approx([math.log(2) - H_QUARTER, 0.0])
    assert strategy_scores("uncertainty", candidates) == pytest.approx([1.0, 1.0])
    assert strategy_scores("disagreement", candidates) == pytest.approx([LN3, 0.0])
    with pytest.raises(ValueError, match="unknown selection strategy 'entropy'"):
        strategy_scores("entropy", candidates)
    with pytest.raises(ValueError, match="one row per head"):
        disagreement([[1.0, 0.0], [1.0]])
    with pytest.raises(ValueError, match="K >= 2"):
        uncertainty([[1.0]])


def test_candidate_tuples_are_the_k_subsets():
    """4 responses: C(4, 2) = 6 pairs, C(4, 3) = 4 triples."""
    assert candidate_tuples(4, 2) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert len(candidate_tuples(4, 3)) == 4


def test_noise_turns_each_heads_prediction_into_the_annotators_answer():
    """An annotator who answers at random with probability noise says j with q_j = (1 - noise) p_j + noise / K.
    Pair, noise 0.1, r = [ln 3, 0]: p = (3/4, 1/4), q = (0.725, 0.275); uncertainty H(0.725) / ln 2 =
    (0.725 ln(1/0.725) + 0.275 ln(1/0.275)) / ln 2 = 0.848548. Triple, noise 0.3, r = [ln 2, 0, 0]:
    p = (1/2, 1/4, 1/4), q = 0.7 p + 0.1 = (0.45, 0.275, 0.275). Noise 0 is the plain softmax."""
    assert answer_probabilities([LN3, 0.0], 0.1) == pytest.approx([0.725, 0.275])
    assert answer_probabilities([math.log(2), 0.0, 0.0], 0.3) == pytest.approx([0.45, 0.275, 0.275])
    assert answer_probabilities([LN3, 0.0]) == pytest.approx([0.75, 0.25])
    assert uncertainty([[LN3, 0.0]], noise=0.1) == pytest.approx(0.848548, abs=1e-6)
    with pytest.raises(ValueError, match="noise"):
        answer_probabilities([0.0, 0.0], 1.5)


def test_bald_under_noise_gives_confident_disagreement_less_weight():
    """Heads [ln 9, 0] and [0, ln 9]: p = (0.9, 0.1) and (0.1, 0.9). Noise 0: BALD = ln 2 - H(0.9) =
    0.693147 - 0.325083 = 0.368064. Noise 0.1: q = 0.05 + 0.9 p = (0.86, 0.14) and (0.14, 0.86), mean 1/2;
    BALD = ln 2 - H(0.86) = 0.693147 - (0.86 ln(1/0.86) + 0.14 ln(1/0.14)) = 0.693147 - 0.404963 = 0.288184:
    a noisy answer can tell the heads apart less well. Heads that agree still score 0 under noise."""
    heads = [[math.log(9), 0.0], [0.0, math.log(9)]]
    assert bald(heads) == pytest.approx(0.368064, abs=1e-6)
    assert bald(heads, noise=0.1) == pytest.approx(0.288184, abs=1e-6)
    assert bald([[1.0, 0.0], [1.0, 0.0]], noise=0.1) == pytest.approx(0.0, abs=1e-12)
    assert strategy_scores("bald", [heads], noise=0.1) == pytest.approx([0.288184], abs=1e-6)
    assert strategy_scores("disagreement", [heads], noise=0.1) == pytest.approx([math.log(9)])
