"""Leases on the wall clock: `rlhfkit serve --lease-seconds 2`, a task held without an answer.

    .venv/bin/python bench/feedback_leases.py [--lease-seconds 2] [--poll 0.1] [--db postgresql://...]

Starts `rlhfkit serve` on a free loopback port over a fresh store (SQLite in a temp folder unless
--db) with two campaigns of one pair each: "one" (overlap 1) and "two" (overlap 2). In each, alice
takes the task and never answers (in "two", carol takes the other slot
and never answers either); bob polls GET /api/task every --poll seconds. Prints how long after
alice's claim bob was given the task (the lease plus up to one poll), then what alice's late answer
got: in "one" a 409 lease_expired (bob holds the only slot); in "two" (carol's slot lapsed too) it is stored, its retry is a
duplicate, and the store holds it once. The tests check the same with an injected clock; this is the
wall-clock figure. Left out: many annotators at once (tests/feedback/test_load.py).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ADMIN = "bench-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, lease_seconds: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rlhfkit", "serve", "--db", db, "--port", str(port),
                             "--lease-seconds", str(lease_seconds)],
                            env={**os.environ, "RLHFKIT_ADMIN_TOKEN": ADMIN},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/login", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("rlhfkit serve did not start")


def one_campaign(http_alice: httpx.Client, http_bob: httpx.Client, name: str, poll: float,
                 others: list[httpx.Client], lease_seconds: int) -> dict:
    held = http_alice.get("/api/task", params={"campaign": name})
    held.raise_for_status()
    for other in others:  # they take the remaining slots and never answer either
        other.get("/api/task", params={"campaign": name}).raise_for_status()
    others_done = time.monotonic()
    t0 = time.monotonic()
    while True:
        res = http_bob.get("/api/task", params={"campaign": name})
        if res.status_code == 200:
            waited = time.monotonic() - t0
            break
        time.sleep(poll)
    if others:  # answer once the others' leases have run out too, so a slot is free for alice
        time.sleep(max(0.0, lease_seconds + 0.2 - (time.monotonic() - others_done)))
    body = {"assignment": held.json()["assignment"], "key": f"alice-late-{name}", "outcome": "a", "rationale": "late"}
    late = http_alice.post("/api/judgments", json=body)
    retry = http_alice.post("/api/judgments", json=body)
    return {"waited": waited, "late": (late.status_code, late.json()), "retry": (retry.status_code, retry.json())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease-seconds", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.1)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()

    from sqlalchemy import func, select

    from rlhfkit.feedback import service
    from rlhfkit.feedback.campaigns import CampaignSpec, ResponseGroup, create_campaign
    from rlhfkit.feedback.store import Judgment, Store

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "leases.db")
        store = Store.open(db)
        for name, overlap in (("one", 1), ("two", 2)):
            create_campaign(store, CampaignSpec(name=name, overlap=overlap),
                            [ResponseGroup("Which is better?", [("left answer", "m", 0), ("right answer", "m", 1)])])
        alice, bob, carol = (service.add_annotator(store, n, all_campaigns=True) for n in ("alice", "bob", "carol"))
        proc, url = start_server(db, args.lease_seconds)
        try:
            a, b, c = (httpx.Client(base_url=url, headers={"Authorization": f"Bearer {t}"}, timeout=30)
                       for t in (alice, bob, carol))
            results = {"one": one_campaign(a, b, "one", args.poll, [], args.lease_seconds),
                       "two": one_campaign(a, b, "two", args.poll, [c], args.lease_seconds)}
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        with store.read() as session:
            alice_rows = session.scalar(select(func.count(Judgment.id)).where(Judgment.idempotency_key.like("alice-late-%")))
        store.dispose()
    backend = "postgresql" if args.db and args.db.startswith("postgres") else "sqlite"
    print(f"leases on {backend}: --lease-seconds {args.lease_seconds}, bob polls every {args.poll} s")
    for name, r in results.items():
        print(f"  campaign {name!r}: bob got the held task {r['waited']:.2f} s after alice took it; "
              f"alice's late answer -> {r['late'][0]} {r['late'][1]}, its retry -> {r['retry'][0]} {r['retry'][1]}")
    print(f"  alice's late answers in the store: {alice_rows} (at most one, in campaign 'two')")


if __name__ == "__main__":
    main()
