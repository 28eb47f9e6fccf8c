"""rlhfkit.math.bayes: the Laplace posterior of a linear Bradley-Terry model, against values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlhfkit.math.bayes import (
    bt_laplace,
    bt_objective,
    fisher_batch,
    influence,
    noisy_fisher,
    posterior_heads,
)


def test_one_comparison_in_one_dimension():
    """d = 1, y = +1, prior precision 1: L(w) = softplus(-w) + w^2 / 2, so L'(w) = -sigma(-w) + w = 0, i.e.
    w* = sigma(-w*) = 1 / (1 + e^w*). Iterating w <- 1 / (1 + e^w) from 0.5 gives w* = 0.401058.
    At w*, p = sigma(w*) = 1 - sigma(-w*) = 1 - w*, so A = p (1 - p) + 1 = w* (1 - w*) + 1 = 1.240211."""
    w, hessian = bt_laplace(torch.tensor([[1.0]]), torch.tensor([1.0]), prior_precision=1.0)
    assert w.item() == pytest.approx(0.401058, abs=1e-6)
    assert hessian.item() == pytest.approx(1.240211, abs=1e-6)


def test_opposite_answers_cancel():
    """The same d = 1 answered +1 and -1: L(w) = softplus(-w) + softplus(w) + 0.25 w^2 is even, so w* = 0;
    there p = 1/2 and A = 2 * (1/2)(1/2) + 0.5 = 1."""
    w, hessian = bt_laplace(torch.tensor([[1.0], [1.0]]), torch.tensor([1.0, -1.0]), prior_precision=0.5)
    assert w.item() == pytest.approx(0.0, abs=1e-9)
    assert hessian.item() == pytest.approx(1.0)


def test_orthogonal_comparisons_are_separate_problems():
    """d1 = (1, 0) with y = +1 and d2 = (0, 2) with y = -1, prior precision 1: the first coordinate is the
    one-dimensional problem above (0.401058). The second minimises softplus(2 w) + w^2 / 2:
    2 sigma(2 w) + w = 0, so u = -w solves u = 2 sigma(-2 u), u = 0.521298 (by iteration). There
    p = sigma(-2u) = 0.260649 and A_22 = 4 p (1 - p) + 1 = 1.770845. The Hessian has no cross term (A_12 = 0)."""
    w, hessian = bt_laplace(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([1.0, -1.0]), prior_precision=1.0)
    assert w.tolist() == pytest.approx([0.401058, -0.521298], abs=1e-6)
    assert hessian.flatten().tolist() == pytest.approx([1.240211, 0.0, 0.0, 1.770845], abs=1e-6)


def test_warm_start_reaches_the_same_minimum_and_it_is_a_minimum():
    """From any start the strictly convex L has one minimiser; nudging w* in any direction raises L."""
    g = torch.Generator().manual_seed(0)
    diffs, labels = torch.randn(40, 3, generator=g), torch.randint(0, 2, (40,), generator=g).double() * 2 - 1
    w, _ = bt_laplace(diffs, labels, prior_precision=0.3)
    again, _ = bt_laplace(diffs, labels, prior_precision=0.3, init=torch.tensor([5.0, -5.0, 5.0]))
    assert again.tolist() == pytest.approx(w.tolist(), abs=1e-7)
    best = bt_objective(w, diffs.double(), labels, 0.3)
    for e in torch.eye(3, dtype=torch.float64):
        assert bt_objective(w + 1e-3 * e, diffs.double(), labels, 0.3) > best
        assert bt_objective(w - 1e-3 * e, diffs.double(), labels, 0.3) > best


def test_posterior_heads_have_the_laplace_mean_and_covariance():
    """A = [[2, 1], [1, 2]]: A^-1 = [[2, -1], [-1, 2]] / 3. 40,000 draws: their mean is w and their
    covariance A^-1, each within sampling error (std of a covariance entry about 0.01 here)."""
    w, hessian = torch.tensor([1.0, -2.0]), torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    heads = posterior_heads(w, hessian, 40_000, torch.Generator().manual_seed(0))
    assert heads.shape == (40_000, 2)
    assert heads.mean(0).tolist() == pytest.approx([1.0, -2.0], abs=0.02)
    assert torch.cov(heads.T).flatten().tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, 2 / 3], abs=0.03)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="prior_precision must be > 0"):
        bt_laplace(torch.ones(2, 1), torch.ones(2), prior_precision=0.0)
    with pytest.raises(ValueError, match=r"diffs must be \(N, C\)"):
        bt_laplace(torch.ones(2, 1), torch.ones(3), prior_precision=1.0)


def test_noisy_fisher_by_hand():
    """f(m) = ((1 - eta) s (1 - s))^2 / (q (1 - q)), s = sigma(m), q = eta/2 + (1 - eta) s.
    m = 0, eta = 0: s (1 - s) = 1/4. m = 0, eta = 0.1: (0.9 / 4)^2 / (1/4) = 0.050625 * 4 = 0.2025.
    m = ln 3, eta = 0.1: s = 3/4, s (1 - s) = 0.1875, (0.16875)^2 = 0.028477; q = 0.725, q (1 - q) = 0.199375;
    f = 0.142829. A noisy answer carries less information, most of all far from m = 0."""
    f = noisy_fisher(torch.tensor([0.0, 0.0, math.log(3)]), 0.0)
    assert f.tolist() == pytest.approx([0.25, 0.25, 0.1875])
    assert noisy_fisher(torch.tensor([0.0, math.log(3)]), 0.1).tolist() == pytest.approx([0.2025, 0.142829], abs=1e-6)
    with pytest.raises(ValueError, match="noise"):
        noisy_fisher(torch.tensor([0.0]), 1.0)


def test_fisher_batch_does_not_ask_the_same_question_twice():
    """A = I in 2-D; d0 = d1 = (2, 0), d2 = (0, 1.5), f = 1 each. Gains 1 + d^T A^-1 d: 5, 5, 3.25, so d0
    first. Then A = diag(5, 1): d1's gain falls to 1 + 4/5 = 1.8, d2's stays 3.25: the batch of 2 is [0, 2],
    where the top two gains alone would be [0, 1]. With d2 in d0's group and one per group, it is [0, 1].
    With f = (1, 1, 0.1), d2's gain is 1 + 0.1 * 2.25 = 1.225 < 1.8: [0, 1]. Excluding d0: [1, 2]."""
    diffs = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.5]])
    ones, eye = torch.ones(3), torch.eye(2)
    assert fisher_batch(diffs, ones, eye, 2) == [0, 2]
    assert fisher_batch(diffs, ones, eye, 2, groups=["a", "b", "a"], max_per_group=1) == [0, 1]
    assert fisher_batch(diffs, torch.tensor([1.0, 1.0, 0.1]), eye, 2) == [0, 1]
    assert fisher_batch(diffs, ones, eye, 2, exclude=[0]) == [1, 2]
    assert fisher_batch(diffs, ones, eye, 5) == [0, 2, 1]  # every comparison once, then it stops
    with pytest.raises(ValueError, match="precision"):
        fisher_batch(diffs, ones, torch.eye(3), 1)


