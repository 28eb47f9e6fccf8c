"""Loss functions for reward modelling, direct preference optimisation and PPO.

This module holds the objectives of the RLHF trainers as plain functions of tensors:

* reward models: Bradley–Terry, margin ranking, Plackett–Luce;
* offline preference optimisation: DPO and its variants (IPO, SLiC hinge, robust DPO);
* on-policy RL: the PPO clipped policy loss and clipped value loss, and the loss of one online-RL update
  assembled from them (`online_rl_loss`).

Everything here is pure math: tensors in, tensors out. There is no model code, no I/O and no
configuration object in this file. Masks follow the conventions of :mod:`rlhfkit.math.ops` (float or bool,
same shape as the data, 1 = real token; masked means never divide by zero).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rlhfkit.math.ops import _check_same_shape, kl_estimate, masked_mean

__all__ = [
    "DPO_LOSS_TYPES",
    "bradley_terry_loss",
    "dpo_loss",
    "soft_bradley_terry_loss",
    "l2_to_reference",
    "margin_ranking_loss",
    "noisy_bradley_terry_loss",
    "online_rl_loss",
    "plackett_luce_loss",
    "ppo_policy_loss",
    "ppo_value_loss",
]


# --------------------------------------------------------------------------- reward models


def bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Pairwise Bradley–Terry negative log-likelihood (Bradley & Terry, 1952; as used for reward
    models by Ouyang et al., 2022, "InstructGPT"; the margin term follows Touvron et al., 2023,
    "Llama 2").

    The model says ``P(chosen > rejected) = sigmoid(r_c - r_r)``; the loss per pair is
    ``-log sigmoid(r_c - r_r - m)``, computed with ``logsigmoid`` for stability. With label smoothing
    ``eps`` (the share of labels assumed flipped) it is the cross-entropy against the soft label
    ``1 - eps``: ``-(1 - eps) log sigmoid(d) - eps log sigmoid(-d)``, which stops pushing a pair once
    ``sigmoid(d) = 1 - eps`` instead of growing the gap without bound.

    Args:
        chosen_rewards: ``(B,)`` scalar rewards of the preferred responses.
        rejected_rewards: ``(B,)`` scalar rewards of the dispreferred responses.
        margin: optional ``(B,)`` tensor or float ``m`` that the reward gap must exceed.
        label_smoothing: ``eps`` in ``[0, 0.5)``.

    Returns:
        ``(B,)`` per-pair losses (take ``.mean()`` yourself).

    Raises:
        ValueError: shape mismatch.
    """
    _check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        if isinstance(margin, torch.Tensor) and margin.dim() > 0:
            _check_same_shape(chosen_rewards=chosen_rewards, margin=margin)
        diff = diff - margin
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if label_smoothing:
        return -(1 - label_smoothing) * F.logsigmoid(diff) - label_smoothing * F.logsigmoid(-diff)
    return -F.logsigmoid(diff)


def noisy_bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    noise: float,
) -> torch.Tensor:
    """Bradley–Terry negative log-likelihood for an annotator who answers at random with probability
    ``noise`` (A or B with equal odds; the simulated panel's noise) and by the reward otherwise:
    ``P(answer = chosen) = noise / 2 + (1 - noise) sigmoid(d)``, ``d = r_c - r_r``; the loss is
    ``-log`` of that, computed as ``-logaddexp(log(noise / 2), log(1 - noise) + logsigmoid(d))``.

    Unlike label smoothing it is bounded: a pair the rewards get wrong by any gap costs at most
    ``-log(noise / 2)``, so one flipped answer cannot pull the rewards without limit. ``noise = 0`` is
    `bradley_terry_loss`. It is not convex in ``d`` for ``noise > 0``.

    Args:
        chosen_rewards, rejected_rewards: ``(B,)`` or ``(B, H)`` rewards (the label's side first).
        noise: the probability of a random answer, in ``[0, 1)``.

    Returns:
        per-pair losses of the rewards' shape.
    """
    _check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    diff = chosen_rewards - rejected_rewards
    if noise == 0:
        return -F.logsigmoid(diff)
    floor = torch.full_like(diff, math.log(noise / 2))
    return -torch.logaddexp(floor, math.log(1 - noise) + F.logsigmoid(diff))


