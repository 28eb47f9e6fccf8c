"""The feedback commands: `rlhfkit campaign`, `serve`, `annotate`, `export` (configs and run functions).

    rlhfkit campaign --data runs/sft/samples.jsonl --campaign demo --annotators annotator-1,annotator-2,annotator-3
    rlhfkit campaign --model runs/sft --campaign demo2 --num-samples 2      # sample the checkpoint first
    rlhfkit campaign --model runs/sft --campaign active --num-samples 6 --select bald --budget 200 --reward-model runs/rm
    rlhfkit serve --db feedback.db                                          # http://127.0.0.1:8000/login
    rlhfkit annotate --campaign demo --annotators 3 --noise 0.1             # simulated annotators
    rlhfkit export --campaign demo --method dawid-skene --out prefs.jsonl   # then: rlhfkit rm --data prefs.jsonl

Every command takes `--db` (a SQLite path, default feedback.db, or a postgresql:// URL).
Only `campaign --model` and `campaign --reward-model` import torch (sampling a checkpoint, scoring the
pool with a reward model), and only when used.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlhfkit.errors import ConfigError, DataError
from rlhfkit.feedback import service
from rlhfkit.feedback.campaigns import (
    DEFAULT_GUIDELINES,
    DEFAULT_RUBRIC,
    CampaignSpec,
    create_campaign,
    read_gold,
    read_responses,
    select_tasks,
)
from rlhfkit.feedback.export import preference_rows, ranking_rows, write_rows
from rlhfkit.feedback.service import ServiceError, campaign_stats
from rlhfkit.feedback.store import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, Store
from rlhfkit.math.selection import STRATEGIES

ADMIN_TOKEN_ENV = "RLHFKIT_ADMIN_TOKEN"


def _open(db: str, must_exist: bool = False) -> Store:
    return Store.open(db, must_exist=must_exist)


def _read_text(path: str, flag: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{flag}: not UTF-8 text ({exc.reason}); save the file as UTF-8", path) from None
    except OSError as exc:
        raise DataError(f"{flag}: cannot read the file ({exc.strerror or exc})", path) from None


def _ensure_admin_token(store: Store, url: str) -> None:
    if os.environ.get(ADMIN_TOKEN_ENV):
        store.set_admin_token(os.environ[ADMIN_TOKEN_ENV])
    elif (token := store.new_admin_token_if_none()) is not None:
        print(f"admin token (shown once; keep it): {token}\n  admin view: {url}/login#token={token}")


# ---------------------------------------------------------------------------------------------
# rlhfkit campaign


@dataclass
class CampaignConfig:
    """Create a comparison campaign in the feedback store from a responses file or a checkpoint."""

    db: str = "feedback.db"
    """Feedback store: a SQLite file path or a postgresql://user@host:port/dbname URL."""
    campaign: str = "default"
    """Name of the new campaign."""
    data: str | None = None
    """Responses JSONL: {"prompt","completion","model","index"} lines as `rlhfkit sample` writes, or {"prompt","responses":[...]}."""
    model: str | None = None
    """Instead of --data: a checkpoint to sample --num-samples responses per prompt from (needs torch)."""
    prompts: str = "builtin:assistant"
    """With --model: the prompts to sample for (a {"prompt"} JSONL file or builtin:assistant)."""
    num_prompts: int = 32
    """With --model and built-in prompts: how many prompts."""
    num_samples: int = 2
    """With --model: responses per prompt."""
    k: int = 2
    """Responses per task: 2 for pairwise choices, more for K-wise rankings."""
    overlap: int = 3
    """How many different annotators see each task (more overlap, better agreement estimates)."""
    gold: str | None = None
    """Optional preference JSONL of gold tasks with known answers ({"prompt","chosen","rejected"}), shown to every annotator."""
    rubric: str | None = None
    """Criteria: a JSON file [{"key","label","help"}, ...] or comma-separated keys; default: the seeds' four criteria."""
    guidelines: str | None = None
    """A text file with the guidelines shown to annotators; default: built-in guidelines."""
    require_rationale: Literal["never", "close", "always"] = "close"
    """When a rationale is required: never, on close calls (tie, both bad, criteria that disagree), or always."""
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    """How long an annotator holds a task without answering before it goes back to the queue."""
    replace_unfinished: bool = False
    """Delete a campaign of this name left unfinished by a killed `rlhfkit campaign`, then write it again."""
    annotators: str = ""
    """Comma-separated names of annotators to create for this campaign (existing ones are added to it); their login links are printed once."""
    url: str = "http://127.0.0.1:8000"
    """Base URL of `rlhfkit serve`, for the printed login links."""
    seed: int = 0
    """Sampling seed for --model, and the seed of --select random."""
    select: str | None = None
    """Ask only the --budget most informative tasks of the pool (every k-subset of each prompt's responses),
    by random, disagreement, uncertainty or bald (rlhfkit.math.selection); default: every task, no selection."""
    budget: int = 0
    """With --select: how many tasks to create."""
    reward_model: str | None = None
    """With --select (but random): the reward model scoring the pool; its heads (`rlhfkit rm --heads`) are the
    ensemble, or give several comma-separated folders, whose heads are pooled."""
    max_per_prompt: int = 0
    """With --select: at most this many tasks per prompt, so a batch does not ask one prompt many times (0: no cap)."""
    label_noise: float = 0.0
    """With --select uncertainty or bald: the probability that an annotator answers at random, which the scores
    then assume (each head's answer distribution (1 - noise) p + noise / k); 0: answers follow the reward."""

    def validate(self) -> None:
        if (self.data is None) == (self.model is None):
            raise ConfigError("give exactly one of --data (a responses file) or --model (a checkpoint to sample)")
        if self.select is not None and self.select not in STRATEGIES:
            raise ConfigError(f"--select {self.select!r}: pick one of {', '.join(STRATEGIES)}")
        if (self.select is None) != (self.budget == 0) or self.budget < 0 or self.max_per_prompt < 0:
            raise ConfigError("--select and --budget go together: --select STRATEGY --budget N (N >= 1); "
                              "--max-per-prompt must be >= 0")
        if not 0 <= self.label_noise < 1:
            raise ConfigError(f"--label-noise is a probability in [0, 1), got {self.label_noise}")
        if self.select not in (None, "random") and not self.reward_model:
            raise ConfigError(f"--select {self.select} needs --reward-model (a folder of `rlhfkit rm`, or several)")


