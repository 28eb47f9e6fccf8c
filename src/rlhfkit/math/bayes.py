"""The Laplace posterior of a linear Bradley-Terry model: an ensemble whose heads are posterior draws.

A comparison n is a feature difference d_n = x_first - x_second (C numbers) and an answer
y_n = +1 (first preferred) or -1. The model: P(first preferred) = sigma(w . d_n), with a Gaussian
prior w ~ N(0, I / prior_precision). The negative log posterior, up to a constant, is

    L(w) = sum_n softplus(-y_n w . d_n) + (prior_precision / 2) |w|^2

Its minimiser w* (the MAP) is found by Newton's method with a backtracking line search (L is
strictly convex, so it converges from anywhere; `init` warm-starts it from the last fit). The
Laplace approximation replaces the posterior by N(w*, A^-1), with A the Hessian of L at w*:

    A = sum_n p_n (1 - p_n) d_n d_n^T + prior_precision I,   p_n = sigma(w* . d_n)

`posterior_heads` draws heads w* + L z (L L^T = A^-1, z standard normal). Their rewards feed the
scorers of `rlhfkit.math.selection` like the heads of a bootstrapped reward model; unlike bootstrap
heads, their spread shrinks exactly where the comparisons so far pin the reward down.

Left out: a non-Gaussian posterior (MCMC), a prior other than isotropic, ties as answers.
"""

from __future__ import annotations

import torch


def bt_objective(w: torch.Tensor, diffs: torch.Tensor, labels: torch.Tensor, prior_precision: float) -> torch.Tensor:
    """L(w) = sum_n softplus(-y_n w . d_n) + prior_precision / 2 |w|^2, for `diffs` (N, C) and `labels` (N,) of +-1."""
    return torch.nn.functional.softplus(-labels * (diffs @ w)).sum() + 0.5 * prior_precision * w.pow(2).sum()


def bt_laplace(diffs: torch.Tensor, labels: torch.Tensor, prior_precision: float, init: torch.Tensor | None = None,
               max_steps: int = 50, tolerance: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """(w*, A): the MAP weights (C,) and the Hessian (C, C) of the negative log posterior at w*.

    Newton steps w <- w - t A^-1 g, t halved until L does not rise, until |g| < `tolerance` (or
    `max_steps`). Computed in float64."""
    if prior_precision <= 0:
        raise ValueError(f"prior_precision must be > 0 (it keeps the posterior proper), got {prior_precision}")
    if diffs.ndim != 2 or labels.shape != diffs.shape[:1]:
        raise ValueError(f"diffs must be (N, C) and labels (N,); got {tuple(diffs.shape)} and {tuple(labels.shape)}")
    d, y = diffs.double(), labels.double()
    eye = torch.eye(d.shape[1], dtype=torch.float64)
    w = torch.zeros(d.shape[1], dtype=torch.float64) if init is None else init.double().clone()

    def gradient_hessian(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.sigmoid(d @ w)  # P(first preferred)
        grad = d.T @ (p - (y > 0).double()) + prior_precision * w
        return grad, (d.T * (p * (1 - p))) @ d + prior_precision * eye

    grad, hessian = gradient_hessian(w)
    for _ in range(max_steps):
        if grad.norm() < tolerance:
            break
        step, t, before = torch.linalg.solve(hessian, grad), 1.0, bt_objective(w, d, y, prior_precision)
        while t > 1e-6 and bt_objective(w - t * step, d, y, prior_precision) > before:
            t /= 2
        w = w - t * step
        grad, hessian = gradient_hessian(w)
    return w, hessian


def posterior_heads(w: torch.Tensor, hessian: torch.Tensor, heads: int, generator: torch.Generator) -> torch.Tensor:
    """(heads, C) draws from N(w, hessian^-1): w + z L^T with L the Cholesky factor of hessian^-1."""
    factor = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(hessian)))
    z = torch.randn(heads, w.shape[0], generator=generator, dtype=torch.float64)
    return w.double() + z @ factor.T
