"""A reward model over (observation, action): an ensemble of MLPs trained with Bradley–Terry on the
summed rewards of compared segments (Christiano et al., 2017, "Deep RL from Human Preferences").

    segments = cut_segments(rollout, length)                  # Segment pieces of single episodes
    model = RewardEnsemble(obs_dim, act_dim, members=3)
    model.fit(pairs_a, pairs_b, labels, steps, rng)           # label 1: a better, 0: b, 0.5: equal
    rewards = model.reward(obs, env_actions)                  # (...,) mean of the normalised members

Per member k, the predicted preference is ``P_k(a > b) = sigmoid(sum_t r_k(s^a_t, u^a_t) - sum_t
r_k(s^b_t, u^b_t))`` and the loss is `rlhfkit.math.losses.bradley_terry_loss` on the two sums (for a
tie, the mean of the two directions, i.e. the cross-entropy against 1/2). Each member trains on its
own bootstrap resample of the labelled pairs and from its own initialisation, which is what makes
their disagreement mean something. After each fit every member's output is normalised to mean 0,
std 1 over the labelled segments' steps, so the reward PPO sees has a fixed scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rlhfkit.control.ppo import Rollout, episode_pieces, mlp
from rlhfkit.math.losses import bradley_terry_loss


@dataclass
class Segment:
    """`length` consecutive steps of one episode: what a teacher compares."""

    obs: np.ndarray  # (H, D)
    actions: np.ndarray  # (H, A) env actions
    true_rewards: np.ndarray  # (H,)
    states: list | None = None  # the env's internal states, when kept for rendering


def cut_segments(rollout: Rollout, length: int, states: np.ndarray | None = None) -> list[Segment]:
    """Non-overlapping segments of `length` steps, each inside one episode piece (never across a reset)."""
    segments = []
    for env, start, stop in episode_pieces(rollout.done):
        for s in range(start, stop - length + 1, length):
            window = slice(s, s + length)
            segments.append(Segment(rollout.obs[window, env], rollout.env_actions[window, env],
                                    rollout.true_rewards[window, env],
                                    None if states is None else states[window, env].tolist()))
    return segments


class RewardEnsemble(nn.Module):
    """K MLPs r_k(s, u) -> scalar. Inputs are scaled to about [-1, 1]: actions by the action box, bounded
    observation dimensions by the observation box, unbounded ones by statistics fixed at the first fit."""

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, members: int = 3,
                 hidden: int = 64, obs_low: np.ndarray | None = None, obs_high: np.ndarray | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleList(mlp(obs_dim + act_dim, 1, hidden, out_gain=1.0) for _ in range(members))
        self.register_buffer("in_mean", torch.zeros(obs_dim + act_dim))
        self.register_buffer("in_std", torch.ones(obs_dim + act_dim))
        self.register_buffer("out_mean", torch.zeros(members))
        self.register_buffer("out_std", torch.ones(members))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        # where the observation box is bounded, its bounds give the input scale (fixed, and covering
        # states the first labelled segments never reached); actions are already in [-1, 1]
        bounded = np.zeros(obs_dim + act_dim, bool)
        bounded[obs_dim:] = True
        if obs_low is not None and obs_high is not None:
            finite = np.isfinite(obs_low) & np.isfinite(obs_high) & (np.asarray(obs_high) > np.asarray(obs_low))
            bounded[:obs_dim] = finite
            safe_low, safe_high = np.where(finite, obs_low, 0.0), np.where(finite, obs_high, 1.0)
            centre, half = (safe_high + safe_low) / 2, (safe_high - safe_low) / 2
            self.in_mean[:obs_dim] = torch.as_tensor(np.where(finite, centre, 0.0), dtype=torch.float32)
            self.in_std[:obs_dim] = torch.as_tensor(np.where(finite, half, 1.0), dtype=torch.float32)
        self.register_buffer("bounded", torch.as_tensor(bounded))
        self.fitted = False

    def inputs(self, obs: np.ndarray, actions: np.ndarray) -> torch.Tensor:
        unit = 2 * (torch.as_tensor(actions, dtype=torch.float32) - self.low) / (self.high - self.low) - 1
        return torch.cat([torch.as_tensor(obs, dtype=torch.float32), unit], -1)

    def member_rewards(self, x: torch.Tensor) -> torch.Tensor:
        """(K, ...) raw per-member rewards of already-built inputs (..., D + A)."""
        z = (x - self.in_mean) / self.in_std
        return torch.stack([net(z).squeeze(-1) for net in self.nets])

    @torch.no_grad()
    def reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The reward PPO optimises: the mean over members of their normalised outputs, shape (...)."""
        raw = self.member_rewards(self.inputs(obs, actions))
        shape = (-1,) + (1,) * (raw.dim() - 1)
        return ((raw - self.out_mean.view(shape)) / self.out_std.view(shape)).mean(0).numpy()

    @torch.no_grad()
    def pair_sums(self, a: list[Segment], b: list[Segment]) -> np.ndarray:
        """(P, K, 2): for candidate pair i, member k's summed raw reward of a[i] and of b[i], the
        Bradley-Terry logits whose softmax is member k's P(a > b)."""
        sums_a = self.member_rewards(self.inputs(*_stack(a))).sum(-1)  # (K, P)
        sums_b = self.member_rewards(self.inputs(*_stack(b))).sum(-1)
        return torch.stack([sums_a, sums_b], -1).transpose(0, 1).numpy()

    def pair_probs(self, a: list[Segment], b: list[Segment]) -> np.ndarray:
        """(K, P) each member's P(a > b) = sigmoid(R_k^a - R_k^b) for candidate pairs (a[i], b[i])."""
        sums = self.pair_sums(a, b)
        return (0.5 * (1 + np.tanh((sums[..., 0] - sums[..., 1]) / 2))).T  # sigmoid, without exp's overflow

    def fit(self, a: list[Segment], b: list[Segment], labels: np.ndarray, steps: int, batch_size: int,
            lr: float, generator: torch.Generator) -> dict[str, float]:
        """Train every member `steps` minibatch steps on its bootstrap resample of the labelled pairs."""
        x_a, x_b = self.inputs(*_stack(a)), self.inputs(*_stack(b))  # (P, H, D + A)
        y = torch.as_tensor(labels, dtype=torch.float32)
        if not self.fitted:  # 1) statistics of unbounded inputs, once: later fits keep the nets' scale
            flat = torch.cat([x_a, x_b]).reshape(-1, x_a.shape[-1])
            self.in_mean.copy_(torch.where(self.bounded, self.in_mean, flat.mean(0)))
            self.in_std.copy_(torch.where(self.bounded, self.in_std, flat.std(0).clamp_min(1e-3)))
            self.fitted = True
        losses = []
        for k, net in enumerate(self.nets):  # 2) each member on its own bootstrap resample
            optimiser = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
            sample = torch.randint(len(y), (len(y),), generator=generator)
            for _ in range(steps):
                idx = sample[torch.randint(len(sample), (min(batch_size, len(sample)),), generator=generator)]
                loss = self._loss(net, x_a[idx], x_b[idx], y[idx])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            losses.append(loss.item())
            with torch.no_grad():  # 3) normalise this member's output over the labelled steps
                out = net((torch.cat([x_a, x_b]) - self.in_mean) / self.in_std).squeeze(-1)
                self.out_mean[k], self.out_std[k] = out.mean(), out.std().clamp_min(1e-6)
        probs = self.pair_probs(a, b).mean(0)
        decided = labels != 0.5
        accuracy = float(((probs > 0.5) == (labels > 0.5))[decided].mean()) if decided.any() else float("nan")
        return {"rm_loss": float(np.mean(losses)), "rm_train_accuracy": accuracy}

    def _loss(self, net: nn.Module, x_a: torch.Tensor, x_b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        sum_a = net((x_a - self.in_mean) / self.in_std).squeeze(-1).sum(-1)  # (B,)
        sum_b = net((x_b - self.in_mean) / self.in_std).squeeze(-1).sum(-1)
        a_wins, b_wins = bradley_terry_loss(sum_a, sum_b), bradley_terry_loss(sum_b, sum_a)
        # y = 1: a chosen; y = 0: b chosen; y = 0.5: the mean of both directions
        return (y * a_wins + (1 - y) * b_wins).mean()


def _stack(segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([s.obs for s in segments]), np.stack([s.actions for s in segments])
