"""`rlhfkit control` against `imitation`'s PreferenceComparisons on the same environment, label budget,
total environment steps and seeds: the true return each reaches, the env steps each took, and the
ratio of their wall times.

    python bench/control_vs_imitation.py --imitation-python /work/venv-imitation/bin/python \
        [--env Pendulum-v1] [--labels 500] [--steps 100000] [--imitation-steps N] [--seeds 0 1 2] [--json out.json]

`imitation` (1.0.x) pins an older gymnasium and stable-baselines3, so it lives in a venv of its own
(`python -m venv /work/venv-imitation && /work/venv-imitation/bin/pip install imitation`); this script
runs its side there as a subprocess (the `IMITATION_SIDE` program below) and rlhfkit's side with
`python -m rlhfkit control` in this interpreter's environment, one after the other on the same
machine. Both are timed from process start to the final evaluation: the true return of the final
policy, mean over 20 episodes, deterministic actions. rlhfkit's run also reports `oracle_return` and
the normalised return (its oracle baseline comes from `rlhfkit control`'s cache, or, when it has to
run, its time is taken off rlhfkit's side; `--no-oracle` skips it).

imitation's side uses the settings of its Pendulum tutorial ("Learning a Reward Function using
Preference Comparisons"): 8 envs, SB3 PPO with a 32-unit policy on running-normalised features
(n_steps 2048 / 8, batch 64, ent_coef 0.01, lr 2e-3, clip 0.1, GAE lambda 0.95, gamma 0.97, 10 epochs),
a BasicRewardNet, random fragments of 100 steps, a synthetic gatherer (its oracle), 3 reward epochs
(x4 initially), 10% of the comparisons first and a hyperbolic schedule, `exploration_frac` 0.05.
The tutorial's iterations are one PPO rollout each (1,000 steps asked, 2,048 collected) and it says
"set to 60 for better performance"; here `num_iterations` is `--imitation-steps / 2048` rounded (49
at 100,000 steps): one rollout per iteration. The tutorial then trains a fresh agent on the learned
reward; here the agent trained during preference comparisons is evaluated.

**Environment steps, counted on both sides** (`env_steps`; evaluation episodes excluded on both:
imitation's and rlhfkit's final 20, rlhfkit's random-action and oracle runs, which do not shape the
kept policy). imitation: every step of its training envs, counted by a wrapper: its PPO rollouts
(`training_steps`) and the fragments it samples beyond them (each `sample` call resets the 8 envs
and runs whole 200-step episodes, once for the agent's fragments the training buffer lacks and once
for the `exploration_frac` share: at least 1,600 steps a call). rlhfkit: its PPO rollouts (the
segments are cut from them) plus, with `--keep best` (its default), the evaluation episodes of
every snapshot, which the final reward model scores to pick the kept policy (`selection_env_steps`:
10 episodes x 200 steps every 2 iterations). So equal totals come from different `--steps` and
`--imitation-steps`; the two settings measured in bench/README.md:

- rlhfkit's budget: `--steps 100000` (98,304 training + 24,000 scoring = 122,304) against
  `--imitation-steps 16384` (8 iterations: 18,432 training + 104,000 sampling = 122,432);
- imitation's budget: `--imitation-steps 100000` (104,448 + 132,800 = 237,248) against
  `--steps 188416` (46 iterations: 188,416 + 46,000 = 234,416).

`--count-only` prints imitation's env-step count at `--imitation-steps` without its gradient steps
(for choosing a budget; Pendulum's episodes are always 200 steps, so the count is the real one).

Both sides run with `OMP_NUM_THREADS=1` / one torch thread unless `--threads` says otherwise.
`--reuse-imitation FILE` takes imitation's side from an earlier `--json` of this script (same env,
labels, imitation steps and seeds, checked) instead of running it again; wall times then come from
two sessions, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

IMITATION_SIDE = r"""
import json, sys, numpy as np
from imitation.algorithms import preference_comparisons
from imitation.policies.base import FeedForward32Policy, NormalizeFeaturesExtractor
from imitation.rewards.reward_nets import BasicRewardNet
from imitation.rewards.reward_wrapper import RewardVecEnvWrapper
from imitation.util.networks import RunningNorm
from imitation.util.util import make_vec_env
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
import gymnasium as gym

