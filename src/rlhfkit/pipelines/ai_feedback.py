"""RLAIF: an AI judge fills a feedback campaign as annotator `ai:<name>`, through the same service functions
as the web app and the simulated panel (`claim_task`, `task_payload`, `store_judgment`).

    rlhfkit judge --db feedback.db --campaign demo --judge runs/judge                     # a local chat model
    rlhfkit judge --db feedback.db --campaign demo --judge http://127.0.0.1:8000/v1 --model-name qwen
    rlhfkit judge ... --threshold 0.8     # the mixed workflow: unsure pairs are left to people

One principle of the constitution is drawn at random per task (as Anthropic's Constitutional AI did;
`--principles` narrows the draw, and one principle per run gives one AI annotator per principle).
Each judgment stores the choice (or a full ranking for K > 2), the soft label
(`judgments.probabilities`), the principle (`judgments.principle`: its name and question), a
rationale and the judge's seconds per judgment. With `--threshold t`, a task whose top probability
is below t is stored as a skip that keeps the soft label: the slot goes back to the queue, so on a
campaign with overlap 1 people are given exactly the pairs the AI was unsure of.

Nothing is stored half-done: each batch of tasks is claimed in one transaction, judged outside any
transaction, and stored in another; if the judge fails (server down, garbage answer) the batch's
assignments stay open and the next run judges them first.

`fill_with_judge` is the function a pipeline calls (the quickstart's AI-feedback loop).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlhfkit.errors import ConfigError
from rlhfkit.feedback import service
from rlhfkit.feedback.commands import CampaignConfig, ExportConfig, run_campaign, run_export
from rlhfkit.feedback.simulate import simulated_annotator_id
from rlhfkit.feedback.store import Store
from rlhfkit.judges.ai import Judge, Query, Verdict, load_judge
from rlhfkit.judges.constitution import Constitution, Principle, load_constitution
from rlhfkit.tasks import assistant


@dataclass
class JudgeConfig:
    """Fill a campaign with an AI judge guided by a constitution."""

    db: str = "feedback.db"
    """Feedback store: a SQLite file path or a postgresql:// URL."""
    campaign: str = "default"
    """Campaign to fill."""
    judge: str = "runs/judge"
    """The judge: a local chat-model folder (or hub id), or the http(s):// URL of an OpenAI-compatible API (…/v1)."""
    name: str = ""
    """Annotator name after `ai:` (default: the judge folder's name, or --model-name for a URL)."""
    constitution: str | None = None
    """Constitution YAML (default: the one rlhfkit ships)."""
    principles: list[str] = field(default_factory=list)
    """Draw only from these principles (default: all of the constitution's)."""
    threshold: float = 0.0
    """Confidence threshold: a task whose top probability is below it is left to people (stored as a skip)."""
    batch_size: int = 32
    """Tasks claimed, judged and stored together."""
    max_judgments: int = 0
    """Stop after this many judgments (0: until the campaign has nothing left for the judge)."""
    seed: int = 0
    """Seed of the principle draw and of the task order."""
    model_name: str = ""
    """The served model's name in the request (HTTP judges)."""
    endpoint: Literal["chat", "completions"] = "chat"
    """HTTP judges: /v1/chat/completions or /v1/completions."""
    timeout: float = 60.0
    """HTTP judges: seconds to wait for one answer."""
    retries: int = 3
    """HTTP judges: retries (with exponential backoff) after a timeout, a connection error, 429 or 5xx."""
    concurrency: int = 4
    """HTTP judges: requests in flight at once."""
    cache_dir: str | None = None
    """HTTP judges: on-disk cache of answers, so a rerun pays nothing twice (default: none)."""

    def validate(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"--threshold must be in [0, 1], got {self.threshold}")
        if self.batch_size < 1 or self.max_judgments < 0:
            raise ConfigError("--batch-size must be at least 1 and --max-judgments >= 0")


