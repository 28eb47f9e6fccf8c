"""Export a campaign's judgments as preference JSONL (TRL's columns) or rankings.

    rows = preference_rows(store, "demo", method="dawid-skene", tie_policy="drop")
    write_jsonl("prefs.jsonl", rows)      # consumed by `rlhfkit rm --data` and `rlhfkit dpo --data`

One row per compared pair that the aggregation settles (`method` "majority" or "dawid-skene"):
    {"prompt", "chosen", "rejected",
     "margin":           P(chosen) − P(rejected): vote shares for majority, posteriors for Dawid–Skene,
     "label_confidence": soft label P(chosen is better | a preference), in [0.5, 1]; where an AI judge
                         gave probabilities (judgments.probabilities), their mean (`soft_vote`),
     "annotator":        the annotators who preferred `chosen`, comma-separated,
     "rationale":        their rationales, one paragraph each ("name [A=chosen, B=rejected]: text",
                         since each annotator saw the pair in their own random order),
     "criteria":         {criterion: "chosen" | "rejected" | "tie"}, the majority per criterion,
     "votes":            {"first", "second", "tie", "both_bad"} counts, for audits}
With `method="none"` every judgment is its own row (annotator, rationale, criteria of that person).
`ranking_rows` writes K-wise judgments as {"prompt", "responses", "ranking", "annotator", ...}.
Pairs judged "tie" or "both bad" by the aggregate, and gold tasks, are not exported.
Left out: conversational (message-list) output; the store holds plain strings.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from rlhfkit.errors import DataError
from rlhfkit.feedback.aggregate import METHODS
from rlhfkit.feedback.service import LETTERS, get_campaign, load_judgments, pair_label, pair_votes
from rlhfkit.feedback.store import Judgment, Store, Task

EXPORT_METHODS = ("majority", "dawid-skene", "none")


def write_rows(path: str | Path, rows: list[dict[str, Any]], flag: str = "--out") -> int:
    """Write JSONL through a temp file renamed over `path`, so a reader never sees half a file; on
    any failure the temp file is removed and the error names the path (`flag` is the option it came from)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{flag} is a folder; give a file name such as {path / 'preferences.jsonl'}", str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("x", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {flag}: {exc.strerror or exc}", str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(rows)


def _criteria_for(judgment: Judgment, chosen: int, rejected: int) -> dict[str, str]:
    out = {}
    for key, value in (judgment.criteria or {}).items():
        out[key] = "tie" if value == "tie" else "chosen" if value == chosen else "rejected" if value == rejected else "tie"
    return out


def _rationale(judgment: Judgment, chosen: int, rejected: int) -> str:
    """The rationale prefixed by who wrote it and which letters they saw: "annotator-1 [A=rejected, B=chosen]: ..."."""
    order = judgment.assignment.order
    seen = sorted((order.index(rid), name) for rid, name in ((chosen, "chosen"), (rejected, "rejected")))
    letters = ", ".join(f"{LETTERS[pos].upper()}={name}" for pos, name in seen)
    return f"{judgment.annotator.name} [{letters}]: {judgment.rationale}"


def _majority_criteria(judgments: list[Judgment], chosen: int, rejected: int) -> dict[str, str]:
    per_key: dict[str, Counter] = {}
    for j in judgments:
        for key, value in _criteria_for(j, chosen, rejected).items():
            per_key.setdefault(key, Counter())[value] += 1
    out = {}
    for key, counts in per_key.items():
        top = max(counts.values())
        leaders = [v for v, c in counts.items() if c == top]
        out[key] = leaders[0] if len(leaders) == 1 else "tie"
    return out


