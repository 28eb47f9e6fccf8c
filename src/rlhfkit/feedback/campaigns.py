"""Campaigns: read a responses file, group it by prompt, and turn each group into comparison tasks.

    spec = CampaignSpec(name="demo", k=2, overlap=3)
    groups = read_responses("samples.jsonl")          # as written by `rlhfkit sample`
    create_campaign(store, spec, groups, gold=read_gold("gold.jsonl"), seed=0)

Input lines, either form (validated with file:line errors):
    {"prompt", "completion", "model", "index"}   one response per line (`rlhfkit sample`)
    {"prompt", "responses": [...], "models"?: [...]}   all responses of a prompt on one line
A prompt with K >= 2 distinct responses gives K·(K−1)/2 pairwise tasks when `k == 2`, or
tasks of `k` responses each (consecutive chunks; a short last chunk of at least 2) when `k > 2`.
Gold tasks (known answers, for calibrating annotators) come from preference rows
`{"prompt", "chosen", "rejected"}` and are shown to every annotator once.

The rubric defaults to the four criteria of the seeds' annotation exercises (`DEFAULT_RUBRIC`).
`create_campaign` writes in bounded batches (BATCH_TASKS tasks a transaction) so that a server on
the same store keeps answering; the campaign stays hidden until its last batch is in.
Active selection (`select_tasks`): instead of every pair, the `budget` most informative of the pool
(every k-subset of every prompt's responses), by a strategy of `rlhfkit.math.selection` fed with a
reward-model ensemble's per-head rewards; each task records `{"strategy", "score"}` in `tasks.selection`.
Left out: adding responses to an existing campaign (create a new campaign instead), resuming an
interrupted write (an error or Ctrl+C deletes it; a killed writer's is replaced with
`rlhfkit campaign --replace-unfinished`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlhfkit.data.records import read_jsonl
from rlhfkit.errors import ConfigError, DataError
from rlhfkit.feedback.store import (
    DEFAULT_LEASE_SECONDS,
    MAX_LEASE_SECONDS,
    Campaign,
    Prompt,
    Response,
    Store,
    Task,
    TaskItem,
    storable,
)
from rlhfkit.math.selection import candidate_tuples, strategy_scores
from rlhfkit.math.selection import select as select_best

DEFAULT_RUBRIC: list[dict[str, str]] = [
    {"key": "helpfulness", "label": "Helpfulness & Accuracy",
     "help": "Answers the question asked, with correct and practical information."},
    {"key": "neutrality", "label": "Balance & Neutrality",
     "help": "No political agenda, loaded terms or guilt-tripping; fair to every side."},
    {"key": "clarity", "label": "Clarity & Conciseness",
     "help": "Clear, organized, no padding."},
    {"key": "harmlessness", "label": "Harmlessness",
     "help": "Nothing unsafe, illegal, inflammatory or manipulative."},
]

DEFAULT_GUIDELINES = (
    "Read the prompt and every response. Pick the better response overall, then say which one is "
    "better on each criterion of the rubric. Choose 'tie' only when you truly cannot separate them, "
    "and 'both bad' when neither is acceptable. Write a short rationale: what made the difference? "
    "The responses come from models and may contain anything; judge the text, follow no instruction in it."
)

GOLD_OVERLAP = 1_000_000  # a gold task goes to every annotator
BATCH_TASKS = 1000  # tasks per write transaction of `create_campaign`
BATCH_PAUSE_S = 0.1  # SQLite: the gap between two batches, see `_between_batches`


@dataclass
class ResponseGroup:
    """All responses to one prompt; `where` is the file:line of the prompt's first line."""

    prompt: str
    responses: list[tuple[str, str, int | None]] = field(default_factory=list)  # (text, model, index)
    where: str = ""
    tasks: list[tuple[list[int], dict[str, Any]]] | None = None  # chosen (indices, selection); None: task_slices


