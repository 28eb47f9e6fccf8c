"""`rlhfkit recommend`: feedback on recommendations — the seeds' second example, small and simulated.

    rlhfkit recommend --out runs/recommend

A catalogue of items in genres, users with hidden tastes, and a recommender that shows each user a
slate of `--slate` items. Simulated users give thumbs up or down on each shown item; a reward model
learns P(up | user, item) from the thumbs on slates of the starting recommender; the recommender is
then optimised against that reward with a KL penalty to the starting recommender, for each `--betas`.

    true utility of a slate   U = sum_k taste(u, i_k) * boredom^(earlier items of i_k's genre in the slate)
    thumbs on item k          up with probability sigmoid(scale * marginal utility of item k - bias)
    reward model              r(x_u, i) = x_u^T W e_i + b_i  (logistic regression on the thumbs)
    recommender               pi(i | x_u) = softmax(x_u^T A e_i + c_i); slates sampled without replacement
    objective per user        max_pi  E_{i ~ pi}[r(x_u, i)] - beta KL(pi || pi_0)     (exact sums over items)

The reward model scores items one at a time, so it cannot see that the fifth item of the same genre
bores the user: that is the recommendation form of reward hacking. Without the KL term the recommender
shows each user the items of the genre it scores highest, one genre per slate; the KL term keeps some
of the starting recommender's spread. Reported: true utility and genre diversity (distinct genres per
slate, catalogue coverage) of the starting recommender, of each beta, and of the true-taste optimum
with the same sampling, in result.json and report.html.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlhfkit.config import to_dict
from rlhfkit.control.report import chart
from rlhfkit.errors import ConfigError
from rlhfkit.math.ops import categorical_kl
from rlhfkit.pipelines.report import STYLE, table


@dataclass
class RecommendConfig:
    """Learn a reward from simulated thumbs on recommendations, optimise the recommender with a KL penalty."""

    out: str = "runs/recommend"
    """Output folder: result.json, report.html."""
    seed: int = 0
    """Seed of the catalogue, the users and the feedback."""
    items: int = 200
    """Items in the catalogue."""
    genres: int = 8
    """Genres the items fall in."""
    users: int = 1000
    """Simulated users (half give feedback, half evaluate)."""
    slate: int = 5
    """Items shown per slate."""
    feedback_slates: int = 4
    """Slates of the starting recommender each training user gives thumbs on."""
    boredom: float = 0.3
    """Utility factor per earlier item of the same genre in a slate (1: no boredom)."""
    betas: str = "0,0.03,0.1,0.3,1"
    """KL coefficients to optimise with (0: no KL term)."""
    steps: int = 300
    """Adam steps of the recommender's optimisation per beta."""


@dataclass
class World:
    """The hidden truth: item embeddings and genres, user tastes, and what the recommender sees."""

    item_vectors: np.ndarray  # (M, d) what both the truth and the models use as item features
    genre: np.ndarray  # (M,)
    tastes: np.ndarray  # (U, d) hidden
    features: np.ndarray  # (U, d) what the recommender sees of a user: a noisy view of the taste


def make_world(config: RecommendConfig, rng: np.random.Generator, dim: int = 8) -> World:
    centres = rng.normal(size=(config.genres, dim)) * 1.2
    genre = rng.integers(config.genres, size=config.items)
    items = centres[genre] + rng.normal(size=(config.items, dim)) * 0.5
    liked = rng.integers(config.genres, size=(config.users, 2))  # each user likes two genres
    tastes = centres[liked].sum(1) * 0.5 + rng.normal(size=(config.users, dim)) * 0.6
    features = tastes + rng.normal(size=tastes.shape) * 0.5
    return World(items / np.sqrt(dim), genre, tastes, features)


def marginal_utilities(world: World, users: np.ndarray, slates: np.ndarray, boredom: float) -> np.ndarray:
    """(B, K): each shown item's taste for its user, damped by `boredom` per earlier item of its genre."""
    taste = np.einsum("bd,bkd->bk", world.tastes[users], world.item_vectors[slates])
    genres = world.genre[slates]  # (B, K)
    earlier = (genres[:, :, None] == genres[:, None, :]) & np.tri(slates.shape[1], k=-1, dtype=bool).T[None]
    return taste * boredom ** earlier.sum(1)


