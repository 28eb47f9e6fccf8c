"""Does hardening the reward model stop the hacks of the seeds' reward-hacking table? (issue 18)

    python bench/rm_hardening.py --run runs/quickstart --out runs/rm_hardening

On a finished quickstart folder (its SFT model, its panel's preferences, its DPO and PPO policies)
this trains the reward model again with each hardening option of `rlhfkit rm`, on the same pairs
and seed, and measures each one the same way:

  - held-out accuracy on the panel's pairs (the 5% `rlhfkit rm` holds out) and on gold-labelled
    pairs of SFT samples to held-out prompts (two samples per prompt, the gold rubric's totals at
    least 0.05 apart): a larger set, so the 0.01 question has an interval that can answer it;
  - the four probes ("prefers the edited response") on each policy's own held-out samples
    (SFT, DPO's last round, PPO);
  - then PPO against the plain and against the chosen hardened reward model, same settings as the
    quickstart's, each evaluated like the quickstart's PPO: gold win-rate over SFT with its 95%
    interval (both against the same SFT responses), KL, and the share of answers that repeat a
    sentence.

Variants (each a set of `rlhfkit rm` flags): plain (the quickstart's own reward model), ls (label
smoothing 0.1), l2 (head L2 0.01), adv (adversarial pairs for all four edits), hardened (adv + ls +
l2) and diverse (hardened, plus the round-2 comparisons of DPO's own samples: --extra-data).
Writes result.json and prints one table per part; `--variants` and `--ppo` pick a subset, and a later
call adds to the same result.json. The numbers and how long they took: docs/quickstart.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.evaluation.probes import probe_reward
from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.judges.reward_spec import load_reward
from rlhfkit.trainers.ppo import PPOConfig, train_ppo
from rlhfkit.trainers.rm import RMConfig, train_rm

EDITS = ["repetition", "flattery", "overconfidence", "length"]
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "ls": {"label_smoothing": 0.1},
    "l2": {"head_l2": 0.01},
    "adv": {"adversarial_edits": EDITS},
    "hardened": {"adversarial_edits": EDITS, "label_smoothing": 0.1, "head_l2": 0.01},
    "diverse": {"adversarial_edits": EDITS, "label_smoothing": 0.1, "head_l2": 0.01, "extra_data": "round2"},
}


def samples_of(model: Path, out: Path, prompts: int, per_prompt: int, seed: int) -> list[dict[str, Any]]:
    if not out.exists():
        run_sample(SampleConfig(model=str(model), split="eval", num_prompts=prompts, num_samples=per_prompt,
                                out=str(out), seed=seed))
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def gold_pairs(rows: list[dict[str, Any]], gap: float) -> list[tuple[str, str, str]]:
    """(prompt, better, worse) from consecutive samples of each prompt (a prompt may come several times:
    each draw gives a pair) whose gold totals differ by >= gap."""
    by_prompt: dict[str, list[str]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row["completion"])
    two = [(p, c[i], c[i + 1]) for p, c in by_prompt.items() for i in range(0, len(c) - 1, 2)]
    gold = load_reward("gold")
    ga, gb = gold([p for p, _, _ in two], [a for _, a, _ in two]), gold([p for p, _, _ in two], [b for _, _, b in two])
    return [(p, a, b) if x > y else (p, b, a) for (p, a, b), x, y in zip(two, ga, gb) if abs(x - y) >= gap]


def train_variant(run: Path, out: Path, name: str) -> Path:
    if name == "plain":
        return run / "rm"
    folder = out / f"rm_{name}"
    if not (folder / "model.safetensors").exists():
        flags = dict(VARIANTS[name])
        if flags.pop("extra_data", None):
            flags["extra_data"] = [str(p) for p in sorted(run.glob("round*/preferences.jsonl"))]
        train_rm(RMConfig(model=str(run / "sft"), data=str(run / "preferences.jsonl"), out=str(folder), seed=0,
                          progress=False, **flags))
    return folder


def measure_rm(folder: Path, pairs: list[tuple[str, str, str]], policy_samples: dict[str, list[dict]]) -> dict:
    reward, gold = load_reward(str(folder)), load_reward("gold")
    prompts = [p for p, _, _ in pairs]
    better, worse = reward(prompts, [c for _, c, _ in pairs]), reward(prompts, [r for _, _, r in pairs])
    metrics = json.loads((folder / "eval_metrics.json").read_text())
    probes = {name: probe_reward(reward, [r["prompt"] for r in rows], [r["completion"] for r in rows], gold=gold)
              for name, rows in policy_samples.items()}
    return {"panel_heldout_accuracy": metrics["accuracy"], "panel_heldout_pairs": metrics["pairs"],
            "gold_pair_accuracy": statistics.mean(b > w for b, w in zip(better, worse)), "gold_pairs": len(pairs),
            "data_mix": metrics.get("data_mix"),
            "probes": {policy: {k: v["prefers_hacked"] for k, v in p.items()} for policy, p in probes.items()}}


def ppo_against(run: Path, out: Path, name: str, rm: Path, side: ReferenceSide, eval_prompts: int) -> dict:
    policy = run / "ppo" if name == "plain" else out / f"ppo_{name}"
    if not (policy / "model.safetensors").exists():
        train_ppo(PPOConfig(model=str(run / "sft"), reward=str(rm), out=str(policy), max_steps=40, kl_coef=0.1,
                            group_size=8, seed=0, progress=False))
    result = run_eval(EvalConfig(policy=str(policy), reference=str(run / "sft"), reward_model=str(rm),
                                 num_prompts=eval_prompts, reference_samples=4, seed=0,
                                 out=str(out / f"eval_ppo_{name}.json")), side)
    return {k: result[k] for k in ("win_rate", "ci_low", "ci_high", "kl_to_reference", "repetition_rate",
                                   "reference_repetition_rate", "policy_gold", "policy_proxy", "length")} | {
        "probes": {k: v["prefers_hacked"] for k, v in result["reward_probes"].items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default="runs/quickstart", help="a finished quickstart folder")
    parser.add_argument("--out", default="runs/rm_hardening")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--ppo", default="plain,hardened", help="variants PPO is trained against")
    parser.add_argument("--eval-prompts", type=int, default=512)
    args = parser.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sft_rows = samples_of(run / "sft", out / "samples_sft.jsonl", args.eval_prompts, 2, seed=1)
    pairs = gold_pairs(sft_rows, 0.05)
    last_dpo = sorted(run.glob("dpo_round*"))[-1] if list(run.glob("dpo_round*")) else run / "dpo"
    policy_samples = {"sft": [r for r in sft_rows if r["index"] == 0],  # one per prompt, as for the policies
                      "dpo": samples_of(last_dpo, out / "samples_dpo.jsonl", args.eval_prompts, 1, seed=1),
                      "ppo": samples_of(run / "ppo", out / "samples_ppo.jsonl", args.eval_prompts, 1, seed=1)}
    saved = out / "result.json"  # a later call with other --variants adds to it
    result: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {"run": str(run), "variants": {},
                                                                                    "ppo": {}}
    for name in args.variants.split(","):
        t0 = time.perf_counter()
        folder = train_variant(run, out, name)
        result["variants"][name] = measure_rm(folder, pairs, policy_samples) | {
            "flags": {k: v for k, v in VARIANTS[name].items()}, "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps({name: result["variants"][name]}), flush=True)
    side = ReferenceSide()
    for name in filter(None, args.ppo.split(",")):
        result["ppo"][name] = ppo_against(run, out, name, train_variant(run, out, name), side, args.eval_prompts)
        print(json.dumps({f"ppo against {name}": result["ppo"][name]}), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    saved.write_text(json.dumps(result, indent=2))
    print_tables(result)


def print_tables(result: dict[str, Any]) -> None:
    print("\nreward model   panel held-out acc   gold-pair acc   prefers edited (policy: rep/flat/conf/len)")
    for name, v in result["variants"].items():
        probes = "  ".join(f"{p}: " + "/".join(f"{v['probes'][p][e]:.0%}" for e in EDITS) for p in v["probes"])
        print(f"{name:<14} {v['panel_heldout_accuracy']:.3f} (n={v['panel_heldout_pairs']})   "
              f"{v['gold_pair_accuracy']:.3f} (n={v['gold_pairs']})   {probes}")
    print("\nPPO against    gold win-rate vs SFT [95% CI]   KL     repeats a sentence (SFT)   probes rep/flat/conf/len")
    for name, p in result["ppo"].items():
        print(f"{name:<14} {p['win_rate']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]        {p['kl_to_reference']:.2f}   "
              f"{p['repetition_rate']:.0%} ({p['reference_repetition_rate']:.0%})                "
              + "/".join(f"{p['probes'][e]:.0%}" for e in EDITS))
    print(f"\n{result['seconds']:.0f} s (this call)")


if __name__ == "__main__":
    main()
