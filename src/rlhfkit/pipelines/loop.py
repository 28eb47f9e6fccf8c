"""`rlhfkit loop`: iterated RLHF with active query selection, round after round, resumable.

    rlhfkit sft --out runs/sft
    rlhfkit loop --model runs/sft --rounds 3 --out runs/loop                   # the simulated panel
    rlhfkit loop --model runs/sft --rounds 2 --collector web --deadline 3600   # people, in the web app
    rlhfkit loop --model runs/sft --collector ai:runs/judge --policy-step ppo   # an AI judge; PPO on the RM

  0) held-out   SFT samples on held-out prompts; --heldout-pairs of their pairs (chosen at random) are
                labelled once by the collector: the fixed validation set of every round's reward model
  then per round r = 1 .. --rounds, in out/round{r}/:
  1) sample     --pool-prompts prompts x --samples-per-prompt responses from the current policy
  2) select     a campaign of the --budget most informative pairs of that pool, by --select (scored with
                round r-1's reward-model ensemble; round 1 has none yet and selects at random)
  3) collect    the simulated panel fills it, or (--collector web) the loop serves the app on loopback,
                prints the annotators' links and waits until the campaign is filled or --deadline passes,
                or (--collector ai:<judge>) rlhfkit judge's AI annotator fills it
  4) rm         a reward-model ensemble (--heads, bootstrapped) from the SFT model on every label so far,
                validated on the held-out set (with --rm-early-stopping: stopped on it, the best kept)
  5) dpo        the policy continues from round r-1's, on round r's pairs (round r-1's policy is its
                reference); or (--policy-step ppo) --ppo-steps of PPO against round r's reward model
  6) eval       gold win-rate over SFT (95% interval) and KL to SFT on held-out prompts; the SFT
                responses are sampled once (round 1) and every round's policy faces the same ones
  and a row of loop.json: round, labels (used so far, held-out set included), the reward model's
  accuracy on the held-out set (against the collector's labels and, on the built-in task, the gold
  rubric's) beside that on its own training pairs (overfitting shows as the gap), win_rate_vs_sft with
  its 95% interval, kl_to_sft; and report.md, the same rows as a table with the train - held-out gap.

Resuming: every stage leaves a marker in out/round{r}/done/ when it has finished; a stage without one is
started again from nothing (its outputs are deleted first), so a loop killed at any point and run
again with the same command ends with the same loop.json (timing aside). The simulated panel is
seeded, and its campaign is written again whole when a round's collection is redone, so a resumed
round gets the same labels; people's judgments (--collector web) are kept and the wait goes on; an AI
judge's campaign is written and judged again whole (the same labels if the judge is deterministic).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlhfkit.data.records import read_jsonl, write_jsonl
from rlhfkit.errors import ConfigError
from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.feedback import service
from rlhfkit.feedback.commands import (
    AnnotateConfig,
    CampaignConfig,
    ExportConfig,
    run_annotate,
    run_campaign,
    run_export,
)
from rlhfkit.feedback.store import Store
from rlhfkit.math.selection import STRATEGIES
from rlhfkit.models.reward_model import RewardScorer
from rlhfkit.pipelines.ai_feedback import JudgeConfig, run_judge
from rlhfkit.tasks import assistant
from rlhfkit.trainers.dpo import DPOConfig, train_dpo
from rlhfkit.trainers.ppo import PPOConfig, train_ppo
from rlhfkit.trainers.rm import RMConfig, train_rm


@dataclass
class LoopConfig:
    """Rounds of sample -> select -> collect -> reward model -> DPO -> evaluate, from an SFT checkpoint."""

    model: str = "runs/sft"
    """The starting policy (an SFT checkpoint); also the reference of the evaluation and the reward model's start."""
    out: str = "runs/loop"
    """Folder of the loop: heldout/, round1/, round2/, ..., loop.json."""
    rounds: int = 3
    """Rounds of feedback and training."""
    collector: str = "simulated"
    """Who labels: `simulated` (the built-in task's panel), `web` (people, through the app the loop serves) or
    `ai:<judge>` (rlhfkit judge's AI annotator: a local judge folder, or the http(s):// URL of an
    OpenAI-compatible API)."""
    select: str = "bald"
    """Query selection from round 2 on: random, disagreement, uncertainty or bald (rlhfkit.math.selection)."""
    budget: int = 150
    """Comparisons asked per round."""
    max_per_prompt: int = 2
    """At most this many comparisons per prompt in a round (0: no cap)."""
    pool_prompts: int = 96
    """Prompts sampled per round; the pool is every pair of their responses."""
    samples_per_prompt: int = 4
    """Responses per prompt in the pool."""
    heldout_pairs: int = 100
    """Held-out comparisons, labelled once at the start (counted in `labels`)."""
    heads: int = 4
    """Heads of the reward-model ensemble (bootstrapped: rlhfkit rm --heads --bootstrap)."""
    rm_epochs: float = 3.0
    """Reward-model passes over the labels so far."""
    rm_early_stopping: int = 0
    """Patience of the reward model's early stopping on the held-out set (evaluated every --rm-eval-every
    steps; rlhfkit rm --early-stopping): the best evaluation's weights are kept; 0: train to the end."""
    rm_eval_every: int = 5
    """Reward-model steps between evaluations on the held-out set, with --rm-early-stopping."""
    policy_step: Literal["dpo", "ppo"] = "dpo"
    """How the policy continues from round r-1's: DPO on round r's pairs, or PPO against round r's reward model."""
    ppo_steps: int = 20
    """--policy-step ppo: PPO steps per round (each samples rlhfkit ppo's --prompts-per-step x --group-size)."""
    ppo_kl_coef: float = 0.05
    """--policy-step ppo: weight of the KL penalty to round r-1's policy (rlhfkit ppo --kl-coef)."""
    dpo_beta: float = 0.1
    """DPO beta."""
    dpo_lr: float = 1e-4
    """DPO learning rate."""
    dpo_epochs: float = 2.0
    """DPO passes over a round's pairs."""
    dpo_sft_coef: float = 1.0
    """RPO's NLL weight on the chosen responses (keeps them fluent near the reference; 0 leaves it out)."""
    annotators: int = 1
    """Simulated annotators (each judges every comparison), or with --collector web the links printed."""
    noise: float = 0.1
    """Probability that a simulated annotator answers at random."""
    label_noise: float = 0.0
    """The annotators' probability of a random answer that the reward model's likelihood and the selection
    scores assume (rlhfkit rm --label-noise, rlhfkit campaign --label-noise); with the simulated panel the
    true value is --noise. 0: answers follow the reward (plain Bradley-Terry)."""
    eval_prompts: int = 128
    """Held-out prompts of each round's evaluation."""
    eval_reference_samples: int = 2
    """SFT responses per evaluation prompt that each policy response is compared with."""
    deadline: float = 3600.0
    """--collector web: seconds a round waits for its campaign to be filled before it goes on with what it has."""
    port: int = 8000
    """--collector web: the loopback port of the app."""
    seed: int = 0
    """Seed of every stage (round r samples with seed + r)."""
    progress: bool = False
    """Progress bars of the trainers."""

    def validate(self) -> None:
        if self.select not in STRATEGIES:
            raise ConfigError(f"--select {self.select!r}: pick one of {', '.join(STRATEGIES)}")
        if min(self.rounds, self.budget, self.pool_prompts, self.heldout_pairs, self.heads, self.annotators,
               self.eval_prompts, self.eval_reference_samples) < 1 or self.max_per_prompt < 0:
            raise ConfigError("--rounds, --budget, --pool-prompts, --heldout-pairs, --heads, --annotators, "
                              "--eval-prompts and --eval-reference-samples must be >= 1, --max-per-prompt >= 0")
        if self.samples_per_prompt < 2:
            raise ConfigError(f"--samples-per-prompt must be >= 2 (a pair needs two responses), got "
                              f"{self.samples_per_prompt}")
        if not Path(self.model).is_dir():
            raise ConfigError(f"--model {self.model}: no such checkpoint folder (train one with `rlhfkit sft`)")
        if self.collector not in ("simulated", "web") and not (self.collector.startswith("ai:") and self.collector[3:]):
            raise ConfigError(f"--collector {self.collector!r}: pick simulated, web or ai:<judge folder or URL>")
        if self.rm_early_stopping < 0 or self.rm_eval_every < 1 or self.ppo_steps < 1 or self.ppo_kl_coef < 0:
            raise ConfigError("--rm-early-stopping and --ppo-kl-coef must be >= 0, --rm-eval-every and --ppo-steps >= 1")
        if not 0 <= self.noise <= 1 or not 0 <= self.label_noise < 1:
            raise ConfigError(f"--noise must be in [0, 1] and --label-noise in [0, 1), got {self.noise} and "
                              f"{self.label_noise}")
        if self.deadline <= 0 or not 0 < self.port < 65536:
            raise ConfigError("--deadline must be positive and --port a port number")


