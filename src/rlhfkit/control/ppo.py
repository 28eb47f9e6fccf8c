"""PPO for continuous actions on `gymnasium` vector environments: a Gaussian policy and a value net,
rollouts, advantages and the clipped update.

    rollout = collect(envs, agent, steps_per_env)            # (T, N, ...) arrays from N envs
    rewards = rollout.true_rewards  (or a learned reward of (obs, action))
    update(agent, optimiser, rollout, rewards, settings)      # GAE + clipped PPO epochs

The math is the project's own: advantages by `rlhfkit.math.ops.gae` (one row per episode piece, with
the value of the next state added to the last reward where an episode was cut rather than ended),
the losses by `rlhfkit.math.losses.ppo_policy_loss` / `ppo_value_loss`. What this file adds is the
part that belongs to control: actions squashed to the action box, observations normalised by running
statistics, rewards scaled by the running std of the discounted return (as SB3's VecNormalize does).

Exploration is the Gaussian's independent noise at every step, or, with `sde_sample_freq` > 0,
generalized state-dependent exploration (gSDE, Raffin et al. 2022; rl-zoo's Pendulum PPO uses it): the
noise is the actor's last hidden features times a random matrix drawn every `sde_sample_freq` steps per
env, so an episode's exploration is smooth in time rather than white. The action's distribution for
the losses is then the Gaussian with per-state variance sum_h features_h^2 sigma_ha^2 (features held
fixed, as SB3's default). SB3 has it, but SB3's PPO is not this file's; the few lines are written here.

Leaves out on purpose: recurrent policies, discrete actions, image observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rlhfkit.math.losses import ppo_policy_loss, ppo_value_loss
from rlhfkit.math.ops import gae


class RunningMeanStd:
    """Mean and variance of a stream of arrays (Chan et al.'s parallel update), for normalising."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64).reshape(-1, *self.mean.shape)
        n, mean, var = len(batch), batch.mean(0), batch.var(0)
        delta, total = mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}


def mlp(inputs: int, outputs: int, hidden: int, out_gain: float) -> nn.Sequential:
    layers = [nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, outputs)]
    for layer in layers[::2]:
        nn.init.orthogonal_(layer.weight, np.sqrt(2))
        nn.init.zeros_(layer.bias)
    nn.init.orthogonal_(layers[-1].weight, out_gain)
    return nn.Sequential(*layers)


# gSDE's starting log-std: SB3's 0 is in env units, and on Pendulum's [-2, 2] box the policy's unit box
# halves them
SDE_INIT_LOG_STD = float(np.log(0.5))