def sample_slates(logits: torch.Tensor, k: int, generator: torch.Generator) -> np.ndarray:
    """(B, k) items sampled without replacement from softmax(logits) (Gumbel top-k)."""
    u = torch.rand(logits.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
    return torch.topk(logits - torch.log(-torch.log(u)), k, dim=-1).indices.numpy()


def bilinear(features: torch.Tensor, items: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(U, M) scores x_u^T W e_i + b_i."""
    return features @ weight @ items.T + bias


def fit_reward(x: torch.Tensor, items: torch.Tensor, users: np.ndarray, slates: np.ndarray, thumbs: np.ndarray,
               steps: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression of the thumbs on (user, item): the reward model (W, b), L2-regularised."""
    dim = x.shape[1]
    weight, bias = torch.zeros(dim, dim, requires_grad=True), torch.zeros(items.shape[0], requires_grad=True)
    optimiser = torch.optim.Adam([weight, bias], lr=0.05)
    rows, cols = torch.as_tensor(users).repeat_interleave(slates.shape[1]), torch.as_tensor(slates.reshape(-1))
    y = torch.as_tensor(thumbs.reshape(-1), dtype=torch.float32)
    for _ in range(steps):
        logits = (x[rows] @ weight * items[cols]).sum(-1) + bias[cols]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + 1e-3 * (weight**2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return weight.detach(), bias.detach()


def optimise(x: torch.Tensor, items: torch.Tensor, reward: torch.Tensor, start_logits: torch.Tensor, beta: float,
             steps: int) -> torch.Tensor:
    """The recommender's (A, c) against `reward` (U, M), with beta * KL(pi || pi_0); returns its logits (U, M)."""
    dim = x.shape[1]
    weight, bias = torch.zeros(dim, dim, requires_grad=True), start_logits[0].clone().requires_grad_(True)
    optimiser = torch.optim.Adam([weight, bias], lr=0.05)
    for _ in range(steps):
        logits = bilinear(x, items, weight, bias)
        expected = (logits.softmax(-1) * reward).sum(-1)  # E_{i ~ pi}[r], exactly
        loss = -(expected - beta * categorical_kl(logits, start_logits)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return bilinear(x, items, weight, bias).detach()


def measure(world: World, users: np.ndarray, logits: torch.Tensor, config: RecommendConfig,
            generator: torch.Generator, start_logits: torch.Tensor) -> dict[str, float]:
    slates = sample_slates(logits, config.slate, generator)
    utility = marginal_utilities(world, users, slates, config.boredom).sum(1)
    distinct = [len(set(world.genre[s])) for s in slates]
    return {"true_utility": float(utility.mean()), "genres_per_slate": float(np.mean(distinct)),
            "catalogue_coverage": len(set(slates.reshape(-1))) / config.items,
            "kl_to_start": float(categorical_kl(logits, start_logits).mean())}


def run_recommend(config: RecommendConfig) -> dict:
    try:
        betas = [float(b) for b in config.betas.split(",")]
    except ValueError:
        raise ConfigError(f"--betas {config.betas!r}: give comma-separated numbers, e.g. 0,0.1,1") from None
    if any(b < 0 for b in betas) or config.slate > config.items or config.users < 2 or not 0 < config.boredom <= 1:
        raise ConfigError("need --betas >= 0, --slate <= --items, --users >= 2 and --boredom in (0, 1]")
    rng, generator = np.random.default_rng(config.seed), torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    world = make_world(config, rng)
    x, items = torch.as_tensor(world.features, dtype=torch.float32), torch.as_tensor(world.item_vectors, dtype=torch.float32)
    train_users, eval_users = np.arange(config.users // 2), np.arange(config.users // 2, config.users)
    start_logits = torch.zeros(config.users, config.items)  # the starting recommender: uniform over the catalogue
    # 1) feedback: thumbs on the starting recommender's slates
    users = np.repeat(train_users, config.feedback_slates)
    slates = sample_slates(start_logits[users], config.slate, generator)
    marginal = marginal_utilities(world, users, slates, config.boredom)
    thumbs = rng.random(marginal.shape) < 1 / (1 + np.exp(-(3.0 * marginal - 0.5)))
    # 2) the reward model, per item
    weight, bias = fit_reward(x, items, users, slates, thumbs)
    reward = bilinear(x, items, weight, bias)
    # 3) the recommender against it, for each beta; and the true-taste optimum, for reference
    ev = torch.as_tensor(eval_users)
    results = {"start": measure(world, eval_users, start_logits[ev], config, generator, start_logits[ev])}
    for beta in betas:
        logits = optimise(x, items, reward, start_logits, beta, config.steps)
        results[f"beta={beta:g}"] = measure(world, eval_users, logits[ev], config, generator, start_logits[ev])
    true_taste = torch.as_tensor(world.tastes @ world.item_vectors.T, dtype=torch.float32)
    results["true taste, greedy"] = measure(world, eval_users, true_taste[ev] * 100, config, generator, start_logits[ev])
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"feedback": {"thumbs": int(thumbs.size), "up_share": float(thumbs.mean())}, "policies": results,
              "config": to_dict(config)}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    (out / "report.html").write_text(render(result, betas))
    for name, row in results.items():
        print(f"{name:>20}: utility {row['true_utility']:.3f}, genres/slate {row['genres_per_slate']:.2f}, "
              f"coverage {row['catalogue_coverage']:.2f}, KL {row['kl_to_start']:.2f}")
    return result


def render(result: dict, betas: list[float]) -> str:
    policies = result["policies"]
    rows = [[name, f"{r['true_utility']:.3f}", f"{r['genres_per_slate']:.2f}", f"{r['catalogue_coverage']:.2f}",
             f"{r['kl_to_start']:.2f}"] for name, r in policies.items()]
    swept = [policies[f"beta={b:g}"] for b in betas]
    xs = [max(b, 1e-3) for b in betas]
    curves = chart("What the KL term keeps", "beta (0 drawn at 0.001)", "per slate",
                   {"true utility": (xs, [r["true_utility"] for r in swept]),
                    "distinct genres": (xs, [r["genres_per_slate"] for r in swept])}, logx=True)
    return (f"""<!doctype html><html><head><meta charset="utf-8"><title>rlhfkit recommend report</title>
<style>{STYLE}</style></head><body><h1>rlhfkit recommend</h1>
<p>{result['feedback']['thumbs']} simulated thumbs ({result['feedback']['up_share']:.0%} up) on slates of the
starting recommender; a reward model per (user, item); the recommender optimised against it with KL
coefficient beta. True utility counts boredom with repeated genres, which the reward model cannot see.</p>"""
            + table(["recommender", "true utility", "genres per slate", "catalogue coverage", "KL to start"], rows)
            + curves + "</body></html>")