def preference_rows(store: Store, campaign_name: str, method: str = "majority", tie_policy: str = "drop",
                    seed: int = 0) -> list[dict[str, Any]]:
    with store.read() as session:
        campaign = get_campaign(session, campaign_name)
        tasks, judgments = load_judgments(session, campaign)
    by_task = {t.id: t for t in tasks}
    texts = {item.response_id: item.response.text for t in tasks for item in t.items}
    if method == "none":
        return _single_rows(judgments, by_task, texts)
    votes = pair_votes(tasks, judgments)
    aggregates = METHODS[method](votes, tie_policy=tie_policy, seed=seed)
    judged: dict[int, list[Judgment]] = {}
    for j in judgments:
        judged.setdefault(j.task_id, []).append(j)
    rows = []
    for unit in sorted(aggregates):
        task_id, first, second = unit
        agg = aggregates[unit]
        if agg.label not in ("first", "second"):
            continue
        chosen, rejected = (first, second) if agg.label == "first" else (second, first)
        p_chosen = agg.p_first if agg.label == "first" else 1.0 - agg.p_first
        if any(j.probabilities and j.outcome == "ranked" for j in judged[task_id]):
            p_chosen = soft_vote(judged[task_id], first, second, chosen, rejected)
        supporters = [j for j in judged[task_id]
                      if pair_label(j.outcome, j.ranking, first, second) == agg.label]
        rows.append({
            "prompt": by_task[task_id].prompt.text,
            "chosen": texts[chosen],
            "rejected": texts[rejected],
            "margin": round(2 * p_chosen - 1, 6),
            "label_confidence": round(p_chosen, 6),
            "annotator": ",".join(j.annotator.name for j in supporters),
            "rationale": "\n\n".join(_rationale(j, chosen, rejected) for j in supporters if j.rationale),
            "criteria": _majority_criteria(supporters, chosen, rejected),
            "votes": {label: agg.votes.get(label, 0) for label in ("first", "second", "tie", "both_bad")},
        })
    return rows


def soft_vote(judgments: list[Judgment], first: int, second: int, chosen: int, rejected: int) -> float:
    """P(chosen is better) as the mean over the judgments that preferred one of the two of each one's
    P(chosen | chosen or rejected): an AI judge's soft label where it gave one, 1 or 0 for a person's
    choice (so with people only it is the vote share). Floored at 0.5: below it the soft evidence
    contradicts the aggregate's label, and the row says "no information" rather than the opposite."""
    shares = []
    for j in judgments:
        label = pair_label(j.outcome, j.ranking, first, second)
        if label not in ("first", "second"):  # ties, both bad, and an AI judge's skip (it deferred to people)
            continue
        soft = j.probabilities or {}
        if str(chosen) in soft and str(rejected) in soft and soft[str(chosen)] + soft[str(rejected)] > 0:
            shares.append(soft[str(chosen)] / (soft[str(chosen)] + soft[str(rejected)]))
        else:
            shares.append(1.0 if (label == "first") == (chosen == first) else 0.0)
    return max(0.5, sum(shares) / len(shares)) if shares else 0.5


def _single_rows(judgments: list[Judgment], by_task: dict[int, Task], texts: dict[int, str]) -> list[dict]:
    rows = []
    for j in judgments:
        task = by_task[j.task_id]
        if j.outcome != "ranked" or task.gold is not None:
            continue
        order = j.ranking
        for i, chosen in enumerate(order):
            for rejected in order[i + 1:]:
                confidence = soft_vote([j], chosen, rejected, chosen, rejected) if j.probabilities else 1.0
                rows.append({"prompt": task.prompt.text, "chosen": texts[chosen], "rejected": texts[rejected],
                             "margin": round(2 * confidence - 1, 6), "label_confidence": round(confidence, 6),
                             "annotator": j.annotator.name,
                             "rationale": _rationale(j, chosen, rejected) if j.rationale else "",
                             "criteria": _criteria_for(j, chosen, rejected)})
    return rows


def ranking_rows(store: Store, campaign_name: str) -> list[dict[str, Any]]:
    """One row per K-wise (or pairwise) ranked judgment, responses in the task's stored order."""
    with store.read() as session:
        campaign = get_campaign(session, campaign_name)
        tasks, judgments = load_judgments(session, campaign)
    by_task = {t.id: t for t in tasks}
    rows = []
    for j in judgments:
        task = by_task[j.task_id]
        if j.outcome != "ranked" or task.gold is not None:
            continue
        ids = task.response_ids
        rows.append({"prompt": task.prompt.text, "responses": [item.response.text for item in task.items],
                     "ranking": [ids.index(r) for r in j.ranking], "annotator": j.annotator.name,
                     "rationale": j.rationale})
    return rows