class Agent(nn.Module):
    """A diagonal Gaussian policy over actions in [-1, 1]^A (mapped onto the env's box) and a value net,
    both on observations normalised by running statistics. The log-std is a learned parameter: one per
    action, or with `sde_sample_freq` > 0 one per (hidden feature, action) for gSDE (module docstring)."""

    def __init__(self, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray, hidden: int = 64,
                 init_log_std: float | None = None, sde_sample_freq: int = 0, min_log_std: float | None = None) -> None:
        super().__init__()
        self.min_log_std = min_log_std
        self.actor = mlp(obs_dim, act_dim, hidden, out_gain=0.01)
        self.critic = mlp(obs_dim, 1, hidden, out_gain=1.0)
        self.sde_sample_freq = sde_sample_freq
        shape = (hidden, act_dim) if sde_sample_freq > 0 else (act_dim,)
        start = init_log_std if init_log_std is not None else (SDE_INIT_LOG_STD if sde_sample_freq > 0 else 0.0)
        self.log_std = nn.Parameter(torch.full(shape, float(start)))
        self.obs_stats = RunningMeanStd((obs_dim,))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def normalise(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.obs_stats.mean, dtype=torch.float32)
        std = torch.as_tensor(np.sqrt(self.obs_stats.var + 1e-8), dtype=torch.float32)
        return ((torch.as_tensor(obs, dtype=torch.float32) - mean) / std).clamp(-10, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The actor's last hidden layer, held fixed (no gradient) where gSDE scales its noise by it."""
        return self.actor[:-1](x).detach()

    def std(self) -> torch.Tensor:
        """exp(log_std), held at least exp(min_log_std) where a floor is set (below it the log-std gets no
        gradient, so exploration cannot die out while the policy is still learning)."""
        log_std = self.log_std if self.min_log_std is None else self.log_std.clamp(min=self.min_log_std)
        return log_std.exp()

    def distribution(self, x: torch.Tensor) -> torch.distributions.Normal:
        if self.sde_sample_freq <= 0:
            return torch.distributions.Normal(self.actor(x), self.std().expand(x.shape[0], -1))
        hidden = self.actor[:-1](x)
        variance = hidden.detach().pow(2) @ self.std().pow(2)  # (B, A): sum_h f_h^2 sigma_ha^2
        return torch.distributions.Normal(self.actor[-1](hidden), (variance + 1e-6).sqrt())

    def noise_matrices(self, n: int) -> torch.Tensor | None:
        """gSDE: one (hidden, A) matrix per env, entries N(0, sigma_ha^2); None without gSDE."""
        if self.sde_sample_freq <= 0:
            return None
        return torch.randn(n, *self.log_std.shape) * self.std().detach()

    def explore(self, x: torch.Tensor, dist: torch.distributions.Normal, noise: torch.Tensor | None) -> torch.Tensor:
        """An exploring action: a draw of `dist`, or with gSDE its mean plus features @ the env's matrix."""
        if noise is None:
            return dist.sample()
        return dist.mean + torch.einsum("nh,nha->na", self.features(x), noise)

    def to_env(self, action: torch.Tensor) -> np.ndarray:
        """Map a policy action (unbounded Gaussian sample) onto the env's box: clip to [-1, 1], rescale."""
        unit = action.clamp(-1.0, 1.0)
        return (self.low + (unit + 1.0) * 0.5 * (self.high - self.low)).numpy()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        dist = self.distribution(self.normalise(obs))
        return self.to_env(dist.mean if deterministic else dist.sample())


@dataclass
class Rollout:
    """N envs stepped T times. Arrays are (T, N, ...); `done` marks the last step of an episode
    (terminated or truncated), `terminated` the ones whose next state has no future (value 0)."""

    obs: np.ndarray  # (T, N, D) raw observations
    norm_obs: np.ndarray  # (T, N, D) as the policy saw them
    actions: np.ndarray  # (T, N, A) policy actions (before clipping), what the log-probs are of
    env_actions: np.ndarray  # (T, N, A) what the env received
    logprobs: np.ndarray  # (T, N)
    values: np.ndarray  # (T, N)
    true_rewards: np.ndarray  # (T, N)
    terminated: np.ndarray  # (T, N) bool
    done: np.ndarray  # (T, N) bool
    next_values: np.ndarray  # (T, N): V(next state) where a piece ends (done steps, the last step); 0 elsewhere
    episode_returns: list[float]  # true returns of the episodes that finished during the rollout
    states: np.ndarray | None = None  # (T, N, S) the envs' internal states, when kept for rendering


@torch.no_grad()
def collect(envs, agent: Agent, steps_per_env: int, obs: np.ndarray, running: np.ndarray,
            keep_states: bool = False) -> tuple[Rollout, tuple[np.ndarray, np.ndarray]]:
    """Step the vector env `steps_per_env` times with the current policy (sampling actions).

    `envs` must auto-reset in the same step (gymnasium's AutoresetMode.SAME_STEP), so a done step's
    true next observation is in `info["final_obs"]`. `obs` is the current observation (N, D) and
    `running` each env's true return so far (N,); both are returned updated for the next rollout.
    `keep_states` also records each env's internal state before each step (`unwrapped.state`, which
    the classic-control envs render from), for showing segments to people.
    """
    n = envs.num_envs
    buf = {k: [] for k in ("obs", "norm_obs", "actions", "env_actions", "logprobs", "values", "rewards", "terminated",
                           "done")}
    finished, states, ends = [], [], []  # ends: (step, env, true next observation) of each done step
    noise = None
    for t in range(steps_per_env):
        if agent.sde_sample_freq > 0 and t % agent.sde_sample_freq == 0:
            noise = agent.noise_matrices(n)  # gSDE: new matrices at the rollout's start and every few steps
        if keep_states:
            states.append([np.array(env.unwrapped.state, dtype=np.float64) for env in envs.envs])
        x = agent.normalise(obs)  # statistics frozen during the rollout, so the update sees the same inputs
        dist = agent.distribution(x)
        action = agent.explore(x, dist, noise)
        env_action = agent.to_env(action)
        next_obs, reward, terminated, truncated, info = envs.step(env_action)
        done = terminated | truncated
        ends += [(t, i, info["final_obs"][i]) for i in np.flatnonzero(done)]
        running = running + reward
        finished += [float(r) for r in running[done]]
        running = np.where(done, 0.0, running)
        for key, value in (("obs", obs), ("norm_obs", x.numpy()), ("actions", action.numpy()), ("env_actions", env_action),
                           ("logprobs", dist.log_prob(action).sum(-1).numpy()),
                           ("values", agent.critic(x).squeeze(-1).numpy()), ("rewards", reward),
                           ("terminated", terminated), ("done", done)):
            buf[key].append(np.asarray(value))
        obs = next_obs
    stack = {k: np.stack(v) for k, v in buf.items()}
    # V(next state) where a piece ends: after each done step (its final observation) and after the last step
    next_values = np.zeros((steps_per_env, n), np.float32)
    if ends:
        steps, envs_done, final = zip(*ends)
        next_values[list(steps), list(envs_done)] = agent.critic(agent.normalise(np.stack(final))).squeeze(-1).numpy()
    open_at_end = ~stack["done"][-1]
    next_values[-1, open_at_end] = agent.critic(agent.normalise(obs[open_at_end])).squeeze(-1).numpy()
    agent.obs_stats.update(stack["obs"])
    rollout = Rollout(stack["obs"], stack["norm_obs"], stack["actions"], stack["env_actions"],
                      stack["logprobs"].astype(np.float32), stack["values"].astype(np.float32),
                      stack["rewards"].astype(np.float32), stack["terminated"].astype(bool), stack["done"].astype(bool),
                      next_values, finished, np.array(states) if keep_states else None)
    assert rollout.obs.shape[:2] == (steps_per_env, n)
    return rollout, (obs, running)


def episode_pieces(done: np.ndarray) -> list[tuple[int, int, int]]:
    """The (env, start, stop) of each episode piece in a (T, N) rollout: a piece ends after a done
    step or at the end of the rollout. Pieces cover every step once, in order."""
    steps, n = done.shape
    pieces = []
    for env in range(n):
        start = 0
        for t in np.flatnonzero(done[:, env]):
            pieces.append((env, start, t + 1))
            start = t + 1
        if start < steps:
            pieces.append((env, start, steps))
    return pieces


def advantages(rollout: Rollout, rewards: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and return targets (T, N) by `rlhfkit.math.ops.gae`, one padded row per episode
    piece. `gae` treats a row's end as the end of the episode (next value 0); where the piece was cut
    (truncated by a time limit, or by the end of the rollout) the next state's value is added to the
    last reward, `r + gamma V(s')`, which makes the last delta the bootstrapped one."""
    pieces = episode_pieces(rollout.done)
    width = max(stop - start for _, start, stop in pieces)
    shape = (len(pieces), width)
    row_rewards, row_values, mask = np.zeros(shape, np.float32), np.zeros(shape, np.float32), np.zeros(shape, bool)
    for row, (env, start, stop) in enumerate(pieces):
        length, last = stop - start, stop - 1
        row_rewards[row, :length] = rewards[start:stop, env]
        row_values[row, :length] = rollout.values[start:stop, env]
        mask[row, :length] = True
        if not rollout.terminated[last, env]:
            row_rewards[row, length - 1] += gamma * rollout.next_values[last, env]
    adv, ret = gae(torch.from_numpy(row_rewards), torch.from_numpy(row_values), torch.from_numpy(mask), gamma, lam)
    out_adv, out_ret = np.zeros_like(rewards, np.float32), np.zeros_like(rewards, np.float32)
    for row, (env, start, stop) in enumerate(pieces):
        out_adv[start:stop, env] = adv[row, : stop - start].numpy()
        out_ret[start:stop, env] = ret[row, : stop - start].numpy()
    return out_adv, out_ret


class ReturnScaler:
    """Divides rewards by the running std of each env's discounted return (the reward half of SB3's
    VecNormalize): keeps the value targets near unit scale whatever the reward's units."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma, self.discounted, self.stats = gamma, np.zeros(num_envs), RunningMeanStd(())

    def __call__(self, rewards: np.ndarray, done: np.ndarray) -> np.ndarray:
        returns = np.zeros_like(rewards, np.float64)
        for t in range(len(rewards)):
            self.discounted = self.discounted * self.gamma + rewards[t]
            returns[t] = self.discounted
            self.discounted = np.where(done[t], 0.0, self.discounted)
        self.stats.update(returns.reshape(-1))
        return (rewards / np.sqrt(self.stats.var + 1e-8)).astype(np.float32)


@dataclass
class PPOSettings:
    """The PPO knobs, read from the command's config (see rlhfkit.control.loop.ControlConfig)."""

    gamma: float
    lam: float
    epochs: int
    minibatch_size: int
    clip_range: float
    value_clip_range: float
    vf_coef: float
    max_grad_norm: float
    ent_coef: float = 0.0


def update(agent: Agent, optimiser: torch.optim.Optimizer, rollout: Rollout, rewards: np.ndarray,
           settings: PPOSettings, generator: torch.Generator) -> dict[str, float]:
    """One PPO update on a rollout whose (already scaled) rewards are `rewards` (T, N). Call it before
    the next `collect`: the observations are normalised with the statistics the rollout used."""
    # 1) advantages and return targets
    adv, ret = advantages(rollout, rewards, settings.gamma, settings.lam)
    obs = torch.from_numpy(rollout.norm_obs.reshape(-1, rollout.norm_obs.shape[-1]))  # (T*N, D)
    actions = torch.from_numpy(rollout.actions.reshape(-1, rollout.actions.shape[-1]))  # (T*N, A)
    old_logprobs, old_values = torch.from_numpy(rollout.logprobs.reshape(-1)), torch.from_numpy(rollout.values.reshape(-1))
    adv_t, ret_t = torch.from_numpy(adv.reshape(-1)), torch.from_numpy(ret.reshape(-1))
    size = len(adv_t)
    stats: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "clip_fraction": [], "approx_kl": [],
                                     "entropy": []}
    # 2) epochs of shuffled minibatches
    for _ in range(settings.epochs):
        order = torch.randperm(size, generator=generator)
        for start in range(0, size, settings.minibatch_size):
            idx = order[start:start + settings.minibatch_size]
            mb_adv = adv_t[idx]
            mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)  # normalised advantages
            dist = agent.distribution(obs[idx])
            logprobs = dist.log_prob(actions[idx]).sum(-1)
            values = agent.critic(obs[idx]).squeeze(-1)
            row = (1, len(idx))  # the losses take (B, T): one row of len(idx) steps
            mask = torch.ones(row)
            policy_loss, pstats = ppo_policy_loss(logprobs.view(row), old_logprobs[idx].view(row), mb_adv.view(row),
                                                  mask, settings.clip_range)
            value_loss, _ = ppo_value_loss(values.view(row), old_values[idx].view(row), ret_t[idx].view(row), mask,
                                           settings.value_clip_range)
            entropy = dist.entropy().sum(-1).mean()  # the Gaussian's: keeps exploring while the reward is learned
            loss = policy_loss + settings.vf_coef * value_loss - settings.ent_coef * entropy
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), settings.max_grad_norm)
            optimiser.step()
            stats["policy_loss"].append(policy_loss.item())
            stats["value_loss"].append(value_loss.item())
            stats["clip_fraction"].append(pstats["clip_fraction"].item())
            stats["approx_kl"].append(pstats["approx_kl"].item())
            stats["entropy"].append(entropy.item())
    return {k: float(np.mean(v)) for k, v in stats.items()} | {"log_std": agent.log_std.mean().item()}


