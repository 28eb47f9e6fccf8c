"""Label efficiency of query selection: reward-model accuracy against the gold rubric vs labels asked,
for random selection and each strategy of rlhfkit.math.selection, several seeds; then the downstream
DPO policy's gold win-rate over SFT at two budgets, for random and the best strategy.

    python bench/label_efficiency.py --model runs/quickstart/sft [--seeds 8] [--json out.json] [--features-cache f.pt]
        [--reward-model top-layer] [--workers 2]

What it does (the budget grid, the pool and the held-out set are fixed before any result is seen):
  1) a pool on the built-in task: --pool-prompts training prompts x --responses responses of random
     styles (a repeated response kept once), every pair of a prompt a candidate (28 a prompt for 8);
     a held-out set of --heldout pairs on eval prompts, labelled by the gold rubric (ties left out);
     both drawn with --data-seed
  2) features: the frozen SFT model's last hidden state at the last real token of each response
     (the reward model reads the same token; --features last+mean adds its mean over the response),
     computed once, standardised
  3) labels: one simulated annotator (noise --noise) answers every pool pair once per seed, so every
     strategy gets the same answer to the same question (ties and "both bad" count as asked, unused)
  4) the reward model: a linear Bradley-Terry model on the frozen features. With --posterior bootstrap
     (the default), --heads heads each fitted on its own double-or-nothing bootstrap of the labels
     (L2 --l2), the reward their mean; with --likelihood noisy (the default) the fit and the
     uncertainty / BALD scores use the annotator's own noise model, P(answer) = noise/2 + (1 - noise)
     sigma(gap), for every strategy alike (--likelihood bt: plain Bradley-Terry). With --posterior laplace, the reward is the MAP under the prior
     N(0, I / --prior-precision), and the ensemble the selection reads is --heads draws from its
     Laplace posterior (rlhfkit.math.bayes; refitted by Newton's method from the last fit).
     With --reward-model top-layer, the SFT model's last decoder layer (--rm-layers of them) and final
     norm are trained too (AdamW, --rm-epochs over the labels, from the SFT weights at every fit) under --heads
     heads, each head's loss on its own bootstrap; the layers below stay frozen and their output is
     computed once, which is what makes a refit after every batch of 50 affordable on a CPU
  5) per strategy and seed: --start random labels, then batches of --step chosen by the strategy from
     the unasked pool (at most 1 per prompt per batch) with the ensemble refitted after each batch;
     the gold accuracy of the mean head on the held-out set at each budget of GRID. Besides the
     strategies of rlhfkit.math.selection, `fisher`: a greedy D-optimal batch at the mean weights
     under the noise model (rlhfkit.math.bayes.fisher_batch), which spreads a batch over feature space;
     and three oracles that read the gold rubric (oracle_scores), a bound on what any selection
     could gain with these features: none is a strategy a campaign could use
  6) printed: mean +- std over seeds per budget; random's gain from B/2 to B at each budget; the largest
     budget B where that gain is above the seed-to-seed std (the rule, fixed before any result); and
     for each strategy the labels it needs to reach random's accuracy at B, as a fraction of B (linear
     between grid points), with a 95% interval from a bootstrap over the seeds
  7) downstream (--dpo-prompts > 0), at each budget of DOWNSTREAM for random and the strategy with the
     smallest fraction (oracles aside), each of the first --dpo-seeds seeds: the reward model of that budget picks the best and the worst of
     the --responses responses of each of the first --dpo-prompts pool prompts; DPO (RPO weight 1)
     from SFT on those pairs; the policy's gold win-rate over SFT on --eval-prompts eval prompts, all
     policies against one shared set of SFT responses

Left out: training the embeddings (--rm-layers counts decoder layers only); K-wise
tuples (counted per implied pair they are the same pairs; docs/active-learning.md says why). Measured numbers
and the command: docs/active-learning.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlhfkit.data.records import write_jsonl  # noqa: E402
from rlhfkit.data.tokenization import collate, encode, render_completion, render_prompt  # noqa: E402
from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval  # noqa: E402
from rlhfkit.math.bayes import bt_laplace, fisher_batch, influence, noisy_fisher, posterior_heads  # noqa: E402
from rlhfkit.math.losses import noisy_bradley_terry_loss  # noqa: E402
from rlhfkit.math.ops import last_real_index  # noqa: E402
from rlhfkit.math.selection import STRATEGIES, candidate_tuples, select, strategy_scores  # noqa: E402
from rlhfkit.models.loading import load_causal_lm  # noqa: E402
from rlhfkit.tasks import assistant  # noqa: E402
from rlhfkit.trainers.dpo import DPOConfig, train_dpo  # noqa: E402

GRID = [50, 100, 200, 400, 800]
DOWNSTREAM = [200, 800]


def build_pool(n_prompts: int, n_responses: int, n_heldout: int, seed: int):
    """(texts, pool pairs, held-out pairs): texts are (prompt, response); a pool pair is (i, j, prompt
    index); a held-out pair is (i, j, +1 if gold prefers i else -1)."""
    rng = random.Random(seed)
    texts: list[tuple[str, str]] = []
    pool: list[tuple[int, int, int]] = []
    for p, row in enumerate(assistant.prompts(n_prompts, seed=seed, split="train")):
        responses = list(dict.fromkeys(assistant.response(row["prompt"], s, rng)
                                       for s in rng.choices(assistant.STYLES, k=n_responses)))
        first = len(texts)
        texts += [(row["prompt"], r) for r in responses]
        pool += [(first + i, first + j, p) for i, j in candidate_tuples(len(responses), 2)]
    heldout: list[tuple[int, int, float]] = []
    for row in assistant.prompts(4 * n_heldout, seed=seed + 1, split="eval"):
        if len(heldout) == n_heldout:
            break
        a, b = (assistant.response(row["prompt"], s, rng) for s in rng.choices(assistant.STYLES, k=2))
        ga, gb = assistant.score(row["prompt"], a).total, assistant.score(row["prompt"], b).total
        if ga != gb:
            texts += [(row["prompt"], a), (row["prompt"], b)]
            heldout.append((len(texts) - 2, len(texts) - 1, 1.0 if ga > gb else -1.0))
    return texts, pool, heldout


@torch.no_grad()
def hidden_batches(model, tokenizer, texts: list[tuple[str, str]], batch_size: int = 64):
    """Yield (batch, hidden_states) over `texts` in order: the collated batch and the frozen model's
    hidden states ([0]: the embeddings' output, [-1]: the last layer's after the final norm)."""
    model.eval()
    for s in range(0, len(texts), batch_size):
        examples = [encode(tokenizer, render_prompt(tokenizer, p), render_completion(tokenizer, p, c), 256, f"text {i}")
                    for i, (p, c) in enumerate(texts[s:s + batch_size], start=s)]
        batch = collate(examples, tokenizer.pad_token_id)
        yield batch, model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           output_hidden_states=True).hidden_states


def features(model_dir: str, texts: list[tuple[str, str]], kind: str = "last") -> torch.Tensor:
    """(N, C) last hidden state at each response's last real token (`kind` "last"), or (N, 2C) that and
    the mean of the last hidden state over the response's tokens ("last+mean"); standardised per dimension."""
    model, tokenizer = load_causal_lm(model_dir, dtype="fp32")
    out = []
    for batch, states in hidden_batches(model, tokenizer, texts):
        hidden = states[-1]  # (B, T, C)
        last = last_real_index(batch["attention_mask"])
        row = hidden[torch.arange(len(last)), last]
        if kind == "last+mean":
            response = (batch["labels"] != -100).unsqueeze(-1).float()  # (B, T, 1): the response's tokens
            row = torch.cat([row, (hidden * response).sum(1) / response.sum(1)], -1)
        out.append(row)
    x = torch.cat(out)
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def fit_heads(x: torch.Tensor, pairs: list[tuple[int, int, float]], heads: int, l2: float, seed: int,
              noise: float = 0.0) -> torch.Tensor:
    """(heads, C) weights w_h minimising sum_n b_hn * -log P(y_n | w_h . (x_i - x_j)) / N + l2 |w_h|^2,
    with b_hn in {0, 2} a seeded double-or-nothing bootstrap weight and P(y | d) = noise / 2 +
    (1 - noise) sigma(y d) (noise 0: plain Bradley-Terry)."""
    diff = torch.stack([x[i] - x[j] for i, j, _ in pairs])  # (N, C)
    y = torch.tensor([label for _, _, label in pairs])
    g = torch.Generator().manual_seed(seed)
    weights = 2.0 * torch.randint(0, 2, (heads, len(pairs)), generator=g).float()  # (H, N)
    w = torch.zeros(heads, x.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([w], lr=1, max_iter=60, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        margins = y * (w @ diff.T)  # (H, N)
        nll = noisy_bradley_terry_loss(margins, torch.zeros_like(margins), noise)
        loss = (weights * nll).sum() / len(pairs) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def fit_laplace(x: torch.Tensor, pairs: list[tuple[int, int, float]], heads: int, prior_precision: float,
                seed: int, init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(w* as (1, C), heads (heads, C)): the MAP of the linear Bradley-Terry model on the labels (prior
    N(0, I / prior_precision)) and draws from its Laplace posterior (rlhfkit.math.bayes)."""
    diff = torch.stack([x[i] - x[j] for i, j, _ in pairs])
    w, hessian = bt_laplace(diff, torch.tensor([label for _, _, label in pairs]), prior_precision, init=init)
    return w.float().unsqueeze(0), posterior_heads(w, hessian, heads, torch.Generator().manual_seed(seed)).float()


def gold_accuracy(reward: torch.Tensor, heldout: list[tuple[int, int, float]]) -> float:
    """Share of the held-out pairs that `reward` (one number per text: the ensemble's mean head) orders as gold does."""
    return sum(bool(reward[i] > reward[j]) == (label > 0) for i, j, label in heldout) / len(heldout)


ORACLES = ["oracle-wrong", "oracle-influence-pool", "oracle-influence-heldout"]


def oracle_scores(strategy: str, w: torch.Tensor, diffs: torch.Tensor, gold_gap: torch.Tensor, asked: list[int],
                  answers: list[float], heldout_diffs: torch.Tensor, heldout_labels: torch.Tensor, l2: float) -> list[float]:
    """Scores of the pool pairs by a rule that reads the gold rubric, which no real strategy can: a bound on
    how much any selection could gain with these features, not a strategy.

    oracle-wrong: the pairs the mean head `w` orders against gold (gold ties left out), nearest its
    boundary first. oracle-influence-*: rlhfkit.math.bayes.influence, the first-order drop in the plain
    Bradley-Terry loss under gold labels of the whole pool (-pool) or of the held-out set the accuracy is
    measured on (-heldout, which teaches to the test), if pair k's own answer were added; A is the
    information of the labels so far plus the fit's L2 prior (precision 2 N l2)."""
    margins = diffs @ w
    if strategy == "oracle-wrong":
        wrong = (torch.sign(margins) != torch.sign(gold_gap)) & (gold_gap != 0)
        return (10.0 * wrong.double() - margins.abs()).tolist()
    if strategy == "oracle-influence-pool":
        keep = gold_gap != 0
        target, labels = diffs[keep], torch.sign(gold_gap[keep])
    else:
        target, labels = heldout_diffs, heldout_labels
    target_grad = (-(labels * torch.sigmoid(-labels * (target @ w))).unsqueeze(1) * target).sum(0)
    used = torch.tensor([k for k in asked if answers[k] != 0], dtype=torch.long)
    precision = (diffs[used].T * noisy_fisher(margins[used])) @ diffs[used] \
        + 2 * len(used) * l2 * torch.eye(diffs.shape[1], dtype=torch.float64)
    a = torch.tensor(answers, dtype=torch.float64)
    scores = influence(diffs, a, w, precision, target_grad)
    return torch.where(a == 0, -torch.inf, scores).tolist()  # a tie or "both bad" teaches nothing


def pair_scores(strategy: str, gaps: torch.Tensor, seed: int, noise: float = 0.0) -> list[float]:
    """rlhfkit.math.selection's scores of pairs, vectorised: `gaps` (P, H) is r_h(first) - r_h(second).

    For a pair head h says "first" with q_h = noise / 2 + (1 - noise) sigma(gap_h), so uncertainty =
    H(mean_h q_h) / log 2, bald = H(mean_h q_h) - mean_h H(q_h) and disagreement = the population std
    of the gaps; `check_pair_scores` holds them to the library's loops."""
    if strategy == "random":
        return strategy_scores("random", [None] * len(gaps), seed=seed)

    def h(p: torch.Tensor) -> torch.Tensor:  # binary entropy in nats, 0 log 0 = 0
        return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p))

    gaps = gaps.double()
    if strategy == "disagreement":
        return gaps.std(-1, correction=0).tolist()
    per_head = noise / 2 + (1 - noise) * torch.sigmoid(gaps)
    mean = per_head.mean(-1)
    if strategy == "uncertainty":
        return (h(mean) / torch.log(torch.tensor(2.0, dtype=torch.float64))).tolist()
    return (h(mean) - h(per_head).mean(-1)).clamp_min(0).tolist()


def check_pair_scores(gaps: torch.Tensor, noise: float) -> None:
    """The vectorised scores equal the library's on these pairs (given as rewards (gap_h, 0))."""
    candidates = [[[g, 0.0] for g in row] for row in gaps.double().tolist()]
    for strategy in STRATEGIES:
        mine = pair_scores(strategy, gaps, seed=1, noise=noise)
        library = strategy_scores(strategy, candidates, seed=1, noise=noise)
        worst = max(abs(a - b) for a, b in zip(mine, library))
        if worst > 1e-9:
            raise AssertionError(f"{strategy}: the vectorised scores differ from rlhfkit.math.selection's by {worst}")


class TopLayer(torch.nn.Module):
    """The SFT model's last `layers` decoder layers and final norm (copies, trained) under `heads` linear
    heads on the last real token: its input is the frozen layers' output, computed once by `layer_inputs`."""

    def __init__(self, model, heads: int, seed: int, layers: int = 1):
        super().__init__()
        self.layers = torch.nn.ModuleList(copy.deepcopy(layer) for layer in model.model.layers[-layers:])
        self.norm = copy.deepcopy(model.model.norm)
        self.rotary = model.model.rotary_emb
        generator = torch.Generator().manual_seed(seed)
        self.heads = torch.nn.Parameter(0.02 * torch.randn(heads, model.config.hidden_size, generator=generator))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """(B, heads) rewards of B texts, each given as its (T_i, C) input to the trained layers."""
        longest = max(len(h) for h in inputs)
        hidden = torch.zeros(len(inputs), longest, inputs[0].shape[1])
        real = torch.zeros(len(inputs), longest, dtype=torch.bool)
        for row, h in enumerate(inputs):
            hidden[row, :len(h)], real[row, :len(h)] = h, True
        positions = torch.arange(longest).expand(len(inputs), longest)
        causal = torch.tril(torch.ones(longest, longest, dtype=torch.bool))
        mask = torch.where((causal & real.unsqueeze(1)).unsqueeze(1), 0.0, torch.finfo(hidden.dtype).min)  # (B, 1, T, T)
        rotary = self.rotary(hidden, positions)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=rotary)
        hidden = self.norm(hidden)
        return hidden[torch.arange(len(inputs)), real.sum(1) - 1] @ self.heads.T


def layer_inputs(model_dir: str, texts: list[tuple[str, str]], layers: int = 1):
    """(the SFT model, [(T_i, C) per text]): each text's hidden states entering the last `layers` decoder
    layers (all of them: the embeddings' output)."""
    model, tokenizer = load_causal_lm(model_dir, dtype="fp32")
    if layers > len(model.model.layers):
        raise SystemExit(f"--rm-layers {layers}: {model_dir} has {len(model.model.layers)} decoder layers")
    out: list[torch.Tensor] = []
    for batch, states in hidden_batches(model, tokenizer, texts):
        hidden = states[-1 - layers]
        out += [hidden[row, :n].clone() for row, n in enumerate(batch["attention_mask"].sum(1).tolist())]
    return model, out


def fit_top_layer(model, inputs, pairs: list[tuple[int, int, float]], args, seed: int) -> TopLayer:
    """A TopLayer trained from the SFT weights for --rm-epochs over `pairs` (AdamW, --rm-lr, batches of
    --rm-batch-size), each head's loss weighted by its own double-or-nothing bootstrap of the pairs, the
    likelihood that of the fit of the linear heads (--likelihood)."""
    top = TopLayer(model, args.heads, seed, args.rm_layers)
    generator = torch.Generator().manual_seed(seed)
    weights = 2.0 * torch.randint(0, 2, (args.heads, len(pairs)), generator=generator).float()  # (H, N)
    optimizer = torch.optim.AdamW(top.parameters(), lr=args.rm_lr, weight_decay=0.0)
    rng, order = random.Random(seed), list(range(len(pairs)))
    for _ in range(args.rm_epochs):
        rng.shuffle(order)
        for s in range(0, len(order), args.rm_batch_size):
            batch = order[s:s + args.rm_batch_size]
            rewards = top([inputs[pairs[k][0]] for k in batch] + [inputs[pairs[k][1]] for k in batch])  # (2B, H)
            margins = (torch.tensor([pairs[k][2] for k in batch]).unsqueeze(1)
                       * (rewards[:len(batch)] - rewards[len(batch):])).T  # (H, B)
            loss = (weights[:, batch] * noisy_bradley_terry_loss(margins, torch.zeros_like(margins), args.model_noise)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return top


@torch.no_grad()
def top_rewards(top: TopLayer, inputs, indices: list[int], batch_size: int = 128) -> torch.Tensor:
    """(len(indices), heads) rewards of those texts."""
    return torch.cat([top([inputs[k] for k in indices[s:s + batch_size]]) for s in range(0, len(indices), batch_size)])


def run_strategy(strategy: str, seed: int, x, pool, heldout, answers, args, gold=None, model=None,
                 inputs=None) -> tuple[dict[int, float], dict, list[int]]:
    """Gold accuracy at each budget of GRID for one strategy and seed, the reward (mean head, one number
    per text) at each budget, and the pool indices asked, in order. `x`: the frozen features (linear
    heads; always given); `model` and `inputs`: the SFT model and the trained layers' inputs (top-layer);
    `gold`: each text's gold reward, read only by the oracles."""
    rng = random.Random(seed)
    asked = rng.sample(range(len(pool)), args.start)  # the same random start for every strategy of a seed
    first, second = torch.tensor([p[0] for p in pool]), torch.tensor([p[1] for p in pool])
    groups = [p[2] for p in pool]
    n_texts = len(x)
    pool_texts = list(range(int(torch.maximum(first, second).max()) + 1))  # the pool's texts come first
    heldout_texts = sorted({i for i, j, _ in heldout} | {j for i, j, _ in heldout})
    result: dict[int, float] = {}
    rewards_at: dict[int, torch.Tensor] = {}
    w = diffs = None
    while True:
        labelled = [(pool[k][0], pool[k][1], answers[k]) for k in asked if answers[k] != 0]
        on_grid = len(asked) in GRID
        if args.reward_model == "top-layer":
            if on_grid or strategy != "random":  # random's picks do not read the model: fit it where it is measured
                top = fit_top_layer(model, inputs, labelled, args, seed * 1000 + len(asked))
            if on_grid:
                reward = torch.full((n_texts,), float("nan"))
                wanted = list(range(n_texts)) if len(asked) in DOWNSTREAM and args.dpo_prompts else heldout_texts
                reward[wanted] = top_rewards(top, inputs, wanted).mean(-1)
        else:
            if args.posterior == "laplace":  # the reward is the MAP, the heads are posterior draws
                w, heads = fit_laplace(x, labelled, args.heads, args.prior_precision, seed * 1000 + len(asked),
                                       init=None if w is None else w[0])
            else:  # the reward is the mean of bootstrapped heads
                w = heads = fit_heads(x, labelled, args.heads, args.l2, seed * 1000 + len(asked), args.model_noise)
            reward = (x @ w.T).mean(-1)
        if on_grid:
            result[len(asked)], rewards_at[len(asked)] = gold_accuracy(reward, heldout), reward
        if len(asked) >= GRID[-1]:
            return result, rewards_at, asked
        if strategy == "fisher":
            diffs = (x[first] - x[second]).double() if diffs is None else diffs  # (P, C), once per run
            asked += fisher_step(diffs, asked, answers, w.mean(0), groups, args)
            continue
        if strategy in ORACLES:
            if diffs is None:  # what the oracles read and no round changes, once per run
                diffs = (x[first] - x[second]).double()
                held = torch.tensor([[i, j] for i, j, _ in heldout])
                fixed = ((gold[first] - gold[second]).double(), (x[held[:, 0]] - x[held[:, 1]]).double(),
                         torch.tensor([label for *_, label in heldout], dtype=torch.float64))
            scores = oracle_scores(strategy, w.mean(0).double(), diffs, fixed[0], asked, answers, *fixed[1:], args.l2)
        else:
            if strategy == "random":
                gaps = torch.zeros(len(pool), 1)  # not read
            elif args.reward_model == "top-layer":
                text_rewards = top_rewards(top, inputs, pool_texts)  # (pool texts, heads)
                gaps = text_rewards[first] - text_rewards[second]
            else:
                text_rewards = x @ heads.T  # (N, heads)
                gaps = text_rewards[first] - text_rewards[second]
            scores = pair_scores(strategy, gaps, seed=seed * 7919 + len(asked), noise=args.model_noise)
        for k in asked:
            scores[k] = float("-inf")  # asked already
        asked += select(scores, args.step, groups=groups, max_per_group=1)


def fisher_step(diffs: torch.Tensor, asked: list[int], answers, w: torch.Tensor, groups, args) -> list[int]:
    """The next batch of the `fisher` strategy: a greedy D-optimal batch (rlhfkit.math.bayes.fisher_batch)
    at the reward model's mean weights w, with the information of the labelled comparisons so far plus
    the fit's prior (precision 2 N l2 for the bootstrap's L2 on the mean loss; --prior-precision for laplace)."""
    info = noisy_fisher(diffs @ w.double(), args.model_noise)
    used = torch.tensor([k for k in asked if answers[k] != 0], dtype=torch.long)
    labelled = sum(answers[k] != 0 for k in asked)
    prior = args.prior_precision if args.posterior == "laplace" else 2 * labelled * args.l2
    precision = (diffs[used].T * info[used]) @ diffs[used] + prior * torch.eye(diffs.shape[1], dtype=torch.float64)
    return fisher_batch(diffs, info, precision, args.step, groups=groups, max_per_group=1, exclude=asked)


def needed_fraction(grid_means: dict[int, float], target: float, largest: int) -> float | None:
    """Labels (linear between grid points) at which `grid_means` first reaches `target`, / `largest`."""
    budgets = sorted(grid_means)
    for lo, hi in zip([None, *budgets], budgets):
        if grid_means[hi] >= target:
            if lo is None or grid_means[lo] >= target:
                return hi / largest
            t = (target - grid_means[lo]) / (grid_means[hi] - grid_means[lo])
            return (lo + t * (hi - lo)) / largest
    return None


def dpo_pairs(reward: torch.Tensor, texts, pool, n_prompts: int) -> list[dict[str, str]]:
    """The reward model's best and worst response of each of the first `n_prompts` pool prompts."""
    reward = reward.tolist()
    members: dict[int, set[int]] = {}
    for i, j, p in pool:
        if p < n_prompts:
            members.setdefault(p, set()).update((i, j))
    rows = []
    for p in sorted(members):
        ranked = sorted(members[p], key=lambda i: reward[i])
        rows.append({"prompt": texts[ranked[-1]][0], "chosen": texts[ranked[-1]][1], "rejected": texts[ranked[0]][1]})
    return rows


def downstream(args, texts, pool, ensembles, strategies: list[str], folder: Path) -> dict:
    """{strategy: {budget: [win-rate per seed]}}: DPO from SFT on each ensemble's best-vs-worst pairs."""
    shared = ReferenceSide()  # one set of SFT responses for every policy: a paired comparison
    out: dict[str, dict[int, list[float]]] = {s: {b: [] for b in DOWNSTREAM} for s in strategies}
    for strategy in strategies:
        for budget in DOWNSTREAM:
            for seed, reward in enumerate(ensembles[strategy][budget][:args.dpo_seeds]):
                name = folder / f"{strategy}_{budget}_{seed}"
                write_jsonl(name.with_suffix(".jsonl"), dpo_pairs(reward, texts, pool, args.dpo_prompts))
                train_dpo(DPOConfig(model=args.model, data=str(name.with_suffix(".jsonl")), out=str(name),
                                    beta=0.1, lr=1e-4, epochs=args.dpo_epochs, sft_coef=1.0, eval_fraction=0.0,
                                    batch_size=16, seed=seed, save_every=10_000, progress=False))
                result = run_eval(EvalConfig(policy=str(name), reference=args.model, num_prompts=args.eval_prompts,
                                             probes=False, seed=0), reference_side=shared)
                out[strategy][budget].append(result["win_rate"])
                print(f"  {strategy} at {budget} labels, seed {seed}: win-rate {result['win_rate']:.3f}", flush=True)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="runs/quickstart/sft")
    parser.add_argument("--pool-prompts", type=int, default=400)
    parser.add_argument("--responses", type=int, default=8, help="responses per pool prompt")
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--data-seed", type=int, default=23, help="seed of the pool and the held-out set")
    parser.add_argument("--features", choices=["last", "last+mean"], default="last")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--posterior", choices=["bootstrap", "laplace"], default="bootstrap",
                        help="the ensemble: heads each fitted on its own bootstrap (the reward their mean), or draws "
                             "from the Laplace posterior of one linear Bradley-Terry model (the reward its MAP)")
    parser.add_argument("--heads", type=int, default=None, help="heads of the ensemble (default 128 laplace, 5 bootstrap)")
    parser.add_argument("--prior-precision", type=float, default=2.0, help="laplace: the prior N(0, I / this)")
    parser.add_argument("--l2", type=float, default=1e-2, help="bootstrap: the L2 weight on the mean loss")
    parser.add_argument("--likelihood", choices=["bt", "noisy"], default="noisy",
                        help="bootstrap: plain Bradley-Terry, or the annotator's noise model P = noise/2 + (1 - noise) "
                             "sigma(gap) (with --noise) in the fit and in uncertainty / bald, for every strategy alike")
    parser.add_argument("--reward-model", choices=["linear", "top-layer"], default="linear",
                        help="linear: heads on the frozen features; top-layer: the SFT model's last decoder layer "
                             "fine-tuned under --heads heads (bootstrap weights each), retrained after every batch")
    parser.add_argument("--rm-layers", type=int, default=1,
                        help="top-layer: decoder layers trained, from the top (all of them: only the embeddings stay frozen)")
    parser.add_argument("--rm-epochs", type=int, default=3, help="top-layer: epochs over the labels of each fit")
    parser.add_argument("--rm-lr", type=float, default=3e-4, help="top-layer: AdamW's learning rate")
    parser.add_argument("--rm-batch-size", type=int, default=16, help="top-layer: comparisons a step")
    parser.add_argument("--workers", type=int, default=1, help="processes, one thread each, over the (seed, strategy) runs")
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--step", type=int, default=None, help="labels a batch (default 10 linear, 50 top-layer)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--strategies", nargs="+", default=["random", "uncertainty", "bald", "fisher"],
                        choices=[*STRATEGIES, "fisher", *ORACLES],
                        help="fisher: a greedy D-optimal batch under the annotator's noise model (rlhfkit.math.bayes); "
                             "oracle-*: rules that read the gold rubric, a bound on any strategy (see oracle_scores)")
    parser.add_argument("--dpo-prompts", type=int, default=128, help="0: no downstream DPO")
    parser.add_argument("--dpo-seeds", type=int, default=3, help="seeds of the downstream runs (the first ones)")
    parser.add_argument("--dpo-epochs", type=float, default=2.0)
    parser.add_argument("--eval-prompts", type=int, default=128)
    parser.add_argument("--json", default=None)
    parser.add_argument("--features-cache", default=None,
                        help="a .pt file: load the pool, held-out set and features from it if it exists, else save them there")
    args = parser.parse_args()
    if args.heads is None:
        args.heads = 128 if args.posterior == "laplace" else 5
    if args.likelihood == "noisy" and args.posterior == "laplace":
        parser.error("--likelihood noisy goes with --posterior bootstrap (the Laplace fit is plain Bradley-Terry)")
    args.model_noise = args.noise if args.likelihood == "noisy" else 0.0
    if args.rm_layers < 1:
        parser.error(f"--rm-layers must be at least 1, got {args.rm_layers}")
    if args.step is None:
        args.step = 50 if args.reward_model == "top-layer" else 10
    if args.reward_model == "top-layer" and (args.posterior != "bootstrap" or {"fisher", *ORACLES} & set(args.strategies)):
        parser.error("--reward-model top-layer goes with --posterior bootstrap and neither fisher nor the oracles "
                     "(they read the frozen features)")
    return args


