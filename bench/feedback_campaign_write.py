"""Does the app keep answering while `rlhfkit campaign` writes a large campaign into the store it serves?

    .venv/bin/python bench/feedback_campaign_write.py [--prompts 10000] [--responses 4] [--poll 0.5] [--db URL]

Makes a fresh store (SQLite in a temp folder unless --db) with a small campaign "live" and one
annotator, starts `rlhfkit serve` on a free loopback port, then runs `rlhfkit campaign` on a
responses file of --prompts prompts × --responses responses (10,000 × 4: 60,000 pairwise tasks).
While it runs, the annotator asks GET /api/task every --poll seconds and answers each task with
POST /api/judgments (a write, so it needs the store's write lock). Prints how long the campaign took,
and over the requests made while it ran: their count, failures (any status but 200/204), and the
p50, p95 and slowest latency. Left out: several annotators (tests/feedback/test_load.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from feedback_leases import ADMIN, start_server  # noqa: E402


def samples(path: Path, n_prompts: int, n_responses: int) -> Path:
    with path.open("w") as fh:
        for p in range(n_prompts):
            for r in range(n_responses):
                fh.write(json.dumps({"prompt": f"Question {p}: what is {p} + 1?", "completion": f" Answer {r} to {p}.",
                                     "model": "runs/sft", "index": r}) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--responses", type=int, default=4)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()

    from rlhfkit.feedback import service
    from rlhfkit.feedback.campaigns import CampaignSpec, ResponseGroup, create_campaign
    from rlhfkit.feedback.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "busy.db")
        store = Store.open(db)
        store.set_admin_token(ADMIN)
        create_campaign(store, CampaignSpec(name="live", overlap=1),
                        [ResponseGroup(f"live prompt {p}?", [(f"left {p}", "m", 0), (f"right {p}", "m", 1)])
                         for p in range(2000)])
        token = service.add_annotator(store, "alice", campaigns=["live"])
        store.dispose()
        data = samples(Path(tmp) / "big.jsonl", args.prompts, args.responses)
        proc, url = start_server(db, 0)
        latencies: list[float] = []
        failures: list[str] = []
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
                started = time.monotonic()
                writer = subprocess.Popen([sys.executable, "-m", "rlhfkit", "campaign", "--db", db, "--data", str(data),
                                           "--campaign", "big"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, env={**os.environ, "RLHFKIT_ADMIN_TOKEN": ADMIN})
                n = 0
                while writer.poll() is None:
                    t0 = time.perf_counter()
                    try:
                        res = http.get("/api/task", params={"campaign": "live"})
                        if res.status_code == 200:
                            res = http.post("/api/judgments", json={"assignment": res.json()["assignment"],
                                                                    "key": f"alice-{n:08d}", "outcome": "a"})
                        if res.status_code not in (200, 204):
                            failures.append(f"{res.status_code} {res.text[:200]}")
                    except httpx.TransportError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    latencies.append(time.perf_counter() - t0)
                    n += 1
                    time.sleep(max(0.0, args.poll - (time.perf_counter() - t0)))
                wrote = time.monotonic() - started
                output = writer.stdout.read() if writer.stdout else ""
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    latencies.sort()
    backend = "postgresql" if args.db and args.db.startswith("postgres") else "sqlite"
    print(f"campaign write on {backend}: {args.prompts} prompts x {args.responses} responses, exit {writer.returncode} "
          f"in {wrote:.1f} s: {output.strip().splitlines()[-1] if output.strip() else ''}")
    if latencies:
        print(f"  while it ran: {len(latencies)} task+judgment round trips every {args.poll} s, {len(failures)} failed; "
              f"latency p50 {1000 * statistics.median(latencies):.0f} ms, "
              f"p95 {1000 * latencies[int(0.95 * (len(latencies) - 1))]:.0f} ms, slowest {1000 * latencies[-1]:.0f} ms")
    for failure in failures[:5]:
        print("  failed:", failure)


if __name__ == "__main__":
    main()