@dataclass
class CampaignSpec:
    name: str
    k: int = 2
    overlap: int = 3
    rubric: list[dict[str, str]] = field(default_factory=lambda: [dict(c) for c in DEFAULT_RUBRIC])
    guidelines: str = DEFAULT_GUIDELINES
    require_rationale: str = "close"
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    def validate(self) -> None:
        check_campaign_name(self.name)
        if not storable(self.guidelines) or not all(storable(str(v)) for c in self.rubric for v in c.values()):
            raise ConfigError("the guidelines or the rubric contain a NUL or an unpaired surrogate character")
        if self.k < 2:
            raise ConfigError(f"--k is {self.k}: a comparison needs at least 2 responses")
        if self.overlap < 1:
            raise ConfigError(f"--overlap is {self.overlap}: each task needs at least 1 annotator")
        if not 1 <= self.lease_seconds <= MAX_LEASE_SECONDS:
            raise ConfigError(f"--lease-seconds is {self.lease_seconds}: give 1 to {MAX_LEASE_SECONDS} seconds")
        if self.require_rationale not in ("never", "close", "always"):
            raise ConfigError("--require-rationale must be never, close or always")
        keys = [c["key"] for c in self.rubric]
        if len(set(keys)) != len(keys) or any(k in ("", "tie") for k in keys):
            raise ConfigError(f"rubric criteria must have distinct, non-empty keys (got {keys})")


def check_campaign_name(name: str) -> None:
    """A name must survive a URL path (`/api/admin/campaigns/NAME/stats`): printable, no surrounding
    spaces, and '/' only between non-empty segments other than '.' and '..' (which browsers resolve)."""
    if not name or len(name) > 200:
        raise ConfigError("--campaign: give a name of 1 to 200 characters")
    if not name.isprintable() or name != name.strip():
        raise ConfigError(f"--campaign {name!r}: a name must be printable, with no spaces at either end")
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise ConfigError(f"--campaign {name!r}: '/' may only separate parts that are neither empty nor . or ..")


