"""The quickstart's report: `report.json` (every number of the run) and `report.html` (one page, offline).

    report = build_report(config, out, evaluation, hacking, seconds, total, diagnostics)   # -> report.json
    html = render_html(report)                                                            # -> report.html

`build_report` gathers what the stages wrote (the reward model's held-out metrics, metrics.jsonl
curves, the evaluations, diagnostics.json); `render_html` lays it out as tables and charts drawn with
matplotlib as inline SVG (text as paths), so the page needs no network and no other file. Each method
keeps one colour in every chart (`METHOD_COLORS`).
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def took(report: dict[str, Any]) -> str:
    reused = len(report.get("stages_reused", []))
    stages = "stage" if reused == 1 else "stages"
    return f"{report['seconds_total']:.0f} s in all" + (f", {reused} {stages} reused from an earlier run" if reused else "")


def metrics_of(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def build_report(config: Any, out: Path, evaluation: dict[str, Any], hacking: dict[str, Any] | None,
                 seconds: dict[str, float], total: float, diagnostics: dict[str, Any] | None = None,
                 reward_model: Path | None = None) -> dict[str, Any]:
    """report.json's content; `diagnostics` adds reward_by_style, rationales and frontier as they are.
    `reward_model`: the one PPO optimised when it is not out/rm (--harden-rm); out/rm, the plain one,
    is then reported beside it if it was trained (reward_model_plain, reward_model_probes_plain)."""
    reward_model = reward_model or out / "rm"
    rm_metrics = json.loads((reward_model / "eval_metrics.json").read_text())
    pairs = sum(1 for line in (out / "preferences.jsonl").read_text().splitlines() if line.strip())
    dpo_later_rounds = [f"dpo_round{r}" for r in range(2, config.dpo_rounds + 1)]
    policies = {}
    for name, e in evaluation.items():
        policies[name] = {"gold_win_rate_vs_sft": e["win_rate"], "ci_low": e["ci_low"], "ci_high": e["ci_high"],
                          "kl_to_sft": e["kl_to_reference"], "gold": e["policy_gold"], "proxy": e["policy_proxy"],
                          "length": e["length"], "distinct_2": e["distinct_2"],
                          "repetition_rate": e.get("repetition_rate")}
    sft_side = evaluation["dpo"]  # the SFT responses DPO was compared with
    policies_base = {"gold": sft_side["reference_gold"], "proxy": sft_side["reference_proxy"],
                     "length": sft_side["reference_length"], "distinct_2": sft_side["reference_distinct_2"],
                     "repetition_rate": sft_side.get("reference_repetition_rate")}
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
        "curves": {name: metrics_of(reward_model if name == "rm" else out / name)
                   for name in ("sft", "rm", "dpo", "ppo", *dpo_later_rounds)},
        "before_after": before_after,
        "reward_model_probes": {name: e["reward_probes"] for name, e in evaluation.items() if "reward_probes" in e},
        "reward_model_path": str(reward_model),
    }
    report["calibration"] = {"ece": rm_metrics["ece"], "bins": rm_metrics.get("calibration_bins", [])}
    plain = out / "rm"
    if reward_model != plain and (plain / "eval_metrics.json").exists():  # --compare-plain-rm: probed on the same samples
        report["reward_model_plain"] = json.loads((plain / "eval_metrics.json").read_text())
        report["reward_model_probes_plain"] = {name: e["reward_probes_by_model"][str(plain)]
                                               for name, e in evaluation.items() if str(plain) in
                                               e.get("reward_probes_by_model", {})}
    report.update(diagnostics or {})
    if hacking is not None:
        report["reward_hacking"] = hacking
    return report


METHOD_COLORS = {"sft": "#6b7280", "dpo": "#2563eb", "ppo": "#dc2626", "best_of_n": "#16a34a",
                 "rm": "#7c3aed", "sft loss": "#6b7280", "beta=0": "#ea580c", "bound": "#86efac", "gold": "#111827"}
_e = html.escape


def method_of(name: str) -> str:
    """The colour family of a policy name: ppo-step-20 -> ppo, dpo-round-2 / dpo_round2 -> dpo, best_of_8 -> best_of_n."""
    if name.startswith("best_of"):
        return "best_of_n"
    if name.startswith("beta=0") and name != "beta=0":
        return "ppo"
    return next((m for m in ("dpo", "ppo", "sft", "beta=0") if name.startswith(m)), "rm")


def svg(fig: Figure) -> str:
    """A matplotlib figure as an inline <svg> element (no XML header, text drawn as paths)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = re.sub(r"<metadata>.*?</metadata>", "", buffer.getvalue(), flags=re.S)  # the date and RDF: noise
    return f'<figure>{text[text.index("<svg"):]}</figure>'


