"""Tests for rlhfkit.math.losses: every expected value is derived by hand in the test's docstring."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from rlhfkit.math.losses import (
    DPO_LOSS_TYPES,
    bradley_terry_loss,
    dpo_loss,
    margin_ranking_loss,
    noisy_bradley_terry_loss,
    online_rl_loss,
    plackett_luce_loss,
    ppo_policy_loss,
    ppo_value_loss,
)

LN2 = math.log(2.0)
LN3 = math.log(3.0)
LN4_3 = math.log(4.0 / 3.0)


def f64(data) -> torch.Tensor:
    return torch.tensor(data, dtype=torch.float64)


# --------------------------------------------------------------------------- Bradley–Terry


def test_bradley_terry_by_hand():
    """Pair 0: r_c - r_r = 0 -> -log sigmoid(0) = ln 2.

    Pair 1: r_c - r_r = ln 3 -> sigmoid(ln 3) = 3/(3+1) = 3/4 -> -log(3/4) = ln(4/3).
    """
    chosen = f64([2.0, LN3])
    rejected = f64([2.0, 0.0])
    assert_close(bradley_terry_loss(chosen, rejected), f64([LN2, LN4_3]))


def test_bradley_terry_margin_float_and_tensor():
    """r_c - r_r = ln 3 + 1 with margin 1 leaves ln 3 -> ln(4/3); with margin ln 3 + 1 -> ln 2.

    A per-pair tensor margin [1, ln 3 + 1] gives both at once.
    """
    chosen = f64([LN3 + 1.0, LN3 + 1.0])
    rejected = f64([0.0, 0.0])
    assert_close(bradley_terry_loss(chosen, rejected, margin=1.0), f64([LN4_3, LN4_3]))
    assert_close(bradley_terry_loss(chosen, rejected, margin=f64([1.0, LN3 + 1.0])), f64([LN4_3, LN2]))


def test_bradley_terry_stable_and_gradient():
    """Large gaps: d = -1000 -> loss = 1000 (finite), d = +1000 -> 0.

    Gradient: dL/dr_c = -sigmoid(-d); at d = ln 3 that is -1/(1+3) = -1/4, and dL/dr_r = +1/4.
    """
    assert_close(bradley_terry_loss(f64([0.0, 1000.0]), f64([1000.0, 0.0])), f64([1000.0, 0.0]))
    chosen = f64([LN3]).requires_grad_()
    rejected = f64([0.0]).requires_grad_()
    bradley_terry_loss(chosen, rejected).sum().backward()
    assert_close(chosen.grad, f64([-0.25]))
    assert_close(rejected.grad, f64([0.25]))


def test_noisy_bradley_terry_by_hand():
    """P(answer = chosen) = noise/2 + (1 - noise) sigma(d), noise 0.1:
    d = 0: 0.05 + 0.45 = 1/2, loss ln 2 (any noise); d = ln 3: sigma = 3/4, P = 0.05 + 0.675 = 0.725,
    loss -ln 0.725 = 0.321584; d = +1000: P = 0.95, loss -ln 0.95 = 0.051293; d = -1000: P = 0.05,
    loss -ln 0.05 = 2.995732 (bounded, where plain Bradley-Terry gives 1000). Noise 0 is plain Bradley-Terry.
    Gradient at d = ln 3: -(1 - noise) sigma (1 - sigma) / P = -0.9 * 0.1875 / 0.725 = -0.232759; at
    d = -1000 it is 0 (a flipped answer stops pulling), where plain Bradley-Terry's is -1."""
    chosen = f64([0.0, LN3, 1000.0, -1000.0]).requires_grad_()
    loss = noisy_bradley_terry_loss(chosen, torch.zeros(4, dtype=torch.float64), 0.1)
    assert_close(loss, f64([LN2, 0.321584, 0.051293, 2.995732]), atol=1e-6, rtol=0)
    loss.sum().backward()
    assert_close(chosen.grad, f64([-0.9 * 0.25 / 0.5, -0.232759, 0.0, 0.0]), atol=1e-6, rtol=0)
    assert_close(noisy_bradley_terry_loss(f64([LN3]), f64([0.0]), 0.0), f64([LN4_3]))
    with pytest.raises(ValueError, match="noise"):
        noisy_bradley_terry_loss(f64([0.0]), f64([0.0]), 1.0)


