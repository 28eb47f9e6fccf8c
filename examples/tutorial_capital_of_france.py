"""Seed 004's toy, "What is the capital of France?", with rlhfkit's pure loss functions.

Five answers, ranked by people 3 > 1 > 2 > 5 > 4 (the seed's 1-based numbering). We learn one
scalar reward per answer (a small embedding and a linear head, as the seed does) from that ranking
three ways:

  1) margin ranking on all 10 pairs the ranking implies   (rlhfkit.math.losses.margin_ranking_loss)
  2) Bradley–Terry on the same 10 pairs                     (rlhfkit.math.losses.bradley_terry_loss)
  3) Plackett–Luce on the ranking itself, all 5 at once     (rlhfkit.math.losses.plackett_luce_loss)

then push a softmax policy over the five answers toward the learned reward, once without and once
with a KL penalty to the uniform policy it starts from (rlhfkit.math.ops.kl_estimate), and print
what each policy keeps.

Run:   .venv/bin/python examples/tutorial_capital_of_france.py
Read:  docs/tutorial.md (the same steps, explained, with this script's output).

Left out on purpose: text. Each answer is an id, so the reward model cannot generalise to a sixth
answer; the real `rlhfkit rm` reads the text with a transformer. Seeded; runs in seconds on a CPU.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn

from rlhfkit.math.losses import bradley_terry_loss, margin_ranking_loss, plackett_luce_loss
from rlhfkit.math.ops import kl_estimate

QUESTION = "What is the capital of France?"
ANSWERS = [
    "Paris",
    "paris",
    "The capital of France is Paris.",
    "I think it might be Berlin?",
    "Paris, obviously!",
]
RANKING_1_BASED = [3, 1, 2, 5, 4]  # best first, as people gave it
RANKING = [i - 1 for i in RANKING_1_BASED]  # the same as indices into ANSWERS: [2, 0, 1, 4, 3]
# every (better, worse) pair the ranking implies: 5 choose 2 = 10
PAIRS = list(itertools.combinations(RANKING, 2))

LOSSES = ("margin_ranking", "bradley_terry", "plackett_luce")


class RewardModel(nn.Module):
    """One learned vector per answer and a linear head: answer id -> scalar reward."""

    def __init__(self, num_answers: int = len(ANSWERS), embedding_dim: int = 8):
        super().__init__()
        self.embeddings = nn.Embedding(num_answers, embedding_dim)
        self.linear = nn.Linear(embedding_dim, 1)

    def forward(self, answer_ids: torch.Tensor) -> torch.Tensor:
        return self.linear(self.embeddings(answer_ids)).squeeze(-1)  # (...,) one reward per id


def reward_loss(model: RewardModel, loss: str) -> torch.Tensor:
    """The mean loss of `model` on the ranking, under one of LOSSES."""
    if loss == "plackett_luce":
        rewards = model(torch.arange(len(ANSWERS))).unsqueeze(0)  # (1, K=5)
        return plackett_luce_loss(rewards, torch.tensor([RANKING])).mean()
    better = model(torch.tensor([b for b, _ in PAIRS]))  # (10,)
    worse = model(torch.tensor([w for _, w in PAIRS]))  # (10,)
    if loss == "margin_ranking":
        return margin_ranking_loss(better, worse, margin=1.0).mean()
    if loss == "bradley_terry":
        return bradley_terry_loss(better, worse).mean()
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def train_reward_model(loss: str, steps: int = 200, lr: float = 0.01, seed: int = 42,
                       verbose: bool = True) -> list[float]:
    """Train a fresh RewardModel with `loss` (full batch, Adam) and return each answer's reward."""
    torch.manual_seed(seed)
    model = RewardModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        value = reward_loss(model, loss)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if verbose and step % 50 == 0:
            print(f"Epoch {step}/{steps}, Loss: {value.item():.4f}")
    with torch.no_grad():
        return model(torch.arange(len(ANSWERS))).tolist()


