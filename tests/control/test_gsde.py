"""gSDE exploration in the control PPO (rlhfkit.control.ppo.Agent with sde_sample_freq > 0).

With features f (the actor's last hidden layer) and a noise matrix W whose entries are N(0, s_ha^2),
the exploring action is mean + f @ W, so for one action a its noise is sum_h f_h W_ha: a sum of
independent zero-mean normals with variance sum_h f_h^2 s_ha^2. That is the variance the agent's
`distribution` must report, since PPO's ratios are taken under it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlhfkit.control.loop import ControlConfig, check, load_policy, make_envs
from rlhfkit.control.ppo import SDE_INIT_LOG_STD, Agent, collect
from rlhfkit.errors import ConfigError


def test_the_reported_variance_is_the_noise_variance_by_hand():
    """Features set by hand: zero the last hidden layer's weights, bias b, so f_h = tanh(b_h) for every
    observation. b = (0.5, -1, 0, 0), s = (0.2, 0.3, 1, 1) on one action: f = (0.46212, -0.76159, 0, 0),
    so the variance is 0.213552 x 0.04 + 0.580026 x 0.09 + 0 + 0 = 0.008542 + 0.052202 = 0.060744."""
    torch.manual_seed(0)
    agent = Agent(3, 1, np.array([-2.0]), np.array([2.0]), hidden=4, sde_sample_freq=4)
    with torch.no_grad():
        agent.actor[2].weight.zero_()
        agent.actor[2].bias.copy_(torch.tensor([0.5, -1.0, 0.0, 0.0]))
        agent.log_std.copy_(torch.log(torch.tensor([[0.2], [0.3], [1.0], [1.0]])))
    x = torch.randn(5, 3)
    expected = np.tanh(0.5) ** 2 * 0.04 + np.tanh(1.0) ** 2 * 0.09
    assert expected == pytest.approx(0.060744, abs=1e-6)
    assert agent.distribution(x).variance[:, 0].detach().numpy() == pytest.approx(expected + 1e-6, rel=1e-5)
    # and the sampled noise has that variance: 20,000 draws of W for one observation
    noise = agent.noise_matrices(20_000)
    dist = agent.distribution(x[:1].expand(20_000, -1))
    actions = agent.explore(x[:1].expand(20_000, -1), dist, noise)
    assert (actions - dist.mean).var().item() == pytest.approx(expected, rel=0.03)


def test_noise_is_held_for_sde_sample_freq_steps_in_a_rollout():
    """Constant features (as above) make each env's noise f @ W the same number while W is held, so the
    rollout's (action - mean) is constant within blocks of 4 steps and changes between them."""
    torch.manual_seed(1)
    envs = make_envs("Pendulum-v1", 2, 0)
    agent = Agent(3, 1, envs.single_action_space.low, envs.single_action_space.high, sde_sample_freq=4)
    with torch.no_grad():
        agent.actor[2].weight.zero_()
        agent.actor[2].bias.fill_(0.5)
    obs, _ = envs.reset(seed=0)
    rollout, _ = collect(envs, agent, 12, obs, np.zeros(2))
    means = agent.distribution(torch.from_numpy(rollout.norm_obs.reshape(-1, 3))).mean.reshape(12, 2).detach().numpy()
    deviation = rollout.actions[..., 0] - means  # (12, 2)
    for block in range(3):
        rows = deviation[4 * block: 4 * block + 4]
        assert np.ptp(rows, axis=0) == pytest.approx([0, 0], abs=1e-5)
    assert abs(deviation[0, 0] - deviation[4, 0]) > 1e-3 and abs(deviation[4, 1] - deviation[8, 1]) > 1e-3
    # the stored log-probs are the marginal Gaussian's, what the update recomputes
    dist = agent.distribution(torch.from_numpy(rollout.norm_obs.reshape(-1, 3)))
    again = dist.log_prob(torch.from_numpy(rollout.actions.reshape(-1, 1))).sum(-1).reshape(12, 2)
    assert again.detach().numpy() == pytest.approx(rollout.logprobs, abs=1e-5)
    envs.close()


def test_gsde_agent_shape_default_and_reload(tmp_path):
    agent = Agent(3, 1, np.array([-2.0]), np.array([2.0]), sde_sample_freq=4)
    assert agent.log_std.shape == (64, 1) and agent.log_std.mean().item() == pytest.approx(SDE_INIT_LOG_STD)
    assert Agent(3, 1, np.array([-2.0]), np.array([2.0])).noise_matrices(2) is None
    torch.save({"state_dict": agent.state_dict(), "obs_stats": agent.obs_stats.state(), "sde_sample_freq": 4},
               tmp_path / "policy.pt")
    loaded = load_policy(tmp_path / "policy.pt", "Pendulum-v1")
    assert loaded.sde_sample_freq == 4 and torch.equal(loaded.log_std, agent.log_std)
    with pytest.raises(ConfigError, match="--sde-sample-freq"):
        check(ControlConfig(sde_sample_freq=-1))


def test_a_log_std_floor_holds_the_noise_and_stops_its_gradient(tmp_path):
    """With --min-log-std -1 and the parameter pushed to -3, the policy's std is e^-1 = 0.3679, the
    log-prob's gradient on the log-std is 0 (the floor is a clamp), and the mean still learns; above the
    floor nothing changes. gSDE's noise matrices use the floored std too."""
    agent = Agent(3, 1, np.array([-2.0]), np.array([2.0]), min_log_std=-1.0)
    with torch.no_grad():
        agent.log_std.fill_(-3.0)
    x = torch.randn(5, 3)
    dist = agent.distribution(x)
    assert dist.stddev.detach().numpy() == pytest.approx(np.full((5, 1), np.exp(-1.0)), abs=1e-6)
    dist.log_prob(torch.zeros(5, 1)).sum().backward()
    assert agent.log_std.grad.abs().sum().item() == 0.0 and agent.actor[-1].weight.grad.abs().sum().item() > 0
    free = Agent(3, 1, np.array([-2.0]), np.array([2.0]))
    with torch.no_grad():
        free.log_std.fill_(-3.0)
    assert free.distribution(x).stddev.detach().numpy() == pytest.approx(np.full((5, 1), np.exp(-3.0)), abs=1e-7)
    sde = Agent(3, 1, np.array([-2.0]), np.array([2.0]), sde_sample_freq=4, min_log_std=-1.0)
    with torch.no_grad():
        sde.log_std.fill_(-3.0)
    torch.manual_seed(0)
    noise = sde.noise_matrices(4000)
    assert noise.std().item() == pytest.approx(np.exp(-1.0), rel=0.02)
    torch.save({"state_dict": agent.state_dict(), "obs_stats": agent.obs_stats.state(), "sde_sample_freq": 0,
                "min_log_std": -1.0}, tmp_path / "policy.pt")
    assert load_policy(tmp_path / "policy.pt", "Pendulum-v1").min_log_std == -1.0
