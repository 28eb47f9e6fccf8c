"""Label efficiency of query selection: reward-model accuracy against the gold rubric vs labels asked,
for random selection and each strategy of rlhfkit.math.selection, several seeds.

    python bench/label_efficiency.py --model runs/quickstart/sft [--seeds 3] [--json out.json]

What it does (the budget grid, the pool and the held-out set are fixed before any result is seen):
  1) a pool on the built-in task: --pool-prompts training prompts x 4 responses of random styles
     (repeats allowed, so some pairs are close calls), every pair of a prompt a candidate (6 a prompt);
     a held-out set of --heldout pairs on eval prompts, labelled by the gold rubric (ties left out)
  2) features: the frozen SFT model's last hidden state at the last real token of each response,
     computed once (the reward model reads the same token), standardised
  3) labels: one simulated annotator (noise --noise) answers every pool pair once per seed, so every
     strategy gets the same answer to the same question (ties and "both bad" count as asked, unused)
  4) the reward model: --heads linear Bradley-Terry heads on the frozen features, each fitted on its own
     double-or-nothing bootstrap of the labels (L2 --l2), the reward their mean
  5) per strategy and seed: --start random labels, then batches of --step chosen by the strategy from
     the unasked pool (at most 1 per prompt per batch) with the ensemble refitted after each batch;
     the gold accuracy of the mean head on the held-out set at each budget of the grid
  6) printed: mean +- std over seeds per budget; whether random still improves at its largest budget
     (accuracy at B above that at B/2 by more than the seed-to-seed std); and for each strategy the
     labels it needs to reach random's accuracy at B, as a fraction of B (linear between grid points)

Left out, to fit the time: fine-tuning the backbone (the heads sit on frozen features), the downstream
DPO win-rate at equal labels, K-wise tuples. Measured numbers: docs/active-learning.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rlhfkit.data.tokenization import collate, encode, render_completion, render_prompt  # noqa: E402
from rlhfkit.math.ops import last_real_index  # noqa: E402
from rlhfkit.math.selection import STRATEGIES, candidate_tuples, select, strategy_scores  # noqa: E402
from rlhfkit.models.loading import load_causal_lm  # noqa: E402
from rlhfkit.tasks import assistant  # noqa: E402

GRID = [50, 100, 200, 400, 800]


def build_pool(n_prompts: int, n_heldout: int, seed: int = 0):
    """(texts, pool pairs, held-out pairs): texts are (prompt, response); a pair is (i, j, prompt index)."""
    rng = random.Random(seed)
    texts: list[tuple[str, str]] = []
    pool: list[tuple[int, int, int]] = []
    for p, row in enumerate(assistant.prompts(n_prompts, seed=seed, split="train")):
        responses = list(dict.fromkeys(assistant.response(row["prompt"], s, rng)
                                       for s in rng.choices(assistant.STYLES, k=4)))
        first = len(texts)
        texts += [(row["prompt"], r) for r in responses]
        pool += [(first + i, first + j, p) for i, j in candidate_tuples(len(responses), 2)]
    heldout: list[tuple[int, int, float]] = []  # (i, j, +1 if gold prefers i else -1)
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
def features(model_dir: str, texts: list[tuple[str, str]], batch_size: int = 64) -> torch.Tensor:
    """(N, C) last hidden state at each response's last real token, standardised per dimension."""
    model, tokenizer = load_causal_lm(model_dir, dtype="fp32")
    model.eval()
    out = []
    for s in range(0, len(texts), batch_size):
        examples = [encode(tokenizer, render_prompt(tokenizer, p), render_completion(tokenizer, p, c), 256, f"text {i}")
                    for i, (p, c) in enumerate(texts[s:s + batch_size], start=s)]
        batch = collate(examples, tokenizer.pad_token_id)
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True).hidden_states[-1]  # (B, T, C)
        last = last_real_index(batch["attention_mask"])
        out.append(hidden[torch.arange(len(last)), last])
    x = torch.cat(out)
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def fit_heads(x: torch.Tensor, pairs: list[tuple[int, int, float]], heads: int, l2: float, seed: int) -> torch.Tensor:
    """(heads, C) weights w_h minimising sum_n b_hn * -log sigma(y_n w_h . (x_i - x_j)) + l2 |w_h|^2, with
    b_hn in {0, 2} a seeded double-or-nothing bootstrap weight."""
    diff = torch.stack([x[i] - x[j] for i, j, _ in pairs])  # (N, C)
    y = torch.tensor([label for _, _, label in pairs])
    g = torch.Generator().manual_seed(seed)
    weights = 2.0 * torch.randint(0, 2, (heads, len(pairs)), generator=g).float()  # (H, N)
    w = torch.zeros(heads, x.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([w], lr=1, max_iter=60, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        margins = y * (w @ diff.T)  # (H, N)
        loss = (weights * torch.nn.functional.softplus(-margins)).sum() / len(pairs) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def gold_accuracy(w: torch.Tensor, x: torch.Tensor, heldout: list[tuple[int, int, float]]) -> float:
    reward = (x @ w.T).mean(-1)  # (N,) the ensemble's mean head
    return sum(bool(reward[i] > reward[j]) == (label > 0) for i, j, label in heldout) / len(heldout)


def run_strategy(strategy: str, seed: int, x, pool, heldout, answers, args) -> dict[int, float]:
    """Gold accuracy at each budget of GRID for one strategy and seed."""
    rng = random.Random(seed)
    asked = rng.sample(range(len(pool)), args.start)  # the same random start for every strategy of a seed
    result: dict[int, float] = {}
    while True:
        labelled = [(pool[k][0], pool[k][1], answers[k]) for k in asked if answers[k] != 0]
        w = fit_heads(x, labelled, args.heads, args.l2, seed * 1000 + len(asked))
        if len(asked) in GRID:
            result[len(asked)] = gold_accuracy(w, x, heldout)
        if len(asked) >= GRID[-1]:
            return result
        left = sorted(set(range(len(pool))) - set(asked))
        rewards = (x @ w.T).tolist()  # (N, heads)
        candidates = [[rewards[pool[k][0]], rewards[pool[k][1]]] for k in left]  # (2, heads)
        candidates = [[list(r) for r in zip(*c)] for c in candidates]  # (heads, 2)
        scores = strategy_scores(strategy, candidates, seed=seed * 7919 + len(asked))
        picked = select(scores, args.step, groups=[pool[k][2] for k in left], max_per_group=1)
        asked += [left[i] for i in picked]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="runs/quickstart/sft")
    parser.add_argument("--pool-prompts", type=int, default=600)
    parser.add_argument("--heldout", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--heads", type=int, default=5)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--start", type=int, default=50)
    parser.add_argument("--step", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()

    # 1) pool and held-out set, 2) frozen features
    texts, pool, heldout = build_pool(args.pool_prompts, args.heldout)
    x = features(args.model, texts)
    print(f"pool: {len(pool)} pairs of {args.pool_prompts} prompts; held-out: {len(heldout)} gold pairs; "
          f"features {tuple(x.shape)} ({time.perf_counter() - started:.0f} s)", flush=True)

    # 3) one noisy answer per pool pair and seed: +1 first better, -1 second, 0 tie / both bad
    results: dict[str, dict[int, list[float]]] = {s: {b: [] for b in GRID} for s in args.strategies}
    for seed in range(args.seeds):
        judge = assistant.panel(1, noise=args.noise, seed=seed)[0]
        answers = []
        for i, j, _ in pool:
            outcome = judge.compare(texts[i][0], texts[i][1], texts[j][1]).outcome
            answers.append({"a": 1.0, "b": -1.0}.get(outcome, 0.0))
        # 4) + 5) every strategy from the same start and answers
        for strategy in args.strategies:
            for budget, accuracy in run_strategy(strategy, seed, x, pool, heldout, answers, args).items():
                results[strategy][budget].append(accuracy)
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)

    # 6) the table and the fractions
    means = {s: {b: statistics.mean(v) for b, v in r.items()} for s, r in results.items()}
    spread = {s: {b: statistics.pstdev(v) for b, v in r.items()} for s, r in results.items()}
    print("\ngold accuracy of the reward model on the held-out set, mean +- std over seeds")
    print("labels     " + "".join(f"{b:>14}" for b in GRID))
    for s in args.strategies:
        print(f"{s:<11}" + "".join(f"{means[s][b]:>8.3f}+-{spread[s][b]:.3f}" for b in GRID))
    report = {"grid": GRID, "means": means, "std": spread, "seeds": args.seeds, "args": vars(args)}
    if "random" in means:
        largest, half = GRID[-1], GRID[-1] // 2
        gain = means["random"][largest] - means["random"][half]
        improving = gain > max(spread["random"][largest], spread["random"][half])
        print(f"\nrandom at {largest}: {means['random'][largest]:.3f}; gain over {half}: {gain:+.3f} "
              f"({'still improving' if improving else 'NOT above the seed spread: the fractions say little'})")
        report["random_still_improving"] = improving
        report["fraction_of_random_budget"] = {}
        for s in args.strategies:
            fraction = needed_fraction(means[s], means["random"][largest], largest)
            report["fraction_of_random_budget"][s] = fraction
            print(f"  {s}: reaches it with " + (f"{fraction:.2f} of random's labels" if fraction is not None
                                               else f"more than {largest} labels (not within the grid)"))
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(f"({report['seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
