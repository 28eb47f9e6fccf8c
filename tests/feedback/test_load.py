"""Load: 20 concurrent clients × 50 judgments against `rlhfkit serve` on loopback, on SQLite and
PostgreSQL; no judgment may be lost or stored twice (every 10th submission is sent twice, as a
retry after a lost answer would be).

    pytest tests/feedback/test_load.py -s      # -s prints judgments/s and latency percentiles

Bounded: 1,000 judgments per backend and a 120 s deadline. Timings are printed, never asserted.
"""

import statistics
import threading
import time

import httpx
import pytest
from feedback_helpers import running_server, synthetic_groups
from sqlalchemy import func, select

from rlhfkit.feedback import service
from rlhfkit.feedback.campaigns import CampaignSpec, create_campaign
from rlhfkit.feedback.store import Judgment, Store

CLIENTS, PER_CLIENT, DEADLINE_S = 20, 50, 120.0


def run_load(db: str) -> dict:
    store = Store.open(db)
    # 120 pairs × overlap 10 = 1,200 slots for 1,000 judgments: room for every client to find 50
    create_campaign(store, CampaignSpec(name="load", overlap=10), synthetic_groups(120))
    tokens = [service.add_annotator(store, f"load-{i}", campaigns=["load"]) for i in range(CLIENTS)]
    acknowledged: list[list[int]] = [[] for _ in range(CLIENTS)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    with running_server(db) as url:
        deadline = time.monotonic() + DEADLINE_S

        def client(i: int) -> None:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[i]}"}, timeout=30) as http:
                for n in range(PER_CLIENT):
                    if time.monotonic() > deadline:
                        errors.append(f"client {i}: deadline")
                        return
                    t0 = time.perf_counter()
                    res = http.get("/api/task", params={"campaign": "load"})
                    if res.status_code != 200:
                        errors.append(f"client {i}: GET {res.status_code} {res.text}")
                        return
                    task = res.json()
                    body = {"assignment": task["assignment"], "key": f"c{i:02d}-n{n:03d}-{task['assignment']}",
                            "outcome": "ab"[(i + n) % 2], "criteria": {"clarity": "tie"},
                            "rationale": f"client {i} judgment {n}", "seconds": 1.0}
                    t1 = time.perf_counter()
                    res = http.post("/api/judgments", json=body)
                    t2 = time.perf_counter()
                    if res.status_code != 200 or res.json()["status"] != "stored":
                        errors.append(f"client {i}: POST {res.status_code} {res.text}")
                        return
                    if n % 10 == 0:  # the retry: same key, must come back as the same stored judgment
                        again = http.post("/api/judgments", json=body).json()
                        if again != {"status": "duplicate", "id": res.json()["id"]}:
                            errors.append(f"client {i}: retry gave {again}")
                    with lock:
                        latencies.extend((t1 - t0, t2 - t1))
                    acknowledged[i].append(res.json()["id"])

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start

    with store.read() as session:
        stored = session.scalar(select(func.count(Judgment.id)))
        ids = set(session.scalars(select(Judgment.id)))
        pairs = session.execute(select(Judgment.task_id, Judgment.annotator_id)).all()
    store.dispose()
    acked = [j for ids_ in acknowledged for j in ids_]
    latencies.sort()
    return {"errors": errors, "acknowledged": len(acked), "stored": stored,
            "lost": len(set(acked) - ids), "doubled": stored - len(set(acked)),
            "repeat_task_for_annotator": len(pairs) - len(set(pairs)),
            "judgments_per_s": len(acked) / elapsed, "elapsed_s": elapsed,
            "p50_ms": 1000 * statistics.median(latencies), "p95_ms": 1000 * latencies[int(0.95 * len(latencies))]}


def check(result: dict, backend: str) -> None:
    print(f"\nload {backend}: {result['acknowledged']} judgments by {CLIENTS} clients in {result['elapsed_s']:.1f} s = "
          f"{result['judgments_per_s']:.0f} judgments/s; request latency p50 {result['p50_ms']:.1f} ms, "
          f"p95 {result['p95_ms']:.1f} ms; lost {result['lost']}, doubled {result['doubled']}")
    assert result["errors"] == []
    assert result["acknowledged"] == CLIENTS * PER_CLIENT == result["stored"]
    assert result["lost"] == 0 and result["doubled"] == 0 and result["repeat_task_for_annotator"] == 0


@pytest.mark.slow
def test_load_sqlite(tmp_path):
    check(run_load(str(tmp_path / "load.db")), "sqlite")


@pytest.mark.slow
def test_load_postgresql(pg_url):
    check(run_load(pg_url), "postgresql")