def test_bradley_terry_shape_mismatch():
    """(2,) against (3,) rewards, or a (3,) margin for 2 pairs, raise ValueError."""
    with pytest.raises(ValueError, match="shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(2), margin=torch.zeros(3))


def test_margin_ranking_by_hand():
    """margin 1: gaps [2, 0.5, 0] -> max(0, 1 - gap) = [0, 0.5, 1]; margin 0.25 -> [0, 0, 0.25]."""
    chosen = f64([3.0, 1.0, 0.0])
    rejected = f64([1.0, 0.5, 0.0])
    assert_close(margin_ranking_loss(chosen, rejected), f64([0.0, 0.5, 1.0]))
    assert_close(margin_ranking_loss(chosen, rejected, margin=0.25), f64([0.0, 0.0, 0.25]))
    with pytest.raises(ValueError, match="shape"):
        margin_ranking_loss(torch.zeros(2), torch.zeros(1))


# --------------------------------------------------------------------------- Plackett–Luce


def test_plackett_luce_by_hand():
    """Equal scores, K = 3: any ranking has probability 1/3 * 1/2 * 1 = 1/6 -> loss ln 6.

    Scores log [1, 2, 3], ranking [2, 1, 0]: P = 3/(1+2+3) * 2/(1+2) * 1 = 1/2 * 2/3 = 1/3 -> ln 3.
    Reversed ranking [0, 1, 2]: P = 1/6 * 2/5 * 1 = 1/15 -> ln 15.
    """
    rewards = f64([[0.0, 0.0, 0.0], [0.0, LN2, LN3], [0.0, LN2, LN3]])
    ranking = torch.tensor([[1, 0, 2], [2, 1, 0], [0, 1, 2]])
    assert_close(plackett_luce_loss(rewards, ranking), f64([math.log(6.0), LN3, math.log(15.0)]))


def test_plackett_luce_k2_equals_bradley_terry():
    """With K = 2 the Plackett–Luce NLL is -log e^{r_best} / (e^{r_best} + e^{r_worst}), i.e. BT."""
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(6, 2, generator=g, dtype=torch.float64)
    ranking = torch.tensor([[0, 1], [1, 0], [0, 1], [1, 0], [1, 0], [0, 1]])
    best = rewards.gather(1, ranking[:, :1]).squeeze(1)
    worst = rewards.gather(1, ranking[:, 1:]).squeeze(1)
    assert_close(plackett_luce_loss(rewards, ranking), bradley_terry_loss(best, worst))


def test_plackett_luce_matches_enumeration():
    """For random scores (K = 4) and every one of the 24 rankings, the loss equals
    -log prod_i exp(s_{pi(i)}) / sum_{j>=i} exp(s_{pi(j)}) computed with Python floats, and the
    24 probabilities sum to 1.
    """
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(4, generator=g, dtype=torch.float64)
    perms = list(itertools.permutations(range(4)))
    ranking = torch.tensor(perms)
    losses = plackett_luce_loss(scores.expand(len(perms), 4), ranking)
    s = scores.tolist()
    expected = []
    for perm in perms:
        prob = 1.0
        for i in range(4):
            prob *= math.exp(s[perm[i]]) / sum(math.exp(s[perm[j]]) for j in range(i, 4))
        expected.append(-math.log(prob))
    assert_close(losses, f64(expected))
    assert_close(torch.exp(-losses).sum(), f64(1.0))


def test_plackett_luce_rejects_invalid_input():
    """A ranking with a repeated index, wrong shape, or float dtype raises ValueError."""
    with pytest.raises(ValueError, match="permutation"):
        plackett_luce_loss(torch.zeros(1, 3), torch.tensor([[0, 0, 2]]))
    with pytest.raises(ValueError, match="shape"):
        plackett_luce_loss(torch.zeros(1, 3), torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="integer"):
        plackett_luce_loss(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))