def principle_text(principle: Principle) -> str:
    """What `judgments.principle` holds: the name and the question the judge answered."""
    return f"{principle.name}: {principle.compare}"


def judgment_body(task: dict[str, Any], verdict: Verdict, principle: Principle, threshold: float,
                  seconds: float) -> dict[str, Any]:
    """The submission of one AI judgment for a task payload (letters as shown in `task["labels"]`)."""
    letters = task["labels"]
    probs = [round(p, 6) for p in verdict.probabilities]
    probs[verdict.choice] = round(probs[verdict.choice] + 1 - sum(probs), 6)  # sums to 1 after rounding
    ranking = sorted(letters, key=lambda letter: -probs[letters.index(letter)])
    shown = ", ".join(f"{letter.upper()} {p:.2f}" for letter, p in zip(letters, probs))
    body: dict[str, Any] = {"probabilities": dict(zip(letters, probs)), "principle": principle_text(principle),
                            "seconds": seconds, "assignment": task["assignment"], "key": uuid.uuid4().hex}
    if verdict.confidence < threshold:
        body.update(outcome="skip", rationale=f"unsure ({shown}; threshold {threshold:g}): left to people")
        return body
    body["outcome"] = ranking[0]
    if len(letters) > 2:
        body["ranking"] = ranking
    if principle.name in {c["key"] for c in task["rubric"]}:
        body["criteria"] = {principle.name: ranking[0]}
    disagreement = "; the two orders disagreed" if verdict.order_disagreement else ""
    body["rationale"] = verdict.rationale or f"{principle.compare} {shown}{disagreement}."
    return body


def _claim(store: Store, campaign_name: str, annotator_id: int, n: int, rng: random.Random) -> list[dict]:
    """Up to `n` task payloads for the judge, its open assignments first, in one write transaction."""
    with store.write() as session:
        campaign = service.get_campaign(session, campaign_name)
        now = store.clock()
        service.release_expired(session, now)
        expires_at = service.lease_end(campaign, now)
        batch = service.open_assignments(session, campaign.id, [annotator_id]).get(annotator_id, [])[:n]
        while len(batch) < n:
            assignment = service.claim_task(session, campaign, annotator_id, rng, expires_at)
            if assignment is None:
                break
            batch.append(assignment)
        return [service.task_payload(session, campaign, a) for a in batch]


def fill_with_judge(store: Store, campaign: str, judge: Judge, constitution: Constitution, name: str,
                    threshold: float = 0.0, batch_size: int = 32, max_judgments: int = 0,
                    seed: int = 0) -> dict[str, float]:
    """Let `judge` judge every task of `campaign` it can get, as annotator `ai:<name>`; returns counts and speed:
    {"stored", "deferred", "seconds", "cpu_seconds" (the judging's, this process), "judgments_per_s",
    "order_disagreement"}."""
    annotator_id = simulated_annotator_id(store, f"ai:{name}", campaign)
    rng = random.Random(seed)
    stored = deferred = 0
    judge_seconds, cpu_seconds, disagreements = 0.0, 0.0, 0.0
    while not max_judgments or stored + deferred < max_judgments:
        limit = min(batch_size, max_judgments - stored - deferred) if max_judgments else batch_size
        tasks = _claim(store, campaign, annotator_id, limit, rng)
        if not tasks:
            break
        principles = [constitution.draw(rng) for _ in tasks]
        start, cpu_start = time.perf_counter(), time.process_time()
        verdicts = judge.judge_many([Query(t["prompt"], t["responses"], p) for t, p in zip(tasks, principles)])
        spent = time.perf_counter() - start
        cpu_seconds += time.process_time() - cpu_start
        judge_seconds += spent
        bodies = [judgment_body(t, v, p, threshold, spent / len(tasks)) for t, v, p in zip(tasks, verdicts, principles)]
        with store.write() as session:
            for body in bodies:
                service.store_judgment(session, annotator_id, body, store.clock())
        deferred += sum(b["outcome"] == "skip" for b in bodies)
        stored += sum(b["outcome"] != "skip" for b in bodies)
        disagreements += sum(v.order_disagreement for v in verdicts)
    total = stored + deferred
    return {"stored": stored, "deferred": deferred, "seconds": round(judge_seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),
            "judgments_per_s": round(total / judge_seconds, 2) if judge_seconds else 0.0,
            "order_disagreement": round(disagreements / total, 4) if total else 0.0}