def test_influence_by_hand():
    """w = (ln 3, 0), A = diag(2, 4), G = (-1, -2): A^-1 G = (-0.5, -0.5). The change of the target loss
    from comparison k is a_k sigma(-a_k m_k) d_k . A^-1 G, the score minus that:
    - d = (1, 0), a = +1: m = ln 3, sigma(-ln 3) = 1/4, d . A^-1 G = -0.5: change -0.125, score 0.125;
    - d = (1, 0), a = -1: sigma(ln 3) = 3/4: change 0.375, score -0.375 (a surprising answer pulls w back);
    - d = (0, 1), a = +1: m = 0, sigma = 1/2: change -0.25, score 0.25;
    - d = (1, 1), a = +1: m = ln 3, 1/4 times -1: score 0.25.
    Averaged over the model's own answer (+1 with sigma(m) = 3/4 for the first row), the change is
    3/4 * -0.125 + 1/4 * 0.375 = 0."""
    diffs = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    scores = influence(diffs, torch.tensor([1.0, -1.0, 1.0, 1.0]), torch.tensor([math.log(3), 0.0]),
                       torch.diag(torch.tensor([2.0, 4.0])), torch.tensor([-1.0, -2.0]))
    assert torch.allclose(scores, torch.tensor([0.125, -0.375, 0.25, 0.25], dtype=torch.float64))
    assert abs(0.75 * -scores[0] + 0.25 * -scores[1]) < 1e-7  # ln 3 is a float32 here
    with pytest.raises(ValueError, match="target_grad"):
        influence(diffs, torch.ones(4), torch.zeros(2), torch.eye(2), torch.zeros(3))