# --------------------------------------------------------------------------- DPO

# beta = 0.5, chosen log-ratio ln 3, rejected log-ratio -ln 3  ->  h = 2 ln 3, beta*h = ln 3.
DPO_INPUTS = dict(
    policy_chosen_logps=f64([-1.0]),
    policy_rejected_logps=f64([-2.0]),
    reference_chosen_logps=f64([-1.0 - LN3]),
    reference_rejected_logps=f64([-2.0 + LN3]),
)


def test_dpo_sigmoid_by_hand():
    """beta h = 0.5 * 2 ln 3 = ln 3, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.

    eps = 0:    loss = -log(3/4) = ln(4/3).
    eps = 0.25: loss = -0.75 log(3/4) - 0.25 log(1/4) = 0.75 ln(4/3) + 0.25 ln 4.
    Implicit rewards: 0.5 * ln 3 (chosen) and 0.5 * (-ln 3) (rejected).
    """
    losses, cr, rr = dpo_loss(**DPO_INPUTS, beta=0.5)
    assert_close(losses, f64([LN4_3]))
    assert_close(cr, f64([0.5 * LN3]))
    assert_close(rr, f64([-0.5 * LN3]))
    losses, _, _ = dpo_loss(**DPO_INPUTS, beta=0.5, label_smoothing=0.25)
    assert_close(losses, f64([0.75 * LN4_3 + 0.25 * math.log(4.0)]))


def test_dpo_sigmoid_gradient_and_detached_rewards():
    """dL/d policy_chosen = -beta * sigmoid(-beta h) = -0.5 * 1/4 = -1/8; rejected gets +1/8.

    The implicit rewards are detached (no grad), even though the policy inputs require grad.
    """
    pc = DPO_INPUTS["policy_chosen_logps"].clone().requires_grad_()
    pr = DPO_INPUTS["policy_rejected_logps"].clone().requires_grad_()
    losses, cr, rr = dpo_loss(
        pc, pr, DPO_INPUTS["reference_chosen_logps"], DPO_INPUTS["reference_rejected_logps"], beta=0.5
    )
    losses.sum().backward()
    assert_close(pc.grad, f64([-0.125]))
    assert_close(pr.grad, f64([0.125]))
    assert not cr.requires_grad and not rr.requires_grad


def test_dpo_sigmoid_equals_bradley_terry_on_log_ratios():
    """DPO (sigmoid, eps=0) is Bradley–Terry on the implicit rewards beta*(log pi - log ref)."""
    g = torch.Generator().manual_seed(2)
    pc, pr, rc, rrf = (torch.randn(5, generator=g, dtype=torch.float64) * 3 for _ in range(4))
    beta = 0.3
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rrf, beta=beta)
    assert_close(losses, bradley_terry_loss(beta * (pc - rc), beta * (pr - rrf)))
    assert_close(losses, bradley_terry_loss(chosen_rewards, rejected_rewards))


def test_dpo_zero_margin_is_ln2():
    """Policy equal to reference: h = 0 -> sigmoid loss -(1-eps) log 1/2 - eps log 1/2 = ln 2 for any eps;
    IPO (0 - 1/(2 beta))^2 = (1/(2*0.1))^2 = 25; hinge max(0, 1 - 0) = 1.
    """
    z = f64([0.0, 0.0])
    for eps in (0.0, 0.1, 0.5):
        assert_close(dpo_loss(z, z, z, z, label_smoothing=eps)[0], f64([LN2, LN2]))
    assert_close(dpo_loss(z, z, z, z, loss_type="ipo")[0], f64([25.0, 25.0]))
    assert_close(dpo_loss(z, z, z, z, loss_type="hinge")[0], f64([1.0, 1.0]))