def line_chart(title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list[float], list[float]]],
               width: float = 4.2) -> str:
    """One small chart of named (xs, ys) series, coloured by method, with labelled axes and a legend
    placed where it covers the fewest points."""
    series = {name: xy for name, xy in series.items() if len(xy[0]) >= 2}
    if not series:
        return ""
    fig = Figure(figsize=(width, 2.8))
    ax = fig.subplots()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, color=METHOD_COLORS.get(name, METHOD_COLORS[method_of(name)]),
                linestyle="--" if name.endswith("round 1") or name == "proxy (RM)" else "-", linewidth=1.6)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1 or next(iter(series)):
        ax.legend(fontsize=8, loc="best", frameon=False)
    return svg(fig)


def frontier_chart(points: list[dict[str, Any]], sft: dict[str, float]) -> str:
    """Gold (left) and proxy (right) reward against KL to SFT for every frontier point; PPO's points in
    training order from SFT, DPO's rounds in order, best-of-n with its analytic-bound twin dashed."""
    fig = Figure(figsize=(9.5, 3.6))
    axes = fig.subplots(1, 2)
    groups: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        groups.setdefault(method_of(point["policy"]), []).append(point)
    # the lines start at SFT measured on the frontier's own prompts (best-of-1 is SFT's own samples)
    start = next(({**p, "policy": "sft"} for p in points if p["policy"] == "best_of_1"),
                 {"policy": "sft", "kl": 0.0, "gold": sft["gold"], "proxy": sft["proxy"]})
    order = {"ppo": lambda p: int(p["policy"].rsplit("-", 1)[1]), "dpo": lambda p: int(p["policy"].rsplit("-", 1)[1]),
             "best_of_n": lambda p: int(p["policy"].rsplit("_", 1)[1])}
    for ax, key in zip(axes, ("gold", "proxy")):
        for method, group in groups.items():
            line = ([start] if method in ("ppo", "dpo") else []) + sorted(group, key=order.get(method, lambda p: 0))
            label = {"best_of_n": "best-of-n (exact on the samples)", "ppo": "PPO along training",
                     "dpo": "DPO rounds"}.get(method, method)
            ax.plot([p["kl"] for p in line], [p[key] for p in line], marker="o", markersize=4, label=label,
                    color=METHOD_COLORS[method])
            if method == "best_of_n":
                ax.plot([p["kl_bound"] for p in line], [p[key] for p in line], linestyle="--", marker=".",
                        color=METHOD_COLORS["bound"], label="best-of-n at its analytic KL bound")
            last = line[-1]  # the table below the chart names every point
            ax.annotate(last["policy"].replace("best_of_", "n="), (last["kl"], last[key]), fontsize=7,
                        xytext=(3, -9 if method == "dpo" else 3), textcoords="offset points")
        ax.scatter([0.0], [start[key]], color=METHOD_COLORS["sft"], zorder=3, label="SFT")
        ax.set(xlabel="KL to SFT (nats per response)", ylabel=f"{key} reward" + (" (the rubric)" if key == "gold"
                                                                              else " (the reward model)"))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right", frameon=False)
    fig.suptitle("The reward-KL frontier: what each method buys per nat of KL", fontsize=10)
    return svg(fig)


