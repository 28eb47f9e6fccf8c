"""Simulated annotators (the built-in task's rubric judges) fill a campaign the way people do.

    fill_campaign(store, "demo", panel(3, noise=0.1))                    # through the service layer
    fill_campaign_http("http://127.0.0.1:8000", "demo", tokens, panel)   # through the web API

Each simulated annotator asks for its next task, sees only what a person sees (prompt, responses
in shuffled order labelled a, b, ...), answers with `Annotator.compare` / `Annotator.rank` from
`rlhfkit.tasks.assistant`, and submits with a fresh idempotency key; they take turns until no task
is left for any of them. Left out: simulated skips, think-time delays.
"""

from __future__ import annotations

import uuid
from typing import Any

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


def simulated_annotator_id(store: Store, name: str) -> int:
    """The id of simulated annotator `name`, created on first use (its token is never needed)."""
    from sqlalchemy import select

    with store.write() as session:
        row = session.scalar(select(AnnotatorRow).where(AnnotatorRow.name == name))
        if row is None:
            row = AnnotatorRow(name=name, token_hash=hash_token(new_token()), simulated=True)
            session.add(row)
            session.flush()
        elif not row.simulated:
            raise service.ServiceError(409, f"annotator {name!r} is a person; pick another --name-prefix")
        return row.id


def fill_campaign(store: Store, campaign: str, annotators: list[Any], prefix: str = "",
                  max_judgments: int = 0) -> int:
    """Round-robin over `annotators` until the campaign has nothing left for them; returns judgments stored."""
    ids = [simulated_annotator_id(store, prefix + a.name) for a in annotators]
    active = list(zip(ids, annotators))
    stored = 0
    while active and (not max_judgments or stored < max_judgments):
        still = []
        for annotator_id, annotator in active:
            task = service.next_task(store, annotator_id, campaign)
            if task is None:
                continue
            service.submit(store, annotator_id, judgment_body(task, annotator))
            stored += 1
            still.append((annotator_id, annotator))
            if max_judgments and stored >= max_judgments:
                break
        active = still
    return stored


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