def fraction_interval(results: dict[str, dict[int, list[float]]], strategy: str, largest: int, draws: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """(2.5%, 97.5% percentiles, share of draws where it is <= 0.5) of the fraction over a bootstrap of
    the seeds: each draw resamples the seeds with replacement (the same seeds for random and the
    strategy, which share start and answers) and recomputes both mean curves; a draw that never reaches
    random's accuracy at `largest` within the grid counts as 2 (beyond the grid)."""
    rng = random.Random(seed)
    n = len(results["random"][GRID[0]])
    values = []
    for _ in range(draws):
        pick = [rng.randrange(n) for _ in range(n)]
        curve = {b: statistics.mean(results[strategy][b][i] for i in pick) for b in GRID}
        target = statistics.mean(results["random"][largest][i] for i in pick)
        fraction = needed_fraction(curve, target, largest)
        values.append(2.0 if fraction is None else fraction)
    values.sort()
    return values[int(0.025 * draws)], values[int(0.975 * draws) - 1], sum(v <= 0.5 for v in values) / draws


def largest_improving(means: dict[int, float], spread: dict[int, float]) -> int | None:
    """The rule for the largest budget B, fixed before any result is seen: the largest budget of GRID whose
    half is on the grid too and where random's mean accuracy is above its mean at B/2 by more than the
    seed-to-seed std at either budget (None: random improves nowhere by that rule)."""
    for budget in reversed(GRID):
        half = budget // 2
        if half in means and means[budget] - means[half] > max(spread[budget], spread[half]):
            return budget
    return None


def print_fractions(means, spread, strategies: list[str], report: dict, results) -> None:
    for budget in GRID[1:]:
        half = budget // 2
        if half in means["random"]:
            gain = means["random"][budget] - means["random"][half]
            bound = max(spread["random"][budget], spread["random"][half])
            print(f"random {half} -> {budget}: {gain:+.3f} (seed std {bound:.3f}: "
                  f"{'improving' if gain > bound else 'not above the spread'})")
    largest = largest_improving(means["random"], spread["random"])
    report["largest_budget"] = largest
    report["random_still_improving"] = largest == GRID[-1]
    report["fraction_of_random_budget"], report["fraction_interval"] = {}, {}
    if largest is None:
        print("random improves nowhere above its seed spread: no fraction says anything")
        return
    print(f"\nthe largest budget where random still improves: {largest} (random there: {means['random'][largest]:.3f})")
    for s in strategies:
        fraction = needed_fraction(means[s], means["random"][largest], largest)
        report["fraction_of_random_budget"][s] = fraction
        text = f"{fraction:.2f} of random's labels" if fraction is not None else f"more than {GRID[-1]} labels"
        if s != "random":
            low, high, at_most_half = fraction_interval(results, s, largest)
            report["fraction_interval"][s] = [low, high, at_most_half]
            ends = ["beyond the grid" if v > GRID[-1] / largest else f"{v:.2f}" for v in (low, high)]
            text += f"; seed bootstrap 95%: [{ends[0]}, {ends[1]}], <= 0.5 in {at_most_half:.0%} of draws"
        print(f"  {s}: reaches it with {text}")


_JOB: dict = {}  # what every job reads: set before the workers fork


def _run_job(job: tuple[int, str]):
    seed, strategy = job
    torch.set_num_threads(1)
    j = _JOB
    out = run_strategy(strategy, seed, j["x"], j["pool"], j["heldout"], j["answers_of"][seed], j["args"],
                       gold=j["gold"], model=j["model"], inputs=j["inputs"])
    print(f"seed {seed} {strategy} done ({time.perf_counter() - j['started']:.0f} s)", flush=True)
    return out


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()

    # 1) pool and held-out set, 2) frozen features
    cache = Path(args.features_cache) if args.features_cache else None
    if cache and cache.exists():
        texts, pool, heldout, x = torch.load(cache, weights_only=False)
    else:
        texts, pool, heldout = build_pool(args.pool_prompts, args.responses, args.heldout, args.data_seed)
        x = features(args.model, texts, args.features)
        if cache:
            torch.save((texts, pool, heldout, x), cache)
    check_pair_scores(torch.randn(200, args.heads, generator=torch.Generator().manual_seed(0)) * 2, args.model_noise)
    print(f"pool: {len(pool)} pairs of {args.pool_prompts} prompts; held-out: {len(heldout)} gold pairs; "
          f"features {tuple(x.shape)} ({time.perf_counter() - started:.0f} s)", flush=True)

    model = inputs = None
    if args.reward_model == "top-layer":
        model, inputs = layer_inputs(args.model, texts, args.rm_layers)
        print(f"inputs of the trained layers: {len(inputs)} texts ({time.perf_counter() - started:.0f} s)", flush=True)

    # 3) one noisy answer per pool pair and seed: +1 first better, -1 second, 0 tie / both bad
    results: dict[str, dict[int, list[float]]] = {s: {b: [] for b in GRID} for s in args.strategies}
    ensembles: dict[str, dict[int, list[torch.Tensor]]] = {s: {b: [] for b in GRID} for s in args.strategies}
    gold = [assistant.gold_reward(p, c) for p, c in texts]
    gold_tie = [gold[i] == gold[j] for i, j, _ in pool]  # a diagnostic only: no strategy reads it
    ties: dict[str, list[float]] = {s: [] for s in args.strategies}
    answers_of = []
    for seed in range(args.seeds):
        judge = assistant.panel(1, noise=args.noise, seed=seed)[0]
        answers_of.append([{"a": 1.0, "b": -1.0}.get(judge.compare(texts[i][0], texts[i][1], texts[j][1]).outcome, 0.0)
                           for i, j, _ in pool])
    # 4) + 5) every strategy from the same start and answers; the jobs (seed, strategy) on --workers processes
    _JOB.update(x=x, pool=pool, heldout=heldout, answers_of=answers_of, args=args, gold=torch.tensor(gold),
                model=model, inputs=inputs, started=started)
    jobs = [(seed, strategy) for seed in range(args.seeds) for strategy in args.strategies]
    if args.workers > 1:
        with multiprocessing.get_context("fork").Pool(args.workers) as workers:
            done = workers.map(_run_job, jobs, chunksize=1)
    else:
        done = [_run_job(job) for job in jobs]
    for (_, strategy), (accuracies, fitted, asked) in zip(jobs, done):  # in seed order for every strategy
        ties[strategy].append(sum(gold_tie[k] for k in asked) / len(asked))
        for budget, accuracy in accuracies.items():
            results[strategy][budget].append(accuracy)
            ensembles[strategy][budget].append(fitted[budget])

    # 6) the table and the fractions
    means = {s: {b: statistics.mean(v) for b, v in r.items()} for s, r in results.items()}
    spread = {s: {b: statistics.pstdev(v) for b, v in r.items()} for s, r in results.items()}
    print("\ngold accuracy of the reward model on the held-out set, mean +- std over seeds")
    width = max(11, *(len(s) + 1 for s in args.strategies))
    print("labels".ljust(width) + "".join(f"{b:>14}" for b in GRID))
    for s in args.strategies:
        print(f"{s:<{width}}" + "".join(f"{means[s][b]:>8.3f}+-{spread[s][b]:.3f}" for b in GRID))
    print(f"share of the {GRID[-1]} labels asked on pairs the gold rubric scores equal (pool: "
          f"{sum(gold_tie) / len(gold_tie):.3f}): " + ", ".join(f"{s} {statistics.mean(v):.3f}" for s, v in ties.items()))
    report = {"grid": GRID, "gold_tie_share": {s: statistics.mean(v) for s, v in ties.items()}, "means": means, "std": spread, "per_seed": results, "seeds": args.seeds,
              "args": vars(args), "pool_pairs": len(pool), "heldout_pairs": len(heldout)}
    if "random" in means:
        print_fractions(means, spread, args.strategies, report, results)
    print(f"({time.perf_counter() - started:.0f} s)", flush=True)

    # 7) downstream DPO at two budgets, random against the best strategy
    fractions = {s: f for s, f in report.get("fraction_of_random_budget", {}).items()
                 if s != "random" and s not in ORACLES}  # an oracle is a bound, not a policy's source
    if args.dpo_prompts > 0 and fractions:
        best = min(fractions, key=lambda s: fractions[s] if fractions[s] is not None else float("inf"))
        print(f"\ndownstream: DPO on the best-vs-worst of {args.dpo_prompts} prompts by each reward model "
              f"(random and {best})", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            wins = downstream(args, texts, pool, ensembles, ["random", best], Path(folder))
        report["downstream_win_rate"] = wins
        print("\ngold win-rate over SFT of the DPO policy, mean +- std over seeds")
        for s, by_budget in wins.items():
            print(f"{s:<11}" + "".join(f"  {b} labels: {statistics.mean(v):.3f}+-{statistics.pstdev(v):.3f}"
                                       for b, v in by_budget.items()))
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"({report['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