env_id, labels, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
count_only, episodes = sys.argv[5] == "count", int(sys.argv[6])
STEPS = [0]
if count_only:  # SB3's gradient epochs off: the envs are stepped exactly as in a real run (Pendulum's
    PPO.train = lambda self: None  # episodes are always 200 steps), so the count is the real one

class CountSteps(gym.Wrapper):  # every env step imitation takes: training and fragment sampling
    def step(self, action):
        STEPS[0] += 1
        return self.env.step(action)

rng = np.random.default_rng(seed)
venv = make_vec_env(env_id, rng=rng, n_envs=8, post_wrappers=[lambda env, i: CountSteps(env)])
reward_net = BasicRewardNet(venv.observation_space, venv.action_space, normalize_input_layer=RunningNorm)
fragmenter = preference_comparisons.RandomFragmenter(warning_threshold=0, rng=rng)
gatherer = preference_comparisons.SyntheticGatherer(rng=rng)
preference_model = preference_comparisons.PreferenceModel(reward_net)
reward_trainer = preference_comparisons.BasicRewardTrainer(preference_model=preference_model,
                                                          loss=preference_comparisons.CrossEntropyRewardLoss(),
                                                          epochs=3, rng=rng)
agent = PPO(policy=FeedForward32Policy, policy_kwargs=dict(features_extractor_class=NormalizeFeaturesExtractor,
            features_extractor_kwargs=dict(normalize_class=RunningNorm)), env=venv, seed=seed,
            n_steps=2048 // venv.num_envs, batch_size=64, ent_coef=0.01, learning_rate=2e-3, clip_range=0.1,
            gae_lambda=0.95, gamma=0.97, n_epochs=10)
trajectory_generator = preference_comparisons.AgentTrainer(algorithm=agent, reward_fn=reward_net, venv=venv,
                                                           exploration_frac=0.05, rng=rng)
pref = preference_comparisons.PreferenceComparisons(
    trajectory_generator, reward_net, num_iterations=max(1, round(steps / 2048)), fragmenter=fragmenter,
    preference_gatherer=gatherer, reward_trainer=reward_trainer, fragment_length=100, transition_oversampling=1,
    initial_comparison_frac=0.1, allow_variable_horizon=False, initial_epoch_multiplier=4, query_schedule="hyperbolic")
pref.train(total_timesteps=steps, total_comparisons=labels)
returns = []
if not count_only:  # one env, episodes one after another: the first 20 are the 20-episode evaluation's
    eval_env = make_vec_env(env_id, rng=np.random.default_rng(seed + 20_000), n_envs=1)
    returns, _ = evaluate_policy(agent, eval_env, n_eval_episodes=episodes, deterministic=True,
                                 return_episode_rewards=True)
print(json.dumps({"true_return": float(np.mean(returns[:20])) if returns else float("nan"),
                  "returns": [float(r) for r in returns], "env_steps": STEPS[0],
                  "training_steps": agent.num_timesteps, "labels": len(pref.dataset)}))
