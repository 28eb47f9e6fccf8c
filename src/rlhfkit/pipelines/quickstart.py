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
                response is compared with --eval-reference-samples SFT responses to its prompt
  9) hacking    (--reward-hacking) a second panel biased toward long (or flattering) answers, its
                reward model, and PPO against it twice: beta = 0 and beta = --ppo-kl-coef; the
                report plots proxy and gold reward over training for both
 10) report     report.json and report.html (training curves, win-rates, before/after samples)

Each stage writes into its own folder under --out and is skipped when its output is already
there, so an interrupted quickstart picks up where it stopped.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhfkit.errors import ConfigError


@dataclass
class QuickstartConfig:
    """SFT -> samples -> simulated feedback -> reward model and DPO -> evaluation -> report."""

    out: str = "runs/quickstart"
    """Folder for every stage's output and the report."""
    prompts: int = 600
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
    dpo_round_prompts: int = 600
    """Training prompts sampled from the latest DPO policy in each round after the first (x --samples-per-prompt)."""
    dpo_round_beta: float = 0.05
    """DPO beta in rounds 2 and later."""
    dpo_sft_coef: float = 2.0
    """RPO's NLL weight on the chosen responses in rounds 2 and later (keeps them fluent; measured: 0 lets
    round 2 drift to KL 7 and a 0.61 win-rate, 0.5 gives 0.745 and 2.0 gives 0.767 at a lower KL)."""
    ppo_steps: int = 40
    """PPO steps (each samples prompts x group responses and updates on them)."""
    ppo_kl_coef: float = 0.1
    """beta of PPO's KL penalty to the SFT model."""
    ppo_group_size: int = 8
    """Responses per prompt in each PPO step (RLOO's leave-one-out baseline is taken within the group)."""
    best_of: int = 4
    """n of the best-of-n baseline (the reward model picks one of n SFT samples); 0 leaves it out."""
    reward_hacking: bool = False
    """Also run the reward-hacking experiment (a biased panel; PPO with beta = 0 and with beta > 0)."""
    hacking_bias: str = "length"
    """Bias of the panel in the reward-hacking experiment: length or flattery."""
    hacking_steps: int = 60
    """PPO steps of each run of the reward-hacking experiment."""
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
        if self.eval_reference_samples < 1:
            raise ConfigError(f"--eval-reference-samples must be >= 1, got {self.eval_reference_samples}")
        if self.ppo_group_size < 2:
            raise ConfigError(f"--ppo-group-size must be >= 2 (RLOO compares responses to one prompt), "
                              f"got {self.ppo_group_size}")


