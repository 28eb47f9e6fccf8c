"""The web API in-process (FastAPI's TestClient over a real SQLite store): auth, CSRF, limits, XSS.

    pytest tests/feedback/test_api.py
"""

import json

import httpx
import pytest
from fastapi.testclient import TestClient
from feedback_helpers import ADMIN
from sqlalchemy import func, select

from rlhfkit.data.records import load_records
from rlhfkit.feedback import service
from rlhfkit.feedback.app import COOKIE, create_app
from rlhfkit.feedback.store import Judgment

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


@pytest.fixture
def app(store, make_campaign):
    make_campaign(store, n_prompts=3, overlap=2, texts={0: [XSS + " left", "right </textarea>"]})
    return create_app(store, max_body=4096)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_login_cookie_and_pages(app, store):
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(app)
    assert client.get("/annotate", follow_redirects=False).status_code == 303
    assert client.post("/api/login", json={"token": "nope"}).status_code == 401
    res = client.post("/api/login", json={"token": token})
    assert res.status_code == 200 and res.json() == {"next": "/annotate"}
    cookie = res.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = client.get("/annotate")
    assert page.status_code == 200 and 'name="csrf-token"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text.replace('<script src="/static/', "")  # no inline script at all
    assert client.get("/admin", follow_redirects=False).status_code == 303  # an annotator is no admin
    admin = TestClient(app)
    assert admin.post("/api/login", json={"token": ADMIN}).json() == {"next": "/admin"}
    assert admin.get("/admin").status_code == 200


def test_annotator_cannot_reach_admin_or_others(app, store):
    alice, bob = service.add_annotator(store, "alice", campaigns=["c"]), service.add_annotator(store, "bob", campaigns=["c"])
    client = TestClient(app)
    assert client.get("/api/task?campaign=c").status_code == 401
    for path in ("/api/admin/campaigns", "/api/admin/campaigns/c/stats", "/api/admin/campaigns/c/export"):
        assert client.get(path, headers=bearer(alice)).status_code == 403
        assert client.get(path).status_code == 401
    assert client.post("/api/admin/annotators", json={"name": "eve"}, headers=bearer(alice)).status_code == 403
    task = client.get("/api/task?campaign=c", headers=bearer(alice)).json()
    body = {"assignment": task["assignment"], "key": "bob-key-123", "outcome": "a", "rationale": "x"}
    res = client.post("/api/judgments", json=body, headers=bearer(bob))
    assert res.status_code == 404  # bob cannot even learn that alice's assignment exists
    assert client.get("/api/me", headers=bearer(bob)).json() == {"annotator": "bob", "judged": {}}


