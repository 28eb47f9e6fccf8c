"""Assignment leases, driven by an injected clock (no sleeps), on SQLite and PostgreSQL: a task held
without an answer goes back to the queue when its lease expires; a late answer is stored at most once,
and only while the task still has a free slot; the admin view counts expired leases per annotator.

    pytest tests/feedback/test_leases.py
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from feedback_helpers import ADMIN, synthetic_groups
from sqlalchemy import func, select

from rlhfkit.feedback import service
from rlhfkit.feedback.app import create_app
from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
from rlhfkit.feedback.service import ServiceError
from rlhfkit.feedback.store import Assignment, Judgment, Store, Task


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def leased(request, tmp_path) -> Iterator[tuple[Store, Clock]]:
    db = str(tmp_path / "f.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = Store.open(db)
    store.set_admin_token(ADMIN)
    store.clock = clock = Clock()
    yield store, clock
    store.dispose()


def campaign(store: Store, overlap: int = 1, n_prompts: int = 1, lease_seconds: int = 60) -> None:
    create_campaign(store, CampaignSpec(name="c", overlap=overlap, lease_seconds=lease_seconds),
                    synthetic_groups(n_prompts))


def people(store: Store, *names: str) -> list[service.Who]:
    return [service.annotator_for_token(store, service.add_annotator(store, n, campaigns=["c"])) for n in names]


def answer(store: Store, who: service.Who, task: dict, key: str, outcome: str = "a") -> dict:
    return service.submit(store, who.id, {"assignment": task["assignment"], "key": key, "outcome": outcome,
                                          "rationale": "because"})


def counts(store: Store) -> tuple[int, int]:
    """(judgments stored, the only task's n_assigned)."""
    with store.read() as session:
        return session.scalar(select(func.count(Judgment.id))), session.scalar(select(func.max(Task.n_assigned)))


def test_an_expired_lease_goes_to_the_next_annotator(leased):
    """One task, overlap 1, a 60 s lease: alice holds it; bob gets nothing until the lease runs out,
    then gets it; alice's late answer is refused (409 lease_expired, bob holds the only slot)."""
    store, clock = leased
    campaign(store)
    alice, bob = people(store, "alice", "bob")
    held = service.next_task(store, alice.id, "c")
    assert service.next_task(store, bob.id, "c") is None
    clock.advance(59)
    assert service.next_task(store, bob.id, "c") is None  # not yet
    clock.advance(2)
    given = service.next_task(store, bob.id, "c")
    assert given is not None and given["prompt"] == held["prompt"]
    with pytest.raises(ServiceError, match="ran out") as err:
        answer(store, alice, held, "alice-late-1")
    assert err.value.status == 409 and err.value.code == "lease_expired"
    assert answer(store, bob, given, "bob-key-01")["status"] == "stored"
    assert counts(store) == (1, 1)
    assert service.next_task(store, alice.id, "c") is None  # the task is full
    stats = service.campaign_stats(store, "c")
    assert {a["annotator"]: a["leases_expired"] for a in stats["annotators"]} == {"alice": 1, "bob": 0}


def test_a_late_answer_is_stored_once_while_a_slot_is_free(leased):
    """Overlap 2: alice's lease lapses and bob takes a slot; one slot is still free, so alice's late
    answer takes it and is stored; its retry is a duplicate, another key a 409; n_assigned stays 2."""
    store, clock = leased
    campaign(store, overlap=2)
    alice, bob, carol = people(store, "alice", "bob", "carol")
    held = service.next_task(store, alice.id, "c")
    clock.advance(61)
    given = service.next_task(store, bob.id, "c")  # releases alice's slot, takes one
    assert given["prompt"] == held["prompt"] and counts(store) == (0, 1)
    first = answer(store, alice, held, "alice-late-1")
    assert first["status"] == "stored"
    assert answer(store, alice, held, "alice-late-1") == {"status": "duplicate", "id": first["id"]}
    with pytest.raises(ServiceError, match="already judged"):
        answer(store, alice, held, "alice-late-2")
    assert counts(store) == (1, 2)
    assert service.next_task(store, carol.id, "c") is None  # both slots taken: alice's and bob's
    assert answer(store, bob, given, "bob-key-01")["status"] == "stored"
    assert counts(store) == (2, 2)


def test_a_lapsed_holder_gets_the_task_back_if_nobody_took_it(leased):
    """Alice comes back after her lease ran out and nobody else asked: she gets the same assignment
    (same order, a new lease), and it does not lapse again before the new lease ends."""
    store, clock = leased
    campaign(store, n_prompts=2)
    (alice,) = people(store, "alice")
    held = service.next_task(store, alice.id, "c")
    clock.advance(61)
    again = service.next_task(store, alice.id, "c")
    assert again["assignment"] == held["assignment"] and again["responses"] == held["responses"]
    clock.advance(59)
    assert service.next_task(store, alice.id, "c")["assignment"] == held["assignment"]
    assert answer(store, alice, again, "alice-key-1")["status"] == "stored"
    assert service.next_task(store, alice.id, "c")["assignment"] != held["assignment"]
    with store.read() as session:
        assert session.scalar(select(Assignment.lapses).where(Assignment.id == held["assignment"])) == 1


def test_a_late_skip_frees_nothing_twice(leased):
    """A skip of a lapsed assignment is stored (never shown to alice again) without freeing the slot
    a second time: bob, who took the freed slot, keeps it and carol gets nothing."""
    store, clock = leased
    campaign(store)
    alice, bob, carol = people(store, "alice", "bob", "carol")
    held = service.next_task(store, alice.id, "c")
    clock.advance(61)
    assert service.next_task(store, bob.id, "c") is not None
    assert answer(store, alice, held, "alice-skip-1", outcome="skip")["status"] == "stored"
    assert counts(store) == (1, 1)
    assert service.next_task(store, carol.id, "c") is None


def test_the_server_lease_overrides_the_campaigns(leased):
    """`rlhfkit serve --lease-seconds 2` (create_app's lease_seconds) over a campaign leasing 60 s:
    through the HTTP API, the next annotator gets the task 2 s later, and the late answer gets the
    409 with its code, which the page acts on."""
    store, clock = leased
    campaign(store, lease_seconds=60)
    tokens = [service.add_annotator(store, n, campaigns=["c"]) for n in ("alice", "bob")]
    client = TestClient(create_app(store, lease_seconds=2))
    auth = [{"Authorization": f"Bearer {t}"} for t in tokens]
    held = client.get("/api/task?campaign=c", headers=auth[0]).json()
    assert client.get("/api/task?campaign=c", headers=auth[1]).status_code == 204
    clock.advance(2.5)
    assert client.get("/api/task?campaign=c", headers=auth[1]).status_code == 200
    late = client.post("/api/judgments", headers=auth[0],
                       json={"assignment": held["assignment"], "key": "alice-late-1", "outcome": "a", "rationale": "r"})
    assert late.status_code == 409 and late.json()["code"] == "lease_expired"
    stats = client.get("/api/admin/campaigns/c/stats", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert [(a["annotator"], a["leases_expired"]) for a in stats["annotators"]] == [("alice", 1)]


def test_simulated_annotators_take_lapsed_slots(leased):
    """A person's lapsed lease does not keep the panel from filling the campaign."""
    from test_simulate import Stub

    from rlhfkit.feedback import simulate

    store, clock = leased
    campaign(store, n_prompts=3)
    (alice,) = people(store, "alice")
    service.next_task(store, alice.id, "c")
    assert simulate.fill_campaign(store, "c", [Stub("s0")]) == 2
    clock.advance(61)
    assert simulate.fill_campaign(store, "c", [Stub("s0")]) == 1
    assert counts(store)[0] == 3


def test_a_late_answer_finds_the_slot_of_another_lapsed_lease(leased):
    """Overlap 2: alice takes a slot at 0 s, carol the other at 30 s; at 61 s bob's request releases
    alice's and takes it; at 91 s carol's lease has lapsed too, but nobody asked for a task since, so
    nothing released it: alice's late answer releases it itself and takes that slot."""
    store, clock = leased
    campaign(store, overlap=2)
    alice, bob, carol = people(store, "alice", "bob", "carol")
    held = service.next_task(store, alice.id, "c")
    clock.advance(30)
    service.next_task(store, carol.id, "c")
    clock.advance(31)
    assert service.next_task(store, bob.id, "c") is not None
    clock.advance(30)
    assert answer(store, alice, held, "alice-late-1")["status"] == "stored"
    assert counts(store) == (1, 2)  # alice's judged slot and bob's; carol's went back and alice took it


def test_a_reload_starts_the_lease_again(leased):
    """Alice reloads at 50 s: her lease now ends at 110 s, so bob gets nothing at 100 s and the task at 111 s."""
    store, clock = leased
    campaign(store)
    alice, bob = people(store, "alice", "bob")
    held = service.next_task(store, alice.id, "c")
    clock.advance(50)
    assert service.next_task(store, alice.id, "c")["assignment"] == held["assignment"]
    clock.advance(50)
    assert service.next_task(store, bob.id, "c") is None
    clock.advance(11)
    assert service.next_task(store, bob.id, "c")["prompt"] == held["prompt"]


def test_concurrent_releases_and_late_answers_keep_the_counts(leased):
    """20 annotators hold 2 tasks each of 20 (overlap 2: every slot taken), all leases lapse, then 10
    threads of newcomers ask for tasks while the 20 late holders answer, all at once. Afterwards each
    task's n_assigned is exactly its held-and-unanswered slots plus its answers (skips aside), never
    over the overlap, and nobody judged a task twice: no slot freed twice, none lost."""
    import threading

    from sqlalchemy import case

    store, clock = leased
    campaign(store, overlap=2, n_prompts=20)
    holders = people(store, *(f"h{i}" for i in range(20)))
    held = [[service.next_task(store, h.id, "c") for _ in range(2)] for h in holders]
    newcomers = people(store, *(f"n{i}" for i in range(10)))
    clock.advance(61)
    errors: list[str] = []

    def late(i: int) -> None:
        for task in held[i]:
            try:
                answer(store, holders[i], task, f"late-{i}-{task['assignment']}")
            except ServiceError as exc:
                if exc.code != "lease_expired":
                    errors.append(f"h{i}: {exc.status} {exc.message}")

    def newcomer(i: int) -> None:
        for n in range(3):
            task = service.next_task(store, newcomers[i].id, "c")
            if task is not None and n < 2:  # answer two, leave the third open
                answer(store, newcomers[i], task, f"new-{i}-{task['assignment']}")

    threads = [threading.Thread(target=late, args=(i,)) for i in range(20)]
    threads += [threading.Thread(target=newcomer, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as session:
        judged = select(Judgment.id).where(Judgment.assignment_id == Assignment.id, Judgment.outcome != "skip").exists()
        any_judgment = select(Judgment.id).where(Judgment.assignment_id == Assignment.id).exists()
        counted = func.sum(case((judged, 1), ((~any_judgment) & Assignment.released_at.is_(None), 1), else_=0))
        expected = dict(session.execute(select(Assignment.task_id, counted).group_by(Assignment.task_id)).all())
        actual = dict(session.execute(select(Task.id, Task.n_assigned)).all())
        per_task = session.execute(select(Judgment.task_id, func.count()).group_by(Judgment.task_id)).all()
        pairs = session.execute(select(Judgment.task_id, Judgment.annotator_id)).all()
    assert actual == {task_id: int(expected.get(task_id) or 0) for task_id in actual}
    assert max(actual.values()) <= 2 and all(count <= 2 for _, count in per_task)
    assert len(pairs) == len(set(pairs))