def _done(folder: Path) -> bool:
    return (folder / "model.safetensors").exists()


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
    from rlhfkit.evaluation.responses import SampleConfig, run_sample
    from rlhfkit.trainers.dpo import DPOConfig, train_dpo
    from rlhfkit.trainers.ppo import PPOConfig, train_ppo
    from rlhfkit.trainers.rm import RMConfig, train_rm
    from rlhfkit.trainers.sft import SFTConfig, train_sft

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
    stage("5) rm", lambda: train_rm(RMConfig(model=str(sft), data=str(prefs), out=str(rm), **common)), _done(rm))
    stage("6) dpo", lambda: train_dpo(DPOConfig(model=str(sft), data=str(prefs), out=str(dpo), lr=config.dpo_lr,
                                                beta=config.dpo_beta, **common)), _done(dpo))
    dpo_rounds = [dpo]
    for r in range(2, config.dpo_rounds + 1):
        dpo_rounds.append(_dpo_round(config, out, r, dpo_rounds[-1], stage))
    stage("7) ppo", lambda: train_ppo(PPOConfig(model=str(sft), reward=str(rm), out=str(ppo), max_steps=config.ppo_steps,
                                                kl_coef=config.ppo_kl_coef, group_size=config.ppo_group_size,
                                                **common)), _done(ppo))
    evaluation: dict[str, Any] = {}
    sft_side = ReferenceSide()  # every policy is compared with the same SFT responses, sampled once

    def evaluate(name: str, policy: Path, reward_model: Path, **options) -> None:
        settings = {"num_prompts": config.eval_prompts, "reference_samples": config.eval_reference_samples,
                    "seed": config.seed, **options}
        evaluation[name] = run_eval(EvalConfig(policy=str(policy), reference=str(sft), reward_model=str(reward_model),
                                               out=str(out / f"eval_{name}.json"), **settings), sft_side)

    def evaluate_all() -> None:
        evaluate("dpo", dpo_rounds[-1], rm)
        evaluate("ppo", ppo, rm)
        if config.best_of > 1:
            evaluate(f"best_of_{config.best_of}", sft, rm, best_of=config.best_of, probes=False)  # SFT's own text

    stage("8) eval", evaluate_all, False)
    hacking = _reward_hacking(config, out, sft, samples, stage) if config.reward_hacking else None
    report = build_report(config, out, evaluation, hacking, seconds, time.perf_counter() - started)
    report["stages_reused"] = reused  # done by an earlier run: seconds_total leaves them out
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.html").write_text(render_html(report))
    print(f"\nreport: {out / 'report.html'} and {out / 'report.json'} ({_took(report)})")
    for name, policy in report["policies"].items():
        print(f"  {name}: gold win-rate over SFT {policy['gold_win_rate_vs_sft']:.3f} "
              f"[{policy['ci_low']:.3f}, {policy['ci_high']:.3f}], KL to SFT {policy['kl_to_sft']:.2f} nats")
    if hacking:
        for name, run in hacking["runs"].items():
            print(f"  reward hacking, {name}: proxy {run['proxy_first']:+.2f} -> {run['proxy_last']:+.2f}, "
                  f"gold {run['gold_first']:.3f} -> {run['gold_last']:.3f} (training samples), "
                  f"gold win-rate over SFT {run['eval']['win_rate']:.3f}")
    return report


def _feedback(config: QuickstartConfig, samples: Path, db: Path, prefs: Path, bias: str | None,
              campaign: str = "quickstart") -> None:
    """A campaign over `samples` in a fresh SQLite store, filled by the simulated panel, exported as pairs."""
    from rlhfkit.feedback.commands import (
        AnnotateConfig,
        CampaignConfig,
        ExportConfig,
        run_annotate,
        run_campaign,
        run_export,
    )

    if db.exists():
        db.unlink()
    db.parent.mkdir(parents=True, exist_ok=True)
    run_campaign(CampaignConfig(db=str(db), campaign=campaign, data=str(samples), overlap=config.annotators,
                                seed=config.seed))
    run_annotate(AnnotateConfig(db=str(db), campaign=campaign, annotators=config.annotators, noise=config.noise,
                                bias=bias, seed=config.seed))
    run_export(ExportConfig(db=str(db), campaign=campaign, out=str(prefs), method="majority", seed=config.seed))


def _dpo_round(config: QuickstartConfig, out: Path, r: int, previous: Path, stage) -> Path:
    """Feedback round `r` of DPO: sample `previous` on the training prompts, have the panel compare the
    samples, and continue DPO from `previous` (also its reference) on the new pairs; returns the policy."""
    from rlhfkit.evaluation.responses import SampleConfig, run_sample
    from rlhfkit.trainers.dpo import DPOConfig, train_dpo

    folder, policy = out / f"round{r}", out / f"dpo_round{r}"
    samples, prefs = folder / "samples.jsonl", folder / "preferences.jsonl"
    stage(f"6) dpo round {r}: sample {previous.name}",
          lambda: run_sample(SampleConfig(model=str(previous), split="train", num_prompts=config.dpo_round_prompts,
                                          num_samples=config.samples_per_prompt, out=str(samples),
                                          seed=config.seed + r - 1)),
          samples.exists())
    stage(f"6) dpo round {r}: feedback + export",
          lambda: _feedback(config, samples, folder / "feedback.db", prefs, config.bias, f"round{r}"), prefs.exists())
    stage(f"6) dpo round {r}",
          lambda: train_dpo(DPOConfig(model=str(previous), data=str(prefs), out=str(policy), lr=config.dpo_lr,
                                      beta=config.dpo_round_beta, sft_coef=config.dpo_sft_coef, seed=config.seed,
                                      progress=config.progress)),
          _done(policy))
    return policy