def soft_bradley_terry_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """Bradley–Terry against a soft label: the cross-entropy between the row's probability that
    `chosen` is better, ``t``, and the model's ``sigmoid(r_c - r_r)``:
    ``-t log sigmoid(d) - (1 - t) log sigmoid(-d)``, ``d = r_c - r_r``. Its minimum over ``d`` is at
    ``sigmoid(d) = t``: a pair labelled 0.6 is pushed to a gap of ``logit(0.6)`` and no further.
    ``t = 1`` is `bradley_terry_loss`; ``t = 1 - eps`` is its label smoothing.

    Args:
        chosen_rewards, rejected_rewards: ``(B,)`` or ``(B, H)`` rewards.
        target: ``(B,)`` or ``(B, H)`` probabilities in ``[0, 1]`` (broadcast against the rewards).

    Returns:
        per-pair losses of the rewards' shape.
    """
    _check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    if ((target < 0) | (target > 1)).any():
        raise ValueError("soft Bradley-Terry targets must be probabilities in [0, 1]")
    diff = chosen_rewards - rejected_rewards
    return -target * F.logsigmoid(diff) - (1 - target) * F.logsigmoid(-diff)


def l2_to_reference(params: list[torch.Tensor], reference: list[torch.Tensor]) -> torch.Tensor:
    """``sum_i ||theta_i - theta0_i||^2``: an L2 pull of parameters toward fixed reference values (for a
    reward model, its initial head), which limits how far training can bend the reward.

    Args:
        params: tensors being trained.
        reference: tensors of the same shapes (detached; no gradient flows into them).

    Returns:
        0-d tensor.
    """
    if len(params) != len(reference) or any(p.shape != r.shape for p, r in zip(params, reference)):
        raise ValueError("params and reference must be lists of tensors of the same shapes")
    if not params:
        return torch.zeros(())
    return sum(((p - r.detach()) ** 2).sum() for p, r in zip(params, reference))


def margin_ranking_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: float = 1.0,
) -> torch.Tensor:
    """Pairwise hinge ranking loss: ``max(0, m - (r_c - r_r))`` per pair.

    The classic margin ranking objective (e.g. Herbrich et al., 2000, "Large margin rank
    boundaries for ordinal regression"); zero once the chosen reward beats the rejected one by at
    least ``m``.

    Args:
        chosen_rewards: ``(B,)`` rewards of the preferred responses.
        rejected_rewards: ``(B,)`` rewards of the dispreferred responses.
        margin: the required gap ``m``.

    Returns:
        ``(B,)`` per-pair losses.

    Raises:
        ValueError: shape mismatch.
    """
    _check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    return F.relu(margin - (chosen_rewards - rejected_rewards))


