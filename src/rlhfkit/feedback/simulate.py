"""Simulated annotators (the built-in task's rubric judges) fill a campaign the way people do.

    fill_campaign(store, "demo", panel(3, noise=0.1))                    # through the service layer
    fill_campaign_http("http://127.0.0.1:8000", "demo", tokens, panel)   # through the web API

Each simulated annotator asks for its next task, sees only what a person sees (prompt, responses
in shuffled order labelled a, b, ...), answers with `SimulatedAnnotator.compare` / `.rank` from
`rlhfkit.tasks.assistant`, and submits with a fresh idempotency key; they take turns until no task
is left for any of them. `fill_campaign` runs the service's own steps (`claim_task`, `task_payload`,
`store_judgment`: the checks and rows of `next_task` and `submit`), many turns per transaction on
SQLite. Left out: simulated skips, think-time delays.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlhfkit.feedback import service
from rlhfkit.feedback.store import Annotator as AnnotatorRow
from rlhfkit.feedback.store import Store, hash_token, new_token


def judgment_body(task: dict[str, Any], annotator: Any) -> dict[str, Any]:
    """Ask a simulated annotator about one task payload; return the body to POST to /api/judgments."""
    texts, letters = task["responses"], task["labels"]
    rubric_keys = {c["key"] for c in task["rubric"]}
    if len(texts) == 2:
        judgment = annotator.compare(task["prompt"], texts[0], texts[1])
        body: dict[str, Any] = {"outcome": judgment.outcome}
    else:
        judgment = annotator.rank(task["prompt"], texts)
        ranking = [letters[i] for i in judgment.ranking]
        body = {"outcome": ranking[0], "ranking": ranking}
    body["criteria"] = {k: v for k, v in judgment.criteria.items() if k in rubric_keys}
    body["rationale"] = judgment.rationale
    body["seconds"] = judgment.seconds
    body["assignment"] = task["assignment"]
    body["key"] = uuid.uuid4().hex
    return body


def simulated_annotator_id(store: Store, name: str, campaign: str | None = None) -> int:
    """The id of simulated annotator `name`, created on first use (its token is never needed), and
    added to `campaign`."""
    from sqlalchemy import select

    with store.write() as session:
        row = session.scalar(select(AnnotatorRow).where(AnnotatorRow.name == name))
        if row is None:
            row = AnnotatorRow(name=name, token_hash=hash_token(new_token()), simulated=True)
            session.add(row)
            session.flush()
        elif not row.simulated:
            raise service.ServiceError(409, f"annotator {name!r} is a person; pick another --name-prefix")
        if campaign is not None:
            service.join_campaigns(session, row.id, [campaign])
        return row.id


JUDGMENTS_PER_TRANSACTION = 100


def fill_campaign(store: Store, campaign: str, annotators: list[Any], prefix: str = "",
                  max_judgments: int = 0, seed: int | None = None) -> int:
    """Round-robin over `annotators` until the campaign has nothing left for them; returns judgments stored.

    `seed` fixes which task each turn claims and the order its responses are shown in, so seeded
    annotators on a fresh campaign give the same judgments every run (None: a fresh random order).

    A turn is what `service.next_task` and `service.submit` do for the web app (the same functions,
    so the same checks and rows, without the progress counts nobody reads here), but on SQLite up to
    JUDGMENTS_PER_TRANSACTION turns share one write transaction: SQLite lets one writer in at a time
    anyway, and each transaction pays a commit and a look for open assignments that reads all of the
    annotators' assignments (one turn per transaction is 3x slower on the quickstart's campaign).
    A batch of 100 holds the write lock for about 0.15 s on a 2-core machine. On PostgreSQL each
    turn keeps its own transaction, so a filler never holds the row locks of many tasks at once
    (two fillers doing that could deadlock)."""
    ids = [simulated_annotator_id(store, prefix + a.name, campaign) for a in annotators]
    per_transaction = JUDGMENTS_PER_TRANSACTION if store.is_sqlite else 1
    rng = random.Random(seed)
    active, turn, stored = list(zip(ids, annotators)), 0, 0
    while active and (not max_judgments or stored < max_judgments):
        limit = min(per_transaction, max_judgments - stored) if max_judgments else per_transaction
        for _attempt in range(3):
            try:
                with store.write() as session:
                    taken = _take_turns(session, campaign, active, turn, limit, rng, store.clock())
                break
            except IntegrityError:
                continue  # someone judged as one of these annotators meanwhile: take the turns again
        else:
            raise service.ServiceError(503, "the store is busy; try again")
        active, turn, judged = taken
        stored += judged
    return stored


def _take_turns(session: Session, campaign_name: str, active: list[tuple[int, Any]], turn: int, limit: int,
                rng: random.Random, now: datetime) -> tuple[list[tuple[int, Any]], int, int]:
    """Up to `limit` judgments in one transaction, the round-robin going on from `active[turn]`.
    Returns who still gets tasks, whose turn is next, and how many judgments were stored."""
    campaign = service.get_campaign(session, campaign_name)
    service.release_expired(session, now)  # a person's lapsed lease frees a slot for the panel too
    expires_at = service.lease_end(campaign, now)
    # read once per transaction: on SQLite no one else writes until it ends; on PostgreSQL it is one turn
    resumed = service.open_assignments(session, campaign.id, [annotator_id for annotator_id, _ in active])
    active, judged = list(active), 0
    while active and judged < limit:
        turn %= len(active)
        annotator_id, annotator = active[turn]
        if resumed.get(annotator_id):
            assignment = resumed[annotator_id].pop(0)
        else:
            assignment = service.claim_task(session, campaign, annotator_id, rng, expires_at)
        if assignment is None:  # nothing left for this one: the next in line takes the turn
            del active[turn]
            continue
        task = service.task_payload(session, campaign, assignment)
        service.store_judgment(session, annotator_id, judgment_body(task, annotator), now)
        judged += 1
        turn += 1
    return active, turn, judged


def fill_campaign_http(url: str, campaign: str, tokens: list[str], annotators: list[Any],
                       max_judgments: int = 0, timeout: float = 30.0) -> int:
    """The same loop through the HTTP API, with one bearer token per simulated annotator."""
    import httpx

    stored = 0
    clients = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {t}"}, timeout=timeout) for t in tokens]
    try:
        active = list(zip(clients, annotators))
        while active and (not max_judgments or stored < max_judgments):
            still = []
            for client, annotator in active:
                res = client.get("/api/task", params={"campaign": campaign})
                if res.status_code == 204:
                    continue
                if res.status_code != 200:
                    raise service.ServiceError(res.status_code, f"GET /api/task: {res.text}")
                res = client.post("/api/judgments", json=judgment_body(res.json(), annotator))
                if res.status_code != 200:
                    raise service.ServiceError(res.status_code, f"POST /api/judgments: {res.text}")
                stored += 1
                still.append((client, annotator))
                if max_judgments and stored >= max_judgments:
                    break
            active = still
    finally:
        for client in clients:
            client.close()
    return stored