def test_dpo_ipo_and_hinge_by_hand():
    """Chosen log-ratio 0 - (-1) = 1, rejected log-ratio -1 - 1 = -2, so h = 3.

    IPO, beta 0.5: (3 - 1/(2*0.5))^2 = (3 - 1)^2 = 4;  beta 0.1: (3 - 5)^2 = 4.
    hinge, beta 0.5: max(0, 1 - 1.5) = 0;  beta 0.1: max(0, 1 - 0.3) = 0.7.
    """
    args = (f64([0.0]), f64([-1.0]), f64([-1.0]), f64([1.0]))
    assert_close(dpo_loss(*args, beta=0.5, loss_type="ipo")[0], f64([4.0]))
    assert_close(dpo_loss(*args, beta=0.1, loss_type="ipo")[0], f64([4.0]))
    assert_close(dpo_loss(*args, beta=0.5, loss_type="hinge")[0], f64([0.0]))
    assert_close(dpo_loss(*args, beta=0.1, loss_type="hinge")[0], f64([0.7]))


def test_dpo_robust_by_hand():
    """beta h = ln 3 (so log sigmoid = log 3/4, log sigmoid(-.) = log 1/4), eps = 0.25:

    [-(0.75) log(3/4) + 0.25 log(1/4)] / (1 - 0.5) = 1.5 ln(4/3) - 0.5 ln 4.
    With eps = 0 it reduces to the plain DPO loss ln(4/3).
    """
    losses, _, _ = dpo_loss(**DPO_INPUTS, beta=0.5, loss_type="robust", label_smoothing=0.25)
    assert_close(losses, f64([1.5 * LN4_3 - 0.5 * math.log(4.0)]))
    losses, _, _ = dpo_loss(**DPO_INPUTS, beta=0.5, loss_type="robust")
    assert_close(losses, f64([LN4_3]))


def test_dpo_robust_is_unbiased_under_label_flips():
    """Chowdhury et al.'s property: if labels flip with probability eps, the expected robust loss
    (1 - eps) L(h) + eps L(-h) equals the clean DPO loss -log sigmoid(beta h). Algebra: the
    log sigmoid(beta h) coefficients sum to -(1-eps)^2 + eps^2 = -(1 - 2 eps), the others cancel.
    """
    g = torch.Generator().manual_seed(3)
    pc, pr, rc, rrf = (torch.randn(4, generator=g, dtype=torch.float64) for _ in range(4))
    eps, beta = 0.2, 0.7
    fwd = dpo_loss(pc, pr, rc, rrf, beta=beta, loss_type="robust", label_smoothing=eps)[0]
    flipped = dpo_loss(pr, pc, rrf, rc, beta=beta, loss_type="robust", label_smoothing=eps)[0]
    clean = dpo_loss(pc, pr, rc, rrf, beta=beta, loss_type="sigmoid")[0]
    assert_close((1 - eps) * fwd + eps * flipped, clean)