def plackett_luce_loss(rewards: torch.Tensor, ranking: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of a full ranking under the Plackett–Luce model (Plackett, 1975;
    Luce, 1959; used for K-wise reward models by Zhu et al., 2023, "Principled RLHF from pairwise or
    K-wise comparisons").

    With ``pi`` the ranking (best first), the probability of the ranking is
    ``prod_i exp(r_{pi(i)}) / sum_{j >= i} exp(r_{pi(j)})``, so the loss is

        L = -sum_{i=1}^{K} [ r_{pi(i)} - logsumexp_{j >= i} r_{pi(j)} ].

    For ``K = 2`` this is exactly :func:`bradley_terry_loss`.

    Args:
        rewards: ``(B, K)`` scores of the ``K`` responses of each example.
        ranking: ``(B, K)`` long tensor; row ``b`` is a permutation of ``0..K-1`` listing the
            response indices from best to worst.

    Returns:
        ``(B,)`` per-example losses.

    Raises:
        ValueError: shape mismatch, non-2-D input, or a row of ``ranking`` that is not a
            permutation.
    """
    _check_same_shape(rewards=rewards, ranking=ranking)
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (B, K), got shape {tuple(rewards.shape)}")
    if ranking.is_floating_point() or ranking.dtype == torch.bool:
        raise ValueError(f"ranking must be an integer tensor, got {ranking.dtype}")
    k = rewards.shape[1]
    expected = torch.arange(k, device=ranking.device).expand_as(ranking)
    if not torch.equal(ranking.sort(dim=1).values, expected):
        raise ValueError("each row of ranking must be a permutation of 0..K-1")
    ordered = rewards.gather(1, ranking.long())
    # logsumexp over the suffix j >= i, via a reversed cumulative logsumexp.
    suffix_lse = torch.logcumsumexp(ordered.flip(1), dim=1).flip(1)
    return -(ordered - suffix_lse).sum(dim=1)


# --------------------------------------------------------------------------- DPO family


def _dpo_sigmoid(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    z = beta * h
    return -(1.0 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


def _dpo_ipo(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    return (h - 1.0 / (2.0 * beta)) ** 2


def _dpo_hinge(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    return F.relu(1.0 - beta * h)


def _dpo_robust(h: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
    z = beta * h
    return (-(1.0 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1.0 - 2.0 * eps)


_DPO_LOSSES: dict[str, Callable[[torch.Tensor, float, float], torch.Tensor]] = {
    "sigmoid": _dpo_sigmoid,
    "ipo": _dpo_ipo,
    "hinge": _dpo_hinge,
    "robust": _dpo_robust,
}
#: The loss types accepted by :func:`dpo_loss`.
DPO_LOSS_TYPES: tuple[str, ...] = tuple(_DPO_LOSSES)

# Loss types for which label smoothing means something.
_SMOOTHABLE = {"sigmoid", "robust"}


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct preference optimisation losses on sequence log-probabilities.

    With ``h = (log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r))`` and
    ``eps = label_smoothing``:

    * ``"sigmoid"`` — DPO (Rafailov et al., 2023, "Direct Preference Optimization"), with the
      conservative-DPO label smoothing (Mitchell, 2023):
      ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``;
    * ``"ipo"`` — IPO (Azar et al., 2023, "A General Theoretical Paradigm to Understand Learning
      from Human Preferences"): ``(h - 1/(2 beta))^2``;
    * ``"hinge"`` — SLiC-HF (Zhao et al., 2023, "SLiC-HF: Sequence Likelihood Calibration with
      Human Feedback"): ``max(0, 1 - beta h)``;
    * ``"robust"`` — provably robust DPO (Chowdhury et al., 2024, "Provably Robust DPO: Aligning
      Language Models with Noisy Feedback"):
      ``[-(1 - eps) log sigmoid(beta h) + eps log sigmoid(-beta h)] / (1 - 2 eps)``, ``eps < 0.5``.

    The implicit rewards are ``beta (log pi(y) - log ref(y))`` for the chosen and rejected
    responses; they are returned detached (for logging / reward accuracy).

    Args:
        policy_chosen_logps: ``(B,)`` summed log-probs of the chosen responses under the policy.
        policy_rejected_logps: ``(B,)`` same for the rejected responses.
        reference_chosen_logps: ``(B,)`` chosen log-probs under the frozen reference model.
        reference_rejected_logps: ``(B,)`` rejected log-probs under the reference model.
        beta: inverse temperature ``beta > 0``.
        loss_type: one of :data:`DPO_LOSS_TYPES`.
        label_smoothing: assumed label-flip probability ``eps``; ``[0, 0.5]`` for ``"sigmoid"``,
            ``[0, 0.5)`` for ``"robust"``, must be 0 for ``"ipo"`` and ``"hinge"``.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``(B,)``.

    Raises:
        ValueError: unknown ``loss_type``, shape mismatch, ``beta <= 0`` or an invalid
            ``label_smoothing``.
    """
    if loss_type not in _DPO_LOSSES:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected one of {list(DPO_LOSS_TYPES)}")
    _check_same_shape(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        reference_chosen_logps=reference_chosen_logps,
        reference_rejected_logps=reference_rejected_logps,
    )
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if loss_type in _SMOOTHABLE:
        upper_ok = label_smoothing < 0.5 if loss_type == "robust" else label_smoothing <= 0.5
        if not (label_smoothing >= 0 and upper_ok):
            bound = "[0, 0.5)" if loss_type == "robust" else "[0, 0.5]"
            raise ValueError(
                f"label_smoothing must be in {bound} for loss_type={loss_type!r}, got {label_smoothing}"
            )
    elif label_smoothing != 0:
        raise ValueError(f"label_smoothing is not supported for loss_type={loss_type!r}")

    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    h = chosen_logratios - rejected_logratios
    losses = _DPO_LOSSES[loss_type](h, beta, label_smoothing)
    chosen_rewards = (beta * chosen_logratios).detach()
    rejected_rewards = (beta * rejected_logratios).detach()
    return losses, chosen_rewards, rejected_rewards


# --------------------------------------------------------------------------- PPO


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate policy loss (Schulman et al., 2017, "Proximal Policy Optimization
    Algorithms", eq. 7), as a loss to minimise.

    Per token, with ``rho = exp(logprobs - old_logprobs)``:

        l_t = max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps))

    and the loss is the masked mean of ``l_t`` over all real tokens of the batch. Gradients flow
    through ``logprobs``; pass ``old_logprobs`` and ``advantages`` detached. The log-ratio is
    zeroed on padding before the ``exp``, so garbage there cannot overflow.

    Args:
        logprobs: ``(B, T)`` log-probs of the sampled tokens under the current policy.
        old_logprobs: ``(B, T)`` log-probs under the policy that generated the samples.
        advantages: ``(B, T)`` advantage estimates.
        mask: ``(B, T)`` float or bool, 1 for real tokens.
        clip_range: ``eps > 0``.

    Returns:
        ``(loss, stats)``: ``loss`` is a 0-d tensor; ``stats`` holds detached 0-d tensors
        ``"clip_fraction"`` (share of real tokens where the clipped term is strictly larger, i.e.
        was taken), ``"approx_kl"`` (masked mean of ``(logprobs - old_logprobs)^2 / 2``) and
        ``"ratio_mean"`` (masked mean of ``rho``).

    Raises:
        ValueError: shape mismatch or ``clip_range <= 0``.
    """
    _check_same_shape(logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages, mask=mask)
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0, got {clip_range}")
    real = mask.to(torch.bool)
    log_ratio = torch.where(real, logprobs - old_logprobs, torch.zeros_like(logprobs))
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clip_fraction": masked_mean((clipped > unclipped).to(ratio.dtype), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value-function loss of PPO (as in the OpenAI baselines PPO2 implementation and
    Ziegler et al., 2019).

    Per token, with ``v_clip = clip(v, v_old - eps, v_old + eps)``:

        l_t = max((v_t - R_t)^2, (v_clip_t - R_t)^2)

    and the loss is ``0.5 *`` the masked mean of ``l_t``.

    Args:
        values: ``(B, T)`` current value predictions.
        old_values: ``(B, T)`` value predictions at rollout time.
        returns: ``(B, T)`` return targets (e.g. from :func:`rlhfkit.math.ops.gae`).
        mask: ``(B, T)`` float or bool, 1 for real tokens.
        clip_range: ``eps > 0``.

    Returns:
        ``(loss, stats)``: ``loss`` is a 0-d tensor; ``stats`` holds detached 0-d tensors
        ``"value_clip_fraction"`` (share of real tokens where the clipped error is strictly larger)
        and ``"value_error"`` (masked mean of ``(v - R)^2``).

    Raises:
        ValueError: shape mismatch or ``clip_range <= 0``.
    """
    _check_same_shape(values=values, old_values=old_values, returns=returns, mask=mask)
    if clip_range <= 0:
        raise ValueError(f"clip_range must be > 0, got {clip_range}")
    v_clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    err_unclipped = (values - returns) ** 2
    err_clipped = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err_unclipped, err_clipped), mask)
    with torch.no_grad():
        stats = {
            "value_clip_fraction": masked_mean((err_clipped > err_unclipped).to(values.dtype), mask),
            "value_error": masked_mean(err_unclipped, mask),
        }
    return loss, stats