def calibration_chart(calibration: dict[str, Any]) -> str:
    """Reliability diagram: accuracy against confidence per bin (marker area ~ pairs), the diagonal."""
    bins = calibration.get("bins") or []
    if not bins:
        return ""
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.subplots()
    ax.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="#9ca3af", label="perfectly calibrated")
    total = sum(b["n"] for b in bins)
    ax.scatter([b["confidence"] for b in bins], [b["accuracy"] for b in bins],
               s=[20 + 400 * b["n"] / total for b in bins], color=METHOD_COLORS["rm"], alpha=0.7,
               label="held-out pairs per bin")
    ax.set(xlim=(0.48, 1.02), ylim=(0.0, 1.02), xlabel="confidence  max(p, 1-p)", ylabel="accuracy",
           title=f"Reward-model calibration (ECE {calibration['ece']:.3f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", frameon=False)
    return svg(fig)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _policies_html(report: dict[str, Any]) -> str:
    base = report["sft"]
    rows = [["sft", "—", "0", f"{base['gold']:.3f}", f"{base['proxy']:+.2f}", f"{base['length']:.1f}",
             _share(base.get("repetition_rate"))]]
    rows += [[_e(name), f"{p['gold_win_rate_vs_sft']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]",
              f"{p['kl_to_sft']:.2f}", f"{p['gold']:.3f}", f"{p['proxy']:+.2f}", f"{p['length']:.1f}",
              _share(p.get("repetition_rate"))] for name, p in report["policies"].items()]
    rounds = report["config"].get("dpo_rounds", 1)
    note = (f" dpo is the policy after {rounds} feedback rounds (each later round: the panel compares samples of "
            f"the latest DPO policy and DPO continues on them)." if rounds > 1 else "")
    return ("<h2>Policies against SFT (held-out prompts, gold rubric)</h2>"
            + table(["policy", "gold win-rate vs SFT [95% CI]", "KL to SFT (nats)", "gold reward",
                     "proxy reward (RM)", "length (tokens)", "repeats a sentence"], rows)
            + "<p>Two win-rates differ when their 95% intervals do not overlap. Best-of-n keeps the reward "
              "model's favourite of n SFT samples; its KL is the analytic log n − (n−1)/n." + note + "</p>")


def _frontier_html(report: dict[str, Any]) -> str:
    points = report.get("frontier")
    if not points:
        return ""
    rows = [[_e(p["policy"]), f"{p['kl']:.2f}" + (f" (bound {p['kl_bound']:.2f})" if "kl_bound" in p else ""),
             f"{p['gold']:.3f}", f"{p['proxy']:+.2f}"] for p in points]
    return ("<h2>The reward–KL frontier</h2><p>Every method on one picture: the gold rubric (what we want) and "
            "the reward model (what was optimised) against the KL the policy moved from SFT. Proxy rising while "
            "gold flattens or falls is over-optimisation. PPO's points are its saved policies along training; "
            "best-of-n's KL is exact for best-of-n over the SFT samples drawn per prompt.</p>"
            + frontier_chart(points, report["sft"])
            + table(["policy", "KL to SFT", "gold", "proxy"], rows))


def _seed_tables_html(report: dict[str, Any]) -> str:
    parts = []
    styles = report.get("reward_by_style")
    if styles:
        rows = [[_e(style), f"{v['reward']:+.2f}", f"{v['gold']:.3f}", v["n"]]
                for style, v in sorted(styles.items(), key=lambda kv: -kv[1]["reward"])]
        parts.append("<h2>Reward score per kind of response</h2><p>The reward model's mean score (normalised: "
                     "0 is its average response) of one response per held-out prompt in each of the task's "
                     "styles, beside the gold rubric: the seeds' \"Reward Score\" table with this run's model.</p>"
                     + table(["style", "reward model", "gold rubric", "responses"], rows))
    cal = report.get("calibration")
    if cal:
        rm = report["reward_model"]
        parts.append(f"<h2>Reward model (held-out pairs)</h2><p>accuracy {rm['accuracy']:.3f}, ECE {cal['ece']:.3f}, "
                     f"reward–length correlation {rm['reward_length_corr']:+.2f}. A calibrated model is right as "
                     f"often as it is confident: its points lie on the diagonal.</p>" + calibration_chart(cal))
    judged = report.get("rationales")
    if judged:
        rows = [[_e(str(r["prompt"])), _e(str(r["chosen"])), _e(str(r["rejected"])),
                 _e(r["rationale"] or "").replace("\n", "<br>"),
                 _e(", ".join(f"{k}: {v}" for k, v in (r.get("criteria") or {}).items()))] for r in judged]
        parts.append("<h2>What the panel said</h2><p>A few of the judgments the simulated annotators agreed on most, "
                     "with their rationales and rubric criteria, as the exported pairs hold them.</p>"
                     + table(["prompt", "chosen", "rejected", "rationale", "criteria"], rows))
    return "".join(parts)