class Stages:
    """Markers of finished stages; `run` starts an unfinished stage again from nothing."""

    def __init__(self, out: Path):
        self.out = out
        self.started = False

    def run(self, folder: Path, name: str, outputs: list[Path], func) -> None:
        marker = folder / "done" / name
        if marker.exists():
            return
        if not self.started and any(self.out.glob("*/done/*")):
            print(f"resuming at {folder.name}, stage {name}", flush=True)
        self.started = True
        for path in outputs:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        print(f"\n== {folder.name}: {name} ==", flush=True)
        started = time.perf_counter()
        func()
        print(f"({time.perf_counter() - started:.0f} s)", flush=True)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("")


def run_loop(config: LoopConfig) -> list[dict[str, Any]]:
    config.validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out)
    heldout = out / "heldout"
    heldout_prefs = heldout / "preferences.jsonl"
    stages.run(heldout, "sample", [heldout / "samples.jsonl"],  # one pair per prompt
               lambda: run_sample(SampleConfig(model=config.model, split="eval", num_prompts=config.heldout_pairs,
                                               num_samples=2, out=str(heldout / "samples.jsonl"),
                                               seed=config.seed + 10_000)))
    _collect(config, stages, heldout, "heldout", "random", config.heldout_pairs, None)
    rows: list[dict[str, Any]] = []
    for r in range(1, config.rounds + 1):
        started = time.perf_counter()
        _round(config, stages, out, r, heldout_prefs)
        rows.append(_row(config, out, r, heldout_prefs))
        rows[-1]["seconds"] = round(time.perf_counter() - started, 1)  # timing: ~0 for a round done before
        (out / "loop.json").write_text(json.dumps(rows, indent=2))
        (out / "report.md").write_text(loop_report(rows))
        print(f"round {r}: {rows[-1]['labels']} labels, reward model {rows[-1]['rm_heldout_accuracy']:.3f} on the "
              f"held-out set, win-rate over SFT {rows[-1]['win_rate_vs_sft']:.3f} "
              f"[{rows[-1]['ci_low']:.3f}, {rows[-1]['ci_high']:.3f}], KL {rows[-1]['kl_to_sft']:.2f} nats", flush=True)
    print(f"\nloop: {out / 'loop.json'}, {out / 'report.md'}")
    return rows


