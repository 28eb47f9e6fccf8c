"""People label trajectory segments in the real web app: `rlhfkit control --annotator web` puts its
segment pairs into the store as a campaign of animations (GIFs rendered from the environment, served
by the app at /media under its Content-Security-Policy); an annotator judges them from the keyboard in
Debian's chromium (through Playwright), and the judgments come back to the run and into its reward
model. Skipped without chromium or playwright, except in CI (as tests/feedback/test_browser.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from feedback_helpers import ADMIN, running_server

from rlhfkit.feedback import service
from rlhfkit.feedback.store import Store


def wait_for_campaign(store: Store, name: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while name not in service.list_campaigns(store):
        if proc.poll() is not None:
            raise AssertionError(f"rlhfkit control exited early: {proc.stdout.read()}")
        assert time.monotonic() < deadline, f"no campaign {name!r} after {seconds} s"
        time.sleep(0.5)


@pytest.mark.slow
def test_segment_pairs_judged_from_the_keyboard_reach_the_reward_model(browser, tmp_path):
    db = str(tmp_path / "f.db")
    store = Store.open(db)
    store.set_admin_token(ADMIN)
    token = service.add_annotator(store, "alice", all_campaigns=True)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlhfkit", "control", "--annotator", "web", "--store", db, "--campaign", "ctl",
           "--steps", "512", "--num-envs", "2", "--rollout-steps", "128", "--labels", "3", "--segment-length", "10",
           "--rm-steps", "5", "--eval-episodes", "2", "--no-oracle", "--wait-seconds", "300", "--out", str(out),
           "--query-until-steps", "256"]  # one query round (one campaign) of the 3 pairs: 2 x 128 steps
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    expected: dict[int, float] = {}
    try:
        wait_for_campaign(store, "ctl-round-0", proc)
        with running_server(db) as url:
            page = browser.new_page()
            page.goto(f"{url}/login#token={token}")
            page.wait_for_url(f"{url}/annotate")
            for key in ("1", "2", "t"):  # A better, B better, equal
                page.locator("#prompt").filter(has_text="which movement").wait_for()
                prompt = page.locator("#prompt").inner_text()
                images = page.locator(".response img.media")
                assert images.count() == 2  # both segments as animations, no text
                page.wait_for_function("() => [...document.querySelectorAll('img.media')]"
                                       ".every((i) => i.complete && i.naturalWidth > 0)")  # served, and the CSP let them in
                shown_first = images.first.get_attribute("src")
                assert re.fullmatch(r"/media/ctl-round-0/\d+-[ab]\.gif", shown_first)
                pair = int(re.search(r"Pair (\d+)", prompt).group(1)) - 1
                a_first = shown_first.endswith("-a.gif")
                expected[pair] = {"1": float(a_first), "2": float(not a_first), "t": 0.5}[key]
                page.keyboard.press(key)
                page.keyboard.press("Enter")
                page.wait_for_function("(p) => document.getElementById('prompt').textContent !== p"
                                       " || !document.getElementById('done').hidden", arg=prompt)
            page.locator("#done").wait_for(state="visible")
        assert proc.wait(timeout=300) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        store.dispose()
    labels = [json.loads(line)["label"] for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert labels == [expected[i] for i in range(3)]  # each pair's label is what was pressed for it
    fitted = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert fitted[0]["labels"] == 3 and "rm_train_accuracy" in fitted[0]  # the reward model trained on them
    assert json.loads((out / "result.json").read_text())["labels"] == 3