def exact_kl(log_probs: torch.Tensor, reference_log_probs: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of two categorical distributions, summed exactly over the answers.

    `kl_estimate(..., "k1")` is log p(y) - log q(y) for a sampled y; its mean under p is the KL,
    and with five answers we can take that mean exactly instead of sampling.
    """
    return (log_probs.exp() * kl_estimate(log_probs, reference_log_probs, "k1")).sum()


def train_policy(rewards: list[float], kl_coef: float, steps: int = 300, lr: float = 0.1) -> list[float]:
    """Maximise E_{y~p}[r(y)] - kl_coef * KL(p || uniform) over a softmax policy; return p.

    The policy starts uniform (logits 0), as a policy starts at its SFT model. Five answers, so the
    expectation is a sum, not a sample (the real `rlhfkit ppo` samples responses instead).
    """
    reward = torch.tensor(rewards)
    logits = nn.Parameter(torch.zeros(len(ANSWERS)))
    uniform = torch.full((len(ANSWERS),), 1.0 / len(ANSWERS)).log()
    optimizer = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        log_probs = logits.log_softmax(-1)
        objective = (log_probs.exp() * reward).sum() - kl_coef * exact_kl(log_probs, uniform)
        optimizer.zero_grad()
        (-objective).backward()  # optimisers minimise
        optimizer.step()
    return logits.detach().softmax(-1).tolist()


def learned_order(scores: list[float]) -> list[int]:
    """Answer indices from the highest learned score to the lowest."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def kl_to_uniform(probs: list[float]) -> float:
    p = torch.tensor(probs)
    return exact_kl(p.log(), torch.full_like(p, 1.0 / len(p)).log()).item()


def main(kl_coef: float = 1.0, verbose: bool = True) -> dict:
    """Run the tutorial; return the learned scores per loss and both policies' probabilities."""
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"Question: {QUESTION}")
    say(f"Ranking: {' > '.join(map(str, RANKING_1_BASED))}  ({len(PAIRS)} pairs)")

    # 1) - 3) one reward model per loss, the same start (seed) for each
    scores = {}
    for loss in LOSSES:
        say(f"\n== reward model: {loss} ==")
        scores[loss] = train_reward_model(loss, verbose=verbose)
        say("Final learned scores for each answer:")
        for i, answer in enumerate(ANSWERS):
            say(f"Answer {i}: '{answer}' -> Score: {scores[loss][i]:.3f}")
        order = [i + 1 for i in learned_order(scores[loss])]
        say(f"learned order: {' > '.join(map(str, order))} "
            f"({'the ranking' if order == RANKING_1_BASED else 'NOT the ranking'})")

    # 4) a policy pushed toward the margin-ranking reward (the seed's), without and with the KL term
    rewards = scores["margin_ranking"]
    policies = {"no_kl": train_policy(rewards, kl_coef=0.0), "kl": train_policy(rewards, kl_coef=kl_coef)}
    # the KL-regularised objective has a closed-form optimum: p(y) ∝ uniform(y) * exp(r(y) / beta)
    optimum = torch.tensor(rewards).div(kl_coef).softmax(-1).tolist()
    for name, title in (("no_kl", "without KL (beta = 0)"), ("kl", f"with KL to uniform (beta = {kl_coef:g})")):
        probs = policies[name]
        expected = sum(p * r for p, r in zip(probs, rewards))
        say(f"\n== policy {title} ==")
        say("Policy probabilities:")
        for i, answer in enumerate(ANSWERS):
            say(f"Answer {i}: '{answer}' -> P = {probs[i]:.3f}")
        say(f"expected reward {expected:.3f}, KL to uniform {kl_to_uniform(probs):.3f} nats")
    say(f"closed-form optimum with KL, p ∝ exp(r / {kl_coef:g}): "
        + ", ".join(f"{p:.3f}" for p in optimum))
    return {"scores": scores, "policies": policies, "optimum": optimum,
            "kl_to_uniform": {name: kl_to_uniform(p) for name, p in policies.items()}}


if __name__ == "__main__":
    main()