def _round(config: LoopConfig, stages: Stages, out: Path, r: int, heldout_prefs: Path) -> None:
    """Round r's stages: sample -> select + collect -> export -> rm -> dpo -> eval, into out/round{r}/."""
    folder = out / f"round{r}"
    policy = out / f"round{r - 1}" / "policy" if r > 1 else Path(config.model)
    previous_rm = out / f"round{r - 1}" / "rm" if r > 1 else None
    stages.run(folder, "sample", [folder / "samples.jsonl"],
               lambda: run_sample(SampleConfig(model=str(policy), split="train", num_prompts=config.pool_prompts,
                                               num_samples=config.samples_per_prompt,
                                               out=str(folder / "samples.jsonl"), seed=config.seed + r)))
    _collect(config, stages, folder, f"round{r}", config.select if previous_rm else "random", config.budget,
             previous_rm)
    _train_rm(config, stages, out, folder, r, heldout_prefs)
    if config.policy_step == "ppo":
        stages.run(folder, "ppo", [folder / "policy"], lambda: train_ppo(PPOConfig(
            model=str(policy), reward=str(folder / "rm"), out=str(folder / "policy"), max_steps=config.ppo_steps,
            kl_coef=config.ppo_kl_coef, seed=config.seed, progress=config.progress)))
    else:
        stages.run(folder, "dpo", [folder / "policy"], lambda: train_dpo(DPOConfig(
            model=str(policy), data=str(folder / "preferences.jsonl"), out=str(folder / "policy"), beta=config.dpo_beta,
            lr=config.dpo_lr, epochs=config.dpo_epochs, sft_coef=config.dpo_sft_coef, eval_fraction=0.0,
            batch_size=_batch_size(len(read_jsonl(folder / "preferences.jsonl"))), seed=config.seed,
            progress=config.progress)))
    shared = out / "round1" / "reference.json"  # the SFT side of every round's evaluation, sampled in round 1's
    stages.run(folder, "eval", [folder / "eval.json", *([shared] if r == 1 else [])], lambda: _evaluate(
        config, folder, shared))