def online_rl_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    *,
    values: torch.Tensor | None = None,
    old_values: torch.Tensor | None = None,
    returns: torch.Tensor | None = None,
    value_clip_range: float = 0.2,
    vf_coef: float = 0.1,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one online-RL minibatch: the PPO policy loss, plus the value loss when a value head
    is trained (GAE), plus a KL penalty in the loss when the KL is not in the reward (GRPO-style):

        L = ppo_policy_loss  + vf_coef * ppo_value_loss  + kl_coef * masked_mean(k3(pi || ref))

    Args:
        logprobs, old_logprobs, advantages, mask, clip_range: as in :func:`ppo_policy_loss`.
        values, old_values, returns: ``(B, T)``; all three or none (no value term).
        value_clip_range, vf_coef: the value term's clip and weight.
        ref_logprobs: ``(B, T)`` reference log-probs; with ``kl_coef > 0`` adds the KL term (Schulman's
            k3 estimator of KL(pi || ref), unbiased and non-negative, with gradients through ``logprobs``).
        kl_coef: the KL term's weight (0: no KL term, e.g. when the KL is in the reward).

    Returns:
        ``(loss, stats)``: the stats of the policy and value losses, plus ``"kl_loss"`` when the KL
        term is on.

    Raises:
        ValueError: only some of ``values``, ``old_values``, ``returns`` given; or as the parts raise.
    """
    given = [t is not None for t in (values, old_values, returns)]
    if any(given) and not all(given):
        raise ValueError("values, old_values and returns go together: give all three or none")
    loss, stats = ppo_policy_loss(logprobs, old_logprobs, advantages, mask, clip_range)
    if values is not None:
        value_loss, value_stats = ppo_value_loss(values, old_values, returns, mask, value_clip_range)
        loss = loss + vf_coef * value_loss
        stats.update(value_stats)
    if ref_logprobs is not None and kl_coef > 0:
        kl_loss = masked_mean(kl_estimate(logprobs, ref_logprobs, "k3"), mask)
        loss = loss + kl_coef * kl_loss
        stats["kl_loss"] = kl_loss.detach()
    return loss, stats