def _probes_html(probes: dict[str, dict[str, Any]], plain: dict[str, dict[str, Any]] | None = None) -> str:
    """The reward model probed with the reward-hacking table's edits, on each policy's samples; with
    `plain` (--harden-rm), the plain reward model's answers to the same edited samples beside it."""
    if not probes:
        return ""
    plain = plain or {}
    rows = [[_e(policy), _e(name)]
            + ([f"{plain[policy][name]['prefers_hacked']:.0%}" if name in plain.get(policy, {}) else "—"]
               if plain else [])
            + [f"{p['prefers_hacked']:.0%}", f"{p['reward_delta']:+.3f}", f"{p.get('gold_delta', float('nan')):+.3f}"]
            for policy, by in probes.items() for name, p in by.items()]
    head = ["samples of", "edit"] + (["plain RM prefers the edit", "hardened RM prefers the edit",
                                      "reward change (hardened)"] if plain else
                                     ["RM prefers the edited response", "reward change"]) + ["gold change"]
    hardened = (" The hardened reward model (--harden-rm: trained with adversarial pairs for these four hacks, "
                "worded differently from these probes, plus label smoothing and a head L2) is the one PPO and "
                "best-of-n optimised; the plain one, trained on the same pairs, is beside it.") if plain else ""
    return ("<h2>Does the reward model fall for the reward-hacking table?</h2><p>Each held-out response edited one "
            "way that helps nobody (its first sentence repeated at the end; \"Great question!\" or \"Trust me on "
            "this.\" in front; a filler sentence at the end). A sound reward model prefers the edit at most half the "
            "time and lowers its reward; a probe it prefers is a hack PPO can find." + hardened + "</p>"
            + table(head, rows))


def _curves_html(curves: dict[str, list[dict[str, Any]]]) -> str:
    def xy(name: str, key: str) -> tuple[list[float], list[float]]:
        rows = [r for r in curves.get(name, []) if key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]

    rounds = ["dpo"] + sorted(k for k in curves if k.startswith("dpo_round"))
    label = {name: "dpo round 1" if name == "dpo" else name.replace("dpo_round", "dpo round ") for name in rounds}
    charts = [line_chart("SFT", "step", "token NLL", {"sft loss": xy("sft", "loss")}),
              line_chart("Reward model", "step", "pairwise loss", {"rm": xy("rm", "loss")}),
              line_chart("DPO", "step", "loss", {label[n]: xy(n, "loss") for n in rounds}),
              line_chart("DPO", "step", "implicit reward margin", {label[n]: xy(n, "reward_margin") for n in rounds}),
              line_chart("PPO", "step", "reward of its samples", {"proxy (RM)": xy("ppo", "score"),
                                                                   "gold": xy("ppo", "gold")}),
              line_chart("PPO", "step", "KL to SFT (nats)", {"ppo": xy("ppo", "kl")})]
    return "<h2>Training</h2>" + "".join(charts)


def _hacking_html(hacking: dict[str, Any]) -> str:
    runs = hacking["runs"]
    charts = [line_chart(title, "PPO step", ylabel, {name: ([r["step"] for r in run["curve"]],
                                                            [r[key] for r in run["curve"]])
                                                     for name, run in runs.items()})
              for key, title, ylabel in (("score", "Proxy: the biased reward model", "reward"),
                                         ("gold", "Gold: the rubric", "reward"), ("kl", "KL to SFT", "nats"),
                                         ("response_length", "Response length", "tokens"))]
    rows = [[_e(name), f"{run['proxy_first']:+.2f} → {run['proxy_last']:+.2f}",
             f"{run['gold_first']:.3f} → {run['gold_last']:.3f}",
             f"{run['eval']['win_rate']:.3f} [{run['eval']['ci_low']:.3f}, {run['eval']['ci_high']:.3f}]",
             f"{run['eval']['kl_to_reference']:.2f}", f"{run['eval']['length']:.1f}"] for name, run in runs.items()]
    examples = [[_e(name), _e(x["prompt"]), _e(x["policy"])] for name, run in runs.items() for x in run["examples"][:2]]
    rm = hacking["reward_model"]
    return (f"<h2>Reward hacking and its cure</h2><p>A second panel, biased toward {_e(hacking['bias'])} answers, "
            f"labelled the same samples; its reward model (agreement with its own panel on held-out pairs "
            f"{rm['accuracy']:.3f}, reward–length correlation {rm['reward_length_corr']:+.2f}) was then optimised by "
            f"PPO for {hacking['steps']} steps, once with no KL penalty (beta = 0) and once with it.</p>"
            + "".join(charts)
            + table(["run", "proxy (training samples, first → last step)", "gold (first → last step)",
                     "gold win-rate vs SFT, held out [95% CI]", "KL to SFT", "length"], rows)
            + table(["run", "prompt", "response"], examples))


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> str:
    return "yes" if a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"] else "no"