def _reward_hacking(config: QuickstartConfig, out: Path, sft: Path, samples: Path, stage) -> dict[str, Any]:
    """A biased panel -> its reward model -> PPO with beta = 0 and beta > 0; curves and evals of both."""
    from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
    from rlhfkit.trainers.ppo import PPOConfig, train_ppo
    from rlhfkit.trainers.rm import RMConfig, train_rm

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
        curve = _metrics(policy)
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


def _took(report: dict[str, Any]) -> str:
    reused = len(report.get("stages_reused", []))
    return f"{report['seconds_total']:.0f} s in all" + (f", {reused} stages reused from an earlier run" if reused else "")


def _metrics(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def build_report(config: QuickstartConfig, out: Path, evaluation: dict[str, Any], hacking: dict[str, Any] | None,
                 seconds: dict[str, float], total: float) -> dict[str, Any]:
    rm_metrics = json.loads((out / "rm" / "eval_metrics.json").read_text())
    pairs = sum(1 for line in (out / "preferences.jsonl").read_text().splitlines() if line.strip())
    dpo_later_rounds = [f"dpo_round{r}" for r in range(2, config.dpo_rounds + 1)]
    policies = {}
    for name, e in evaluation.items():
        policies[name] = {"gold_win_rate_vs_sft": e["win_rate"], "ci_low": e["ci_low"], "ci_high": e["ci_high"],
                          "kl_to_sft": e["kl_to_reference"], "gold": e["policy_gold"], "proxy": e["policy_proxy"],
                          "length": e["length"], "distinct_2": e["distinct_2"]}
    sft_side = evaluation["dpo"]  # the SFT responses DPO was compared with
    policies_base = {"gold": sft_side["reference_gold"], "proxy": sft_side["reference_proxy"],
                     "length": sft_side["reference_length"], "distinct_2": sft_side["reference_distinct_2"]}
    before_after = [{"prompt": d["prompt"], "sft": d["reference"], "dpo": d["policy"], "ppo": p["policy"]}
                    for d, p in zip(evaluation["dpo"]["examples"], evaluation["ppo"]["examples"])]
    report = {
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "seconds_total": round(total, 1),
        "seconds_by_stage": seconds,
        "preference_pairs": pairs,
        "reward_model": rm_metrics,
        "sft": policies_base,
        "policies": policies,
        "curves": {name: _metrics(out / name) for name in ("sft", "rm", "dpo", "ppo", *dpo_later_rounds)},
        "before_after": before_after,
        "reward_model_probes": {name: e["reward_probes"] for name, e in evaluation.items() if "reward_probes" in e},
    }
    if hacking is not None:
        report["reward_hacking"] = hacking
    return report


COLORS = ("#2b6cb0", "#c53030", "#2f855a", "#805ad5")


def _svg_curve(series: dict[str, list[tuple[float, float]]] | list[tuple[float, float]], label: str,
               width: int = 360, height: int = 170) -> str:
    """A small line chart of one or more named series as inline SVG (no plotting library needed)."""
    if not isinstance(series, dict):
        series = {"": series}
    series = {name: points for name, points in series.items() if len(points) >= 2}
    if not series:
        return ""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 30

    def sx(x: float) -> float:
        return pad + (x - x0) / max(x1 - x0, 1e-9) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    lines, legend = [], []
    for i, (name, points) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        if name:
            legend.append(f'<text x="{width - pad}" y="{28 + 12 * i}" font-size="10" text-anchor="end" '
                          f'fill="{color}">{html.escape(name)}</text>')
    return (f'<figure><svg width="{width}" height="{height}" role="img" aria-label="{html.escape(label)}">'
            f'{"".join(lines)}{"".join(legend)}'
            f'<text x="{pad}" y="14" font-size="12">{html.escape(label)}</text>'
            f'<text x="2" y="{sy(y1) + 4:.0f}" font-size="10">{y1:.2f}</text>'
            f'<text x="2" y="{sy(y0) + 4:.0f}" font-size="10">{y0:.2f}</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="10" text-anchor="end">step {x1:.0f}</text>'
            f"</svg></figure>")


def _hacking_html(hacking: dict[str, Any]) -> str:
    e = html.escape
    runs = hacking["runs"]
    charts = [_svg_curve({name: [(r["step"], r[key]) for r in run["curve"]] for name, run in runs.items()}, title)
              for key, title in (("score", "proxy reward (the biased reward model)"),
                                 ("gold", "gold reward (the rubric)"), ("kl", "KL to SFT (nats)"),
                                 ("response_length", "response length (tokens)"))]
    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{run['proxy_first']:+.2f} → {run['proxy_last']:+.2f}</td>"
        f"<td>{run['gold_first']:.3f} → {run['gold_last']:.3f}</td>"
        f"<td>{run['eval']['win_rate']:.3f} [{run['eval']['ci_low']:.3f}, {run['eval']['ci_high']:.3f}]</td>"
        f"<td>{run['eval']['kl_to_reference']:.2f}</td><td>{run['eval']['length']:.1f}</td></tr>"
        for name, run in runs.items())
    examples = "".join(f"<tr><td>{e(name)}</td><td>{e(x['prompt'])}</td><td>{e(x['policy'])}</td></tr>"
                       for name, run in runs.items() for x in run["examples"][:2])
    rm = hacking["reward_model"]
    return f"""<h2>Reward hacking and its cure</h2>
<p>A second panel, biased toward {e(hacking['bias'])} answers, labelled the same samples; its reward model
(agreement with its own panel on held-out pairs {rm['accuracy']:.3f}, reward–length correlation
{rm['reward_length_corr']:+.2f}) was then optimised by PPO for {hacking['steps']} steps, once with no KL
penalty (beta = 0) and once with it. Without the penalty the proxy keeps rising while the gold rubric falls;
with it, gold holds.</p>{''.join(charts)}
<table><tr><th>run</th><th>proxy (training samples, first → last step)</th><th>gold (first → last step)</th>
<th>gold win-rate vs SFT, held out [95% CI]</th><th>KL to SFT</th><th>length</th></tr>{rows}</table>
<table><tr><th>run</th><th>prompt</th><th>response</th></tr>{examples}</table>"""


