"""The embedded AI judge on held-out built-in pairs: agreement with the gold rubric, speed, and the
principle-inversion check.

    .venv/bin/python bench/ai_judge.py --judge runs/judge            # a judge trained before
    .venv/bin/python bench/ai_judge.py --train runs/judge            # train it first (rlhfkit.judges.embedded)

    .venv/bin/python bench/ai_judge.py --judge runs/judge --constitution bench/data/paraphrased_constitution.yaml

Pairs: two responses in independently drawn styles (the same style allowed) to eval-split prompts (phrasings
the judge never saw), kept when their gold totals differ by at least --min-gap. Each pair is judged
in both presentation orders (a grading judge: each response alone) under a principle of the shipped
constitution (wordings never in the judge's training), or of --constitution. The first line asks the
constitution's first principle only; the second draws one of all its principles per pair. Reported:
  agreement          the averaged verdict's choice equals the gold rubric's better response
  agreement_orders   each presentation order's choice counted on its own (2 per pair)
  order_consistency  share of pairs whose two orders pick the same response (1 for a grading judge,
                     which sees one response at a time)
  pairs_per_s        pairs (two forward passes each) per second of judging, --threads CPU threads
  inversion_flips    share of pairs whose choice flips when the principle asks its inverse question
The gold rubric is used here, to score the judge; the judge's code never imports it.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from rlhfkit.judges.ai import Query
from rlhfkit.judges.constitution import load_constitution
from rlhfkit.judges.embedded import train_embedded_judge
from rlhfkit.judges.local import LocalJudge
from rlhfkit.tasks import assistant


def held_out_pairs(n: int, min_gap: float, seed: int) -> list[tuple[str, str, str, int]]:
    """(prompt, response 0, response 1, index of the gold-better one)."""
    rng = random.Random(f"judge-bench:{seed}")
    pairs = []
    while len(pairs) < n:
        prompt = rng.choice(assistant.prompts(200, seed=seed, split="eval"))["prompt"]
        a, b = (assistant.response(prompt, rng.choice(assistant.STYLES), rng) for _ in range(2))
        ga, gb = assistant.gold_reward(prompt, a), assistant.gold_reward(prompt, b)
        if abs(ga - gb) >= min_gap:
            pairs.append((prompt, a, b, 0 if ga > gb else 1))
    return pairs


def measure(judge: LocalJudge, pairs, principle_names: list[str], seed: int, constitution_path: str | None = None) -> dict:
    constitution = load_constitution(constitution_path)
    rng = random.Random(seed)
    principles = [constitution.get(rng.choice(principle_names)) for _ in pairs]
    queries = [Query(p, [a, b], pr) for (p, a, b, _), pr in zip(pairs, principles)]
    start = time.perf_counter()
    verdicts = judge.judge_many(queries)
    seconds = time.perf_counter() - start
    gold = [g for *_, g in pairs]
    agree = sum(v.choice == g for v, g in zip(verdicts, gold)) / len(pairs)
    consistent = [v.order_disagreement == 0 for v in verdicts]
    both = sum((v.choice == g) if c else 0.5 for v, g, c in zip(verdicts, gold, consistent)) / len(pairs)
    inverted = judge.judge_many([Query(q.prompt, q.responses, q.principle.inverted()) for q in queries])
    flips = sum(v.choice != w.choice for v, w in zip(verdicts, inverted)) / len(pairs)
    return {"mode": judge.mode, "principles": principle_names, "pairs": len(pairs), "agreement": round(agree, 4),
            "agreement_orders": round(both, 4), "order_consistency": round(sum(consistent) / len(pairs), 4),
            "pairs_per_s": round(len(pairs) / seconds, 1), "inversion_flips": round(flips, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", default="runs/judge")
    parser.add_argument("--train", default=None, help="train the embedded judge into this folder first")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--min-gap", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--constitution", default=None,
                        help="measure under this constitution's wordings (default: the shipped one); "
                             "bench/data/paraphrased_constitution.yaml holds the same principles in other words")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = args.judge
    if args.train:
        start = time.perf_counter()
        path = str(train_embedded_judge(args.train, progress=False))
        print(f"trained the embedded judge in {time.perf_counter() - start:.0f} s")
    judge = LocalJudge(path, device="cpu")
    pairs = held_out_pairs(args.pairs, args.min_gap, args.seed)
    names = [p.name for p in load_constitution(args.constitution).principles]
    results = [measure(judge, pairs, [names[0]], args.seed, args.constitution),
               measure(judge, pairs, names, args.seed, args.constitution)]
    for r in results:
        print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
