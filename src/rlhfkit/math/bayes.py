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

`noisy_fisher` and `fisher_batch` choose comparisons by the information they add about w (a greedy,
batch-aware D-optimal design). For an annotator who answers at random with probability eta, the
answer to a comparison with margin m = w . d is "first" with q = eta/2 + (1 - eta) sigma(m), and its
Fisher information about w is f(m) d d^T, f(m) = ((1 - eta) sigma(m) (1 - sigma(m)))^2 / (q (1 - q))
(eta = 0: sigma (1 - sigma)). With A the information of the comparisons asked so far (plus the
prior's), asking comparison k multiplies det A by 1 + f_k d_k^T A^-1 d_k; `fisher_batch` takes the
comparison with the largest factor, adds it to A (Sherman-Morrison), and repeats, so a batch spreads
over directions of feature space that are not yet pinned down instead of asking one question twice.

`influence` is not a strategy: it measures how much room a selection rule could have. Given a
target loss whose gradient G is known (the gold labels of an evaluation set, which no real strategy
has), it scores each comparison by the first-order drop in that loss if its answer were added,
through one Newton step (an influence function): the comparison's own gradient is
g_k = -a_k sigma(-a_k m_k) d_k, the step moves w by -A^-1 g_k, and the target loss changes by
G^T (-A^-1 g_k) = a_k sigma(-a_k m_k) d_k^T A^-1 G. The score is minus that change. In expectation
over the model's own answer (a_k = +1 with probability sigma(m_k)), the change is exactly 0, so a
strategy that does not know the answer or G cannot compute this score.

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


def noisy_fisher(margins: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
    """f(m) = ((1 - noise) sigma(m) (1 - sigma(m)))^2 / (q (1 - q)), q = noise / 2 + (1 - noise) sigma(m):
    the Fisher information of one answer about its margin m (elementwise; noise 0: sigma (1 - sigma))."""
    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    p = torch.sigmoid(margins.double())
    q = noise / 2 + (1 - noise) * p
    return ((1 - noise) * p * (1 - p)) ** 2 / (q * (1 - q))


def fisher_batch(diffs: torch.Tensor, info: torch.Tensor, precision: torch.Tensor, budget: int,
                 groups: list[object] | None = None, max_per_group: int = 0,
                 exclude: list[int] | None = None) -> list[int]:
    """Greedy D-optimal batch: indices of `budget` comparisons (rows of `diffs` (P, C)), best first.

    `info` (P,) is each comparison's f (`noisy_fisher` of its margin), `precision` (C, C) the information
    A so far. Each pick maximises the gain 1 + f_k d_k^T A^-1 d_k among the comparisons not in `exclude`
    and not over the per-group cap (at most `max_per_group` from one group when > 0), then
    A <- A + f_k d_k d_k^T, so the gains of the others fall by f_j (d_j^T A^-1 d_k)^2 / (1 + f_k d_k^T A^-1 d_k)."""
    if diffs.ndim != 2 or info.shape != diffs.shape[:1] or precision.shape != (diffs.shape[1],) * 2:
        raise ValueError(f"diffs must be (P, C), info (P,) and precision (C, C); got {tuple(diffs.shape)}, "
                         f"{tuple(info.shape)} and {tuple(precision.shape)}")
    if groups is not None and len(groups) != len(diffs):
        raise ValueError(f"{len(groups)} group keys for {len(diffs)} comparisons")
    d, f = diffs.double(), info.double()
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(precision.double()))
    quad = ((d @ inverse) * d).sum(-1)  # d_j^T A^-1 d_j
    blocked = torch.zeros(len(d), dtype=torch.bool)
    if exclude:
        blocked[torch.tensor(exclude, dtype=torch.long)] = True
    picked: list[int] = []
    taken: dict[object, int] = {}
    while len(picked) < budget and not bool(blocked.all()):
        k = int(torch.where(blocked, -torch.inf, f * quad).argmax())
        blocked[k] = True
        if groups is not None and max_per_group:
            if taken.get(groups[k], 0) >= max_per_group:
                continue
            taken[groups[k]] = taken.get(groups[k], 0) + 1
        picked.append(k)
        u = inverse @ d[k]  # A^-1 d_k
        scale = f[k] / (1 + f[k] * (d[k] @ u))
        quad = quad - scale * (d @ u) ** 2
        inverse = inverse - scale * torch.outer(u, u)
    return picked


def influence(diffs: torch.Tensor, answers: torch.Tensor, w: torch.Tensor, precision: torch.Tensor,
              target_grad: torch.Tensor) -> torch.Tensor:
    """(P,) a_k sigma(-a_k w . d_k) * -(d_k^T A^-1 G): the first-order drop in a target loss with gradient
    `target_grad` G (C,) when comparison k (row of `diffs` (P, C), answer a_k = +-1 in `answers` (P,)) is
    added to a linear Bradley-Terry fit at `w` (C,) with information `precision` A (C, C), through one
    Newton step. Bigger: the answer moves w further down the target loss. A diagnostic that needs G."""
    if diffs.ndim != 2 or answers.shape != diffs.shape[:1] or w.shape != diffs.shape[1:] \
            or target_grad.shape != w.shape or precision.shape != (diffs.shape[1],) * 2:
        raise ValueError(f"diffs must be (P, C), answers (P,), w and target_grad (C,) and precision (C, C); got "
                         f"{tuple(diffs.shape)}, {tuple(answers.shape)}, {tuple(w.shape)}, {tuple(target_grad.shape)} "
                         f"and {tuple(precision.shape)}")
    d, a = diffs.double(), answers.double()
    v = torch.linalg.solve(precision.double(), target_grad.double())  # A^-1 G
    return -a * torch.sigmoid(-a * (d @ w.double())) * (d @ v)
