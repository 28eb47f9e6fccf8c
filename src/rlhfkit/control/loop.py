"""`rlhfkit control`: RLHF on an agent that moves — preferences over trajectory segments on `gymnasium`.

    rlhfkit control --env Pendulum-v1 --labels 500 --out runs/control
    rlhfkit control --annotator web --store feedback.db --out runs/control-web   # people, in the web app

The loop (Christiano et al., 2017), one PPO iteration at a time:

    1) roll out the current policy in N envs for T steps each
    2) in a query round: cut the rollout into segments, draw candidate pairs, pick the ones the reward
       ensemble disagrees on most (or at random), and have them labelled (the synthetic teacher, or
       people through the feedback store; rlhfkit.control.annotate)
    3) refit the reward ensemble on every label so far (Bradley-Terry on summed segment rewards)
    4) relabel the rollout with the learned reward and do one PPO update

Query rounds run on the rollouts that end within the first `query_until_steps` env steps, whatever
`--steps` is (so a longer run asks the same labels at the same env steps): `initial_labels` of the
budget on the first rollout, the rest spread evenly. Besides the run, the command measures what the result means:
`oracle_return` (the same PPO, same steps, on the true reward; cached per env, steps, settings and seed
in `--cache-dir`) and `random_return` (uniform random actions). Outputs in `--out`: metrics.jsonl,
policy.pt, reward_model.pt, pairs.jsonl (every label), result.json, report.html.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rlhfkit.config import to_dict
from rlhfkit.control.ppo import (
    Agent,
    Episodes,
    PPOSettings,
    ReturnScaler,
    Rollout,
    RunningMeanStd,
    collect,
    evaluate,
    run_episodes,
    update,
)
from rlhfkit.control.report import write_report
from rlhfkit.control.reward import RewardEnsemble, Segment, cut_segments
from rlhfkit.control.teacher import Teacher
from rlhfkit.errors import ConfigError
from rlhfkit.math.selection import select, strategy_scores


@dataclass
class ControlConfig:
    """Learn a reward from comparisons of trajectory segments and train a policy on it with PPO."""

    env: str = "Pendulum-v1"
    """A gymnasium environment id with a continuous (Box) action space."""
    labels: int = 500
    """Label budget: how many segment pairs are compared in all."""
    annotator: Literal["oracle", "web"] = "oracle"
    """Who compares: the synthetic teacher (true return), or people in the feedback web app."""
    out: str = "runs/control"
    """Output folder."""
    seed: int = 0
    """Seed of the envs, the networks and the queries."""
    steps: int = 100_000
    """Environment steps of training (the oracle baseline gets the same)."""
    num_envs: int = 4
    """Parallel environments."""
    rollout_steps: int = 1024
    """Steps per env per PPO iteration."""
    gamma: float = 0.97
    """Discount (imitation's Pendulum setting; docs/control.md measures it beside rl-zoo's 0.9)."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    lr: float = 1e-3
    """Adam learning rate of the policy and value nets (decayed linearly to 0)."""
    ppo_epochs: int = 10
    """Passes over each rollout."""
    minibatch_size: int = 64
    """Steps per PPO minibatch."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    value_clip_range: float = 10.0
    """Clip of the value change per update (large: practically unclipped, as in SB3's default)."""
    ent_coef: float = 0.0
    """Weight of the policy's entropy bonus (rl-zoo's Pendulum setting, 0; imitation's preference
    tutorial uses 0.01, which did not speed up Pendulum here: docs/control.md)."""
    sde_sample_freq: int = 0
    """gSDE exploration (state-dependent noise, redrawn every N steps per env; rl-zoo's Pendulum PPO uses
    4), or 0: independent Gaussian noise at every step (docs/control.md has both measured)."""
    min_log_std: float | None = None
    """A floor under the policy's log-std (in the [-1, 1] action box), or None: none (the default). The
    evaluation and the kept policy use the mean action, so a floor changes only how long PPO keeps
    exploring (docs/control.md)."""
    segment_length: int = 50
    """Steps per compared segment."""
    selection: Literal["bald", "disagreement", "uncertainty", "random"] = "bald"
    """How pairs are chosen among the candidates: rlhfkit.math.selection's strategies on the ensemble
    members' summed segment rewards (bald: the most information about the ensemble from the answer)."""
    candidates: int = 10
    """Candidate pairs drawn per pair asked for (the selector picks among them)."""
    initial_labels: float = 0.25
    """Share of the budget asked on the first rollout (the policy's starting behaviour)."""
    query_until_steps: int = 73_728
    """Env steps after which no more labels are asked: the query rounds are the PPO iterations whose
    rollout ends within them (at least the first), counted in steps, not as a share of --steps, so a
    longer run asks the same labels at the same env steps (default: 18 iterations of 4 x 1,024 steps)."""
    ensemble: int = 3
    """Members of the reward-model ensemble."""
    rm_steps: int = 100
    """Minibatch steps per member at each refit."""
    rm_lr: float = 1e-3
    """Learning rate of the reward model."""
    teacher_beta: float = math.inf
    """Synthetic teacher's rationality (inf: always the higher return; B-Pref's 'stochastic': 1)."""
    teacher_myopia: float = 1.0
    """Synthetic teacher's discount on a segment's earlier steps (B-Pref's 'myopic': 0.9)."""
    teacher_mistake: float = 0.0
    """Probability that the synthetic teacher's answer is flipped (B-Pref's 'mistake': 0.1)."""
    teacher_equal: float = 0.0
    """Ties below this share of the mean segment return (B-Pref's 'equal': 0.1)."""
    eval_episodes: int = 10
    """Episodes per evaluation of the policy (mean action)."""
    eval_every: int = 2
    """PPO iterations between evaluations (the learning curve, and the snapshots --keep chooses from)."""
    keep: Literal["best", "last"] = "best"
    """Which policy the run keeps: `best` the evaluation snapshot whose episodes score highest under
    the run's own reward (the final reward model for RLHF, never the true reward; the true reward for
    the oracle), `last` the last iterate."""
    cache_dir: str = "~/.cache/rlhfkit/control"
    """Where the oracle baseline's result is kept (per env, steps, PPO settings and seed)."""
    oracle: bool = True
    """Also measure PPO on the true reward (oracle_return); --no-oracle skips it."""
    store: str = "feedback.db"
    """--annotator web: the feedback store (SQLite path or database URL) people judge in."""
    campaign: str = "control"
    """--annotator web: name prefix of the campaigns, one per query round."""
    wait_seconds: float = 3600.0
    """--annotator web: how long a query round waits for people before it stops with an error."""


def check(config: ControlConfig) -> None:
    """Refuse settings that cannot work, before any env is made."""
    positive = ("labels", "steps", "num_envs", "rollout_steps", "ppo_epochs", "minibatch_size", "segment_length",
                "candidates", "ensemble", "rm_steps", "eval_episodes", "eval_every", "query_until_steps")
    for name in positive:
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.sde_sample_freq < 0:
        raise ConfigError(f"--sde-sample-freq is a number of steps (0: off), got {config.sde_sample_freq}")
    if not 0 < config.initial_labels <= 1:
        raise ConfigError(f"--initial-labels is a share in (0, 1], got {config.initial_labels}")
    if config.segment_length > config.rollout_steps:
        raise ConfigError(f"--segment-length {config.segment_length} is longer than --rollout-steps {config.rollout_steps}")
    try:
        Teacher(config.teacher_beta, config.teacher_myopia, config.teacher_mistake, config.teacher_equal)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def make_envs(env_id: str, num_envs: int, seed: int):
    """N envs that auto-reset within the step, with a Box action space, reset with `seed`."""
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    except gym.error.Error as exc:
        raise ConfigError(f"--env {env_id!r}: {exc}") from None
    if not isinstance(envs.single_action_space, gym.spaces.Box):
        raise ConfigError(f"--env {env_id!r} has {envs.single_action_space}; rlhfkit control needs continuous (Box) actions")
    envs.action_space.seed(seed)
    return envs


def query_plan(labels: int, initial_share: float, until_steps: int, steps_per_iteration: int,
               iterations: int) -> dict[int, int]:
    """Labels to ask at each PPO iteration (0-based; iteration i's rollout ends at (i + 1) x
    `steps_per_iteration` env steps). The query rounds are the iterations whose rollout ends within
    `until_steps` (at least the first, at most all): `initial_share` of the budget at 0, the rest evenly
    over the later rounds. The plan depends on the run's length only where the run ends before `until_steps`."""
    rounds = min(iterations, max(1, until_steps // steps_per_iteration))
    first = max(1, round(initial_share * labels)) if rounds > 1 else labels
    later = np.diff(np.linspace(0, labels - first, rounds, dtype=float).round().astype(int), prepend=0)[1:]
    plan = {0: first} | {i + 1: int(n) for i, n in enumerate(later)}
    return {i: n for i, n in plan.items() if n > 0}


def candidate_pairs(segments: list[Segment], count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """`count` random pairs of distinct segments (indices), no pair twice where there are enough."""
    n = len(segments)
    if n < 2:
        raise ConfigError("a rollout gave fewer than 2 segments; lower --segment-length or raise --rollout-steps")
    seen: set[tuple[int, int]] = set()
    limit = min(count, n * (n - 1) // 2)
    while len(seen) < limit:
        i, j = rng.choice(n, 2, replace=False)
        seen.add((int(i), int(j)))
    return list(seen)


class Run:
    """The state of one RLHF run: envs, policy, reward ensemble, labels so far, and the output files."""

    def __init__(self, config: ControlConfig, out: Path) -> None:
        self.config, self.out = config, out
        self.envs = make_envs(config.env, config.num_envs, config.seed)
        space = self.envs.single_action_space
        obs_dim, act_dim = self.envs.single_observation_space.shape[0], space.shape[0]
        self.agent = Agent(obs_dim, act_dim, space.low, space.high, sde_sample_freq=config.sde_sample_freq,
                           min_log_std=config.min_log_std)
        observations = self.envs.single_observation_space
        self.model = RewardEnsemble(obs_dim, act_dim, space.low, space.high, members=config.ensemble,
                                    obs_low=observations.low, obs_high=observations.high)
        self.teacher = Teacher(config.teacher_beta, config.teacher_myopia, config.teacher_mistake, config.teacher_equal)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.pairs_a: list[Segment] = []
        self.pairs_b: list[Segment] = []
        self.labels: list[float] = []

    def query(self, rollout: Rollout, count: int, iteration: int, annotate) -> dict[str, Any]:
        """One query round: candidates from this rollout, selection, labels, refit (steps 2 and 3)."""
        config = self.config
        segments = cut_segments(rollout, config.segment_length, rollout.states)
        pairs = candidate_pairs(segments, count * config.candidates, self.rng)
        a, b = [segments[i] for i, _ in pairs], [segments[j] for _, j in pairs]
        strategy = config.selection if self.model.fitted else "random"  # an unfitted ensemble's spread means nothing
        scores = strategy_scores(strategy, self.model.pair_sums(a, b).tolist(), seed=int(self.rng.integers(2**31)))
        chosen = select(scores, min(count, len(pairs)))
        a, b = [a[i] for i in chosen], [b[i] for i in chosen]
        labels = annotate(a, b, iteration)  # NaN: skipped
        kept = [i for i, x in enumerate(labels) if not np.isnan(x)]
        a, b, labels = [a[i] for i in kept], [b[i] for i in kept], [float(labels[i]) for i in kept]
        self.pairs_a += a
        self.pairs_b += b
        self.labels += labels
        with (self.out / "pairs.jsonl").open("a") as f:
            for seg_a, seg_b, label in zip(a, b, labels):
                f.write(json.dumps({"iteration": iteration, "label": float(label), "strategy": strategy,
                                    "true_return_a": float(seg_a.true_rewards.sum()),
                                    "true_return_b": float(seg_b.true_rewards.sum())}) + "\n")
        if not self.labels:  # every pair skipped so far: nothing to fit yet
            return {"labels": 0}
        stats = self.model.fit(self.pairs_a, self.pairs_b, np.array(self.labels), config.rm_steps, 64, config.rm_lr,
                               self.generator)
        return stats | {"labels": len(self.labels)}



def ppo_settings(config: ControlConfig) -> PPOSettings:
    return PPOSettings(config.gamma, config.gae_lambda, config.ppo_epochs, config.minibatch_size, config.clip_range,
                       config.value_clip_range, vf_coef=0.5, max_grad_norm=0.5, ent_coef=config.ent_coef)


@dataclass
class Snapshot:
    """The policy at one evaluation, with the evaluation episodes it ran (for scoring them later)."""

    env_steps: int
    state: dict[str, Any]  # a copy of agent.state_dict()
    obs_stats: RunningMeanStd
    episodes: Episodes


def keep_best(agent: Agent, snapshots: list[Snapshot], score) -> dict[str, Any]:
    """Load into `agent` the snapshot whose evaluation episodes `score(episodes) -> float` rates
    highest (the earliest of equals). Returns which one and every snapshot's score."""
    scores = [float(score(s.episodes)) for s in snapshots]
    best = snapshots[int(np.argmax(scores))]
    agent.load_state_dict(best.state)
    agent.obs_stats = copy.deepcopy(best.obs_stats)
    return {"env_steps": best.env_steps, "scores": [{"env_steps": s.env_steps, "score": round(x, 3)}
                                                     for s, x in zip(snapshots, scores)]}


def train(config: ControlConfig, agent: Agent, envs, relabel, log,
          keep_states: bool = False) -> tuple[list[dict[str, Any]], list[Snapshot]]:
    """The PPO loop shared by the RLHF run and the oracle: `relabel(iteration, rollout)` gives the
    rewards (T, N) and extra metrics of each rollout. Returns the evaluation curve and the snapshot
    taken at each evaluation. `keep_states` records the envs' internal states (for rendering
    segments to people)."""
    settings, iterations = ppo_settings(config), max(1, config.steps // (config.num_envs * config.rollout_steps))
    optimiser = torch.optim.Adam(agent.parameters(), lr=config.lr, eps=1e-5)
    scaler, generator = ReturnScaler(config.num_envs, config.gamma), torch.Generator().manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    state, curve, snapshots, start = (obs, np.zeros(config.num_envs)), [], [], time.time()
    for iteration in range(iterations):
        for group in optimiser.param_groups:  # linear decay to 0
            group["lr"] = config.lr * (1 - iteration / iterations)
        rollout, state = collect(envs, agent, config.rollout_steps, *state, keep_states=keep_states)  # 1) roll out
        rewards, extra = relabel(iteration, rollout)  # 2-3) query, label, refit; the rewards to optimise
        stats = update(agent, optimiser, rollout, scaler(rewards, rollout.done), settings, generator)  # 4) PPO
        step = (iteration + 1) * config.num_envs * config.rollout_steps
        row = {"iteration": iteration, "env_steps": step, "seconds": round(time.time() - start, 1),
               "train_true_return": float(np.mean(rollout.episode_returns)) if rollout.episode_returns else None}
        if (iteration + 1) % config.eval_every == 0 or iteration == iterations - 1:
            episodes = run_episodes(config.env, agent, config.eval_episodes, config.seed + 10_000)
            row["eval_true_return"] = episodes.mean_return()
            curve.append({"env_steps": step, "return": row["eval_true_return"]})
            snapshots.append(Snapshot(step, copy.deepcopy(agent.state_dict()), copy.deepcopy(agent.obs_stats), episodes))
        log(row | extra | stats | {"train_reward": float(np.mean(rewards))})
    return curve, snapshots


def load_policy(path: str | Path, env_id: str) -> Agent:
    """The policy a run saved (`<out>/policy.pt`: weights and observation statistics), for `env_id`."""
    envs = make_envs(env_id, 1, 0)
    space, observations = envs.single_action_space, envs.single_observation_space
    envs.close()
    saved = torch.load(path, weights_only=True)
    agent = Agent(observations.shape[0], space.shape[0], space.low, space.high,
                  sde_sample_freq=int(saved.get("sde_sample_freq", 0)), min_log_std=saved.get("min_log_std"))
    agent.load_state_dict(saved["state_dict"])
    stats = saved["obs_stats"]
    agent.obs_stats.mean, agent.obs_stats.var = np.array(stats["mean"]), np.array(stats["var"])
    agent.obs_stats.count = stats["count"]
    return agent


def oracle_baseline(config: ControlConfig) -> dict[str, Any]:
    """PPO on the true reward with the same steps and settings: cached, since it does not depend on labels."""
    keys = ("env", "seed", "steps", "num_envs", "rollout_steps", "gamma", "gae_lambda", "lr", "ppo_epochs",
            "minibatch_size", "clip_range", "value_clip_range", "ent_coef", "sde_sample_freq", "eval_episodes", "eval_every", "keep")
    if config.min_log_std is not None:  # an earlier cache entry stays valid for runs without a floor
        keys += ("min_log_std",)
    settings = {k: getattr(config, k) for k in keys}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(config.cache_dir).expanduser() / f"oracle-{config.env}-{config.steps}-{digest}.json"
    if path.exists():
        return json.loads(path.read_text()) | {"cached": str(path)}
    envs = make_envs(config.env, config.num_envs, config.seed)
    torch.manual_seed(config.seed)
    space = envs.single_action_space
    agent = Agent(envs.single_observation_space.shape[0], space.shape[0], space.low, space.high,
                  sde_sample_freq=config.sde_sample_freq, min_log_std=config.min_log_std)
    start = time.time()
    curve, snapshots = train(config, agent, envs, lambda i, r: (r.true_rewards, {}), lambda row: None)
    kept = keep_best(agent, snapshots, Episodes.mean_return) if config.keep == "best" else None  # its own reward
    result = {"settings": settings, "curve": curve, "seconds": round(time.time() - start, 1), "kept": kept,
              "return": evaluate(config.env, agent, config.eval_episodes * 2, config.seed + 20_000)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def run_control(config: ControlConfig) -> dict[str, Any]:
    """Run the loop, then the baselines; write the outputs (see the module docstring)."""
    check(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.jsonl", "pairs.jsonl"):
        (out / name).unlink(missing_ok=True)
    torch.manual_seed(config.seed)
    run = Run(config, out)
    iterations = max(1, config.steps // (config.num_envs * config.rollout_steps))
    plan = query_plan(config.labels, config.initial_labels, config.query_until_steps,
                      config.num_envs * config.rollout_steps, iterations)
    from rlhfkit.control.annotate import StoreAnnotator  # the feedback store: sqlalchemy, only when run

    if config.annotator == "web":
        annotate = StoreAnnotator(config.store, config.campaign, config.env, wait_seconds=config.wait_seconds).label
    else:  # the teacher answers in a store of the run's own, through the same service as people
        (out / "feedback.db").unlink(missing_ok=True)
        annotate = StoreAnnotator(str(out / "feedback.db"), config.campaign, config.env, teacher=run.teacher,
                                  rng=run.rng).label
    extra: dict[str, Any] = {}

    def relabel(iteration: int, rollout: Rollout) -> tuple[np.ndarray, dict[str, Any]]:
        if iteration in plan:
            extra.update(run.query(rollout, plan[iteration], iteration, annotate))
        return run.model.reward(rollout.obs, rollout.env_actions), dict(extra)

    def log(row: dict[str, Any]) -> None:
        with (out / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        if "eval_true_return" in row:
            print(f"step {row['env_steps']}: true return {row['eval_true_return']:.1f}, labels {row.get('labels', 0)}, "
                  f"{row['seconds']:.0f} s", flush=True)

    start = time.time()
    curve, snapshots = train(config, run.agent, run.envs, relabel, log, keep_states=config.annotator == "web")
    kept = None
    if config.keep == "best":  # scored by the final reward model only: the true reward is not looked at
        kept = keep_best(run.agent, snapshots, lambda ep: ep.mean_return(run.model.reward(ep.obs, ep.env_actions)))
    seconds = time.time() - start
    torch.save({"state_dict": run.agent.state_dict(), "obs_stats": run.agent.obs_stats.state(),
                "sde_sample_freq": run.agent.sde_sample_freq, "min_log_std": run.agent.min_log_std}, out / "policy.pt")
    torch.save({"state_dict": run.model.state_dict(), "members": config.ensemble}, out / "reward_model.pt")
    # --keep best scores the snapshots' evaluation episodes with the reward model: those env steps feed
    # the result too (the final 20 episodes and the curve's true returns only report it)
    selection_steps = sum(int(s.episodes.alive.sum()) for s in snapshots) if config.keep == "best" else 0
    result = {"env": config.env, "labels": len(run.labels), "env_steps": curve[-1]["env_steps"],
              "selection_env_steps": selection_steps,
              "true_return": evaluate(config.env, run.agent, config.eval_episodes * 2, config.seed + 20_000),
              "random_return": evaluate(config.env, run.agent, config.eval_episodes * 2, config.seed + 20_000,
                                        random_actions=True),
              "seconds": round(seconds, 1), "curve": curve, "kept": kept}
    if config.oracle:
        oracle = oracle_baseline(config)
        span = oracle["return"] - result["random_return"]
        result |= {"oracle_return": oracle["return"], "oracle_curve": oracle["curve"],
                   "oracle_seconds": oracle["seconds"], "oracle_cached": "cached" in oracle, "oracle_kept": oracle.get("kept"),
                   "normalised_return": (result["true_return"] - result["random_return"]) / span if span else None}
    result["config"] = to_dict(config)
    (out / "result.json").write_text(json.dumps(result, indent=1))
    write_report(out, result)
    print(json.dumps({k: result.get(k) for k in ("true_return", "oracle_return", "random_return", "normalised_return",
                                                 "labels", "seconds")} | {"kept_env_steps": (kept or {}).get("env_steps")}))
    return result
