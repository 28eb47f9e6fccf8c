"""report.html of `rlhfkit control`: one offline page with the learning curves, the reward model's fit
and a few of the compared segment pairs (matplotlib as inline SVG, the quickstart report's helpers)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from rlhfkit.pipelines.report import STYLE, svg, table


def chart(title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list[float], list[float]]],
          hlines: dict[str, float] | None = None, logx: bool = False) -> str:
    fig = Figure(figsize=(5.2, 3.0))
    ax = fig.subplots()
    for name, (xs, ys) in series.items():
        if xs:
            ax.plot(xs, ys, label=name, linewidth=1.6, marker="o" if len(xs) < 3 else None)
    for name, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", linewidth=1, color="grey", label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", frameon=False)
    return svg(fig)


def write_report(out: Path, result: dict[str, Any]) -> None:
    """Write out/report.html from result.json's dict, metrics.jsonl and pairs.jsonl."""
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "pairs.jsonl").exists() else []
    curves = {"learned reward (RLHF)": ([p["env_steps"] for p in result["curve"]], [p["return"] for p in result["curve"]])}
    if "oracle_curve" in result:
        curves["true reward (oracle)"] = ([p["env_steps"] for p in result["oracle_curve"]],
                                          [p["return"] for p in result["oracle_curve"]])
    fitted = [m for m in metrics if "rm_train_accuracy" in m]
    rm_chart = chart("Reward model", "labels", "train accuracy",
                     {"pairwise accuracy": ([m["labels"] for m in fitted], [m["rm_train_accuracy"] for m in fitted])})
    shown = pairs[:: max(1, len(pairs) // 8)][:8]
    rows = [[p["iteration"], f"{p['true_return_a']:.1f}", f"{p['true_return_b']:.1f}",
             {1.0: "a", 0.0: "b", 0.5: "equal"}.get(p["label"], p["label"]), html.escape(p["strategy"])] for p in shown]
    summary = [[html.escape(k), f"{result[k]:.3f}" if isinstance(result.get(k), float) else html.escape(str(result.get(k)))]
               for k in ("env", "labels", "env_steps", "true_return", "oracle_return", "random_return",
                         "normalised_return", "seconds", "oracle_seconds") if k in result]
    if result.get("kept"):
        summary.append(["policy kept (snapshot scored highest by the final reward model)",
                        f"at {result['kept']['env_steps']} env steps"])
    page = (f"""<!doctype html><html><head><meta charset="utf-8"><title>rlhfkit control report</title>
<style>{STYLE}</style></head><body><h1>rlhfkit control: {html.escape(result['env'])}</h1>
<p>PPO on a reward learned from {result['labels']} comparisons of trajectory segments, against PPO on the
true reward (the oracle) and uniform random actions. Returns are true returns of the policy's mean action.</p>"""
            + table(["", "value"], summary)
            + "<h2>Learning curves</h2>"
            + chart("True return of the policy", "environment steps", "mean episode return", curves,
                    {"random": result["random_return"]})
            + rm_chart
            + "<h2>Compared segment pairs (a sample)</h2>"
            + table(["iteration", "true return a", "true return b", "label (better)", "chosen by"], rows)
            + "</body></html>")
    (out / "report.html").write_text(page)
