"""`rlhfkit quickstart`: the whole loop on the embedded default, with a report of what happened.

    rlhfkit quickstart --out runs/quickstart
    rlhfkit quickstart --out runs/hacking --reward-hacking      # also: reward hacking and its cure

  1) sft        the tiny model on the built-in task's demonstrations (all six response styles)
  2) sample     K responses per training prompt from the SFT policy
  3) feedback   a campaign in the SQLite feedback store, filled by a panel of simulated annotators
                (noise on, optionally biased) through the same service the web app uses
  4) export     majority-vote preference pairs (TRL columns + margin, rationale, criteria)
  5) rm         a reward model on those pairs, initialised from the SFT model
  6) dpo        the SFT policy tuned on the same pairs, no reward model; then --dpo-rounds - 1 more
                rounds: the latest DPO policy is sampled on the training prompts, the same panel
                compares those samples, and DPO continues from that policy on the new pairs
  7) ppo        the SFT policy tuned online against the reward model, with a KL penalty to SFT
  8) eval       win-rate over SFT judged by the gold rubric (with a 95% interval), KL to SFT,
                length, and the reward model's (proxy) score beside the gold one, for DPO (its last
                round), PPO and best-of-n sampling from SFT (the baseline with no training); each
                response is compared with --eval-reference-samples SFT responses to its prompt;
                then the reward model's score per response style beside gold, a few of the panel's
                rationales, and (--frontier) the reward-KL frontier: gold and proxy against KL to SFT
                for PPO's saved policies, each DPO round and best-of-n from SFT
  9) hacking    (--reward-hacking) a second panel biased toward long (or flattering) answers, its
                reward model, and PPO against it twice: beta = 0 and beta = --ppo-kl-coef; the
                report plots proxy and gold reward over training for both
 10) ai        (--ai-feedback) RLAIF: an AI judge (the embedded one unless --judge) labels the same
                samples under the shipped constitution; a reward model, DPO (every round labelled by
                the judge) and PPO learn from its labels alone; evaluated as dpo_ai and ppo_ai
 11) report     report.json and report.html (rlhfkit.pipelines.report: training curves, win-rates,
                before/after samples)

Each stage writes into its own folder under --out and is skipped when its output is already
there, so an interrupted quickstart picks up where it stopped.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhfkit.data.records import load_records
from rlhfkit.errors import ConfigError
from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.feedback.commands import (
    AnnotateConfig,
    CampaignConfig,
    ExportConfig,
    run_annotate,
    run_campaign,
    run_export,
)
from rlhfkit.judges.ai import load_judge
from rlhfkit.judges.embedded import train_embedded_judge
from rlhfkit.pipelines.ai_feedback import ai_feedback, gold_agreement
from rlhfkit.pipelines.diagnostics import frontier_points, rationales, reward_by_style
from rlhfkit.pipelines.report import build_report, metrics_of, render_html, took
from rlhfkit.trainers.dpo import DPOConfig, train_dpo
from rlhfkit.trainers.ppo import PPOConfig, train_ppo
from rlhfkit.trainers.rm import RMConfig, train_rm
from rlhfkit.trainers.sft import SFTConfig, train_sft

# `rlhfkit rm` flags of --harden-rm (the edits are worded unlike the probes that measure them)
HARDENING: dict[str, Any] = {"adversarial_edits": ["repetition", "flattery", "overconfidence", "length"],
                             "label_smoothing": 0.1, "head_l2": 0.01}


@dataclass
class QuickstartConfig:
    """SFT -> samples -> simulated feedback -> reward model and DPO -> evaluation -> report."""

    out: str = "runs/quickstart"
    """Folder for every stage's output and the report."""
    prompts: int = 400
    """Training prompts sampled from the SFT policy for feedback."""
    samples_per_prompt: int = 2
    """Responses sampled per prompt (responses to the same prompt are compared pairwise)."""
    annotators: int = 3
    """Simulated annotators in the panel; each pair is judged by all of them."""
    noise: float = 0.1
    """Probability that a simulated annotator answers at random."""
    bias: str | None = None
    """Panel bias: length or flattery (the reward-hacking table), or none."""
    sft_epochs: float = 4.0
    """SFT passes over the demonstrations."""
    sft_max_steps: int | None = None
    """Cap on SFT steps (for a fast smoke run)."""
    dpo_lr: float = 1e-4
    """DPO learning rate."""
    dpo_beta: float = 0.1
    """DPO beta."""
    dpo_rounds: int = 2
    """Feedback rounds of DPO. Round 1 learns from comparisons of SFT samples; each later round asks the
    panel to compare samples of the latest DPO policy (fresh comparisons of the current policy, as
    InstructGPT and Llama 2 collected them) and continues DPO on those, with that policy as reference."""
    dpo_round_prompts: int = 400
    """Training prompts sampled from the latest DPO policy in each round after the first (x --samples-per-prompt)."""
    dpo_round_beta: float = 0.05
    """DPO beta in rounds 2 and later."""
    dpo_sft_coef: float = 2.0
    """RPO's NLL weight on the chosen responses in rounds 2 and later: keeps them fluent and the policy
    near its reference (0 leaves it out; docs/quickstart.md compares weights)."""
    ppo_steps: int = 40
    """PPO steps (each samples prompts x group responses and updates on them)."""
    ppo_kl_coef: float = 0.1
    """beta of PPO's KL penalty to the SFT model."""
    ppo_group_size: int = 8
    """Responses per prompt in each PPO step (RLOO's leave-one-out baseline is taken within the group)."""
    harden_rm: bool = True
    """Harden the reward model that PPO and best-of-n optimise (into rm_hardened/): adversarial pairs for
    the reward-hacking table's four edits, label smoothing and an L2 pull of the head (HARDENING; each one
    measured in docs/quickstart.md). --no-harden-rm trains the plain one (rm/) instead."""
    compare_plain_rm: bool = False
    """With --harden-rm, also train the plain reward model on the same pairs and show its probes beside the
    hardened one's, on the same samples (the time it adds: docs/quickstart.md)."""
    best_of: int = 4
    """n of the best-of-n baseline (the reward model picks one of n SFT samples); 0 leaves it out."""
    frontier: bool = True
    """Draw the reward-KL frontier: PPO's policy saved every --frontier-every steps, each DPO round and
    best-of-n from SFT (n = 1, 2, 4, ... up to --eval-reference-samples + --best-of: the SFT samples per
    prompt the evaluation has drawn already), each scored by gold and the reward model against its KL
    to SFT (the time it adds: docs/quickstart.md)."""
    frontier_prompts: int = 128
    """Held-out prompts each earlier policy (PPO's saved ones, DPO's earlier rounds) is measured on; the
    final policies' points are their evaluation's, on --eval-prompts."""
    frontier_every: int = 10
    """PPO steps between the frontier's PPO points."""
    reward_hacking: bool = False
    """Also run the reward-hacking experiment (a biased panel; PPO with beta = 0 and with beta > 0)."""
    hacking_bias: str = "length"
    """Bias of the panel in the reward-hacking experiment: length or flattery."""
    hacking_steps: int = 60
    """PPO steps of each run of the reward-hacking experiment."""
    ai_feedback: bool = False
    """Also train the policies from AI labels alone (RLAIF): an AI judge labels the same SFT samples under
    the shipped constitution (one principle drawn per pair), and a reward model, DPO (--dpo-rounds, each
    round labelled by the judge) and PPO learn from its labels; the report's "Human vs AI feedback"
    table puts them beside the panel's (the time it adds: docs/quickstart.md)."""
    judge: str | None = None
    """The AI judge of --ai-feedback: a chat-model folder or the http(s):// URL of an OpenAI-compatible
    server (default: the embedded judge, trained into <out>/judge on the first run)."""
    eval_prompts: int = 512
    """Held-out prompts for the evaluation."""
    eval_reference_samples: int = 4
    """SFT responses per held-out prompt that each policy response is compared with."""
    seed: int = 0
    """Seed of every stage."""
    progress: bool = True
    """Progress bars."""

    def validate(self) -> None:
        if min(self.prompts, self.dpo_round_prompts) < 10 or self.samples_per_prompt < 2 or self.annotators < 1:
            raise ConfigError("--prompts and --dpo-round-prompts must be >= 10, --samples-per-prompt >= 2, "
                              "--annotators >= 1")
        if self.bias not in (None, "length", "flattery"):
            raise ConfigError(f"--bias must be length or flattery, got {self.bias!r}")
        if self.hacking_bias not in ("length", "flattery"):
            raise ConfigError(f"--hacking-bias must be length or flattery, got {self.hacking_bias!r}")
        if self.ppo_steps < 1 or self.hacking_steps < 1 or self.best_of < 0 or self.dpo_rounds < 1:
            raise ConfigError("--ppo-steps, --hacking-steps and --dpo-rounds must be >= 1, --best-of >= 0")
        if self.frontier_prompts < 1 or self.frontier_every < 1:
            raise ConfigError("--frontier-prompts and --frontier-every must be >= 1")
        if self.eval_reference_samples < 1:
            raise ConfigError(f"--eval-reference-samples must be >= 1, got {self.eval_reference_samples}")
        if self.ppo_group_size < 2:
            raise ConfigError(f"--ppo-group-size must be >= 2 (RLOO compares responses to one prompt), "
                              f"got {self.ppo_group_size}")