def test_csrf_and_json_only(app, store):
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(app)
    client.post("/api/login", json={"token": token})
    task = client.get("/api/task?campaign=c").json()  # reads work with the cookie alone
    body = {"assignment": task["assignment"], "key": "csrf-key-1", "outcome": "a", "rationale": "r"}
    res = client.post("/api/judgments", json=body)
    assert res.status_code == 403 and "CSRF" in res.json()["error"]
    res = client.post("/api/judgments", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert res.status_code == 403
    form = client.post("/api/judgments", data={"assignment": "1"}, headers={"X-CSRF-Token": "x"})
    assert form.status_code in (403, 415, 422)
    page = client.get("/annotate").text
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    res = client.post("/api/judgments", json=body, headers={"X-CSRF-Token": csrf})
    assert res.status_code == 200 and res.json()["status"] == "stored"
    text = client.post("/api/judgments", content=json.dumps(body), headers={"X-CSRF-Token": csrf,
                                                                            "Content-Type": "text/plain"})
    assert text.status_code == 415


def test_double_submit_stored_once(app, store):
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(app)
    task = client.get("/api/task?campaign=c", headers=bearer(token)).json()
    body = {"assignment": task["assignment"], "key": "double-click-1", "outcome": "b", "rationale": "r"}
    first = client.post("/api/judgments", json=body, headers=bearer(token)).json()
    second = client.post("/api/judgments", json=body, headers=bearer(token)).json()
    assert first["status"] == "stored" and second == {"status": "duplicate", "id": first["id"]}
    with store.read() as s:
        assert s.scalar(select(func.count(Judgment.id))) == 1


@pytest.mark.parametrize("payload, status, message", [
    ("{not json", 422, "JSON"),
    ('{"assignment": "one", "key": "abcdefgh"}', 422, "assignment"),
    ('{"assignment": 1, "key": "short"}', 422, "key"),
    ('{"assignment": 1, "key": "abcdefgh", "extra": 1}', 422, "extra"),
    ('{"assignment": 1, "key": "abcdefgh", "criteria": []}', 422, "criteria"),
    ('[]', 422, ""),
    ('{"assignment": 1, "key": "abcdefgh", "seconds": -1}', 422, "seconds"),
])
def test_malformed_requests(app, store, payload, status, message):
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(app)
    res = client.post("/api/judgments", content=payload,
                      headers={**bearer(token), "Content-Type": "application/json"})
    assert res.status_code == status
    assert message.lower() in res.json()["error"].lower()


def test_oversize_requests(app, store):
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(app)
    big = {"assignment": 1, "key": "abcdefgh", "rationale": "x" * 5000}
    res = client.post("/api/judgments", json=big, headers=bearer(token))
    assert res.status_code == 413
    def chunks():  # no Content-Length: the limit applies to the streamed body too
        for _ in range(10):
            yield b" " * 1000
    res = client.post("/api/judgments", content=chunks(), headers={**bearer(token), "Content-Type": "application/json"})
    assert res.status_code == 413
    with store.read() as s:
        assert s.scalar(select(func.count(Judgment.id))) == 0


def test_xss_payloads_stay_data(app, store):
    """Model text and rationales come back verbatim as JSON strings (the pages insert them with
    textContent; the browser test checks that nothing runs), never inside the HTML."""
    token = service.add_annotator(store, "alice", campaigns=["c"])
    client = TestClient(app)
    seen = None
    for _ in range(3):
        task = client.get("/api/task?campaign=c", headers=bearer(token)).json()
        if any(XSS in r for r in task["responses"]):
            seen = task
        body = {"assignment": task["assignment"], "key": f"xss-key-{task['assignment']}", "outcome": "a",
                "rationale": XSS + "</script>"}
        assert client.post("/api/judgments", json=body, headers=bearer(token)).status_code == 200
    assert seen is not None
    assert client.get("/api/task?campaign=c", headers=bearer(token)).status_code == 204
    stats = client.get("/api/admin/campaigns/c/stats", headers=bearer(ADMIN))
    assert stats.headers["content-type"].startswith("application/json")
    client.post("/api/login", json={"token": token})  # the page is for a browser session
    page = client.get("/annotate").text
    assert 'name="csrf-token"' in page and "__xss" not in page
    export = client.get("/api/admin/campaigns/c/export?method=none", headers=bearer(ADMIN))
    assert export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert any(XSS in r["chosen"] + r["rejected"] for r in rows)
    assert all(r["rationale"].endswith(XSS + "</script>") for r in rows)


def test_admin_creates_annotators_and_exports(app, store, tmp_path):
    client = TestClient(app)
    res = client.post("/api/admin/annotators", json={"name": "dora", "campaigns": ["c"]}, headers=bearer(ADMIN))
    token = res.json()["token"]
    assert client.post("/api/admin/annotators", json={"name": "dora"}, headers=bearer(ADMIN)).status_code == 409
    for _ in range(3):
        task = client.get("/api/task?campaign=c", headers=bearer(token)).json()
        client.post("/api/judgments", headers=bearer(token),
                    json={"assignment": task["assignment"], "key": f"k-{task['assignment']:06d}", "outcome": "a"})
    assert client.get("/api/admin/campaigns", headers=bearer(ADMIN)).json() == {"campaigns": ["c"]}
    res = client.get("/api/admin/campaigns/c/export", headers=bearer(ADMIN))
    path = tmp_path / "e.jsonl"
    path.write_text(res.text)
    assert len(load_records(str(path), "preferences")) == 3
    assert client.get("/api/admin/campaigns/zzz/stats", headers=bearer(ADMIN)).status_code == 404
    assert client.get("/api/admin/campaigns/c/export?method=vote", headers=bearer(ADMIN)).status_code == 422


ROUTABLE = ["team/demo", "a/stats", "équipe 1", "100% done?", "#1 & <b>", "x.y"]


def test_campaign_names_with_slashes_route(store, make_campaign, serve, tmp_path):
    """Every name the CLI accepts can be viewed and exported over HTTP, through uvicorn as a browser
    sends it (encodeURIComponent: '/' as %2F)."""
    from urllib.parse import quote

    for name in ROUTABLE:
        make_campaign(store, name=name, n_prompts=1, overlap=1)
    with serve(str(tmp_path / "feedback.db")) as url:
        for name in ROUTABLE:
            base = f"{url}/api/admin/campaigns/{quote(name, safe='')}"
            stats = httpx.get(base + "/stats", headers=bearer(ADMIN))
            assert stats.status_code == 200 and stats.json()["campaign"] == name
            export = httpx.get(base + "/export", headers=bearer(ADMIN))
            assert export.status_code == 200, export.text


@pytest.mark.parametrize("name", ["a/../b", "/lead", "trail/", "a//b", ".", "..", " padded", "tab\there",
                                  "nul\x00", "line\nbreak", "x" * 201, ""])
def test_unroutable_campaign_names_are_refused(store, make_campaign, name):
    from rlhfkit.errors import ConfigError

    with pytest.raises(ConfigError, match="--campaign"):
        make_campaign(store, name=name)
    assert service.list_campaigns(store) == []
