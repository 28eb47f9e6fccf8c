"""Supervised Constitutional AI on the built-in task: `rlhfkit critique` with the embedded critic, then SFT
on the revisions; the policy's gold harmlessness, neutrality and helpfulness before and after.

    python bench/critique_sl_cai.py --run runs/quickstart --out runs/sl_cai

On a finished quickstart folder (its SFT model):

  1. the critic: `rlhfkit.judges.embedded.train_embedded_critic` (the SFT policy with a chat template,
     fine-tuned to name an answer's flaw and rewrite it in the generator's helpful style), unless
     --critic names one;
  2. `rlhfkit critique` on --prompts training prompts: the SFT policy answers, the critic critiques
     the answer against a principle drawn from the shipped constitution and revises it (one round);
  3. `rlhfkit sft` from the SFT model on the revisions (`demonstrations.jsonl`);
  4. the SFT policy and the revised one each answer --eval-prompts held-out prompts twice; the gold
     rubric's criteria are averaged over those answers (and over the critique's originals that were
     unsafe or rants, against their revisions).

The gold rubric only scores here; neither the critic nor the critique sees it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.judges.critique import CritiqueConfig, run_critique
from rlhfkit.judges.embedded import train_embedded_critic
from rlhfkit.tasks.assistant import score
from rlhfkit.trainers.sft import SFTConfig, train_sft

CRITERIA = ("harmlessness", "neutrality", "helpfulness", "clarity", "total")


def mean_scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    scores = [score(p, c).as_dict() for p, c in pairs]
    return {k: round(statistics.mean(s[k] for s in scores), 4) for k in CRITERIA} | {"n": len(pairs)}


def answers(model: Path, out: Path, prompts: int, seed: int) -> list[tuple[str, str]]:
    if not out.exists():
        run_sample(SampleConfig(model=str(model), split="eval", num_prompts=prompts, num_samples=2, out=str(out),
                                seed=seed))
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [(r["prompt"], r["completion"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/quickstart", help="a finished quickstart folder")
    parser.add_argument("--critic", default=None, help="a critic chat model (default: train the embedded one)")
    parser.add_argument("--out", default="runs/sl_cai")
    parser.add_argument("--prompts", type=int, default=400)
    parser.add_argument("--eval-prompts", type=int, default=256)
    parser.add_argument("--sft-epochs", type=float, default=2.0)
    parser.add_argument("--sft-lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started, seconds = time.perf_counter(), {}
    critic = Path(args.critic) if args.critic else out / "critic"
    if not (critic / "model.safetensors").exists():
        t0 = time.perf_counter()
        train_embedded_critic(critic, run / "sft", seed=args.seed, progress=False)
        seconds["critic"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    folder = run_critique(CritiqueConfig(model=str(run / "sft"), critic=str(critic), num_prompts=args.prompts,
                                         out=str(out / "critique"), seed=args.seed))
    seconds["critique"] = round(time.perf_counter() - t0, 1)
    pairs = [json.loads(line) for line in (folder / "preferences.jsonl").read_text().splitlines() if line.strip()]
    bad = [r for r in pairs if score(r["prompt"], r["rejected"]).harmlessness < 1
           or score(r["prompt"], r["rejected"]).neutrality < 1]  # for the report only: originals that were unsafe or rants
    revised = out / "sft_cai"
    t0 = time.perf_counter()
    if not (revised / "model.safetensors").exists():
        train_sft(SFTConfig(model=str(run / "sft"), data=str(folder / "demonstrations.jsonl"), out=str(revised),
                            epochs=args.sft_epochs, lr=args.sft_lr, seed=args.seed, progress=False))
    seconds["sft"] = round(time.perf_counter() - t0, 1)
    before = mean_scores(answers(run / "sft", out / "answers_sft.jsonl", args.eval_prompts, args.seed + 1))
    after = mean_scores(answers(revised, out / "answers_sft_cai.jsonl", args.eval_prompts, args.seed + 1))
    result = {"run": str(run), "critic": str(critic), "pairs": len(pairs),
              "unsafe_or_rant_originals": {"n": len(bad),
                                           "original": mean_scores([(r["prompt"], r["rejected"]) for r in bad]),
                                           "revision": mean_scores([(r["prompt"], r["chosen"]) for r in bad])},
              "policy_before": before, "policy_after": after, "seconds": seconds | {
                  "total": round(time.perf_counter() - started, 1)}}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"{'':34}" + "".join(f"{k:>14}" for k in CRITERIA))
    rows = [("unsafe/rant originals", result["unsafe_or_rant_originals"]["original"]),
            ("  their revisions", result["unsafe_or_rant_originals"]["revision"]),
            ("policy before (SFT)", before), ("policy after (SFT on revisions)", after)]
    for name, s in rows:
        print(f"{name:34}" + "".join(f"{s[k]:>14.3f}" for k in CRITERIA) + f"   n={s['n']}")
    print(json.dumps(result["seconds"]))


if __name__ == "__main__":
    main()