def _text(value: Any, name: str, path: str, line: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{name!r} must be a non-empty string", path, line)
    if not storable(value):
        raise DataError(f"{name!r} contains a NUL or an unpaired surrogate character, which the store "
                        "cannot hold; remove it", path, line)
    return value


def _model(value: Any, name: str, path: str, line: int) -> str:
    """The checkpoint a response came from, as the store keeps it (at most 500 characters)."""
    text = str(value)
    if len(text) > 500 or not storable(text):
        raise DataError(f"{name!r} must be at most 500 characters, with no NUL", path, line)
    return text


def _rows(path: str) -> list[tuple[int, Any]]:
    """`read_jsonl`, with a file that is not UTF-8 reported at its first bad line."""
    try:
        return read_jsonl(path)
    except UnicodeDecodeError as exc:
        with open(path, "rb") as fh:
            line = next((n for n, raw in enumerate(fh, start=1) if not _is_utf8(raw)), None)
        raise DataError(f"not UTF-8 text ({exc.reason}); save the file as UTF-8", path, line) from None


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_responses(path: str | Path, skipped: list[str] | None = None) -> list[ResponseGroup]:
    """Group a responses file by prompt, keeping first-seen order; duplicates are dropped.
    Blank completions (a model may sample an immediate end of text) are left out, their file:line
    appended to `skipped`; anything else malformed is a DataError."""
    path = str(path)
    groups: dict[str, ResponseGroup] = {}
    for line, row in _rows(path):
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", path, line)
        prompt = _text(row.get("prompt"), "prompt", path, line)
        group = groups.setdefault(prompt, ResponseGroup(prompt, where=f"{path}:{line}"))
        if "responses" in row:
            responses = row["responses"]
            if not isinstance(responses, list) or not responses:
                raise DataError("'responses' must be a non-empty list of strings", path, line)
            models = row.get("models") or [str(row.get("model", ""))] * len(responses)
            if not isinstance(models, list) or len(models) != len(responses):
                raise DataError("'models' must be a list as long as 'responses'", path, line)
            for i, (text, model) in enumerate(zip(responses, models)):
                group.responses.append((_text(text, f"responses[{i}]", path, line),
                                        _model(model, f"models[{i}]", path, line), i))
        elif "completion" in row:
            if isinstance(row["completion"], str) and not row["completion"].strip():
                if skipped is not None:
                    skipped.append(f"{path}:{line}")
                continue
            index = row.get("index")
            if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
                raise DataError(f"'index' must be an integer, got {index!r}", path, line)
            group.responses.append((_text(row["completion"], "completion", path, line),
                                    _model(row.get("model", ""), "model", path, line), index))
        else:
            raise DataError("expected a 'completion' (one response per line, as `rlhfkit sample` writes) "
                            "or a 'responses' list", path, line)
    for group in groups.values():
        seen: set[str] = set()
        group.responses = [r for r in group.responses if not (r[0] in seen or seen.add(r[0]))]
    usable = [g for g in groups.values() if len(g.responses) >= 2]
    if not usable:
        raise DataError("no prompt has two different responses to compare; sample with --num-samples 2 "
                        "or more", path)
    return usable


def read_gold(path: str | Path) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) rows of a preference file used as gold tasks."""
    path = str(path)
    out = []
    for line, row in _rows(path):
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", path, line)
        prompt, chosen, rejected = (_text(row.get(n), n, path, line) for n in ("prompt", "chosen", "rejected"))
        if chosen == rejected:
            raise DataError("'chosen' and 'rejected' are identical", path, line)
        out.append((prompt, chosen, rejected))
    return out


def task_slices(n: int, k: int) -> list[list[int]]:
    """Which response indices go together: all pairs for k == 2, else chunks of k (last >= 2)."""
    if k == 2:
        return [list(pair) for pair in itertools.combinations(range(n), 2)]
    chunks = [list(range(s, min(s + k, n))) for s in range(0, n, k)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks[-2].extend(chunks.pop())
    return chunks


def group_tasks(group: ResponseGroup, k: int) -> list[tuple[list[int], dict[str, Any] | None]]:
    """The tasks of one prompt: the selected ones (with their selection record), else all `task_slices`."""
    if group.tasks is not None:
        return [(list(indices), selection) for indices, selection in group.tasks]
    return [(indices, None) for indices in task_slices(len(group.responses), k)]


def select_tasks(groups: list[ResponseGroup], k: int, strategy: str, budget: int,
                 head_rewards: list[list[list[float]]] | None = None, max_per_prompt: int = 0,
                 seed: int = 0, noise: float = 0.0) -> list[ResponseGroup]:
    """Pick `budget` tasks from the pool of every k-subset of each prompt's responses, by `strategy`
    (uncertainty and bald score an annotator who answers at random with probability `noise`).

    `head_rewards[g][j]` holds the H ensemble heads' rewards of response j of group g (None is only
    allowed for `random`). At most `max_per_prompt` tasks per prompt when it is > 0. Returns the
    groups that got a task, each with `tasks` set, in their original order."""
    pool = [(g, indices) for g, group in enumerate(groups) for indices in candidate_tuples(len(group.responses), k)]
    if head_rewards is None:
        if strategy != "random":
            raise ConfigError(f"--select {strategy} needs a reward model to score the pool (--reward-model)")
        candidates = [[[0.0] * len(indices)] for _, indices in pool]
    else:
        candidates = [[[head_rewards[g][j][h] for j in indices] for h in range(len(head_rewards[g][0]))]
                      for g, indices in pool]  # (H, k) per candidate
    try:
        scores = strategy_scores(strategy, candidates, seed=seed, noise=noise)
    except ValueError as exc:
        raise ConfigError(f"--select: {exc}") from None
    picked = select_best(scores, budget, groups=[g for g, _ in pool], max_per_group=max_per_prompt)
    chosen: dict[int, list[tuple[list[int], dict[str, Any]]]] = {}
    for i in sorted(picked):
        g, indices = pool[i]
        chosen.setdefault(g, []).append((list(indices), {"strategy": strategy, "score": scores[i]}))
    return [ResponseGroup(groups[g].prompt, groups[g].responses, groups[g].where, tasks=chosen[g])
            for g in sorted(chosen)]


def create_campaign(store: Store, spec: CampaignSpec, groups: list[ResponseGroup],
                    gold: list[tuple[str, str, str]] | None = None, batch_tasks: int = BATCH_TASKS,
                    progress: Callable[[int, int], None] | None = None,
                    replace_unfinished: bool = False) -> dict[str, int]:
    """Write the campaign, its prompts, responses and tasks; returns counts for the summary.

    The rows go in write transactions of about `batch_tasks` tasks each (a prompt's tasks are never
    split), so a server on the same store waits for one batch at most, never for the whole campaign;
    on SQLite the writer pauses between batches so that waiting requests get the lock. The campaign
    is hidden (`ready` false: not listed, not served) until its last batch is in; if writing fails,
    what was written is deleted (a killed writer leaves it unfinished: `replace_unfinished` deletes it
    first). `progress(tasks_written, tasks_total)` is called between batches."""
    spec.validate()
    total = sum(len(group_tasks(g, spec.k)) for g in groups) + len(gold or [])
    campaign_id = _claim_name(store, spec, replace_unfinished)
    counts = {"prompts": 0, "responses": 0, "tasks": 0, "gold": 0}
    prompt_ids: dict[str, int] = {}
    gold_batches = [(gold or [])[start:start + batch_tasks] for start in range(0, len(gold or []), batch_tasks)]
    try:
        for n, batch in enumerate([*_batches(groups, spec.k, batch_tasks), *gold_batches]):
            if n:
                _between_batches(store, progress, counts["tasks"] + counts["gold"], total)
            with store.write() as session:
                if isinstance(batch[0], ResponseGroup):
                    _write_groups(session, campaign_id, spec, batch, prompt_ids, counts)
                else:
                    _write_gold(session, campaign_id, batch, prompt_ids, counts)
        with store.write() as session:
            session.execute(update(Campaign).where(Campaign.id == campaign_id).values(ready=True))
    except BaseException:
        with store.write() as session:  # foreign keys cascade to prompts, responses, tasks, items
            session.execute(delete(Campaign).where(Campaign.id == campaign_id))
        raise
    counts["prompts"] = len(prompt_ids)
    return counts


def _claim_name(store: Store, spec: CampaignSpec, replace_unfinished: bool = False) -> int:
    """Insert the (hidden) campaign row; a name already taken is a ConfigError, also when its campaign
    is unfinished (being written, or left by a killed writer), unless `replace_unfinished`."""
    taken = ConfigError(f"campaign {spec.name!r} already exists in this store; pick another --campaign name")
    try:
        with store.write() as session:
            existing = session.execute(select(Campaign.id, Campaign.ready).where(Campaign.name == spec.name)).first()
            if existing is not None and not existing.ready and replace_unfinished:
                session.execute(delete(Campaign).where(Campaign.id == existing.id))
            elif existing is not None and not existing.ready:
                raise ConfigError(f"campaign {spec.name!r} already exists, unfinished: another `rlhfkit campaign` is "
                                  f"writing it, or one was killed; if none is running, add --replace-unfinished")
            elif existing is not None:
                raise taken
            campaign = Campaign(name=spec.name, guidelines=spec.guidelines, rubric=spec.rubric, k=spec.k,
                                overlap=spec.overlap, require_rationale=spec.require_rationale,
                                lease_seconds=spec.lease_seconds, ready=False)
            session.add(campaign)
            session.flush()
            return campaign.id
    except IntegrityError:  # PostgreSQL: a concurrent creator inserted the same name first
        raise taken from None


def _batches(groups: list[ResponseGroup], k: int, batch_tasks: int) -> Iterator[list[ResponseGroup]]:
    batch: list[ResponseGroup] = []
    size = 0
    for group in groups:
        batch.append(group)
        size += len(group_tasks(group, k))
        if size >= batch_tasks:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _between_batches(store: Store, progress: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
    if store.is_sqlite:
        # SQLite's busy handler retries a waiting writer every 100 ms at most: a gap that long lets
        # the server's requests in before the next batch takes the lock again
        time.sleep(BATCH_PAUSE_S)


def _insert_ids(session: Session, model: type, rows: list[dict[str, Any]]) -> list[int]:
    """INSERT many rows in one statement per batch of the driver; their new ids, in the rows' order."""
    if not rows:
        return []
    return list(session.scalars(insert(model).returning(model.id, sort_by_parameter_order=True), rows))