def _rubric(spec: str | None) -> list[dict[str, str]]:
    if spec is None:
        return [dict(c) for c in DEFAULT_RUBRIC]
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        try:
            rows = json.loads(_read_text(str(path), "--rubric"))
        except json.JSONDecodeError as exc:
            raise DataError(f"--rubric: not valid JSON ({exc.msg})", str(path), exc.lineno) from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("key"), str) for r in rows):
            raise DataError('the rubric must be a JSON list of {"key", "label", "help"} objects', str(path))
        return [{"key": r["key"], "label": str(r.get("label", r["key"])), "help": str(r.get("help", ""))} for r in rows]
    known = {c["key"]: c for c in DEFAULT_RUBRIC}
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    return [dict(known.get(k, {"key": k, "label": k.replace("_", " ").capitalize(), "help": ""})) for k in keys]


def _sample(config: CampaignConfig, out: Path) -> Path:
    from rlhfkit.evaluation.responses import SampleConfig, run_sample  # imports torch

    return run_sample(SampleConfig(model=config.model or "", data=config.prompts, out=str(out),
                                   num_prompts=config.num_prompts, num_samples=config.num_samples, seed=config.seed))


def _head_rewards(groups: list, folders: str) -> list[list[list[float]]]:
    """Per group, per response, the rewards of every head of every reward model in `folders` (comma-separated)."""
    from rlhfkit.models.reward_model import RewardScorer  # imports torch

    prompts = [g.prompt for g in groups for _ in g.responses]
    texts = [text for g in groups for text, _, _ in g.responses]
    columns = []
    for folder in [f.strip() for f in folders.split(",") if f.strip()]:
        if not Path(folder).is_dir():
            raise ConfigError(f"--reward-model {folder}: no such folder (train one with `rlhfkit rm --heads N`)")
        columns.append(RewardScorer(folder).score_heads(prompts, texts).tolist())  # (N, heads)
    flat = [[r for column in columns for r in column[i]] for i in range(len(texts))]
    out, start = [], 0
    for g in groups:
        out.append(flat[start:start + len(g.responses)])
        start += len(g.responses)
    return out


