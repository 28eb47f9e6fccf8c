"""Tensor operations shared by the RLHF trainers.

This module holds the small numerical building blocks used by SFT, reward modelling, DPO and the
on-policy trainers (PPO, GRPO, RLOO): masked reductions, whitening, per-token log-probabilities and
entropy, KL estimators, advantage estimators (GAE, group-relative, leave-one-out), KL-coefficient
controllers and the analytic KL of best-of-n sampling.

Everything here is pure math: tensors in, tensors out. There is no model code, no I/O and no
configuration object in this file.

Conventions
-----------
* ``B`` is the batch size, ``T`` the sequence length, ``V`` the vocabulary size.
* A *mask* is a float or bool tensor with the same shape as the data it masks; ``1``/``True``
  marks a real token, ``0``/``False`` a padding token. Values at masked-out positions never
  influence a result, even when they are ``inf`` or ``nan``.
* Masked means divide by ``max(mask.sum(), 1)``, so an all-zero mask gives ``0`` instead of NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "best_of_n_kl",
    "categorical_kl",
    "entropy_from_logits",
    "gae",
    "grpo_advantages",
    "kl_estimate",
    "kl_shaped_rewards",
    "last_real_index",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "rloo_advantages",
    "token_logprobs",
    "whiten",
]


# --------------------------------------------------------------------------- helpers


def _check_same_shape(**tensors: torch.Tensor) -> None:
    """Raise ``ValueError`` unless all keyword tensors share one shape."""
    items = list(tensors.items())
    name0, t0 = items[0]
    for name, t in items[1:]:
        if t.shape != t0.shape:
            raise ValueError(
                f"shape mismatch: {name0} has shape {tuple(t0.shape)} but {name} has shape {tuple(t.shape)}"
            )


def _masked_values(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x * mask, mask)`` with mask cast to ``x``'s dtype and padded entries forced to 0.

    ``torch.where`` is used so that ``inf``/``nan`` in padded positions cannot leak into sums.
    """
    _check_same_shape(x=x, mask=mask)
    m = mask.to(x.dtype) if x.is_floating_point() else mask.to(torch.get_default_dtype())
    xf = x if x.is_floating_point() else x.to(m.dtype)
    xm = torch.where(m != 0, xf * m, torch.zeros_like(xf))
    return xm, m