def _evaluate(config: LoopConfig, folder: Path, shared: Path) -> None:
    """Round r's policy against SFT; the SFT responses are sampled once, in round 1, and faced by every round."""
    side = ReferenceSide(**json.loads(shared.read_text())) if shared.exists() else ReferenceSide()
    run_eval(EvalConfig(policy=str(folder / "policy"), reference=config.model, reward_model=str(folder / "rm"),
                        num_prompts=config.eval_prompts, reference_samples=config.eval_reference_samples, probes=False,
                        seed=config.seed, out=str(folder / "eval.json")), reference_side=side)
    if not shared.exists():
        shared.write_text(json.dumps(dataclasses.asdict(side)))


def _collect(config: LoopConfig, stages: Stages, folder: Path, campaign: str, strategy: str, budget: int,
             reward_model: Path | None) -> None:
    """select -> collect -> export: folder/feedback.db's campaign, then folder/preferences.jsonl."""
    db, prefs = folder / "feedback.db", folder / "preferences.jsonl"
    store_files = [db, *(folder / f"feedback.db{suffix}" for suffix in ("-wal", "-shm", "-journal"))]  # SQLite's own
    select = CampaignConfig(db=str(db), campaign=campaign, data=str(folder / "samples.jsonl"), overlap=config.annotators,
                            select=strategy, budget=budget, max_per_prompt=config.max_per_prompt,
                            label_noise=config.label_noise,
                            reward_model=str(reward_model) if reward_model else None, seed=config.seed,
                            url=f"http://127.0.0.1:{config.port}")
    if config.collector.startswith("ai:"):  # one AI annotator; written again whole on resume, like the panel
        def judged() -> None:
            run_campaign(dataclasses.replace(select, overlap=1))
            run_judge(JudgeConfig(db=str(db), campaign=campaign, judge=config.collector[3:], seed=config.seed))
        stages.run(folder, "select + collect", [*store_files, prefs], judged)
    elif config.collector == "simulated":  # seeded: written again whole on resume, the same labels come back
        def simulated() -> None:
            run_campaign(select)
            run_annotate(AnnotateConfig(db=str(db), campaign=campaign, annotators=config.annotators,
                                        noise=config.noise, seed=config.seed))
        stages.run(folder, "select + collect", [*store_files, prefs], simulated)
    else:  # people's judgments are kept: only the export starts again
        stages.run(folder, "select", store_files, lambda: run_campaign(select))
        stages.run(folder, "collect", [], lambda: collect_web(config, db, campaign))
    stages.run(folder, "export", [prefs], lambda: run_export(ExportConfig(db=str(db), campaign=campaign, out=str(prefs),
                                                                          method="majority", seed=config.seed)))


def collect_web(config: LoopConfig, db: Path, campaign: str, poll_s: float = 1.0) -> dict[str, Any]:
    """Serve the app on loopback, print a link per annotator, wait until the campaign is filled or
    --deadline passes; return its progress."""
    import uvicorn

    from rlhfkit.feedback.app import create_app

    store = Store.open(str(db))
    url = f"http://127.0.0.1:{config.port}"
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=config.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise ConfigError(f"--port {config.port}: the web app could not start (is the port taken?)")
            time.sleep(0.05)
        for i in range(config.annotators):
            name = f"{campaign}-annotator-{i + 1}"
            try:
                token = service.add_annotator(store, name, campaigns=[campaign])
                print(f"  {name}: {url}/login#token={token}", flush=True)
            except service.ServiceError:  # a resumed wait: the links printed before still work
                print(f"  {name}: the link printed before", flush=True)
        end = time.monotonic() + config.deadline
        print(f"waiting for {campaign!r} to be filled (at most {config.deadline:.0f} s) ...", flush=True)
        while True:
            progress = service.campaign_stats(store, campaign)["progress"]
            if progress["done"] >= progress["wanted"]:
                print(f"{campaign!r} is filled: {progress['done']} judgments", flush=True)
                return progress
            if time.monotonic() >= end:
                print(f"--deadline passed: going on with {progress['done']} of {progress['wanted']} judgments",
                      flush=True)
                return progress
            time.sleep(poll_s)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.dispose()


def _train_rm(config: LoopConfig, stages: Stages, out: Path, folder: Path, r: int, heldout_prefs: Path) -> None:
    """The ensemble from the SFT model on every round's labels so far, validated on the held-out set."""
    data = folder / "rm_data.jsonl"

    def train() -> None:
        rows = [row for k in range(1, r + 1) for _, row in read_jsonl(out / f"round{k}" / "preferences.jsonl")]
        write_jsonl(data, rows)
        train_rm(RMConfig(model=config.model, data=str(data), eval_data=str(heldout_prefs), out=str(folder / "rm"),
                          heads=config.heads, bootstrap=True, epochs=config.rm_epochs, seed=config.seed,
                          label_noise=config.label_noise,
                          batch_size=_batch_size(len(rows)), early_stopping=config.rm_early_stopping,
                          eval_every=config.rm_eval_every if config.rm_early_stopping else 0,
                          progress=config.progress))
    stages.run(folder, "rm", [data, folder / "rm"], train)