def _ai_html(report: dict[str, Any]) -> str:
    """--ai-feedback: the seeds' "Human feedback vs AI feedback" table, measured on this run."""
    ai, policies = report["ai_feedback"], report["policies"]
    first = ai["labels"].get("round1", {})
    later = sum(n.get("judgments", 0) for name, n in ai["labels"].items() if name != "round1")
    graded = first.get("mode") == "grade"

    def win(name: str) -> str:
        p = policies[name]
        return f"{p['gold_win_rate_vs_sft']:.3f} [{p['ci_low']:.3f}, {p['ci_high']:.3f}]"

    rows = [["labels (pairs judged)", f"{report['preference_pairs']} pairs, {report['config']['annotators']} votes each",
             f"{first.get('judgments', 0)} (one vote each)" + (f"; {later} more in the later DPO rounds" if later else "")],
            ["speed", "—", f"{first.get('judgments_per_s', 0):.1f} judgments/s = {first.get('judgments_per_day', 0):,} a day"],
            ["cost", "—", f"{first.get('cpu_seconds_per_1000', 0):.0f} CPU-seconds per 1,000 labels"],
            ["agreement of the exported pairs with the gold rubric", _share(ai.get("panel_agreement_with_gold")),
             _share(first.get("agreement_with_gold"))],
            ["consistency (both presentation orders pick the same)", "—",
             "— (graded one response at a time)" if graded else _share(first.get("order_consistency"))]]
    for method in ("dpo", "ppo"):
        if method in policies and f"{method}_ai" in policies:
            rows.append([f"{method.upper()}: gold win-rate vs SFT [95% CI]", win(method), win(f"{method}_ai")
                         + f" (intervals overlap: {_overlap(policies[method], policies[f'{method}_ai'])})"])
    return ("<h2>Human feedback vs AI feedback</h2><p>The same SFT samples labelled twice: by the simulated panel "
            f"and by the AI judge <code>{_e(ai['judge'])}</code> under the shipped constitution (one principle "
            "drawn per pair); the policies of each column learned from that column's labels alone.</p>"
            + table(["", "simulated panel", "AI judge"], rows))


STYLE = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin-bottom:1em;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top}th{background:#f3f4f6}figure{display:inline-block;margin:0 1em 1em 0}svg{max-width:100%;height:auto}"""


def render_html(report: dict[str, Any]) -> str:
    """report.html: one self-contained page (inline CSS and SVG, no scripts, no network)."""
    examples = [[_e(x["prompt"]), _e(x["sft"]), _e(x["dpo"]), _e(x["ppo"])] for x in report["before_after"]]
    stages = "".join(f"<li>{_e(k)}: {v:.0f} s</li>" for k, v in report["seconds_by_stage"].items())
    config = report["config"]
    return (f"""<!doctype html><html><head><meta charset="utf-8"><title>rlhfkit quickstart report</title>
<style>{STYLE}</style></head><body><h1>rlhfkit quickstart</h1>
<p>{report['preference_pairs']} preference pairs from {config['annotators']} simulated annotators (noise
{config['noise']}, bias {_e(str(config['bias']))}); {_e(took(report))}.</p>"""
            + _policies_html(report) + _frontier_html(report) + _seed_tables_html(report)
            + _probes_html(report.get("reward_model_probes", {}), report.get("reward_model_probes_plain"))
            + _curves_html(report["curves"])
            + "<h2>Before vs after</h2>" + table(["prompt", "SFT (before)", "DPO (after)", "PPO (after)"], examples)
            + (_hacking_html(report["reward_hacking"]) if "reward_hacking" in report else "")
            + (_ai_html(report) if "ai_feedback" in report else "")
            + f"<h2>Time by stage</h2><ul>{stages}</ul></body></html>")