@dataclass
class Episodes:
    """Evaluation episodes run side by side: arrays are (T, E, ...), `alive` marks the steps that
    belong to an episode (False after its end)."""

    obs: np.ndarray  # (T, E, D)
    env_actions: np.ndarray  # (T, E, A)
    true_rewards: np.ndarray  # (T, E)
    alive: np.ndarray  # (T, E) bool

    def mean_return(self, rewards: np.ndarray | None = None) -> float:
        """Mean over episodes of the summed `rewards` (T, E) (default: the true ones) on alive steps."""
        rewards = self.true_rewards if rewards is None else rewards
        return float((rewards * self.alive).sum(0).mean())


@torch.no_grad()
def run_episodes(env_id: str, agent: Agent, episodes: int, seed: int, deterministic: bool = True,
                 random_actions: bool = False) -> Episodes:
    """`episodes` episodes (all at once in a vector env) with the policy's mean action (or uniform
    random actions), kept whole so that another reward can score them afterwards."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
    envs.action_space.seed(seed)
    obs, _ = envs.reset(seed=seed)
    alive = np.ones(episodes, bool)
    buf: dict[str, list[np.ndarray]] = {"obs": [], "env_actions": [], "true_rewards": [], "alive": []}
    while alive.any():
        action = envs.action_space.sample() if random_actions else agent.act(obs, deterministic)
        next_obs, reward, terminated, truncated, _ = envs.step(action)
        for key, value in (("obs", obs), ("env_actions", action), ("true_rewards", reward), ("alive", alive.copy())):
            buf[key].append(np.asarray(value))
        alive &= ~(terminated | truncated)
        obs = next_obs
    envs.close()
    return Episodes(*(np.stack(buf[k]) for k in ("obs", "env_actions", "true_rewards", "alive")))


def evaluate(env_id: str, agent: Agent, episodes: int, seed: int, deterministic: bool = True,
             random_actions: bool = False) -> float:
    """Mean true return over `episodes` episodes, with the policy's mean action (or uniform random actions)."""
    return run_episodes(env_id, agent, episodes, seed, deterministic, random_actions).mean_return()
