"""`rlhfkit quickstart`: the whole loop on the embedded default, with a report of what happened.

    rlhfkit quickstart --out runs/quickstart

  1) sft        the tiny model on the built-in task's demonstrations (all six response styles)
  2) sample     K responses per training prompt from the SFT policy
  3) feedback   a campaign in the SQLite feedback store, filled by a panel of simulated annotators
                (noise on, optionally biased) through the same service the web app uses
  4) export     majority-vote preference pairs (TRL columns + margin, rationale, criteria)
  5) rm         a reward model on those pairs, initialised from the SFT model
  6) dpo        the SFT policy tuned on the same pairs, no reward model
  7) eval       win-rate over SFT judged by the gold rubric (with a 95% interval), KL to SFT,
                length, and the reward model's (proxy) score beside the gold one
  8) report     report.json and report.html (training curves, win-rates, before/after samples)

Each stage writes into its own folder under --out and is skipped when its output is already
there, so an interrupted quickstart picks up where it stopped. PPO/GRPO (the online stage) are not
part of it yet.
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
    eval_prompts: int = 128
    """Held-out prompts for the evaluation."""
    seed: int = 0
    """Seed of every stage."""
    progress: bool = True
    """Progress bars."""

    def validate(self) -> None:
        if self.prompts < 10 or self.samples_per_prompt < 2 or self.annotators < 1:
            raise ConfigError("--prompts must be >= 10, --samples-per-prompt >= 2, --annotators >= 1")
        if self.bias not in (None, "length", "flattery"):
            raise ConfigError(f"--bias must be length or flattery, got {self.bias!r}")


def _done(folder: Path) -> bool:
    return (folder / "model.safetensors").exists()


def run_quickstart(config: QuickstartConfig) -> dict[str, Any]:
    from rlhfkit.evaluate import EvalConfig, run_eval
    from rlhfkit.feedback.commands import (
        AnnotateConfig,
        CampaignConfig,
        ExportConfig,
        run_annotate,
        run_campaign,
        run_export,
    )
    from rlhfkit.sample import SampleConfig, run_sample
    from rlhfkit.trainers.dpo import DPOConfig, train_dpo
    from rlhfkit.trainers.rm import RMConfig, train_rm
    from rlhfkit.trainers.sft import SFTConfig, train_sft

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def stage(name: str, func, skip: bool) -> None:
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        if skip:
            print(f"(already done in {out}; skipped)")
        else:
            func()
        seconds[name] = round(time.perf_counter() - t0, 1)

    sft, rm, dpo = out / "sft", out / "rm", out / "dpo"
    samples, prefs, db = out / "samples.jsonl", out / "preferences.jsonl", out / "feedback.db"
    stage("1) sft", lambda: train_sft(SFTConfig(out=str(sft), epochs=config.sft_epochs, max_steps=config.sft_max_steps, seed=config.seed,
                                                progress=config.progress)), _done(sft))
    stage("2) sample", lambda: run_sample(SampleConfig(model=str(sft), split="train", num_prompts=config.prompts,
                                                       num_samples=config.samples_per_prompt, out=str(samples),
                                                       seed=config.seed)), samples.exists())

    def feedback() -> None:
        if db.exists():
            db.unlink()
        run_campaign(CampaignConfig(db=str(db), campaign="quickstart", data=str(samples), overlap=config.annotators,
                                    seed=config.seed))
        run_annotate(AnnotateConfig(db=str(db), campaign="quickstart", annotators=config.annotators, noise=config.noise,
                                    bias=config.bias, seed=config.seed))
        run_export(ExportConfig(db=str(db), campaign="quickstart", out=str(prefs), method="majority",
                                seed=config.seed))

    stage("3) feedback + 4) export", feedback, prefs.exists())
    stage("5) rm", lambda: train_rm(RMConfig(model=str(sft), data=str(prefs), out=str(rm), seed=config.seed,
                                             progress=config.progress)), _done(rm))
    stage("6) dpo", lambda: train_dpo(DPOConfig(model=str(sft), data=str(prefs), out=str(dpo), lr=config.dpo_lr,
                                                beta=config.dpo_beta, seed=config.seed, progress=config.progress)),
          _done(dpo))
    evaluation: dict[str, Any] = {}

    def evaluate() -> None:
        evaluation["dpo"] = run_eval(EvalConfig(policy=str(dpo), reference=str(sft), reward_model=str(rm),
                                                num_prompts=config.eval_prompts, seed=config.seed,
                                                out=str(out / "eval_dpo.json")))
        evaluation["sft"] = run_eval(EvalConfig(policy=str(sft), reference=str(sft), reward_model=str(rm),
                                                num_prompts=config.eval_prompts, seed=config.seed + 1,
                                                out=str(out / "eval_sft.json")))

    stage("7) eval", evaluate, False)
    report = build_report(config, out, evaluation, seconds, time.perf_counter() - started)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.html").write_text(render_html(report))
    print(f"\nreport: {out / 'report.html'} and {out / 'report.json'} ({report['seconds_total']:.0f} s in all)")
    for name, policy in report["policies"].items():
        print(f"  {name}: gold win-rate over SFT {policy['gold_win_rate_vs_sft']:.3f} "
              f"[{policy['ci_low']:.3f}, {policy['ci_high']:.3f}], KL to SFT {policy['kl_to_sft']:.2f} nats")
    return report


def _metrics(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def build_report(config: QuickstartConfig, out: Path, evaluation: dict[str, Any], seconds: dict[str, float],
                 total: float) -> dict[str, Any]:
    rm_metrics = json.loads((out / "rm" / "eval_metrics.json").read_text())
    pairs = sum(1 for line in (out / "preferences.jsonl").read_text().splitlines() if line.strip())
    policies = {}
    for name in ("dpo",):
        e = evaluation[name]
        policies[name] = {"gold_win_rate_vs_sft": e["win_rate"], "ci_low": e["ci_low"], "ci_high": e["ci_high"],
                          "kl_to_sft": e["kl_to_reference"], "gold": e["policy_gold"], "proxy": e["policy_proxy"],
                          "length": e["length"], "distinct_2": e["distinct_2"]}
    sft_eval = evaluation["sft"]
    policies_base = {"gold": sft_eval["policy_gold"], "proxy": sft_eval["policy_proxy"], "length": sft_eval["length"],
                     "distinct_2": sft_eval["distinct_2"]}
    return {
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "seconds_total": round(total, 1),
        "seconds_by_stage": seconds,
        "preference_pairs": pairs,
        "reward_model": rm_metrics,
        "sft": policies_base,
        "policies": policies,
        "curves": {"sft": _metrics(out / "sft"), "rm": _metrics(out / "rm"), "dpo": _metrics(out / "dpo")},
        "before_after": evaluation["dpo"]["examples"],
    }


def _svg_curve(points: list[tuple[float, float]], label: str, width: int = 360, height: int = 160) -> str:
    """A small line chart as inline SVG (no plotting library needed)."""
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 30

    def sx(x: float) -> float:
        return pad + (x - x0) / max(x1 - x0, 1e-9) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    return (f'<figure><svg width="{width}" height="{height}" role="img" aria-label="{html.escape(label)}">'
            f'<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{path}"/>'
            f'<text x="{pad}" y="14" font-size="12">{html.escape(label)}</text>'
            f'<text x="2" y="{sy(y1) + 4:.0f}" font-size="10">{y1:.2f}</text>'
            f'<text x="2" y="{sy(y0) + 4:.0f}" font-size="10">{y0:.2f}</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="10" text-anchor="end">step {x1:.0f}</text>'
            f"</svg></figure>")


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    curves = report["curves"]
    charts = [_svg_curve([(r["step"], r["loss"]) for r in curves["sft"]], "SFT loss"),
              _svg_curve([(r["step"], r["loss"]) for r in curves["rm"]], "reward model loss"),
              _svg_curve([(r["step"], r["loss"]) for r in curves["dpo"]], "DPO loss"),
              _svg_curve([(r["step"], r["reward_margin"]) for r in curves["dpo"]], "DPO implicit reward margin"),
              _svg_curve([(r["step"], -r["log_ratio"]) for r in curves["dpo"]],
                         "DPO: reference minus policy log-prob per response")]
    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{p['gold_win_rate_vs_sft']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]</td>"
        f"<td>{p['kl_to_sft']:.2f}</td><td>{p['gold']:.3f}</td><td>{p['proxy']:+.2f}</td><td>{p['length']:.1f}</td></tr>"
        for name, p in report["policies"].items())
    base = report["sft"]
    rows = (f"<tr><td>sft</td><td>—</td><td>0</td><td>{base['gold']:.3f}</td><td>{base['proxy']:+.2f}</td>"
            f"<td>{base['length']:.1f}</td></tr>") + rows
    examples = "".join(f"<tr><td>{e(x['prompt'])}</td><td>{e(x['reference'])}</td><td>{e(x['policy'])}</td></tr>"
                       for x in report["before_after"])
    rm = report["reward_model"]
    stages = "".join(f"<li>{e(k)}: {v:.0f} s</li>" for k, v in report["seconds_by_stage"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>rlhfkit quickstart report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style></head><body>
<h1>rlhfkit quickstart</h1>
<p>{report['preference_pairs']} preference pairs from {report['config']['annotators']} simulated annotators
(noise {report['config']['noise']}, bias {e(str(report['config']['bias']))}); {report['seconds_total']:.0f} s in all.</p>
<h2>Policies against SFT (held-out prompts, gold rubric)</h2>
<table><tr><th>policy</th><th>gold win-rate vs SFT [95% CI]</th><th>KL to SFT (nats)</th><th>gold reward</th>
<th>proxy reward (RM)</th><th>length (tokens)</th></tr>{rows}</table>
<h2>Reward model (held-out pairs)</h2>
<p>accuracy {rm['accuracy']:.3f}, ECE {rm['ece']:.3f}, reward–length correlation {rm['reward_length_corr']:+.2f}</p>
<h2>Training</h2>{''.join(charts)}
<h2>Before vs after</h2>
<table><tr><th>prompt</th><th>SFT (before)</th><th>DPO (after)</th></tr>{examples}</table>
<h2>Time by stage</h2><ul>{stages}</ul>
</body></html>"""
