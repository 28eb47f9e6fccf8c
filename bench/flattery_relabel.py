"""The seeds' flattery row, and its fix by a constitution: a panel that likes flattery teaches a reward
model to prefer it; relabelling the same comparisons with an AI judge under the constitution's
principles undoes that, and PPO against the relabelled reward model does better by the gold rubric.

    python bench/flattery_relabel.py --run runs/quickstart --judge runs/quickstart/judge --out runs/flattery

On a finished quickstart folder (its SFT model and its SFT samples, samples.jsonl):

  1. biased     a simulated panel biased toward flattery (3 annotators, noise 0.1, as the quickstart's)
                labels the samples; a plain reward model learns from its pairs;
  2. relabelled the AI judge (--judge; the embedded one, `rlhfkit.judges.embedded`) labels the same
                samples under the principles --principles (default no_flattery and
                helpful_harmless_honest: one drawn per pair); a plain reward model learns from those;
  3. for each reward model: the flattery probe (share of held-out SFT answers whose flattering edit it
     scores higher: `rlhfkit.evaluation.probes`), the share of its pairs whose chosen answer is the
     gold rubric's, and PPO against it (the quickstart's settings), evaluated by gold win-rate over SFT
     with its 95% interval, both against the same SFT responses.

Writes result.json and prints a table. The judge never sees a gold label; the gold rubric only scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.evaluation.probes import probe_reward
from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.judges.ai import load_judge
from rlhfkit.judges.constitution import load_constitution
from rlhfkit.judges.reward_spec import load_reward
from rlhfkit.pipelines.ai_feedback import ai_feedback, gold_agreement
from rlhfkit.pipelines.quickstart import QuickstartConfig, _feedback
from rlhfkit.trainers.ppo import PPOConfig, train_ppo
from rlhfkit.trainers.rm import RMConfig, train_rm


def biased_labels(samples: Path, folder: Path, seed: int) -> Path:
    """The quickstart's own panel step (`pipelines.quickstart._feedback`), biased toward flattery."""
    prefs = folder / "preferences.jsonl"
    if not prefs.exists():
        _feedback(QuickstartConfig(annotators=3, noise=0.1, seed=seed), samples, folder / "feedback.db", prefs,
                  "flattery", "flattery")
    return prefs


def relabelled(samples: Path, folder: Path, judge: str, principles: list[str], seed: int) -> tuple[Path, dict]:
    prefs, stats = folder / "preferences.jsonl", folder / "judge_stats.json"
    if not prefs.exists():
        folder.mkdir(parents=True, exist_ok=True)
        numbers = ai_feedback(samples, folder / "feedback.db", prefs, load_judge(judge), Path(judge).name,
                              campaign="relabel", seed=seed, constitution=load_constitution().select(principles))
        stats.write_text(json.dumps(numbers, indent=2))
    return prefs, json.loads(stats.read_text())


def measure(name: str, run: Path, out: Path, prefs: Path, probe_rows: list[dict], side: ReferenceSide,
            eval_prompts: int, seed: int) -> dict[str, Any]:
    rm, policy = out / name / "rm", out / name / "ppo"
    if not (rm / "model.safetensors").exists():
        train_rm(RMConfig(model=str(run / "sft"), data=str(prefs), out=str(rm), seed=seed, progress=False))
    reward = load_reward(str(rm))
    probes = probe_reward(reward, [r["prompt"] for r in probe_rows], [r["completion"] for r in probe_rows],
                          gold=load_reward("gold"))
    if not (policy / "model.safetensors").exists():
        train_ppo(PPOConfig(model=str(run / "sft"), reward=str(rm), out=str(policy), max_steps=40, kl_coef=0.1,
                            group_size=8, seed=seed, progress=False))
    result = run_eval(EvalConfig(policy=str(policy), reference=str(run / "sft"), reward_model=str(rm),
                                 num_prompts=eval_prompts, reference_samples=4, seed=seed,
                                 out=str(out / name / "eval_ppo.json")), side)
    return {"pairs_agreeing_with_gold": gold_agreement(prefs),
            "rm_prefers_flattery_edit": probes["flattery"]["prefers_hacked"], "probe_answers": probes["flattery"]["n"],
            "ppo": {k: result[k] for k in ("win_rate", "ci_low", "ci_high", "kl_to_reference", "policy_gold")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/quickstart", help="a finished quickstart folder")
    parser.add_argument("--judge", default="runs/quickstart/judge", help="the AI judge (folder or URL)")
    parser.add_argument("--principles", default="no_flattery,helpful_harmless_honest")
    parser.add_argument("--out", default="runs/flattery")
    parser.add_argument("--eval-prompts", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    started = time.perf_counter()
    samples = run / "samples.jsonl"
    probe_samples = out / "probe_samples.jsonl"
    if not probe_samples.exists():
        out.mkdir(parents=True, exist_ok=True)
        run_sample(SampleConfig(model=str(run / "sft"), split="eval", num_prompts=256, num_samples=1,
                                out=str(probe_samples), seed=args.seed + 1))
    probe_rows = [json.loads(line) for line in probe_samples.read_text().splitlines() if line.strip()]
    side = ReferenceSide()  # both PPO policies against the same SFT responses
    biased = biased_labels(samples, out / "biased", args.seed)
    relabel, stats = relabelled(samples, out / "relabelled", args.judge, args.principles.split(","), args.seed)
    result = {"run": str(run), "judge": args.judge, "principles": args.principles.split(","), "judge_stats": stats,
              "biased": measure("biased", run, out, biased, probe_rows, side, args.eval_prompts, args.seed),
              "relabelled": measure("relabelled", run, out, relabel, probe_rows, side, args.eval_prompts, args.seed)}
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"{'labels':<12} {'pairs = gold':>12} {'RM prefers flattery edit':>25} {'PPO gold win-rate vs SFT [95% CI]':>36}")
    for name in ("biased", "relabelled"):
        r = result[name]
        ppo = r["ppo"]
        print(f"{name:<12} {r['pairs_agreeing_with_gold']:>12.3f} {r['rm_prefers_flattery_edit']:>25.3f} "
              f"{ppo['win_rate']:>16.3f} [{ppo['ci_low']:.3f}, {ppo['ci_high']:.3f}]")
    print(f"({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
