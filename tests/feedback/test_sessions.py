"""Sessions and scoping through the real app, on SQLite and PostgreSQL: the cookie holds a server-side
session id that logout revokes; logout needs the CSRF token; a login link over someone else's session
asks first; annotators see and judge only their campaigns; a new token works, and the old one stops,
at once.

    pytest tests/feedback/test_sessions.py
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from feedback_helpers import ADMIN, synthetic_groups

from rlhfkit.feedback import service
from rlhfkit.feedback.app import COOKIE, create_app
from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
from rlhfkit.feedback.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[Store]:
    db = str(tmp_path / "f.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = Store.open(db)
    s.set_admin_token(ADMIN)
    for name in ("a", "b"):
        create_campaign(s, CampaignSpec(name=name, overlap=2), synthetic_groups(2))
    yield s
    s.dispose()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def csrf_of(client: TestClient) -> str:
    page = client.get("/annotate").text
    return page.split('name="csrf-token" content="')[1].split('"')[0]


def test_the_cookie_is_a_session_that_logout_revokes(store):
    token = service.add_annotator(store, "alice", campaigns=["a"])
    client = TestClient(create_app(store))
    assert client.post("/api/login", json={"token": token}).status_code == 200
    session_id = client.cookies.get(COOKIE)
    assert session_id and token not in session_id
    assert client.get("/api/me").json()["annotator"] == "alice"
    stranger = TestClient(create_app(store))
    stranger.cookies.set(COOKIE, token)  # the long-lived token is no cookie
    assert stranger.get("/api/me").status_code == 401
    res = client.post("/api/logout", json={}, headers={"X-CSRF-Token": csrf_of(client)})
    assert res.status_code == 200
    replay = TestClient(create_app(store))
    replay.cookies.set(COOKIE, session_id)  # a copy of the old cookie
    assert replay.get("/api/me").status_code == 401
    assert replay.get("/annotate", follow_redirects=False).status_code == 303
    assert client.get("/api/me", headers=bearer(token)).status_code == 200  # the token itself still works


@pytest.mark.parametrize("request_kwargs", [
    {"data": {"x": "1"}},                                     # a cross-site <form> post
    {"json": {}},                                             # JSON without the page's CSRF token
    {"json": {}, "headers": {"X-CSRF-Token": "0" * 64}},      # a made-up one
], ids=["form", "no token", "wrong token"])
def test_logout_needs_the_csrf_token(store, request_kwargs):
    token = service.add_annotator(store, "alice", campaigns=["a"])
    client = TestClient(create_app(store))
    client.post("/api/login", json={"token": token})
    res = client.post("/api/logout", **request_kwargs)
    assert res.status_code in (403, 415) and "error" in res.json()
    assert client.get("/api/me").json()["annotator"] == "alice"  # still logged in


def test_a_login_link_over_another_identity_asks_first(store):
    alice = service.add_annotator(store, "alice", campaigns=["a"])
    bob = service.add_annotator(store, "bob", campaigns=["a"])
    client = TestClient(create_app(store))
    client.post("/api/login", json={"token": alice})
    assert "You are logged in as <strong>alice</strong>" in client.get("/login").text
    res = client.post("/api/login", json={"token": bob})
    assert res.status_code == 409 and res.json()["code"] == "logged_in_as" and "alice" in res.json()["error"]
    assert client.get("/api/me").json()["annotator"] == "alice"
    assert client.post("/api/login", json={"token": alice}).status_code == 200  # one's own link: no question
    old = client.cookies.get(COOKIE)
    assert client.post("/api/login", json={"token": bob, "replace": True}).status_code == 200
    assert client.get("/api/me").json()["annotator"] == "bob"
    replay = TestClient(create_app(store))
    replay.cookies.set(COOKIE, old)  # switching ended alice's session
    assert replay.get("/api/me").status_code == 401


def test_annotators_see_and_judge_only_their_campaigns(store):
    """alice was added to "a" only: "b" does not exist for her (404 like a missing campaign), her page
    lists "a" alone; carol, store-wide, sees both; the admin adds dora to "b" over the API."""
    alice = service.add_annotator(store, "alice", campaigns=["a"])
    carol = service.add_annotator(store, "carol", all_campaigns=True)
    client = TestClient(create_app(store))
    assert client.get("/api/task?campaign=a", headers=bearer(alice)).status_code == 200
    res = client.get("/api/task?campaign=b", headers=bearer(alice))
    assert res.status_code == 404 and res.json()["error"] == "no campaign named 'b'"
    client.post("/api/login", json={"token": alice})
    page = client.get("/annotate").text
    assert '<option value="a">' in page and '<option value="b">' not in page
    assert client.get("/api/task?campaign=b", headers=bearer(carol)).status_code == 200
    assert service.list_campaigns(store, service.annotator_for_token(store, carol).id) == ["a", "b"]
    res = client.post("/api/admin/annotators", json={"name": "dora", "campaigns": ["b"]}, headers=bearer(ADMIN))
    dora = res.json()["token"]
    assert client.get("/api/task?campaign=b", headers=bearer(dora)).status_code == 200
    assert client.get("/api/task?campaign=a", headers=bearer(dora)).status_code == 404
    missing = client.post("/api/admin/annotators", json={"name": "erin", "campaigns": ["zzz"]}, headers=bearer(ADMIN))
    assert missing.status_code == 404


def test_a_new_token_takes_effect_at_once(store):
    """A simulated annotator's token is replaced (as `rlhfkit annotate --url` does): the old token and
    the sessions made with it stop working on the next request, without a restart; so do the admin's."""
    client = TestClient(create_app(store))
    first = client.post("/api/admin/annotators", json={"name": "sim-0", "simulated": True, "campaigns": ["a"]},
                        headers=bearer(ADMIN)).json()["token"]
    assert client.get("/api/me", headers=bearer(first)).status_code == 200  # the server has seen it
    browser = TestClient(create_app(store))
    browser.post("/api/login", json={"token": first})
    second = client.post("/api/admin/annotators", json={"name": "sim-0", "simulated": True, "campaigns": ["a"]},
                         headers=bearer(ADMIN)).json()["token"]
    assert client.get("/api/me", headers=bearer(first)).status_code == 401
    assert browser.get("/api/me").status_code == 401
    assert client.get("/api/me", headers=bearer(second)).json()["annotator"] == "sim-0"
    admin = TestClient(create_app(store))
    admin.post("/api/login", json={"token": ADMIN})
    assert admin.get("/api/admin/campaigns").status_code == 200
    store.set_admin_token("a-new-admin-token-0123456789")
    assert admin.get("/api/admin/campaigns").status_code == 401
    assert client.get("/api/admin/campaigns", headers=bearer(ADMIN)).status_code == 401


def test_the_campaign_command_scopes_its_annotators(tmp_path, capsys):
    """`rlhfkit campaign --annotators alice` makes alice for that campaign; naming her again for a
    second campaign adds her to it, with her old link."""
    from rlhfkit.cli import main

    db = str(tmp_path / "f.db")
    data = tmp_path / "s.jsonl"
    data.write_text('{"prompt": "p", "responses": ["x", "y"]}\n')
    for name in ("one", "two", "three"):
        assert main(["campaign", "--db", db, "--data", str(data), "--campaign", name,
                     "--annotators", "alice" if name != "two" else "bob"]) == 0
    assert "alice: annotator 'alice' already exists (kept, and added to this campaign" in capsys.readouterr().out
    from sqlalchemy import select

    from rlhfkit.feedback.store import Annotator

    store = Store.open(db)
    with store.read() as session:
        ids = dict(session.execute(select(Annotator.name, Annotator.id)).all())
    assert service.list_campaigns(store, ids["alice"]) == ["one", "three"]
    assert service.list_campaigns(store, ids["bob"]) == ["two"]
    store.dispose()
