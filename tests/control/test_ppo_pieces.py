"""The control PPO's own pieces: episode pieces, bootstrapped GAE through rlhfkit.math.ops.gae (checked
against a plain for-loop with dones), running statistics, the return scaler and the reward ensemble."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlhfkit.control.loop import Snapshot, keep_best
from rlhfkit.control.ppo import (
    Agent,
    Episodes,
    ReturnScaler,
    Rollout,
    RunningMeanStd,
    advantages,
    episode_pieces,
)
from rlhfkit.control.reward import RewardEnsemble, Segment, cut_segments


def rollout_of(rewards, values, next_values, done, terminated) -> Rollout:
    t, n = np.shape(rewards)
    f = lambda x: np.asarray(x, np.float32)  # noqa: E731
    obs = np.arange(t * n * 2, dtype=np.float32).reshape(t, n, 2)
    return Rollout(obs, obs, np.zeros((t, n, 1), np.float32), np.zeros((t, n, 1), np.float32), np.zeros((t, n)),
                   f(values), f(rewards), np.asarray(terminated, bool), np.asarray(done, bool), f(next_values), [])


def reference_gae(rewards, values, next_values, done, terminated, gamma, lam):
    """The textbook loop (cleanrl's, with the value of the true next state): delta_t = r_t + gamma *
    V(s_{t+1}) * (1 - terminated_t) - V(s_t); A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}."""
    t_max, n = np.shape(rewards)
    adv = np.zeros((t_max, n))
    for env in range(n):
        running = 0.0
        for t in reversed(range(t_max)):
            delta = rewards[t][env] + gamma * next_values[t][env] * (1 - terminated[t][env]) - values[t][env]
            running = delta + gamma * lam * (1 - done[t][env]) * (running if t + 1 < t_max else 0.0)
            adv[t, env] = running
    return adv


def test_episode_pieces_split_at_done_and_at_the_end():
    done = np.array([[0, 0], [1, 0], [0, 0], [0, 1]], bool)  # env 0 ends at step 1; env 1 at step 3
    assert episode_pieces(done) == [(0, 0, 2), (0, 2, 4), (1, 0, 4)]


def test_bootstrapped_gae_matches_the_for_loop():
    """Env 0: a truncated episode (steps 0-1, bootstrapped from V(s') = 5), then a piece cut by the
    rollout's end (bootstrapped from 7). Env 1: terminated at step 2 (no bootstrap), then a new piece.
    By hand for env 1, step 2 (gamma 0.9, terminated): delta = 1 - V = 1 - 0.5 = 0.5 = A."""
    rewards = [[1.0, 0.0], [2.0, 1.0], [0.5, 1.0], [-1.0, 3.0]]
    values = [[0.5, 0.2], [1.0, 0.3], [0.2, 0.5], [0.1, 0.4]]
    next_values = [[1.0, 0.3], [5.0, 0.5], [0.1, 9.0], [7.0, 2.0]]
    done = [[0, 0], [1, 0], [0, 1], [0, 0]]
    terminated = [[0, 0], [0, 0], [0, 1], [0, 0]]
    gamma, lam = 0.9, 0.95
    adv, ret = advantages(rollout_of(rewards, values, next_values, done, terminated), np.asarray(rewards, np.float32),
                          gamma, lam)
    expected = reference_gae(rewards, values, next_values, done, terminated, gamma, lam)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret, expected + np.asarray(values), rtol=1e-5, atol=1e-6)
    assert adv[2, 1] == pytest.approx(0.5)


def test_running_mean_std_matches_numpy_over_batches():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(300, 2))
    stats = RunningMeanStd((2,))
    for chunk in np.split(data, 3):
        stats.update(chunk)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4)


def test_return_scaler_divides_by_the_std_of_discounted_returns():
    """One env, rewards (1, 1), gamma 0.5, no done: discounted returns 1 and 1.5, whose variance is
    0.0625 (std 0.25) — up to the prior count 1e-4 of the running statistics — so the rewards become 4."""
    scaler = ReturnScaler(1, gamma=0.5)
    scaled = scaler(np.array([[1.0], [1.0]]), np.zeros((2, 1), bool))
    np.testing.assert_allclose(scaled, [[4.0], [4.0]], rtol=1e-3)


def test_segments_never_cross_an_episode_boundary():
    done = np.zeros((7, 1), bool)
    done[2, 0] = True  # pieces: steps 0-2 and 3-6
    ro = rollout_of(np.zeros((7, 1)), np.zeros((7, 1)), np.zeros((7, 1)), done, np.zeros((7, 1)))
    segments = cut_segments(ro, 2)
    starts = [int(s.obs[0, 0]) // 2 for s in segments]  # obs encodes the step index
    assert starts == [0, 3, 5]


def test_reward_ensemble_learns_a_reward_from_preferences():
    """True reward -x^2 on 1-D observations; the oracle's labels from 200 pairs of 10-step segments.
    Afterwards the learned reward ranks held-out segments like the true one (accuracy > 0.9), and a
    tie's loss at equal sums is log 2 (the cross-entropy against 1/2 of sigmoid(0))."""
    rng = np.random.default_rng(0)

    def segment():
        obs = rng.uniform(-2, 2, size=(10, 1)).astype(np.float32) * rng.uniform(0.1, 1)
        return Segment(obs, np.zeros((10, 1), np.float32), -(obs[:, 0] ** 2))

    a, b = [segment() for _ in range(300)], [segment() for _ in range(300)]
    labels = np.array([float(x.true_rewards.sum() > y.true_rewards.sum()) for x, y in zip(a, b)])
    torch.manual_seed(0)
    model = RewardEnsemble(1, 1, np.array([-1.0]), np.array([1.0]), members=2)
    model.fit(a[:200], b[:200], labels[:200], steps=300, batch_size=32, lr=3e-3, generator=torch.Generator().manual_seed(0))
    probs = model.pair_probs(a[200:], b[200:]).mean(0)
    assert ((probs > 0.5) == (labels[200:] > 0.5)).mean() > 0.9
    x = model.inputs(np.zeros((1, 3, 1)), np.zeros((1, 3, 1)))
    tie = model._loss(model.nets[0], x, x, torch.tensor([0.5]))
    assert tie.item() == pytest.approx(np.log(2), rel=1e-6)


def test_reward_inputs_are_scaled_by_the_boxes_where_bounded():
    """Observation box [(-1, 1), (0, 8), (-inf, inf)], action box [-2, 2]: the bounded dims map to
    [-1, 1] by centre and half-width (0 and 1; 4 and 4), the action too (0 and 2, inside `inputs`);
    the unbounded dim takes the mean and std of the first fit's data (here steps of 1 and 3: mean 2,
    unbiased std sqrt(4/3))."""
    low, high = np.array([-1.0, 0.0, -np.inf]), np.array([1.0, 8.0, np.inf])
    model = RewardEnsemble(3, 1, np.array([-2.0]), np.array([2.0]), members=1, obs_low=low, obs_high=high)
    seg = lambda v: Segment(np.array([[0.0, 4.0, v]] * 2, np.float32), np.array([[2.0]] * 2, np.float32), np.zeros(2))  # noqa: E731
    model.fit([seg(1.0)], [seg(3.0)], np.array([1.0]), steps=1, batch_size=1, lr=1e-3,
              generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(model.in_mean.numpy(), [0.0, 4.0, 2.0, 0.0])
    np.testing.assert_allclose(model.in_std.numpy(), [1.0, 4.0, np.sqrt(4 / 3), 1.0], rtol=1e-6)
    assert model.inputs(np.array([[0.0, 8.0, 0.0]]), np.array([[2.0]]))[0, 3].item() == 1.0  # u = 2 -> +1


def test_the_run_keeps_the_snapshot_its_own_reward_scores_highest():
    """Episodes.mean_return sums only alive steps: episode 0 lives 3 steps of reward 1 (3), episode 1
    ends after 1 step of 2 (2, the later 5s are past its end) -> mean 2.5. keep_best loads the snapshot
    whose episodes score highest: here the second (score 2.5 against 1.0), and the agent gets its
    weights and observation statistics back."""
    alive = np.array([[True, True], [True, False], [True, False]])
    rewards = np.array([[1.0, 2.0], [1.0, 5.0], [1.0, 5.0]])
    good = Episodes(np.zeros((3, 2, 3)), np.zeros((3, 2, 1)), rewards, alive)
    assert good.mean_return() == pytest.approx(2.5)
    poor = Episodes(np.zeros((3, 2, 3)), np.zeros((3, 2, 1)), np.full((3, 2), 1 / 3), np.ones((3, 2), bool))
    agent = Agent(3, 1, np.array([-2.0]), np.array([2.0]))
    snapshots = []
    for steps, log_std, episodes in ((100, 0.0, poor), (200, 1.0, good), (300, 2.0, poor)):
        with torch.no_grad():
            agent.log_std.fill_(log_std)
        agent.obs_stats.mean = np.full(3, log_std)
        snapshots.append(Snapshot(steps, copy.deepcopy(agent.state_dict()), copy.deepcopy(agent.obs_stats), episodes))
    kept = keep_best(agent, snapshots, Episodes.mean_return)
    assert kept["env_steps"] == 200 and [s["score"] for s in kept["scores"]] == [1.0, 2.5, 1.0]
    assert agent.log_std.item() == 1.0 and agent.obs_stats.mean.tolist() == [1.0, 1.0, 1.0]