def _done(folder: Path) -> bool:
    return (folder / "model.safetensors").exists()


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    config.validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    reused: list[str] = []

    def stage(name: str, func, skip: bool) -> None:
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        if skip:
            print(f"(already done in {out}; skipped)")
            reused.append(name)
        else:
            func()
        seconds[name] = round(time.perf_counter() - t0, 1)
        if not skip:
            print(f"({seconds[name]:.0f} s)", flush=True)

    sft, rm, dpo, ppo = out / "sft", out / "rm", out / "dpo", out / "ppo"
    samples, prefs = out / "samples.jsonl", out / "preferences.jsonl"
    common = {"seed": config.seed, "progress": config.progress}
    stage("1) sft", lambda: train_sft(SFTConfig(out=str(sft), epochs=config.sft_epochs, max_steps=config.sft_max_steps,
                                                **common)), _done(sft))
    stage("2) sample", lambda: run_sample(SampleConfig(model=str(sft), split="train", num_prompts=config.prompts,
                                                       num_samples=config.samples_per_prompt, out=str(samples),
                                                       seed=config.seed)), samples.exists())
    stage("3) feedback + 4) export", lambda: _feedback(config, samples, out / "feedback.db", prefs, config.bias),
          prefs.exists())
    plain_rm = rm
    if not config.harden_rm or config.compare_plain_rm:
        stage("5) rm", lambda: train_rm(RMConfig(model=str(sft), data=str(prefs), out=str(plain_rm), **common)),
              _done(plain_rm))
    if config.harden_rm:
        rm = out / "rm_hardened"
        stage("5) rm: hardened", lambda: train_rm(RMConfig(model=str(sft), data=str(prefs), out=str(rm), **HARDENING,
                                                           **common)), _done(rm))
    stage("6) dpo", lambda: train_dpo(DPOConfig(model=str(sft), data=str(prefs), out=str(dpo), lr=config.dpo_lr,
                                                beta=config.dpo_beta, **common)), _done(dpo))
    dpo_rounds = [dpo]
    for r in range(2, config.dpo_rounds + 1):
        dpo_rounds.append(_dpo_round(config, out, r, dpo_rounds[-1], stage))
    snapshots = {"save_every": config.frontier_every, "save_total_limit": config.ppo_steps // config.frontier_every + 1}
    stage("7) ppo", lambda: train_ppo(PPOConfig(model=str(sft), reward=str(rm), out=str(ppo), max_steps=config.ppo_steps,
                                                kl_coef=config.ppo_kl_coef, group_size=config.ppo_group_size,
                                                **(snapshots if config.frontier else {}), **common)), _done(ppo))
    evaluation: dict[str, Any] = {}
    sft_side = ReferenceSide()  # every policy is compared with the same SFT responses, sampled once

    def evaluate(name: str, policy: Path, reward_model: Path, **options) -> None:
        settings = {"num_prompts": config.eval_prompts, "reference_samples": config.eval_reference_samples,
                    "seed": config.seed, "probe_models": [str(plain_rm)] if rm != plain_rm and _done(plain_rm) else [],
                    **options}
        evaluation[name] = run_eval(EvalConfig(policy=str(policy), reference=str(sft), reward_model=str(reward_model),
                                               out=str(out / f"eval_{name}.json"), **settings), sft_side)

    def evaluate_all() -> None:
        evaluate("dpo", dpo_rounds[-1], rm)
        evaluate("ppo", ppo, rm)
        if config.best_of > 1:
            evaluate(f"best_of_{config.best_of}", sft, rm, best_of=config.best_of, probes=False,
                     probe_models=[])  # SFT's own text

    stage("8) eval", evaluate_all, False)
    diagnostics = out / "diagnostics.json"
    stage("8) eval: styles, rationales" + (" and the reward-KL frontier" if config.frontier else ""),
          lambda: _diagnostics(config, out, rm, dpo_rounds, diagnostics, sft_side, evaluation), diagnostics.exists())
    hacking = _reward_hacking(config, out, sft, samples, stage) if config.reward_hacking else None
    ai = _ai_policies(config, out, samples, stage, evaluate) if config.ai_feedback else None
    report = build_report(config, out, evaluation, hacking, seconds, time.perf_counter() - started,
                          json.loads(diagnostics.read_text()), rm)
    if ai is not None:
        report["ai_feedback"] = ai
    report["stages_reused"] = reused  # done by an earlier run: seconds_total leaves them out
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.html").write_text(render_html(report))
    print(f"\nreport: {out / 'report.html'} and {out / 'report.json'} ({took(report)})")
    for name, policy in report["policies"].items():
        print(f"  {name}: gold win-rate over SFT {policy['gold_win_rate_vs_sft']:.3f} "
              f"[{policy['ci_low']:.3f}, {policy['ci_high']:.3f}], KL to SFT {policy['kl_to_sft']:.2f} nats")
    if hacking:
        for name, run in hacking["runs"].items():
            print(f"  reward hacking, {name}: proxy {run['proxy_first']:+.2f} -> {run['proxy_last']:+.2f}, "
                  f"gold {run['gold_first']:.3f} -> {run['gold_last']:.3f} (training samples), "
                  f"gold win-rate over SFT {run['eval']['win_rate']:.3f}")
    return report


def _diagnostics(config: QuickstartConfig, out: Path, rm: Path, dpo_rounds: list[Path], path: Path,
                 sft_side: ReferenceSide, evaluation: dict[str, Any]) -> None:
    """diagnostics.json: the reward model per response style, the panel's rationales, the frontier (its
    final policies and best-of-n taken from the evaluation: `evaluation` and its SFT samples `sft_side`)."""
    prompts = [r["prompt"] for r in load_records("builtin:assistant", "prompts", split="eval", builtin_size=64,
                                                 seed=config.seed)]
    result: dict[str, Any] = {"reward_by_style": reward_by_style(rm, prompts, config.seed),
                              "rationales": rationales(out / "preferences.jsonl")}
    if config.frontier:
        policies = {f"dpo-round-{r}": folder for r, folder in enumerate(dpo_rounds, start=1)}
        checkpoints = sorted((out / "ppo" / "checkpoints").glob("step-*"))
        policies.update({f"ppo-step-{int(c.name.split('-')[1])}": c for c in checkpoints})
        evaluated = {f"dpo-round-{len(dpo_rounds)}": evaluation["dpo"], f"ppo-step-{config.ppo_steps}": evaluation["ppo"]}
        result["frontier"] = frontier_points(out / "sft", rm, policies, config.frontier_prompts,
                                             max_new_tokens=96, seed=config.seed, side=sft_side, evaluated=evaluated)
    path.write_text(json.dumps(result, indent=2))


def _feedback(config: QuickstartConfig, samples: Path, db: Path, prefs: Path, bias: str | None,
              campaign: str = "quickstart") -> None:
    """A campaign over `samples` in a fresh SQLite store, filled by the simulated panel, exported as pairs."""
    if db.exists():
        db.unlink()
    db.parent.mkdir(parents=True, exist_ok=True)
    run_campaign(CampaignConfig(db=str(db), campaign=campaign, data=str(samples), overlap=config.annotators,
                                seed=config.seed))
    run_annotate(AnnotateConfig(db=str(db), campaign=campaign, annotators=config.annotators, noise=config.noise,
                                bias=bias, seed=config.seed))
    run_export(ExportConfig(db=str(db), campaign=campaign, out=str(prefs), method="majority", seed=config.seed))


def _dpo_round(config: QuickstartConfig, out: Path, r: int, previous: Path, stage, label=None,
               title: str = "6) dpo") -> Path:
    """Feedback round `r` of DPO: sample `previous` on the training prompts, have the panel (or
    `label(samples, db, prefs, campaign)`) compare the samples, and continue DPO from `previous` (also
    its reference) on the new pairs; returns the policy."""
    folder, policy = out / f"round{r}", out / f"dpo_round{r}"
    samples, prefs = folder / "samples.jsonl", folder / "preferences.jsonl"
    label = label or (lambda s, db, p, c: _feedback(config, s, db, p, config.bias, c))
    stage(f"{title} round {r}: sample {previous.name}",
          lambda: run_sample(SampleConfig(model=str(previous), split="train", num_prompts=config.dpo_round_prompts,
                                          num_samples=config.samples_per_prompt, out=str(samples),
                                          seed=config.seed + r - 1)),
          samples.exists())
    stage(f"{title} round {r}: feedback + export", lambda: label(samples, folder / "feedback.db", prefs, f"round{r}"),
          prefs.exists())
    stage(f"{title} round {r}",
          lambda: train_dpo(DPOConfig(model=str(previous), data=str(prefs), out=str(policy), lr=config.dpo_lr,
                                      beta=config.dpo_round_beta, sft_coef=config.dpo_sft_coef, seed=config.seed,
                                      progress=config.progress)),
          _done(policy))
    return policy


def _ai_policies(config: QuickstartConfig, out: Path, samples: Path, stage, evaluate) -> dict[str, Any]:
    """--ai-feedback: the AI judge labels what the panel labelled (and each later DPO round's samples);
    a reward model, DPO and PPO learn from its labels alone and are evaluated as dpo_ai and ppo_ai."""
    folder, sft = out / "ai", out / "sft"
    spec = config.judge or str(out / "judge")
    if not config.judge:
        stage("10) ai: train the embedded judge", lambda: train_embedded_judge(spec, seed=config.seed,
                                                                              progress=config.progress),
              (Path(spec) / "judge.json").exists())
    judge = functools.cache(lambda: load_judge(spec))  # loaded on first use: a resumed run may never need it
    name = "http" if spec.startswith(("http://", "https://")) else Path(spec).name

    def label(samples_: Path, db: Path, prefs: Path, campaign: str) -> None:
        numbers = ai_feedback(samples_, db, prefs, judge(), name, campaign=campaign, seed=config.seed)
        prefs.with_suffix(".stats.json").write_text(json.dumps(numbers, indent=2))

    prefs, rm, dpo, ppo = folder / "preferences.jsonl", folder / "rm", folder / "dpo", folder / "ppo"
    common = {"seed": config.seed, "progress": config.progress}
    stage("10) ai: label the SFT samples", lambda: label(samples, folder / "feedback.db", prefs, "quickstart-ai"),
          prefs.exists())
    stage("10) ai: rm", lambda: train_rm(RMConfig(model=str(sft), data=str(prefs), out=str(rm),
                                                  **(HARDENING if config.harden_rm else {}), **common)), _done(rm))
    stage("10) ai: dpo", lambda: train_dpo(DPOConfig(model=str(sft), data=str(prefs), out=str(dpo), lr=config.dpo_lr,
                                                     beta=config.dpo_beta, **common)), _done(dpo))
    rounds = [dpo]
    for r in range(2, config.dpo_rounds + 1):
        rounds.append(_dpo_round(config, folder, r, rounds[-1], stage, label, title="10) ai: dpo"))
    stage("10) ai: ppo", lambda: train_ppo(PPOConfig(model=str(sft), reward=str(rm), out=str(ppo),
                                                     max_steps=config.ppo_steps, kl_coef=config.ppo_kl_coef,
                                                     group_size=config.ppo_group_size, **common)), _done(ppo))

    def evaluate_ai() -> None:
        evaluate("dpo_ai", rounds[-1], rm, probe_models=[])
        evaluate("ppo_ai", ppo, rm, probe_models=[])

    stage("10) ai: eval", evaluate_ai, False)
    labels = {p.parent.name if p.parent != folder else "round1": json.loads(p.read_text())
              for p in sorted(folder.glob("**/preferences.stats.json"))}
    return {"judge": spec, "labels": labels, "panel_agreement_with_gold": gold_agreement(out / "preferences.jsonl")}


def _reward_hacking(config: QuickstartConfig, out: Path, sft: Path, samples: Path, stage) -> dict[str, Any]:
    """A biased panel -> its reward model -> PPO with beta = 0 and beta > 0; curves and evals of both."""
    folder = out / "hacking"
    prefs, rm = folder / "preferences.jsonl", folder / "rm"
    stage(f"9) hacking: a panel biased toward {config.hacking_bias}",
          lambda: _feedback(config, samples, folder / "feedback.db", prefs, config.hacking_bias, "hacking"),
          prefs.exists())
    stage("9) hacking: its reward model", lambda: train_rm(RMConfig(model=str(sft), data=str(prefs), out=str(rm),
                                                                    seed=config.seed, progress=config.progress)),
          _done(rm))
    runs: dict[str, Any] = {}
    sft_side = ReferenceSide()  # both runs are compared with the same SFT responses
    for beta in (0.0, config.ppo_kl_coef):
        name = f"beta={beta:g}"
        policy = folder / f"ppo_beta{beta:g}"
        stage(f"9) hacking: ppo {name}",
              lambda policy=policy, beta=beta: train_ppo(PPOConfig(
                  model=str(sft), reward=str(rm), out=str(policy), max_steps=config.hacking_steps, kl_coef=beta,
                  seed=config.seed, progress=config.progress)),
              _done(policy))
        result = run_eval(EvalConfig(policy=str(policy), reference=str(sft), reward_model=str(rm),
                                     num_prompts=config.eval_prompts, seed=config.seed,
                                     reference_samples=config.eval_reference_samples,
                                     out=str(folder / f"eval_beta{beta:g}.json")), sft_side)
        curve = metrics_of(policy)
        runs[name] = {"kl_coef": beta, "curve": [{k: r[k] for k in ("step", "score", "gold", "kl", "response_length")}
                                                  for r in curve],
                      "proxy_first": curve[0]["score"], "proxy_last": curve[-1]["score"],
                      "gold_first": curve[0]["gold"], "gold_last": curve[-1]["gold"],
                      "eval": {k: result[k] for k in ("win_rate", "ci_low", "ci_high", "kl_to_reference", "length",
                                                      "policy_gold", "policy_proxy", "reference_gold",
                                                      "reference_proxy")},
                      "examples": result["examples"][:4]}
    rm_metrics = json.loads((rm / "eval_metrics.json").read_text())
    return {"bias": config.hacking_bias, "steps": config.hacking_steps, "reward_model": rm_metrics, "runs": runs}


