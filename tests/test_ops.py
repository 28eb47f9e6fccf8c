"""Tests for rlhfkit.math.ops: every expected value is derived by hand in the test's docstring."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlhfkit.math.ops import (
    AdaptiveKLController,
    FixedKLController,
    best_of_n_kl,
    categorical_kl,
    entropy_from_logits,
    gae,
    grpo_advantages,
    kl_estimate,
    kl_shaped_rewards,
    last_real_index,
    masked_mean,
    masked_sum,
    masked_var,
    rloo_advantages,
    token_logprobs,
    whiten,
)

LN2 = math.log(2.0)
LN3 = math.log(3.0)


def f64(data) -> torch.Tensor:
    return torch.tensor(data, dtype=torch.float64)


# --------------------------------------------------------------------------- masked reductions

X = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
M = [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_masked_sum_by_hand():
    """Real entries are 1, 2 (row 0) and 4 (row 1).

    total = 1 + 2 + 4 = 7; per row (dim=1): [1+2, 4] = [3, 4]; per column (dim=0): [1+4, 2, 0].
    """
    x, m = f64(X), f64(M)
    assert_close(masked_sum(x, m), f64(7.0))
    assert_close(masked_sum(x, m, dim=1), f64([3.0, 4.0]))
    assert_close(masked_sum(x, m, dim=0), f64([5.0, 2.0, 0.0]))


def test_masked_mean_by_hand():
    """Real entries 1, 2, 4: mean = 7/3. Per row: [(1+2)/2, 4/1] = [1.5, 4].

    Per column: [(1+4)/2, 2/1, 0/max(0,1)] = [2.5, 2, 0] — the empty column gives 0, not NaN.
    """
    x, m = f64(X), f64(M)
    assert_close(masked_mean(x, m), f64(7.0 / 3.0))
    assert_close(masked_mean(x, m, dim=1), f64([1.5, 4.0]))
    assert_close(masked_mean(x, m, dim=0), f64([2.5, 2.0, 0.0]))


def test_masked_mean_bool_mask_equals_float_mask():
    """A bool mask selects the same entries as the 0/1 float mask, so the results match (7/3)."""
    x = f64(X)
    assert_close(masked_mean(x, f64(M).bool()), masked_mean(x, f64(M)))
    assert_close(masked_sum(x, f64(M).bool(), dim=1), f64([3.0, 4.0]))


def test_masked_mean_all_zero_mask_is_zero_not_nan():
    """sum(x*0) / max(sum(0), 1) = 0 / 1 = 0, both globally and per row."""
    x = f64(X)
    zeros = torch.zeros_like(x)
    assert_close(masked_mean(x, zeros), f64(0.0))
    assert_close(masked_mean(x, zeros, dim=1), f64([0.0, 0.0]))


def test_masked_mean_ignores_nan_and_inf_in_padding():
    """Padding holds nan and inf; real entries are 1 and 3, so the mean is (1+3)/2 = 2."""
    x = f64([1.0, float("nan"), 3.0, float("inf")])
    m = f64([1.0, 0.0, 1.0, 0.0])
    assert_close(masked_mean(x, m), f64(2.0))


def test_masked_reductions_shape_mismatch():
    """A (2,3) input with a (2,2) mask is rejected with ValueError."""
    with pytest.raises(ValueError, match="shape"):
        masked_mean(f64(X), torch.ones(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        masked_sum(f64(X), torch.ones(3, dtype=torch.float64))


def test_masked_var_by_hand():
    """Real entries 1, 2, 3 (the 100 is padding). Mean 2; squared deviations 1, 0, 1, sum 2.

    biased = 2/3; unbiased = 2/(3-1) = 1.
    """
    x = f64([1.0, 2.0, 3.0, 100.0])
    m = f64([1.0, 1.0, 1.0, 0.0])
    assert_close(masked_var(x, m, unbiased=False), f64(2.0 / 3.0))
    assert_close(masked_var(x, m, unbiased=True), f64(1.0))


def test_masked_var_degenerate_masks_are_zero():
    """One real element: deviation 0, Bessel denominator clamped max(1-1, 1) = 1 -> 0.

    No real element: 0/1 = 0. Neither is NaN.
    """
    x = f64([5.0, 7.0])
    assert_close(masked_var(x, f64([1.0, 0.0])), f64(0.0))
    assert_close(masked_var(x, f64([0.0, 0.0])), f64(0.0))


def test_masked_var_matches_torch_var_on_selected():
    """Parity: masked_var equals torch.var of the selected elements (unbiased and biased)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, generator=g, dtype=torch.float64)
    m = torch.rand(4, 7, generator=g) > 0.4
    assert_close(masked_var(x, m), x[m].var(unbiased=True))
    assert_close(masked_var(x, m, unbiased=False), x[m].var(unbiased=False))