"""


def threads_env(threads: int) -> dict:
    return os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def run_imitation(python: str, env: str, labels: int, steps: int, seed: int, threads: int, count: bool = False,
                  episodes: int = 20) -> dict:
    start = time.perf_counter()
    out = subprocess.run([python, "-c", IMITATION_SIDE, env, str(labels), str(steps), str(seed),
                          "count" if count else "run", str(episodes)],
                         capture_output=True, text=True, env=threads_env(threads))
    if out.returncode != 0:
        raise SystemExit(f"imitation's side failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"seconds": time.perf_counter() - start}


def final_returns(env: str, policy: str, seed: int, episodes: int, threads: int) -> list[float]:
    """Per-episode true returns of a saved rlhfkit policy's mean action on `episodes` evaluation episodes
    (envs seeded seed + 20000 + i, as `rlhfkit control`'s own 20: the first 20 are those)."""
    import torch

    from rlhfkit.control.loop import load_policy
    from rlhfkit.control.ppo import run_episodes

    torch.set_num_threads(threads)
    played = run_episodes(env, load_policy(policy, env), episodes, seed + 20_000)
    return [float(r) for r in (played.true_rewards * played.alive).sum(0)]


def run_rlhfkit(env: str, labels: int, steps: int, seed: int, out: str, threads: int, oracle: bool,
                extra: list[str], episodes: int = 20) -> dict:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "rlhfkit", "control", "--env", env, "--labels", str(labels), "--steps", str(steps),
           "--seed", str(seed), "--out", f"{out}/seed{seed}"] + ([] if oracle else ["--no-oracle"]) + extra
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=threads_env(threads))
    seconds = time.perf_counter() - start
    result = json.loads(open(f"{out}/seed{seed}/result.json").read())
    if oracle and not result["oracle_cached"]:  # the oracle baseline ran in this process: not rlhfkit's side
        seconds -= result["oracle_seconds"]
    keys = ("true_return", "random_return", "oracle_return", "normalised_return", "env_steps", "selection_env_steps",
            "labels")
    row = {k: result[k] for k in keys if k in result} | {"seconds": seconds}
    if episodes > 20:  # after the timing: not part of the run
        row["returns"] = final_returns(env, f"{out}/seed{seed}/policy.pt", seed, episodes, threads)
    # every env step that shapes the kept policy: the training rollouts (the segments are cut from them) and,
    # with --keep best, the snapshots' evaluation episodes the reward model scores
    return row | {"training_steps": row["env_steps"], "env_steps": row["env_steps"] + row["selection_env_steps"]}


def many(side: dict) -> str:
    """The mean over more than 20 final episodes, and how many of them failed the swing-up (below -500)."""
    returns = side.get("returns") or []
    if len(returns) <= 20:
        return ""
    failed = sum(r < -500 for r in returns)
    return f"; {len(returns)} episodes: {sum(returns) / len(returns):.1f}, {failed} below -500"