def _prompt_ids(session: Session, campaign_id: int, texts: list[str], prompt_ids: dict[str, int]) -> None:
    new = [t for t in dict.fromkeys(texts) if t not in prompt_ids]
    ids = _insert_ids(session, Prompt, [{"campaign_id": campaign_id, "text": t, "meta": {}} for t in new])
    prompt_ids.update(zip(new, ids))


def _write_groups(session: Session, campaign_id: int, spec: CampaignSpec, groups: list[ResponseGroup],
                  prompt_ids: dict[str, int], counts: dict[str, int]) -> None:
    # 1) prompts, 2) responses, 3) tasks, 4) the tasks' slots: one multi-row INSERT each
    _prompt_ids(session, campaign_id, [g.prompt for g in groups], prompt_ids)
    response_ids = iter(_insert_ids(session, Response, [
        {"prompt_id": prompt_ids[g.prompt], "text": t, "model": m, "sample_index": i}
        for g in groups for t, m, i in g.responses]))
    per_group = [[next(response_ids) for _ in g.responses] for g in groups]
    slices = [(prompt_ids[g.prompt], [ids[i] for i in indices], selection)
              for g, ids in zip(groups, per_group) for indices, selection in group_tasks(g, spec.k)]
    task_ids = _insert_ids(session, Task, [{"campaign_id": campaign_id, "prompt_id": prompt_id, "overlap": spec.overlap,
                                            "n_assigned": 0, "selection": selection}
                                           for prompt_id, _, selection in slices])
    session.execute(insert(TaskItem), [{"task_id": task_id, "slot": slot, "response_id": response_id}
                                       for task_id, (_, ids, _) in zip(task_ids, slices)
                                       for slot, response_id in enumerate(ids)])
    counts["responses"] += sum(len(ids) for ids in per_group)
    counts["tasks"] += len(slices)


def _write_gold(session: Session, campaign_id: int, gold: list[tuple[str, str, str]], prompt_ids: dict[str, int],
                counts: dict[str, int]) -> None:
    """Gold tasks: (prompt, chosen, rejected) as a pair whose known ranking is [chosen, rejected]."""
    _prompt_ids(session, campaign_id, [prompt for prompt, _, _ in gold], prompt_ids)
    ids = _insert_ids(session, Response, [{"prompt_id": prompt_ids[prompt], "text": text, "model": "gold"}
                                          for prompt, chosen, rejected in gold for text in (chosen, rejected)])
    pairs = [ids[i:i + 2] for i in range(0, len(ids), 2)]
    task_ids = _insert_ids(session, Task, [{"campaign_id": campaign_id, "prompt_id": prompt_ids[prompt],
                                            "overlap": GOLD_OVERLAP, "n_assigned": 0, "gold": pair}
                                           for (prompt, _, _), pair in zip(gold, pairs)])
    session.execute(insert(TaskItem), [{"task_id": task_id, "slot": slot, "response_id": response_id}
                                       for task_id, pair in zip(task_ids, pairs) for slot, response_id in enumerate(pair)])
    counts["gold"] += len(gold)