def _batch_size(pairs: int) -> int:
    """The trainers' batch of 16, or all of a round's pairs when there are fewer (a tiny run)."""
    if pairs < 1:
        raise ConfigError("the collector left no usable comparison (all ties or none answered); collect again")
    return min(16, pairs)


def _labels(folder: Path) -> int:
    """Judgments stored in a round's campaign (what people, or the panel, were asked and answered)."""
    store = Store.open(str(folder / "feedback.db"), must_exist=True)
    try:
        return service.campaign_stats(store, folder.name)["judgments"]  # the campaign is named after its folder
    finally:
        store.dispose()


def pair_accuracy(scorer: RewardScorer, rows: list[dict[str, Any]], gold: bool = False) -> float | None:
    """Share of the pairs the reward model orders as their label does (chosen above rejected), or with
    `gold` as the built-in task's gold rubric does (pairs it scores equal left out); None if none is left."""
    if gold:
        totals = [(assistant.score(r["prompt"], r["chosen"]).total, assistant.score(r["prompt"], r["rejected"]).total)
                  for r in rows]
        rows = [dict(r, chosen=r["chosen"] if a > b else r["rejected"], rejected=r["rejected"] if a > b else r["chosen"])
                for r, (a, b) in zip(rows, totals) if a != b]
    if not rows:
        return None
    prompts = [r["prompt"] for r in rows]
    chosen, rejected = scorer(prompts, [r["chosen"] for r in rows]), scorer(prompts, [r["rejected"] for r in rows])
    return (chosen > rejected).float().mean().item()


def loop_report(rows: list[dict[str, Any]]) -> str:
    """report.md: one line per round, the reward model's accuracy on its own training pairs beside the
    held-out set's (the gap is overfitting), then the policy's win-rate over SFT and KL."""
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = ["# rlhfkit loop", "",
             "| round | selection | labels | RM acc. train | RM acc. held-out | gap | RM acc. held-out (gold) "
             "| win-rate over SFT [95% CI] | KL to SFT |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        gap = r["rm_train_accuracy"] - r["rm_heldout_accuracy"] if r["rm_train_accuracy"] is not None else None
        lines.append(f"| {r['round']} | {r['selection']} | {r['labels']} | {number(r['rm_train_accuracy'])} "
                     f"| {number(r['rm_heldout_accuracy'])} | {number(gap)} | {number(r['rm_heldout_gold_accuracy'])} "
                     f"| {r['win_rate_vs_sft']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['kl_to_sft']:.2f} |")
    lines += ["", "RM acc.: share of pairs the reward model orders as the label does; train: its own training pairs, "
              "held-out: the loop's fixed held-out set, labelled by the collector (gold: by the built-in task's rubric). "
              "A gap far above 0 is overfitting to the preference data."]
    return "\n".join(lines) + "\n"


def _row(config: LoopConfig, out: Path, r: int, heldout_prefs: Path) -> dict[str, Any]:
    """Round r's row of loop.json, read from its files (so a resumed loop writes the same row)."""
    folder = out / f"round{r}"
    metrics = json.loads((folder / "rm" / "eval_metrics.json").read_text())
    evaluation = json.loads((folder / "eval.json").read_text())
    scorer = RewardScorer(folder / "rm")
    heldout = [row for _, row in read_jsonl(heldout_prefs)]
    selection = config.select if r > 1 else "random"
    labels = _labels(out / "heldout") + sum(_labels(out / f"round{k}") for k in range(1, r + 1))
    row = {"round": r, "selection": selection, "labels": labels,
           "rm_heldout_accuracy": metrics["accuracy"],
           "rm_heldout_gold_accuracy": pair_accuracy(scorer, heldout, gold=True),
           "rm_train_accuracy": pair_accuracy(scorer, [row for _, row in read_jsonl(folder / "rm_data.jsonl")]),
           "win_rate_vs_sft": evaluation["win_rate"], "ci_low": evaluation["ci_low"], "ci_high": evaluation["ci_high"],
           "kl_to_sft": evaluation["kl_to_reference"], "policy_gold": evaluation.get("policy_gold"),
           "length": evaluation["length"]}
    return row