def run_judge(config: JudgeConfig) -> dict[str, float]:
    constitution = load_constitution(config.constitution).select(config.principles)
    if config.judge.startswith(("http://", "https://")):
        judge = load_judge(config.judge, model=config.model_name, endpoint=config.endpoint, timeout=config.timeout,
                           retries=config.retries, concurrency=config.concurrency, cache_dir=config.cache_dir)
        name = config.name or config.model_name or "http"
    else:
        judge = load_judge(config.judge, batch_size=config.batch_size)
        name = config.name or Path(config.judge).name
    store = Store.open(config.db, must_exist=True)
    try:
        stats = fill_with_judge(store, config.campaign, judge, constitution, name, config.threshold,
                                config.batch_size, config.max_judgments, config.seed)
    except service.ServiceError as exc:
        raise ConfigError(exc.message) from None
    finally:
        store.dispose()
    left = f", {stats['deferred']} left to people (below --threshold {config.threshold:g})" if config.threshold else ""
    orders = ("graded one response at a time" if getattr(judge, "mode", "compare") == "grade"
              else f"the two orders disagreed on {stats['order_disagreement']:.0%}")
    print(f"ai:{name} stored {stats['stored']} judgments in campaign {config.campaign!r}{left}; "
          f"{stats['judgments_per_s']} judgments/s, {orders}")
    return stats


def gold_agreement(prefs: Path) -> float | None:
    """Share of the exported pairs whose chosen response the built-in task's gold rubric scores higher."""
    rows = [json.loads(line) for line in prefs.read_text().splitlines() if line.strip()]
    agree = [assistant.gold_reward(r["prompt"], r["chosen"]) > assistant.gold_reward(r["prompt"], r["rejected"])
             for r in rows]
    return round(sum(agree) / len(agree), 4) if agree else None


def ai_feedback(samples: Path, db: Path, prefs: Path, judge: Judge, name: str, campaign: str = "quickstart-ai",
                threshold: float = 0.0, seed: int = 0, constitution: Constitution | None = None) -> dict[str, Any]:
    """The quickstart's feedback step with an AI judge as the panel (--ai-feedback): a campaign over
    `samples` (overlap 1) in a fresh store, filled by `judge` as `ai:<name>`, exported to `prefs`; returns
    the numbers of the report's "Human vs AI feedback" table: judgments/s (and per day), order
    consistency, agreement of the exported pairs with the gold rubric, CPU-seconds per 1,000 labels."""
    if db.exists():
        db.unlink()
    db.parent.mkdir(parents=True, exist_ok=True)
    run_campaign(CampaignConfig(db=str(db), campaign=campaign, data=str(samples), overlap=1, seed=seed))
    store = Store.open(str(db), must_exist=True)
    try:
        stats = fill_with_judge(store, campaign, judge, constitution or load_constitution(), name,
                                threshold=threshold, seed=seed)
    finally:
        store.dispose()
    run_export(ExportConfig(db=str(db), campaign=campaign, out=str(prefs), method="majority", seed=seed))
    per_s = stats["judgments_per_s"]
    return {"judgments": stats["stored"], "mode": getattr(judge, "mode", "compare"), "judgments_per_s": per_s, "judgments_per_day": round(per_s * 86400),
            "order_consistency": round(1 - stats["order_disagreement"], 4),
            "agreement_with_gold": gold_agreement(prefs),
            "cpu_seconds_per_1000": round(1000 * stats["cpu_seconds"] / max(1, stats["stored"] + stats["deferred"]), 1)}