def test_dpo_rejects_invalid_input():
    """Unknown loss_type, mismatched shapes, beta <= 0, eps >= 0.5 for robust, and label smoothing
    for IPO/hinge all raise ValueError. The loss types are exactly the four documented ones.
    """
    z = torch.zeros(2)
    assert set(DPO_LOSS_TYPES) == {"sigmoid", "ipo", "hinge", "robust"}
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(z, z, z, z, loss_type="kto")
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(z, z, z, torch.zeros(3))
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(z, z, z, z, beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(z, z, z, z, loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(z, z, z, z, loss_type="sigmoid", label_smoothing=-0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(z, z, z, z, loss_type="ipo", label_smoothing=0.1)


# --------------------------------------------------------------------------- PPO policy loss


def _ppo_policy_case():
    """Four real tokens and one padding token (garbage values), clip range 0.2."""
    ratios = [1.5, 0.5, 1.5, 0.5]
    logprobs = f64([[math.log(x) for x in ratios] + [1000.0]]).requires_grad_()
    old = f64([[0.0, 0.0, 0.0, 0.0, 0.0]])
    adv = f64([[1.0, 1.0, -1.0, -1.0, 5.0]])
    mask = f64([[1.0, 1.0, 1.0, 1.0, 0.0]])
    return logprobs, old, adv, mask


def test_ppo_policy_loss_by_hand():
    """eps = 0.2; per token: -A*rho vs -A*clip(rho, 0.8, 1.2), take the max.

    t0: A=+1, rho=1.5: -1.5 vs -1.2 -> -1.2 (clipped taken)
    t1: A=+1, rho=0.5: -0.5 vs -0.8 -> -0.5
    t2: A=-1, rho=1.5: +1.5 vs +1.2 -> +1.5
    t3: A=-1, rho=0.5: +0.5 vs +0.8 -> +0.8 (clipped taken)
    t4: padding (log-ratio 1000 would overflow exp) -> ignored.
    loss = (-1.2 - 0.5 + 1.5 + 0.8) / 4 = 0.15; clip_fraction = 2/4; ratio_mean = 4/4 = 1;
    approx_kl = (2 * (ln 1.5)^2 / 2 + 2 * (ln 0.5)^2 / 2) / 4 = ((ln 1.5)^2 + (ln 2)^2) / 4.
    """
    logprobs, old, adv, mask = _ppo_policy_case()
    loss, stats = ppo_policy_loss(logprobs, old, adv, mask, clip_range=0.2)
    assert_close(loss, f64(0.15))
    assert_close(stats["clip_fraction"], f64(0.5))
    assert_close(stats["ratio_mean"], f64(1.0))
    assert_close(stats["approx_kl"], f64((math.log(1.5) ** 2 + LN2**2) / 4.0))
    assert set(stats) == {"clip_fraction", "approx_kl", "ratio_mean"}
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())


def test_ppo_policy_loss_gradient_zero_on_clipped_tokens():
    """d/d logprob of -A*rho is -A*rho (since d rho / d logprob = rho), divided by the 4 tokens.

    t0, t3 took the clipped (constant) branch -> 0; t1: -(1)(0.5)/4 = -0.125; t2: -(-1)(1.5)/4 = 0.375;
    padding t4 -> 0 (and finite despite its log-ratio of 1000).
    """
    logprobs, old, adv, mask = _ppo_policy_case()
    loss, _ = ppo_policy_loss(logprobs, old, adv, mask, clip_range=0.2)
    loss.backward()
    assert_close(logprobs.grad, f64([[0.0, -0.125, 0.375, 0.0, 0.0]]))


def test_ppo_policy_loss_on_policy_and_empty_mask():
    """rho = 1 everywhere (on-policy): loss = -masked mean(A) = -(2 + 4)/2 = -3, nothing clipped,
    approx_kl 0. An all-zero mask gives loss 0, not NaN.
    """
    lp = f64([[-1.0, -2.0, -3.0]])
    adv = f64([[2.0, 4.0, 100.0]])
    mask = torch.tensor([[True, True, False]])
    loss, stats = ppo_policy_loss(lp, lp, adv, mask, clip_range=0.1)
    assert_close(loss, f64(-3.0))
    assert_close(stats["clip_fraction"], f64(0.0))
    assert_close(stats["approx_kl"], f64(0.0))
    loss, stats = ppo_policy_loss(lp, lp, adv, torch.zeros_like(mask), clip_range=0.1)
    assert_close(loss, f64(0.0))
    assert not any(torch.isnan(v) for v in stats.values())


def test_ppo_policy_loss_errors():
    """Mismatched shapes and a non-positive clip range raise ValueError."""
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        ppo_policy_loss(x, x, torch.zeros(2, 2), x, 0.2)
    with pytest.raises(ValueError, match="clip_range"):
        ppo_policy_loss(x, x, x, x, 0.0)


# --------------------------------------------------------------------------- PPO value loss


def _ppo_value_case():
    values = f64([[1.0, 0.6, 0.0, 1.0, 7.0]]).requires_grad_()
    old = f64([[0.5, 0.6, 0.5, 0.5, 0.0]])
    returns = f64([[1.0, 1.0, 0.0, 0.0, -3.0]])
    mask = f64([[1.0, 1.0, 1.0, 1.0, 0.0]])
    return values, old, returns, mask


def test_ppo_value_loss_by_hand():
    """eps = 0.2, v_clip = clip(v, v_old - 0.2, v_old + 0.2); per token max((v-R)^2, (v_clip-R)^2):

    t0: v=1,   old=.5, R=1: v_clip=.7, errors 0 vs .09   -> .09 (clipped taken)
    t1: v=.6,  old=.6, R=1: v_clip=.6, errors .16 vs .16 -> .16 (tie, not counted as clipped)
    t2: v=0,   old=.5, R=0: v_clip=.3, errors 0 vs .09   -> .09 (clipped taken)
    t3: v=1,   old=.5, R=0: v_clip=.7, errors 1 vs .49   -> 1
    t4: padding.
    loss = 0.5 * (.09 + .16 + .09 + 1) / 4 = 0.5 * 1.34 / 4 = 0.1675;
    value_clip_fraction = 2/4; value_error = (0 + .16 + 0 + 1) / 4 = 0.29.
    """
    values, old, returns, mask = _ppo_value_case()
    loss, stats = ppo_value_loss(values, old, returns, mask, clip_range=0.2)
    assert_close(loss, f64(0.1675))
    assert_close(stats["value_clip_fraction"], f64(0.5))
    assert_close(stats["value_error"], f64(0.29))
    assert set(stats) == {"value_clip_fraction", "value_error"}
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())


def test_ppo_value_loss_gradient():
    """Gradient 0.5/4 * d/dv of the winning term. Clipped winners t0, t2 have v_clip constant in v
    (v - old is outside +-0.2) -> 0. t1: 2(v - R) = -0.8 -> -0.1. t3: 2(1 - 0) = 2 -> 0.25. Padding 0.
    """
    values, old, returns, mask = _ppo_value_case()
    loss, _ = ppo_value_loss(values, old, returns, mask, clip_range=0.2)
    loss.backward()
    assert_close(values.grad, f64([[0.0, -0.1, 0.0, 0.25, 0.0]]))


def test_ppo_value_loss_errors():
    """Mismatched shapes and a non-positive clip range raise ValueError."""
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        ppo_value_loss(x, x, x, torch.zeros(3, 2), 0.2)
    with pytest.raises(ValueError, match="clip_range"):
        ppo_value_loss(x, x, x, x, -1.0)


def test_online_rl_loss_adds_value_and_kl_terms_by_hand():
    """One token, advantage 1, logprob = old logprob (ratio 1, no clipping): policy loss -1.
    Value 1, old value 1, return 3: both errors (1 - 3)^2 = 4, value loss 0.5 * 4 = 2, times vf_coef .5 -> 1.
    KL term: logprob 0, reference log(0.5): k3 = r - 1 - log r with r = exp(ref - logprob) = 0.5,
    i.e. 0.5 - 1 + log 2 = 0.19315; times kl_coef 2 -> 0.38629. Total -1 + 1 + 0.38629."""
    lp, old, adv, mask = torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), torch.ones(1, 1)
    alone, _ = online_rl_loss(lp, old, adv, mask, 0.2)
    torch.testing.assert_close(alone, torch.tensor(-1.0))
    v = torch.ones(1, 1)
    loss, stats = online_rl_loss(lp, old, adv, mask, 0.2, values=v, old_values=v, returns=3 * v, vf_coef=0.5,
                                 ref_logprobs=torch.log(torch.full((1, 1), 0.5)), kl_coef=2.0)
    k3 = 0.5 - 1 + math.log(2)
    torch.testing.assert_close(loss, torch.tensor(-1.0 + 1.0 + 2 * k3))
    torch.testing.assert_close(stats["kl_loss"], torch.tensor(k3))
    torch.testing.assert_close(stats["value_error"], torch.tensor(4.0))
    off, off_stats = online_rl_loss(lp, old, adv, mask, 0.2, ref_logprobs=torch.full((1, 1), -5.0), kl_coef=0.0)
    torch.testing.assert_close(off, torch.tensor(-1.0))
    assert "kl_loss" not in off_stats
    with pytest.raises(ValueError, match="all three"):
        online_rl_loss(lp, old, adv, mask, 0.2, values=v)