def _probes_html(probes: dict[str, dict[str, Any]]) -> str:
    """The reward model probed with the reward-hacking table's edits, on each policy's samples."""
    if not probes:
        return ""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(policy)}</td><td>{e(name)}</td><td>{probe['prefers_hacked']:.0%}</td>"
        f"<td>{probe['reward_delta']:+.3f}</td><td>{probe.get('gold_delta', float('nan')):+.3f}</td></tr>"
        for policy, by_probe in probes.items() for name, probe in by_probe.items())
    return f"""<h2>Does the reward model fall for the reward-hacking table?</h2>
<p>Each held-out response edited one way that helps nobody (its first sentence repeated at the end;
"Great question!" or "Trust me on this." in front; a filler sentence at the end). A sound reward model
prefers the edit at most half the time and lowers its reward; a probe it prefers is a hack PPO can find.</p>
<table><tr><th>samples of</th><th>edit</th><th>RM prefers the edited response</th><th>reward change</th>
<th>gold change</th></tr>{rows}</table>"""


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    curves = report["curves"]

    def dpo_series(key: str) -> dict[str, list[tuple[float, float]]]:
        rounds = ["dpo"] + sorted(k for k in curves if k.startswith("dpo_round"))
        return {("round 1" if name == "dpo" else name.replace("dpo_", "").replace("round", "round ")):
                [(r["step"], r[key]) for r in curves[name]] for name in rounds}

    charts = [_svg_curve([(r["step"], r["loss"]) for r in curves["sft"]], "SFT loss"),
              _svg_curve([(r["step"], r["loss"]) for r in curves["rm"]], "reward model loss"),
              _svg_curve(dpo_series("loss"), "DPO loss"),
              _svg_curve(dpo_series("reward_margin"), "DPO implicit reward margin"),
              _svg_curve({"proxy (RM)": [(r["step"], r["score"]) for r in curves["ppo"]]}, "PPO: reward-model score"),
              _svg_curve({"gold": [(r["step"], r["gold"]) for r in curves["ppo"] if "gold" in r]},
                         "PPO: gold reward of its samples"),
              _svg_curve([(r["step"], r["kl"]) for r in curves["ppo"]], "PPO: KL to SFT (nats)")]
    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{p['gold_win_rate_vs_sft']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]</td>"
        f"<td>{p['kl_to_sft']:.2f}</td><td>{p['gold']:.3f}</td><td>{p['proxy']:+.2f}</td><td>{p['length']:.1f}</td></tr>"
        for name, p in report["policies"].items())
    base = report["sft"]
    rows = (f"<tr><td>sft</td><td>—</td><td>0</td><td>{base['gold']:.3f}</td><td>{base['proxy']:+.2f}</td>"
            f"<td>{base['length']:.1f}</td></tr>") + rows
    examples = "".join(f"<tr><td>{e(x['prompt'])}</td><td>{e(x['sft'])}</td><td>{e(x['dpo'])}</td>"
                       f"<td>{e(x['ppo'])}</td></tr>" for x in report["before_after"])
    rounds = report["config"].get("dpo_rounds", 1)
    rounds_note = (f" dpo is the policy after {rounds} feedback rounds (each later round: the panel compares samples of "
                   f"the latest DPO policy and DPO continues on them)." if rounds > 1 else "")
    rm = report["reward_model"]
    stages = "".join(f"<li>{e(k)}: {v:.0f} s</li>" for k, v in report["seconds_by_stage"].items())
    hacking = _hacking_html(report["reward_hacking"]) if "reward_hacking" in report else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>rlhfkit quickstart report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style></head><body>