# --------------------------------------------------------------------------- masked reductions


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` over the positions where ``mask`` is set.

    Computes ``sum_i x_i * m_i``, over all elements (``dim=None``, returns a 0-d tensor) or along
    ``dim`` (that dimension is removed).

    Args:
        x: tensor of any shape, e.g. ``(B, T)``.
        mask: float or bool tensor, same shape as ``x``.
        dim: dimension to reduce; ``None`` reduces everything.

    Raises:
        ValueError: if ``x`` and ``mask`` differ in shape.
    """
    xm, _ = _masked_values(x, mask)
    return xm.sum() if dim is None else xm.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is set.

    ``sum_i x_i m_i / max(sum_i m_i, 1)``. The denominator is clamped at 1 so an all-zero mask
    gives 0 rather than NaN.

    Args:
        x: tensor of any shape, e.g. ``(B, T)``.
        mask: float or bool tensor, same shape as ``x``.
        dim: dimension to reduce; ``None`` reduces everything (0-d result). With ``dim=1`` on a
            ``(B, T)`` input the result is ``(B,)``.

    Raises:
        ValueError: if ``x`` and ``mask`` differ in shape.
    """
    xm, m = _masked_values(x, mask)
    if dim is None:
        return xm.sum() / m.sum().clamp(min=1.0)
    return xm.sum(dim=dim) / m.sum(dim=dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked elements of ``x`` (all dimensions pooled), a 0-d tensor.

    With ``n = sum(mask)`` and ``mu`` the masked mean,
    ``var = sum_i m_i (x_i - mu)^2 / n``; with ``unbiased=True`` it is multiplied by the Bessel
    factor ``n / (n - 1)``. The denominators are clamped at 1, so fewer than two real elements give
    a variance of 0 instead of NaN.

    Args:
        x: tensor of any shape.
        mask: float or bool tensor, same shape as ``x``.
        unbiased: apply Bessel's correction.

    Raises:
        ValueError: if ``x`` and ``mask`` differ in shape.
    """
    mean = masked_mean(x, mask)
    centered = torch.where(mask.to(torch.bool), x - mean, torch.zeros_like(x))
    var = masked_mean(centered**2, mask)
    if unbiased:
        n = mask.to(var.dtype).sum()
        var = var * n / (n - 1).clamp(min=1.0)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to zero mean and unit variance over its masked elements.

    ``y = (x - mu) / sqrt(var + 1e-8)`` where ``mu`` and ``var`` (unbiased, see
    :func:`masked_var`) are taken over the positions with ``mask`` set, all dimensions pooled
    (the usual treatment of PPO advantages). With ``shift_mean=False`` the mean is added back,
    ``y = (x - mu) / sqrt(var + 1e-8) + mu``, i.e. only the scale is changed.

    Positions where ``mask`` is 0 are returned as exactly 0.

    Args:
        x: float tensor of any shape, e.g. ``(B, T)``.
        mask: float or bool tensor, same shape as ``x``.
        shift_mean: if ``False``, keep the original mean.

    Returns:
        tensor of the same shape as ``x``.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=True)
    y = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        y = y + mean
    return torch.where(mask.to(torch.bool), y, torch.zeros_like(y))


# --------------------------------------------------------------------------- positions


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real position of each row: where a sequence's score belongs.

    Works for right padding (``[1, 1, 0]`` -> 1) and left padding (``[0, 1, 1]`` -> 2) alike; a row
    with no real position gives 0 (callers that cannot accept that check first).

    Args:
        mask: ``(B, T)`` float or bool, 1 for real positions.

    Returns:
        ``(B,)`` long tensor.
    """
    positions = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
    return torch.where(mask.to(torch.bool), positions, -1).argmax(-1)


# --------------------------------------------------------------------------- log-probs / entropy


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Log-probability of each label token under the categorical distribution given by ``logits``.

    ``log p(y_t) = logits[t, y_t] - logsumexp_v logits[t, v]``. Computed as the gathered logit
    minus a logsumexp, so the full ``(B, T, V)`` log-softmax tensor is never kept. Positions whose
    label equals ``ignore_index`` (``-100``, the Hugging Face convention) are returned as 0.

    The caller is responsible for the usual one-token shift (``logits[:, :-1]`` against
    ``labels[:, 1:]``).

    Args:
        logits: ``(B, T, V)`` float tensor (any leading shape ``(..., V)`` works).
        labels: ``(B, T)`` long tensor of token ids in ``[0, V)`` or ``ignore_index``.
        ignore_index: label value to ignore.

    Returns:
        ``(B, T)`` tensor of log-probabilities, in ``logits``' dtype, except that float16/bfloat16
        logits are reduced in float32 one batch row at a time and give a float32 result.

    Raises:
        ValueError: if ``labels.shape != logits.shape[:-1]`` or labels are not integers.
    """
    if logits.dim() < 1 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal logits shape without the vocab dim "
            f"{tuple(logits.shape[:-1])}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    ignored = labels == ignore_index
    safe = torch.where(ignored, torch.zeros_like(labels), labels)
    picked = torch.gather(logits, dim=-1, index=safe.unsqueeze(-1)).squeeze(-1)
    if logits.dtype in (torch.float16, torch.bfloat16) and logits.dim() > 1:
        # Half precision cannot hold lse - logit accurately (a bf16 value near 20 is only good to
        # ~0.06); upcast one leading slice at a time so at most one (T, V) float32 copy exists.
        lse = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])
        logp = picked.float() - lse
    else:
        logp = picked - torch.logsumexp(logits, dim=-1)
    return torch.where(ignored, torch.zeros_like(logp), logp)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution ``softmax(logits)`` at each position.

    ``H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v`` with ``p = softmax(z)``; the second
    form avoids ``0 * log 0``. Logits of ``-inf`` (filtered tokens) are allowed.

    Args:
        logits: ``(B, T, V)`` float tensor (any ``(..., V)`` works).

    Returns:
        ``(B, T)`` tensor of entropies in nats.
    """
    p = torch.softmax(logits, dim=-1)
    # Tokens with p = 0 (e.g. logits of -inf from top-k filtering) contribute 0, not 0 * -inf = nan.
    z = torch.where(p > 0, logits, torch.zeros_like(logits))
    return torch.logsumexp(logits, dim=-1) - (p * z).sum(dim=-1)


# --------------------------------------------------------------------------- KL estimators


def _kl_k1(log_ratio: torch.Tensor) -> torch.Tensor:
    return -log_ratio


def _kl_k2(log_ratio: torch.Tensor) -> torch.Tensor:
    return 0.5 * log_ratio**2


def _kl_k3(log_ratio: torch.Tensor) -> torch.Tensor:
    return torch.expm1(log_ratio) - log_ratio


_KL_ESTIMATORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "k1": _kl_k1,
    "k2": _kl_k2,
    "k3": _kl_k3,
}


def kl_estimate(logprobs: torch.Tensor, reference_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token Monte-Carlo estimate of ``KL(policy || reference)``.

    The estimators of J. Schulman, "Approximating KL Divergence" (blog note, 2020), for samples
    drawn from the policy, with ``log r = reference_logprobs - logprobs``:

    * ``k1 = -log r`` (unbiased, high variance, can be negative);
    * ``k2 = (log r)^2 / 2`` (biased, low variance, always >= 0);
    * ``k3 = (r - 1) - log r`` (unbiased, low variance, always >= 0).

    Args:
        logprobs: ``(B, T)`` policy log-probabilities of the sampled tokens.
        reference_logprobs: ``(B, T)`` reference-model log-probabilities of the same tokens.
        kind: ``"k1"``, ``"k2"`` or ``"k3"``.

    Returns:
        ``(B, T)`` per-token estimates (no masking applied).

    Raises:
        ValueError: unknown ``kind`` or shape mismatch.
    """
    if kind not in _KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator kind {kind!r}; expected one of {sorted(_KL_ESTIMATORS)}")
    _check_same_shape(logprobs=logprobs, reference_logprobs=reference_logprobs)
    return _KL_ESTIMATORS[kind](reference_logprobs - logprobs)


# --------------------------------------------------------------------------- advantages


def kl_shaped_rewards(
    scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward of KL-penalised online RL, per token and per sequence (Ziegler et al., 2019):

        r_t = -kl_coef * KL_t  (+ score on the response's last real token)
        R   = sum_t r_t = score - kl_coef * sum_t KL_t

    The score lands on each row's last real token (the EOS, or the last token of a truncated
    response), never on padding; padding gets reward 0 whatever ``kl`` holds there. ``R`` is
    computed as ``score - kl_coef * sum(KL)``, equal to ``r.sum(-1)`` up to float round-off.

    Args:
        scores: ``(B,)`` sequence scores.
        mask: ``(B, T)`` float or bool, 1 for real response tokens.
        kl: ``(B, T)`` per-token KL estimates.
        kl_coef: beta (0 leaves the KL out of the reward).

    Returns:
        ``(rewards, totals)``: ``(B, T)`` per-token rewards and ``(B,)`` their sums.

    Raises:
        ValueError: a row with no real token (its score would have nowhere to go), or shapes that
        do not match.
    """
    _check_same_shape(mask=mask, kl=kl)
    if scores.shape != mask.shape[:1]:
        raise ValueError(f"scores must be (B,) = {tuple(mask.shape[:1])}, got {tuple(scores.shape)}")
    real = mask.to(torch.bool)
    if not real.any(-1).all():
        raise ValueError("a response has no tokens: its score cannot be placed on a token")
    rewards = torch.where(real, -kl_coef * kl, torch.zeros_like(kl))
    rewards[torch.arange(len(scores), device=scores.device), last_real_index(mask)] += scores.to(rewards.dtype)
    totals = scores - kl_coef * (kl * mask).sum(-1)
    return rewards, totals


@torch.no_grad()
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al., 2016, "High-Dimensional Continuous
    Control Using Generalized Advantage Estimation").

    For the real (unmasked) positions ``t_1 < t_2 < ... < t_n`` of a row, with ``V(t_{n+1}) = 0``
    (the episode ends at the row's last real token):

        delta_k = r(t_k) + gamma * V(t_{k+1}) - V(t_k)
        A(t_k)  = delta_k + gamma * lam * A(t_{k+1}),   A(t_{n+1}) = 0
        R(t_k)  = A(t_k) + V(t_k)

    The recursion runs over the masked-in positions only: padding, whether on the left, on the
    right or in between, is skipped and the next *real* token's value and advantage are used.
    Masked positions get advantage 0 and return 0; rewards and values there are ignored.

    The result is computed under ``torch.no_grad()``: advantages and returns are regression /
    policy-gradient targets and carry no gradient.

    Args:
        rewards: ``(B, T)`` per-token rewards (e.g. KL penalty plus the score on the last token).
        values: ``(B, T)`` value estimates ``V(s_t)``.
        mask: ``(B, T)`` float or bool, 1 for real tokens.
        gamma: discount factor.
        lam: GAE ``lambda``.

    Returns:
        ``(advantages, returns)``, both ``(B, T)``.

    Raises:
        ValueError: shape mismatch or non-2-D input.
    """
    _check_same_shape(rewards=rewards, values=values, mask=mask)
    if rewards.dim() != 2:
        raise ValueError(f"gae expects (B, T) tensors, got shape {tuple(rewards.shape)}")
    bsz, seq_len = rewards.shape
    m = mask.to(torch.bool)
    dtype = torch.promote_types(rewards.dtype, values.dtype)
    rewards = rewards.to(dtype)
    values = values.to(dtype)
    next_value = torch.zeros(bsz, dtype=dtype, device=rewards.device)
    next_adv = torch.zeros(bsz, dtype=dtype, device=rewards.device)
    advantages = torch.zeros(bsz, seq_len, dtype=dtype, device=rewards.device)
    for t in reversed(range(seq_len)):
        mt = m[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        adv = torch.where(mt, adv, torch.zeros_like(adv))
        advantages[:, t] = adv
        next_value = torch.where(mt, values[:, t], next_value)
        next_adv = torch.where(mt, adv, next_adv)
    returns = torch.where(m, advantages + values, torch.zeros_like(advantages))
    return advantages, returns


def _grouped(rewards: torch.Tensor, group_size: int, min_size: int) -> torch.Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (B,), got shape {tuple(rewards.shape)}")
    if not isinstance(group_size, int) or group_size < min_size:
        raise ValueError(f"group_size must be an integer >= {min_size}, got {group_size!r}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"group_size {group_size} does not divide the batch size {rewards.numel()}")
    return rewards.view(-1, group_size)


def grpo_advantages(
    rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages of GRPO (Shao et al., 2024, "DeepSeekMath").

    The batch holds ``n_prompts`` consecutive groups of ``group_size`` completions of one prompt.
    Within each group ``G``: ``A_i = (r_i - mean_G(r)) / (std_G(r) + eps)`` with the unbiased
    (``n - 1``) standard deviation; ``scale=False`` returns only ``r_i - mean_G(r)`` (the
    "Dr. GRPO" variant). A group of size 1 has advantage 0.

    Args:
        rewards: ``(B,)`` scalar rewards, ``B = n_prompts * group_size``.
        group_size: completions per prompt.
        scale: divide by the group standard deviation.
        eps: added to the standard deviation.

    Returns:
        ``(B,)`` advantages.

    Raises:
        ValueError: ``rewards`` not 1-D, ``group_size < 1`` or not dividing ``B``.
    """
    groups = _grouped(rewards, group_size, min_size=1)
    centered = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        if group_size > 1:
            std = groups.std(dim=1, unbiased=True, keepdim=True)
        else:
            std = torch.zeros_like(centered)
        centered = centered / (std + eps)
    return centered.reshape(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """REINFORCE Leave-One-Out advantages (Ahmadian et al., 2024, "Back to Basics: Revisiting
    REINFORCE Style Optimization for Learning from Human Feedback in LLMs"; after Kool et al., 2019).

    Within each group of ``K = group_size`` consecutive completions of one prompt, the baseline of
    sample ``i`` is the mean reward of the *other* ``K - 1`` samples:
    ``A_i = r_i - (1/(K-1)) sum_{j != i} r_j = K/(K-1) * (r_i - mean(r))``.

    Args:
        rewards: ``(B,)`` scalar rewards, ``B = n_prompts * group_size``.
        group_size: completions per prompt, at least 2.

    Returns:
        ``(B,)`` advantages.

    Raises:
        ValueError: ``rewards`` not 1-D, ``group_size < 2`` or not dividing ``B``.
    """
    groups = _grouped(rewards, group_size, min_size=2)
    baseline = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - baseline).reshape(-1)


# --------------------------------------------------------------------------- KL controllers


class AdaptiveKLController:
    """Adaptive KL-penalty coefficient (Ziegler et al., 2019, "Fine-Tuning Language Models from
    Human Preferences").

    The coefficient ``beta`` is moved proportionally to how far the measured KL is from a target:

        e    = clip(KL / target - 1, -0.2, 0.2)
        beta <- beta * (1 + e * n_steps / horizon)

    Args:
        init_kl_coef: initial ``beta`` (>= 0).
        target: target KL (> 0).
        horizon: number of steps over which a 20 % correction is made (> 0).
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        if init_kl_coef < 0:
            raise ValueError(f"init_kl_coef must be >= 0, got {init_kl_coef}")
        if target <= 0:
            raise ValueError(f"target must be > 0, got {target}")
        if horizon <= 0:
            raise ValueError(f"horizon must be > 0, got {horizon}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float | torch.Tensor, n_steps: int) -> float:
        """Update the coefficient after ``n_steps`` steps that measured ``current_kl``; return it."""
        proportional_error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value


class FixedKLController:
    """Constant KL-penalty coefficient with the same interface as :class:`AdaptiveKLController`."""

    def __init__(self, kl_coef: float) -> None:
        if kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
        self.value = float(kl_coef)

    def update(self, current_kl: float | torch.Tensor, n_steps: int) -> float:
        """Return the unchanged coefficient (arguments are ignored)."""
        return self.value


def best_of_n_kl(n: int) -> float:
    """Analytic KL between best-of-``n`` sampling and the base policy: ``log n - (n - 1) / n``.

    Used by Stiennon et al. (2020, "Learning to summarize from human feedback"); Beirami et al.
    (2024, "Theoretical guarantees on the best-of-n alignment policy") show it is an upper bound
    on the true KL (exact only when there are no ties among outcomes).

    Args:
        n: number of samples, ``n >= 1``.

    Raises:
        ValueError: ``n < 1``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    return math.log(n) - (n - 1) / n


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q) = sum_i p_i (log p_i - log q_i)`` between the categorical distributions
    ``softmax(logits_p)`` and ``softmax(logits_q)`` over the last axis (for a policy over a small set of
    actions, e.g. a recommender over a catalogue, where the sum is cheaper and exact where a sampled
    estimate would be noisy). Terms with ``p_i = 0`` contribute 0.

    Args:
        logits_p: ``(..., V)`` logits of ``p`` (gradients flow through both arguments).
        logits_q: ``(..., V)`` logits of ``q``.

    Returns:
        ``(...)`` tensor of KLs in nats.

    Raises:
        ValueError: shape mismatch.
    """
    _check_same_shape(logits_p=logits_p, logits_q=logits_q)
    log_p, log_q = torch.log_softmax(logits_p, -1), torch.log_softmax(logits_q, -1)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1)
