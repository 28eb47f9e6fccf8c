"""Malformed input gets a 4xx with a JSON error, never a 500, and never reaches a table: one table of
requests, run through the real app against SQLite and against PostgreSQL (which refuses NUL bytes
and ids beyond its 32-bit INTEGER, where SQLite overflows at 2**63).

    pytest tests/feedback/test_malformed.py
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from feedback_helpers import ADMIN, synthetic_groups
from sqlalchemy import func, select

from rlhfkit.feedback import service
from rlhfkit.feedback.app import COOKIE, create_app
from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
from rlhfkit.feedback.store import Annotator, Judgment, Store

JSON = {"Content-Type": "application/json"}


def judgment(**fields) -> str:
    return json.dumps({"assignment": "{assignment}", "key": "abcdefgh-1", "outcome": "a", "rationale": "r",
                       **fields}).replace('"{assignment}"', "{assignment}")


# (name, method, path, who: annotator | admin | nobody | cookie, raw body or None, extra headers, status)
CASES = [
    ("assignment 2**63", "POST", "/api/judgments", "annotator", judgment(assignment=2**63), {}, 422),
    ("assignment -2**63-1", "POST", "/api/judgments", "annotator", judgment(assignment=-2**63 - 1), {}, 422),
    ("assignment 2**31 (over PostgreSQL's INTEGER)", "POST", "/api/judgments", "annotator",
     judgment(assignment=2**31), {}, 422),
    ("assignment 0", "POST", "/api/judgments", "annotator", judgment(assignment=0), {}, 422),
    ("assignment 1e400", "POST", "/api/judgments", "annotator", judgment().replace("{assignment}", "1e400"), {}, 422),
    ("assignment true", "POST", "/api/judgments", "annotator", judgment(assignment=True), {}, 422),
    ("NUL in the key", "POST", "/api/judgments", "annotator", judgment(key="abcdefgh\x00"), {}, 422),
    ("lone surrogate in the key", "POST", "/api/judgments", "annotator",
     judgment(key="abcdefgh").replace("abcdefgh", "abcdefgh\\ud800"), {}, 422),
    ("NUL in the rationale", "POST", "/api/judgments", "annotator", judgment(rationale="why\x00"), {}, 422),
    ("lone surrogate in the rationale", "POST", "/api/judgments", "annotator",
     judgment(rationale="WHY").replace("WHY", "\\udfff"), {}, 422),
    ("NUL in the outcome", "POST", "/api/judgments", "annotator", judgment(outcome="a\x00"), {}, 422),
    ("NUL in a criterion", "POST", "/api/judgments", "annotator", judgment(criteria={"clarity\x00": "a"}), {}, 422),
    ("NaN seconds", "POST", "/api/judgments", "annotator", judgment().replace('"r"', '"r", "seconds": NaN'), {}, 422),
    ("nested 3000 deep", "POST", "/api/judgments", "annotator", "[" * 3000 + "]" * 3000, {}, 400),
    ("NUL in the campaign of GET /api/task", "GET", "/api/task?campaign=c%00", "annotator", None, {}, 422),
    ("bad UTF-8 in the campaign", "GET", "/api/task?campaign=%ff%fe", "annotator", None, {}, 404),
    ("no campaign", "GET", "/api/task", "annotator", None, {}, 422),
    ("NUL in stats' campaign", "GET", "/api/admin/campaigns/c%00/stats", "admin", None, {}, 422),
    ("NUL in export's campaign", "GET", "/api/admin/campaigns/c%00/export", "admin", None, {}, 422),
    ("NUL in export's method", "GET", "/api/admin/campaigns/c/export?method=majority%00", "admin", None, {}, 422),
    ("NUL in an annotator name", "POST", "/api/admin/annotators", "admin", json.dumps({"name": "eve\x00"}), {}, 422),
    ("lone surrogate in an annotator name", "POST", "/api/admin/annotators", "admin", '{"name": "eve\\ud800"}', {}, 422),
    ("lone surrogate in a login token", "POST", "/api/login", "nobody", '{"token": "\\ud800"}', {}, 422),
    ("NUL in a login token", "POST", "/api/login", "nobody", json.dumps({"token": "x\x00"}), {}, 401),
    ("non-ASCII CSRF header", "POST", "/api/judgments", "cookie", judgment(), {"X-CSRF-Token": b"\xe9\xff"}, 403),
    ("non-ASCII bearer token", "POST", "/api/judgments", "nobody", judgment(), {"Authorization": b"Bearer \xe9"}, 401),
    ("unknown route", "GET", "/api/nothing-here", "annotator", None, {}, 404),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory) -> Iterator[dict]:
    """One store per backend for the whole table (nothing in it may change the store)."""
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("malformed") / "f.db")
    else:
        import psycopg

        server = request.getfixturevalue("postgres")
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "t_malformed"')
            conn.execute('CREATE DATABASE "t_malformed"')
        db = server + "/t_malformed"
    store = Store.open(db)
    store.set_admin_token(ADMIN)
    create_campaign(store, CampaignSpec(name="c"), synthetic_groups(2))
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(create_app(store), raise_server_exceptions=False)
    task = client.get("/api/task?campaign=c", headers={"Authorization": f"Bearer {token}"}).json()
    client.post("/api/login", json={"token": token})
    session_id = client.cookies.get(COOKIE)
    yield {"store": store, "client": client, "token": token, "assignment": task["assignment"], "session": session_id}
    store.dispose()


@pytest.mark.parametrize("name, method, path, who, body, headers, status", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_a_4xx(api, name, method, path, who, body, headers, status):
    client: TestClient = api["client"]
    client.cookies.clear()
    sent = dict(JSON)
    if who in ("annotator", "admin"):
        sent["Authorization"] = f"Bearer {api['token'] if who == 'annotator' else ADMIN}"
    elif who == "cookie":
        client.cookies.set(COOKIE, api["session"])
    sent.update(headers)
    content = body.replace("{assignment}", str(api["assignment"])) if body else None
    res = client.request(method, path, headers=sent, content=content)
    assert res.status_code == status, res.text
    assert res.headers["content-type"].startswith("application/json") and res.json()["error"]
    with api["store"].read() as session:  # nothing was written: no judgment, no new annotator
        assert session.scalar(select(func.count(Judgment.id))) == 0
        assert list(session.scalars(select(Annotator.name))) == ["alice"]