<h1>rlhfkit quickstart</h1>
<p>{report['preference_pairs']} preference pairs from {report['config']['annotators']} simulated annotators
(noise {report['config']['noise']}, bias {e(str(report['config']['bias']))}); {e(_took(report))}.</p>
<h2>Policies against SFT (held-out prompts, gold rubric)</h2>
<table><tr><th>policy</th><th>gold win-rate vs SFT [95% CI]</th><th>KL to SFT (nats)</th><th>gold reward</th>
<th>proxy reward (RM)</th><th>length (tokens)</th></tr>{rows}</table>
<p>Best-of-n keeps the reward model's favourite of n SFT samples; its KL is the analytic log n − (n−1)/n.{rounds_note}</p>
<h2>Reward model (held-out pairs)</h2>
<p>accuracy {rm['accuracy']:.3f}, ECE {rm['ece']:.3f}, reward–length correlation {rm['reward_length_corr']:+.2f}</p>
{_probes_html(report.get("reward_model_probes", {}))}
<h2>Training</h2>{''.join(charts)}
<h2>Before vs after</h2>
<table><tr><th>prompt</th><th>SFT (before)</th><th>DPO (after)</th><th>PPO (after)</th></tr>{examples}</table>
{hacking}
<h2>Time by stage</h2><ul>{stages}</ul>
</body></html>"""