def run_campaign(config: CampaignConfig) -> dict[str, int]:
    config.validate()  # also when called from Python (rlhfkit loop), not only through the CLI
    spec = CampaignSpec(name=config.campaign, k=config.k, overlap=config.overlap, rubric=_rubric(config.rubric),
                        require_rationale=config.require_rationale, lease_seconds=config.lease_seconds,
                        guidelines=_read_text(config.guidelines, "--guidelines") if config.guidelines else DEFAULT_GUIDELINES)
    spec.validate()
    names = [n.strip() for n in config.annotators.split(",") if n.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(config.data) if config.data else _sample(config, Path(tmp) / "samples.jsonl")
        blank: list[str] = []
        groups = read_responses(data, skipped=blank)
    if blank:
        print(f"left out {len(blank)} blank responses (first at {blank[0]})")
    if config.select:
        rewards = _head_rewards(groups, config.reward_model) if config.reward_model else None
        pool = len(groups)
        groups = select_tasks(groups, config.k, config.select, config.budget, rewards, config.max_per_prompt,
                              config.seed, noise=config.label_noise)
        print(f"--select {config.select}: {sum(len(g.tasks or []) for g in groups)} tasks from the pool of "
              f"{pool} prompts' {config.k}-subsets" + (f" (heads: {len(rewards[0][0])})" if rewards else ""))
    gold = read_gold(config.gold) if config.gold else None
    store = _open(config.db)
    try:
        _ensure_admin_token(store, config.url)
        counts = create_campaign(store, spec, groups, gold, replace_unfinished=config.replace_unfinished)
        print(f"campaign {config.campaign!r}: {counts['tasks']} tasks ({counts['gold']} gold) from "
              f"{counts['prompts']} prompts and {counts['responses']} responses; each task to {config.overlap} annotators")
        for name in names:
            try:
                token = service.add_annotator(store, name, campaigns=[config.campaign])
            except ServiceError as exc:
                if exc.status != 409:
                    raise ConfigError(f"--annotators {name!r}: {exc.message}") from None
                service.add_to_campaigns(store, name, [config.campaign])
                print(f"  {name}: {exc.message} (kept, and added to this campaign; their old link still works)")
                continue
            print(f"  annotator {name}: {config.url}/login#token={token}")
    finally:
        store.dispose()
    return counts


# ---------------------------------------------------------------------------------------------
# rlhfkit serve


@dataclass
class ServeConfig:
    """Serve the annotation web app (annotator and admin views) with uvicorn."""

    db: str = "feedback.db"
    """Feedback store: a SQLite file path or a postgresql:// URL."""
    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback should sit behind a TLS reverse proxy."""
    port: int = 8000
    """Port to listen on."""
    new_admin_token: bool = False
    """Replace the admin token with a new one and print it (also set by $RLHFKIT_ADMIN_TOKEN)."""
    max_body: int = 65536
    """Largest request body accepted, in bytes; larger requests get 413."""
    log_level: str = "warning"
    """uvicorn's log level (info logs every request)."""
    lease_seconds: int = 0
    """Seconds a task stays with an annotator who does not answer, for every campaign (0: each campaign's own, set by `rlhfkit campaign --lease-seconds`)."""

    def validate(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"--port {self.port} is not a port number")
        if not 0 <= self.lease_seconds <= MAX_LEASE_SECONDS:
            raise ConfigError(f"--lease-seconds is {self.lease_seconds}: give 0 (each campaign's own) to "
                              f"{MAX_LEASE_SECONDS}")


def run_serve(config: ServeConfig) -> None:
    import uvicorn

    from rlhfkit.feedback.app import create_app

    store = _open(config.db)
    url = f"http://{config.host}:{config.port}"
    if config.new_admin_token and not os.environ.get(ADMIN_TOKEN_ENV):
        token = store.set_admin_token()
        print(f"new admin token: {token}\n  admin view: {url}/login#token={token}")
    else:
        _ensure_admin_token(store, url)
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {config.host} without TLS; tokens travel in clear text", file=sys.stderr)
    print(f"serving {config.db} at {url}/login  (Ctrl+C stops)", flush=True)
    app = create_app(store, max_body=config.max_body, lease_seconds=config.lease_seconds or None)
    uvicorn.run(app, host=config.host, port=config.port,
                log_level=config.log_level, workers=1)


# ---------------------------------------------------------------------------------------------
# rlhfkit annotate


@dataclass
class AnnotateConfig:
    """Fill a campaign with simulated annotators (the built-in task's rubric judges)."""

    db: str = "feedback.db"
    """Feedback store: a SQLite file path or a postgresql:// URL (ignored with --url)."""
    campaign: str = "default"
    """Campaign to fill."""
    annotators: int = 3
    """How many simulated annotators."""
    noise: float = 0.1
    """Probability that a simulated annotator answers at random."""
    bias: str | None = None
    """Bias of the simulated annotators: length or flattery (default none)."""
    tie_margin: float = 0.0
    """Utility difference under which a simulated annotator answers tie."""
    name_prefix: str = ""
    """Prefix for the simulated annotators' names (sim-0, sim-1, ...)."""
    url: str | None = None
    """Go through the web API of a running `rlhfkit serve` at this URL instead of the store (needs $RLHFKIT_ADMIN_TOKEN)."""
    max_judgments: int = 0
    """Stop after this many judgments (0: until the campaign is full)."""
    seed: int = 0
    """Seed of the simulated annotators."""

    def validate(self) -> None:
        if self.annotators < 1 or not 0.0 <= self.noise <= 1.0:
            raise ConfigError("--annotators must be at least 1 and --noise in [0, 1]")


def run_annotate(config: AnnotateConfig) -> int:
    from rlhfkit.feedback.simulate import fill_campaign, fill_campaign_http
    from rlhfkit.tasks.assistant import panel

    try:
        annotators = panel(config.annotators, noise=config.noise, bias=config.bias, seed=config.seed,
                           tie_margin=config.tie_margin)
    except ValueError as exc:
        raise ConfigError(f"--bias: {exc}") from None
    try:
        if config.url:
            import httpx

            admin = os.environ.get(ADMIN_TOKEN_ENV)
            if not admin:
                raise ConfigError(f"--url needs the admin token in ${ADMIN_TOKEN_ENV} to create the simulated annotators")
            tokens = []
            for a in annotators:
                res = httpx.post(config.url.rstrip("/") + "/api/admin/annotators", timeout=30,
                                 json={"name": config.name_prefix + a.name, "simulated": True,
                                       "campaigns": [config.campaign]},
                                 headers={"Authorization": f"Bearer {admin}"})
                if res.status_code != 200:
                    raise ConfigError(f"creating {config.name_prefix + a.name} at {config.url}: {res.text}")
                tokens.append(res.json()["token"])
            stored = fill_campaign_http(config.url.rstrip("/"), config.campaign, tokens, annotators,
                                        max_judgments=config.max_judgments)
        else:
            store = _open(config.db, must_exist=True)
            try:
                stored = fill_campaign(store, config.campaign, annotators, prefix=config.name_prefix,
                                       max_judgments=config.max_judgments, seed=config.seed)
            finally:
                store.dispose()
    except ServiceError as exc:
        raise ConfigError(exc.message) from None
    print(f"{config.annotators} simulated annotators stored {stored} judgments in campaign {config.campaign!r}")
    return stored


# ---------------------------------------------------------------------------------------------
# rlhfkit export


@dataclass
class ExportConfig:
    """Aggregate a campaign's judgments and write preference JSONL (TRL columns plus margin and soft label)."""

    db: str = "feedback.db"
    """Feedback store: a SQLite file path or a postgresql:// URL."""
    campaign: str = "default"
    """Campaign to export."""
    out: str = "preferences.jsonl"
    """Where to write the preference pairs."""
    method: Literal["majority", "dawid-skene", "none"] = "majority"
    """How several judgments of one pair become one label; none writes one row per judgment."""
    tie_policy: Literal["drop", "random"] = "drop"
    """An even split between the two responses: drop the pair, or pick one with a seeded coin."""
    rankings: str | None = None
    """Also write the K-wise rankings ({"prompt","responses","ranking"}) to this file."""
    seed: int = 0
    """Seed for --tie-policy random."""


def run_export(config: ExportConfig) -> int:
    store = _open(config.db, must_exist=True)
    try:
        try:
            rows = preference_rows(store, config.campaign, method=config.method, tie_policy=config.tie_policy,
                                   seed=config.seed)
            stats = campaign_stats(store, config.campaign)
        except ServiceError as exc:
            raise ConfigError(exc.message) from None
        if not rows:
            raise DataError(f"campaign {config.campaign!r} has no settled comparisons yet "
                            f"({stats['judgments']} judgments); judge some pairs first")
        count = write_rows(config.out, rows, "--out")
        alpha = stats["krippendorff_alpha"]
        print(f"wrote {count} preference pairs to {config.out} ({config.method}, ties: {config.tie_policy}); "
              f"{stats['judgments']} judgments, Krippendorff's alpha "
              f"{'n/a' if alpha is None else f'{alpha:.3f}'}")
        if config.rankings:
            ranked = ranking_rows(store, config.campaign)
            print(f"wrote {write_rows(config.rankings, ranked, '--rankings')} rankings to {config.rankings}")
    finally:
        store.dispose()
    return count