def test_whiten_by_hand():
    """Real entries 1, 2, 3: mean 2, unbiased var 1, s = sqrt(1 + 1e-8).

    shift_mean=True:  [(1-2)/s, 0, (3-2)/s, 0 (padding)] = [-1/s, 0, 1/s, 0]
    shift_mean=False: [-1/s + 2, 2, 1/s + 2, 0 (padding)]
    """
    x = f64([1.0, 2.0, 3.0, 100.0])
    m = f64([1.0, 1.0, 1.0, 0.0])
    s = math.sqrt(1.0 + 1e-8)
    assert_close(whiten(x, m), f64([-1.0 / s, 0.0, 1.0 / s, 0.0]))
    assert_close(whiten(x, m, shift_mean=False), f64([-1.0 / s + 2.0, 2.0, 1.0 / s + 2.0, 0.0]))


def test_whiten_gives_zero_mean_unit_variance():
    """Property: after whitening, the masked mean is 0 and the unbiased masked variance is ~1."""
    g = torch.Generator().manual_seed(1)
    x = 3.0 + 5.0 * torch.randn(3, 9, generator=g, dtype=torch.float64)
    m = (torch.rand(3, 9, generator=g) > 0.3).double()
    y = whiten(x, m)
    assert_close(masked_mean(y, m), f64(0.0), atol=1e-10, rtol=0)
    assert_close(masked_var(y, m), f64(1.0), atol=1e-6, rtol=0)
    assert torch.all(y[m == 0] == 0)


# --------------------------------------------------------------------------- log-probs / entropy


def test_token_logprobs_by_hand():
    """Position 0: logits [0, 0, 0], label 1 -> log(1/3) = -ln 3.

    Position 1: logits [0, ln 2, ln 3] = log [1, 2, 3], label 2 -> log(3 / (1+2+3)) = -ln 2.
    Position 2: label -100 -> 0 by convention.
    """
    logits = f64([[[0.0, 0.0, 0.0], [0.0, LN2, LN3], [5.0, -1.0, 2.0]]])
    labels = torch.tensor([[1, 2, -100]])
    assert_close(token_logprobs(logits, labels), f64([[-LN3, -LN2, 0.0]]))


