"""The quickstart's report: `report.json` (every number of the run) and `report.html` (one page, offline).

    report = build_report(config, out, evaluation, hacking, seconds, total)   # a dict, written as report.json
    html = render_html(report)                                               # a self-contained page

`build_report` gathers what the stages wrote (the reward model's held-out metrics, metrics.jsonl
curves, the evaluations); `render_html` draws it as tables and small inline SVG line charts.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def took(report: dict[str, Any]) -> str:
    reused = len(report.get("stages_reused", []))
    return f"{report['seconds_total']:.0f} s in all" + (f", {reused} stages reused from an earlier run" if reused else "")


def metrics_of(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def build_report(config: Any, out: Path, evaluation: dict[str, Any], hacking: dict[str, Any] | None,
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
        "curves": {name: metrics_of(out / name) for name in ("sft", "rm", "dpo", "ppo", *dpo_later_rounds)},
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
(noise {report['config']['noise']}, bias {e(str(report['config']['bias']))}); {e(took(report))}.</p>
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
