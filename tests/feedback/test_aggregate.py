"""Majority vote with its tie policy, and Dawid–Skene on a hand-made case where they differ.

    pytest tests/feedback/test_aggregate.py
"""

import pytest

from rlhfkit.feedback.aggregate import dawid_skene, dawid_skene_aggregate, majority


def test_majority_plurality_and_soft_label():
    """3 first vs 1 second: label first, p_first = 3/4 (tie votes do not enter the soft label)."""
    votes = [("u", "w1", "first"), ("u", "w2", "first"), ("u", "w3", "first"), ("u", "w4", "second"),
             ("u", "w5", "tie"), ("v", "w1", "tie"), ("v", "w2", "tie"), ("v", "w3", "second")]
    out = majority(votes)
    assert out["u"].label == "first" and out["u"].p_first == pytest.approx(0.75)
    assert out["v"].label == "tie" and out["v"].p_first == 0.0


def test_majority_tie_policy():
    """An even first/second split is dropped, or settled by a seeded coin; first-vs-tie is always dropped."""
    split = [(u, w, lab) for u in range(20) for w, lab in (("w1", "first"), ("w2", "second"))]
    dropped = majority(split, tie_policy="drop")
    assert all(a.label is None and a.p_first == 0.5 for a in dropped.values())
    coin = majority(split, tie_policy="random", seed=1)
    labels = [coin[u].label for u in range(20)]
    assert set(labels) == {"first", "second"}
    assert labels == [majority(split, tie_policy="random", seed=1)[u].label for u in range(20)]
    mixed = majority([("u", "w1", "first"), ("u", "w2", "tie")], tie_policy="random")
    assert mixed["u"].label is None
    with pytest.raises(ValueError, match="tie policy"):
        majority(split, tie_policy="coin")


def test_dawid_skene_ignores_spammers():
    """Ten pairs whose true labels alternate first/second. w1 and w2 are always right; w3, w4, w5
    always answer "first" whatever they see. Majority (3 against 2) says first everywhere, wrong on
    the five "second" pairs. Dawid–Skene learns that the spammers' "first" carries no information
    (P(first | true first) = P(first | true second) = 1) and follows w1, w2 on every pair:
    after the first EM step the second-pairs already have T(second) ≈ 0.64 (see the module docstring
    of aggregate.py for the update), and further steps push it to ≈ 1."""
    truth = ["first" if i % 2 == 0 else "second" for i in range(10)]
    votes = []
    for i, t in enumerate(truth):
        votes += [(i, "w1", t), (i, "w2", t), (i, "w3", "first"), (i, "w4", "first"), (i, "w5", "first")]
    assert [majority(votes)[i].label for i in range(10)] == ["first"] * 10
    agg = dawid_skene_aggregate(votes)
    assert [agg[i].label for i in range(10)] == truth
    assert all(agg[i].p_first < 0.01 for i in range(1, 10, 2))
    model = dawid_skene(votes)
    assert model.confusion["w3"]["second"]["first"] > 0.95  # says first when the truth is second
    assert model.confusion["w1"]["second"]["second"] > 0.95
    assert model.priors["first"] == pytest.approx(0.5, abs=0.01)


def test_dawid_skene_unanimous_and_single_vote():
    """Unanimous votes give a confident posterior; a single annotator's vote is taken as is."""
    votes = [("u", "w1", "second"), ("u", "w2", "second"), ("v", "w1", "first"), ("v", "w2", "first"),
             ("s", "w3", "first")]
    agg = dawid_skene_aggregate(votes)
    assert agg["u"].label == "second" and agg["u"].p_first < 0.05
    assert agg["v"].label == "first" and agg["s"].label == "first"