def test_token_logprobs_matches_log_softmax_gather_and_grad():
    """Parity with log_softmax(...).gather(...) on random logits, values and gradients."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 5, 11, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (2, 5), generator=g)
    ours = token_logprobs(logits, labels)
    ref = torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert_close(ours, ref)
    (g1,) = torch.autograd.grad(ours.sum(), logits)
    (g2,) = torch.autograd.grad(ref.sum(), logits)
    assert_close(g1, g2)


def test_token_logprobs_low_precision_is_computed_in_float32():
    """bf16 logits of size ~20: the result is float32 and within bf16 *input* rounding of the
    float32 reference computed from the same (rounded) logits, i.e. no extra bf16 output rounding.
    """
    g = torch.Generator().manual_seed(5)
    logits = (20.0 + 3.0 * torch.randn(2, 4, 50, generator=g)).to(torch.bfloat16)
    labels = torch.randint(0, 50, (2, 4), generator=g)
    labels[1, 3] = -100
    out = token_logprobs(logits, labels)
    assert out.dtype == torch.float32
    ref = token_logprobs(logits.float(), labels)
    assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_token_logprobs_rejects_bad_shapes():
    """labels (1, 3) against logits (1, 2, V) is a shape mismatch; float labels are rejected."""
    with pytest.raises(ValueError, match="shape"):
        token_logprobs(torch.zeros(1, 2, 4), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        token_logprobs(torch.zeros(1, 2, 4), torch.zeros(1, 2))


def test_entropy_from_logits_by_hand():
    """Uniform over 4 tokens: H = ln 4.

    logits [0, ln 3, -inf, -inf] -> p = [1/4, 3/4, 0, 0]:
    H = -(1/4 ln 1/4 + 3/4 ln 3/4) = ln 4 - (3/4) ln 3 (the -inf logits have p = 0 and add nothing).
    """
    uniform = f64([[[0.0, 0.0, 0.0, 0.0]]])
    assert_close(entropy_from_logits(uniform), f64([[math.log(4.0)]]))
    two = f64([[[0.0, LN3, float("-inf"), float("-inf")]]])
    assert_close(entropy_from_logits(two), f64([[math.log(4.0) - 0.75 * LN3]]))


def test_entropy_matches_categorical():
    """Parity with torch.distributions.Categorical(logits=...).entropy()."""
    g = torch.Generator().manual_seed(3)
    logits = 4.0 * torch.randn(3, 4, 13, generator=g, dtype=torch.float64)
    ref = torch.distributions.Categorical(logits=logits).entropy()
    assert_close(entropy_from_logits(logits), ref)


# --------------------------------------------------------------------------- KL estimators


def test_kl_estimate_by_hand():
    """log r = ref - logprobs = ln 2 at token 0 and 0 at token 1.

    k1 = -log r = [-ln 2, 0]; k2 = (log r)^2 / 2 = [(ln 2)^2 / 2, 0]; k3 = (r-1) - log r = [1 - ln 2, 0].
    """
    logprobs = f64([[math.log(0.25), -1.0]])
    ref = f64([[math.log(0.5), -1.0]])
    assert_close(kl_estimate(logprobs, ref, "k1"), f64([[-LN2, 0.0]]))
    assert_close(kl_estimate(logprobs, ref, "k2"), f64([[0.5 * LN2**2, 0.0]]))
    assert_close(kl_estimate(logprobs, ref, "k3"), f64([[1.0 - LN2, 0.0]]))
    assert_close(kl_estimate(logprobs, ref), kl_estimate(logprobs, ref, "k1"))


def test_kl_estimators_k1_k3_unbiased_by_enumeration():
    """Policy p = [1/2, 1/4, 1/4], reference q = [1/4, 1/4, 1/2] over three tokens.

    KL(p||q) = 1/2 ln 2 + 1/4 ln 1 + 1/4 ln(1/2) = ln 2 / 4. Taking the exact expectation under p
    (weights p over the three tokens) of k1 and k3 gives exactly that: E[k1] = sum p ln(p/q) = KL,
    E[k3] = sum p (q/p - 1) + KL = (1 - 1) + KL.
    """
    p = f64([0.5, 0.25, 0.25])
    q = f64([0.25, 0.25, 0.5])
    for kind in ("k1", "k3"):
        est = kl_estimate(p.log().unsqueeze(0), q.log().unsqueeze(0), kind)[0]
        assert_close((p * est).sum(), f64(LN2 / 4.0))


def test_kl_estimate_errors():
    """Unknown kind and mismatched shapes raise ValueError."""
    with pytest.raises(ValueError, match="kind"):
        kl_estimate(torch.zeros(1, 2), torch.zeros(1, 2), kind="k4")
    with pytest.raises(ValueError, match="shape"):
        kl_estimate(torch.zeros(1, 2), torch.zeros(1, 3))


# --------------------------------------------------------------------------- GAE


def gae_reference(rewards, values, mask, gamma, lam):
    """Plain Python GAE over the unmasked positions of each row (lists of lists in, lists out)."""
    adv_rows, ret_rows = [], []
    for r, v, m in zip(rewards, values, mask):
        adv = [0.0] * len(r)
        ret = [0.0] * len(r)
        idx = [t for t in range(len(r)) if m[t]]
        next_v, next_a = 0.0, 0.0
        for t in reversed(idx):
            delta = r[t] + gamma * next_v - v[t]
            a = delta + gamma * lam * next_a
            adv[t], ret[t] = a, a + v[t]
            next_v, next_a = v[t], a
        adv_rows.append(adv)
        ret_rows.append(ret)
    return adv_rows, ret_rows


def test_gae_by_hand_full_row():
    """rewards [0, 0, 1], values [.5, .5, .5], gamma 1, lam 0.5, bootstrap 0 after t=2.

    t=2: delta = 1 + 0 - .5 = .5,   A = .5
    t=1: delta = 0 + .5 - .5 = 0,   A = 0 + .5 * .5 = .25
    t=0: delta = 0,                 A = .5 * .25 = .125
    returns = A + V = [.625, .75, 1].
    With lam = 1 GAE is Monte-Carlo: A = (sum of rewards = 1) - V = .5 everywhere, returns 1.
    """
    r = f64([[0.0, 0.0, 1.0]])
    v = f64([[0.5, 0.5, 0.5]])
    m = torch.ones(1, 3)
    adv, ret = gae(r, v, m, gamma=1.0, lam=0.5)
    assert_close(adv, f64([[0.125, 0.25, 0.5]]))
    assert_close(ret, f64([[0.625, 0.75, 1.0]]))
    adv, ret = gae(r, v, m, gamma=1.0, lam=1.0)
    assert_close(adv, f64([[0.5, 0.5, 0.5]]))
    assert_close(ret, f64([[1.0, 1.0, 1.0]]))


def test_gae_by_hand_discounted():
    """rewards [1, 2], values [0, 0], gamma 0.5, lam 1 -> A = discounted return - V.

    t=1: A = 2; t=0: A = 1 + 0.5 * 2 = 2. Returns equal advantages (values are 0).
    """
    adv, ret = gae(f64([[1.0, 2.0]]), f64([[0.0, 0.0]]), torch.ones(1, 2), gamma=0.5, lam=1.0)
    assert_close(adv, f64([[2.0, 2.0]]))
    assert_close(ret, f64([[2.0, 2.0]]))


def test_gae_padding_right_left_and_inside():
    """The two-token episode r = [0, 1], V = [.5, .5] (gamma 1, lam .5) placed three ways; the
    padding slot holds garbage (9).

    Two-token result: t=1: A = 1 - .5 = .5; t=0: delta = 0 + .5 - .5 = 0, A = .5 * .5 = .25;
    returns [.75, 1]. Padding gets advantage 0 and return 0 wherever it sits:
    right [A, A, 0], left [0, A, A], inside [A, 0, A]. A row with no real token is all zeros.
    """
    r = f64([[0.0, 1.0, 9.0], [9.0, 0.0, 1.0], [0.0, 9.0, 1.0], [9.0, 9.0, 9.0]])
    v = f64([[0.5, 0.5, 9.0], [9.0, 0.5, 0.5], [0.5, 9.0, 0.5], [9.0, 9.0, 9.0]])
    m = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    adv, ret = gae(r, v, m, gamma=1.0, lam=0.5)
    assert_close(adv, f64([[0.25, 0.5, 0.0], [0.0, 0.25, 0.5], [0.25, 0.0, 0.5], [0.0, 0.0, 0.0]]))
    assert_close(ret, f64([[0.75, 1.0, 0.0], [0.0, 0.75, 1.0], [0.75, 0.0, 1.0], [0.0, 0.0, 0.0]]))


def test_gae_matches_python_loop():
    """Parity with a plain Python for-loop on random rewards/values and random (holey) masks."""
    g = torch.Generator().manual_seed(4)
    r = torch.randn(6, 10, generator=g, dtype=torch.float64)
    v = torch.randn(6, 10, generator=g, dtype=torch.float64)
    m = (torch.rand(6, 10, generator=g) > 0.3).double()
    m[0] = 1.0  # one fully real row
    m[1, 6:] = 0.0  # right padding
    m[2, :4] = 0.0  # left padding
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.8)
    ref_adv, ref_ret = gae_reference(r.tolist(), v.tolist(), m.tolist(), 0.9, 0.8)
    assert_close(adv, f64(ref_adv))
    assert_close(ret, f64(ref_ret))


def test_gae_outputs_carry_no_gradient_and_validate_shapes():
    """Advantages/returns are targets: no grad even if values require it. Mismatched shapes raise."""
    v = torch.zeros(1, 3, requires_grad=True)
    adv, ret = gae(torch.ones(1, 3), v, torch.ones(1, 3))
    assert not adv.requires_grad and not ret.requires_grad
    with pytest.raises(ValueError, match="shape"):
        gae(torch.ones(1, 3), torch.ones(1, 2), torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        gae(torch.ones(3), torch.ones(3), torch.ones(3))


# --------------------------------------------------------------------------- GRPO / RLOO


def test_grpo_advantages_by_hand():
    """Groups of 3: [1, 2, 3] and [0, 0, 0].

    Group 1: mean 2, unbiased std sqrt((1 + 0 + 1) / 2) = 1 -> [-1, 0, 1] / (1 + eps).
    Group 2: mean 0, std 0 -> 0 / (0 + eps) = 0.
    scale=False: only centering -> [-1, 0, 1, 0, 0, 0].
    """
    r = f64([1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    eps = 1e-4
    expected = f64([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert_close(grpo_advantages(r, 3, eps=eps), expected / (1.0 + eps))
    assert_close(grpo_advantages(r, 3, scale=False), expected)


def test_grpo_advantages_group_size_one_and_errors():
    """group_size 1: every sample is its own mean -> 0. 4 samples in groups of 3 -> ValueError."""
    assert_close(grpo_advantages(f64([1.0, 5.0]), 1), f64([0.0, 0.0]))
    with pytest.raises(ValueError, match="divide"):
        grpo_advantages(torch.ones(4), 3)
    with pytest.raises(ValueError, match="group_size"):
        grpo_advantages(torch.ones(4), 0)
    with pytest.raises(ValueError, match="1-D"):
        grpo_advantages(torch.ones(2, 2), 2)


def test_rloo_advantages_by_hand():
    """Groups of 2, [1, 3] and [5, 5]: A = r_i - r_other -> [-2, 2, 0, 0].

    Group of 3, [1, 2, 6]: A_0 = 1 - (2+6)/2 = -3, A_1 = 2 - (1+6)/2 = -1.5, A_2 = 6 - (1+2)/2 = 4.5,
    which equals K/(K-1) (r - mean) = 1.5 * [-2, -1, 3].
    """
    assert_close(rloo_advantages(f64([1.0, 3.0, 5.0, 5.0]), 2), f64([-2.0, 2.0, 0.0, 0.0]))
    r = f64([1.0, 2.0, 6.0])
    assert_close(rloo_advantages(r, 3), f64([-3.0, -1.5, 4.5]))
    assert_close(rloo_advantages(r, 3), 1.5 * (r - r.mean()))


def test_rloo_advantages_errors():
    """group_size must be >= 2 and divide the batch."""
    with pytest.raises(ValueError, match="group_size"):
        rloo_advantages(torch.ones(4), 1)
    with pytest.raises(ValueError, match="divide"):
        rloo_advantages(torch.ones(5), 2)


# --------------------------------------------------------------------------- KL controllers


def test_adaptive_kl_controller_by_hand():
    """beta 0.1, target 6, horizon 10000.

    KL 9, 1000 steps: e = clip(9/6 - 1 = .5) = .2, beta = .1 * (1 + .2 * .1) = .102.
    KL 3, 1000 steps: e = clip(-.5) = -.2, beta = .102 * .98 = .09996.
    KL 6.6, 10000 steps: e = .1 (inside the clip), beta = .09996 * 1.1 = .109956.
    """
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    assert ctl.value == pytest.approx(0.1)
    assert ctl.update(9.0, 1000) == pytest.approx(0.102)
    assert ctl.update(torch.tensor(3.0), 1000) == pytest.approx(0.09996)
    assert ctl.update(6.6, 10000) == pytest.approx(0.109956)
    assert ctl.value == pytest.approx(0.109956)


def test_fixed_kl_controller_and_validation():
    """The fixed controller ignores the measurement; invalid settings raise ValueError."""
    ctl = FixedKLController(0.05)
    assert ctl.update(100.0, 10) == 0.05
    assert ctl.value == 0.05
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=10)
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=1.0, horizon=0)


def test_best_of_n_kl_by_hand():
    """n=1: log 1 - 0 = 0; n=2: ln 2 - 1/2; n=4: ln 4 - 3/4."""
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(LN2 - 0.5)
    assert best_of_n_kl(4) == pytest.approx(math.log(4.0) - 0.75)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError):
            best_of_n_kl(bad)


def test_best_of_n_kl_is_upper_bound_and_tight_for_many_outcomes():
    """Exact best-of-n over M equally likely, reward-distinct outcomes: outcome i (by rank) has
    P_n(i) = (i/M)^n - ((i-1)/M)^n and KL = sum_i P_n(i) log(M P_n(i)). It never exceeds the
    formula and approaches it as M grows (the continuous limit integrates to log n - (n-1)/n).
    """
    for n in (2, 4, 16):
        for big_m in (3, 50, 20000):
            cdf = (torch.arange(big_m + 1, dtype=torch.float64) / big_m) ** n
            pn = cdf[1:] - cdf[:-1]
            kl = float((pn * torch.log(big_m * pn)).sum())
            assert kl <= best_of_n_kl(n) + 1e-12
        assert kl == pytest.approx(best_of_n_kl(n), abs=2e-3)


def test_last_real_index_right_and_left_padding():
    """Right padding [1, 1, 0, 0] -> 1; left padding [0, 0, 1, 1] -> 3; one real token at 0 -> 0;
    no real token -> 0 (documented)."""
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    assert last_real_index(mask).tolist() == [1, 3, 0, 0]
    assert last_real_index(mask.bool()).tolist() == [1, 3, 0, 0]


def test_kl_shaped_rewards_by_hand():
    """Row 1: mask [1, 1, 1, 0], score 2, kl [.1, .2, .3, 9], beta .5: each real token gets -.5 * kl,
    i.e. [-.05, -.1, -.15]; the score goes on the last real token (index 2, not the padding at 3):
    [-.05, -.1, 2 - .15, 0], total 2 - .5 * .6 = 1.7. Row 2: mask [1, 0, 0, 0], score -1, kl 1
    everywhere: [-1 - .5, 0, 0, 0], total -1.5. The totals equal the rows' sums."""
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    kl = torch.tensor([[0.1, 0.2, 0.3, 9.0], [1.0, 1.0, 1.0, 1.0]])
    rewards, totals = kl_shaped_rewards(torch.tensor([2.0, -1.0]), mask, kl, 0.5)
    torch.testing.assert_close(rewards, torch.tensor([[-0.05, -0.1, 2 - 0.15, 0.0], [-1.5, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(totals, torch.tensor([1.7, -1.5]))
    torch.testing.assert_close(totals, rewards.sum(-1))


def test_kl_shaped_rewards_left_padded_and_refusals():
    """A left-padded row [0, 1, 1] with score 1 and beta 0: the score lands on index 2."""
    rewards, totals = kl_shaped_rewards(torch.tensor([1.0]), torch.tensor([[0, 1, 1]]), torch.zeros(1, 3), 0.0)
    assert rewards.tolist() == [[0.0, 0.0, 1.0]] and totals.tolist() == [1.0]
    with pytest.raises(ValueError, match="no tokens"):
        kl_shaped_rewards(torch.tensor([1.0]), torch.zeros(1, 3), torch.zeros(1, 3), 0.1)
    with pytest.raises(ValueError, match="scores"):
        kl_shaped_rewards(torch.tensor([1.0, 2.0]), torch.ones(1, 3), torch.zeros(1, 3), 0.1)


def test_categorical_kl_by_hand():
    """p = softmax(log(1/4, 3/4)) = (1/4, 3/4), q = (1/2, 1/2):
    KL = 1/4 ln(1/2) + 3/4 ln(3/2) = -0.25 ln 2 + 0.75 (ln 3 - ln 2) = 0.75 ln 3 - ln 2 ≈ 0.1308;
    KL(p || p) = 0; a zero-probability term (logit -inf) adds nothing."""
    p = torch.log(f64([[0.25, 0.75]]))
    q = f64([[0.0, 0.0]])
    assert_close(categorical_kl(p, q), f64([0.75 * LN3 - LN2]))
    assert_close(categorical_kl(p, p), f64([0.0]))
    with_zero = f64([[-math.inf, 0.0]])  # p = (0, 1), q = (1/2, 1/2): KL = ln 2
    assert_close(categorical_kl(with_zero, q), f64([LN2]))
    with pytest.raises(ValueError, match="shape mismatch"):
        categorical_kl(p, f64([[0.0, 0.0, 0.0]]))