def reused_imitation(path: str, args: argparse.Namespace) -> dict[int, dict]:
    """imitation's rows from an earlier --json of this script, refused unless env, labels and steps match."""
    earlier = json.loads(open(path).read())
    earlier["args"].setdefault("imitation_steps", earlier["args"]["steps"])  # before --imitation-steps existed
    for key in ("env", "labels", "imitation_steps"):
        if earlier["args"][key] != getattr(args, key):
            raise SystemExit(f"--reuse-imitation {path}: it ran with --{key.replace('_', '-')} "
                             f"{earlier['args'][key]}, this run asks for {getattr(args, key)}")
    rows = {row["seed"]: row["imitation"] for row in earlier["rows"] if "imitation" in row}
    missing = [s for s in args.seeds if s not in rows or len(rows[s].get("returns") or [None] * 20) < args.final_episodes]
    if missing:
        raise SystemExit(f"--reuse-imitation {path} has no imitation result (with --final-episodes "
                         f"{args.final_episodes}) for seeds {missing}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imitation-python", required=True, help="python of the venv that has imitation")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100_000, help="rlhfkit control --steps (its training steps)")
    parser.add_argument("--imitation-steps", type=int, default=None,
                        help="imitation's total_timesteps (its training steps); default --steps")
    parser.add_argument("--count-only", action="store_true",
                        help="only count imitation's env steps at --imitation-steps (SB3's gradient steps off)")
    parser.add_argument("--no-oracle", action="store_true", help="rlhfkit control --no-oracle (no normalised return)")
    parser.add_argument("--rlhfkit-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for rlhfkit control (repeat it), e.g. --rlhfkit-arg=--selection=random")
    parser.add_argument("--final-episodes", type=int, default=20,
                        help="evaluation episodes of each side's final policy (more than 20: both means printed, "
                             "the first 20 being the 20-episode evaluation's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/bench-control")
    parser.add_argument("--json", default=None)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of both sides")
    parser.add_argument("--only", choices=("rlhfkit", "imitation"), default=None, help="run one side only")
    parser.add_argument("--reuse-imitation", default=None, metavar="FILE",
                        help="imitation's side from an earlier --json of this script")
    args = parser.parse_args()
    args.imitation_steps = args.imitation_steps or args.steps
    if args.count_only:
        for seed in args.seeds:
            print(json.dumps(run_imitation(args.imitation_python, args.env, args.labels, args.imitation_steps, seed,
                                           args.threads, count=True)))
        return
    reused = reused_imitation(args.reuse_imitation, args) if args.reuse_imitation else {}
    rows = []
    for seed in args.seeds:
        row = {"seed": seed}
        if args.only != "imitation":
            row["rlhfkit"] = run_rlhfkit(args.env, args.labels, args.steps, seed, args.out, args.threads,
                                         not args.no_oracle, args.rlhfkit_arg, args.final_episodes)
            ours = row["rlhfkit"]
            oracle = (f", oracle {ours['oracle_return']:.1f}, random {ours['random_return']:.1f}, normalised "
                      f"{ours['normalised_return']:.3f}") if "oracle_return" in ours else ""
            print(f"seed {seed}: rlhfkit {ours['true_return']:.1f} in {ours['seconds']:.0f} s ({ours['env_steps']} env "
                  f"steps, {ours['training_steps']} of them training, {ours['selection_env_steps']} scoring snapshots"
                  f"{oracle}){many(ours)}", flush=True)
        if args.only != "rlhfkit":
            row["imitation"] = reused.get(seed) or run_imitation(args.imitation_python, args.env, args.labels,
                                                                 args.imitation_steps, seed, args.threads,
                                                                 episodes=args.final_episodes)
            theirs = row["imitation"]
            print(f"seed {seed}: imitation {theirs['true_return']:.1f} in {theirs['seconds']:.0f} s "
                  f"({theirs['env_steps']} env steps, {theirs['training_steps']} of them training)"
                  f"{' (reused)' if seed in reused else ''}{many(theirs)}", flush=True)
        rows.append(row)
        if args.json:  # after every seed, so an interrupted run keeps what it measured
            with open(args.json, "w") as f:
                json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    if args.only:
        return
    mean = {side: sum(r[side]["true_return"] for r in rows) / len(rows) for side in ("rlhfkit", "imitation")}
    seconds = {side: sum(r[side]["seconds"] for r in rows) for side in ("rlhfkit", "imitation")}
    steps = {side: sum(r[side]["env_steps"] for r in rows) / len(rows) for side in ("rlhfkit", "imitation")}
    print(f"env steps per seed (evaluation episodes excluded): rlhfkit {steps['rlhfkit']:,.0f}, imitation "
          f"{steps['imitation']:,.0f} (ratio imitation/rlhfkit {steps['imitation'] / steps['rlhfkit']:.2f})")
    print(f"mean true return over {len(rows)} seeds: rlhfkit {mean['rlhfkit']:.1f}, imitation {mean['imitation']:.1f}; "
          f"wall-time ratio imitation/rlhfkit {seconds['imitation'] / seconds['rlhfkit']:.2f}"
          f"{' (imitation timed in an earlier session)' if reused else ''}")
    if args.final_episodes > 20:
        many_mean = {side: sum(sum(r[side]["returns"]) / len(r[side]["returns"]) for r in rows) / len(rows)
                     for side in ("rlhfkit", "imitation")}
        print(f"mean true return over {len(rows)} seeds x {args.final_episodes} episodes: rlhfkit "
              f"{many_mean['rlhfkit']:.1f}, imitation {many_mean['imitation']:.1f}")
        mean |= {f"{side}_{args.final_episodes}": many_mean[side] for side in many_mean}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "mean_true_return": mean, "seconds": seconds,
                       "env_steps": steps}, f, indent=1)


if __name__ == "__main__":
    main()
