"""Active query selection with a real reward-model ensemble (`rlhfkit campaign --select`) and `rlhfkit loop`:
a tiny run of every round, a resume after `kill -9` giving the same loop.json, and the web collector."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select as query

from rlhfkit.cli import main
from rlhfkit.math.selection import disagreement
from rlhfkit.models.reward_model import RewardScorer
from rlhfkit.tasks import assistant
from rlhfkit.trainers.rm import RMConfig, train_rm
from rlhfkit.trainers.sft import SFTConfig, train_sft

FAST = dict(batch_size=8, max_length=128, progress=False, log_every=1)


def samples_file(path: Path, n_prompts: int = 6, k: int = 4, seed: int = 0) -> Path:
    """`rlhfkit sample`'s format: k responses of different styles to each of n built-in prompts."""
    import random

    rng = random.Random(seed)
    rows = [{"prompt": p["prompt"], "completion": assistant.response(p["prompt"], style, rng), "model": "m", "index": i}
            for p in assistant.prompts(n_prompts, seed=seed, split="eval")
            for i, style in enumerate(rng.sample(assistant.STYLES, k))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_campaign_select_asks_where_the_ensemble_disagrees_most(tmp_path, capsys):
    """A 3-head bootstrapped reward model scores every response; the 5 tasks `campaign --select
    disagreement --budget 5` writes are the 5 pairs of the pool (6 prompts x C(4, 2) = 36 pairs) with the
    largest std of the reward gap over heads, each with its strategy and score in tasks.selection."""
    from rlhfkit.feedback.campaigns import read_responses
    from rlhfkit.feedback.store import Response, Store, Task, TaskItem

    rm = train_rm(RMConfig(model="tiny", data="builtin:assistant", builtin_size=64, out=str(tmp_path / "rm"), heads=3,
                           bootstrap=True, max_steps=4, lr=1e-3, **FAST))
    data, db = samples_file(tmp_path / "samples.jsonl"), str(tmp_path / "f.db")
    assert main(["campaign", "--db", db, "--data", str(data), "--campaign", "active", "--select", "disagreement",
                 "--budget", "5", "--reward-model", str(rm)]) == 0
    assert "--select disagreement: 5 tasks" in capsys.readouterr().out
    scorer = RewardScorer(rm)
    expected = []
    for group in read_responses(data):
        heads = scorer.score_heads([group.prompt] * len(group.responses), [t for t, _, _ in group.responses]).tolist()
        for i in range(len(heads)):
            for j in range(i + 1, len(heads)):
                expected.append((disagreement([[heads[i][h], heads[j][h]] for h in range(3)]),
                                 {group.responses[i][0], group.responses[j][0]}))
    expected.sort(key=lambda e: -e[0])
    store = Store.open(db)
    with store.read() as session:
        rows = session.execute(query(Task.id, Task.selection, Response.text).join(TaskItem, TaskItem.task_id == Task.id)
                               .join(Response, Response.id == TaskItem.response_id)).all()
    store.dispose()
    tasks: dict[int, tuple[dict, set]] = {}
    for task_id, selection, text in rows:
        tasks.setdefault(task_id, (selection, set()))[1].add(text)
    assert sorted((s["score"] for s, _ in tasks.values()), reverse=True) == pytest.approx([s for s, _ in expected[:5]],
                                                                                          rel=1e-4)
    assert {frozenset(t) for _, t in tasks.values()} == {frozenset(t) for _, t in expected[:5]}
    assert all(s["strategy"] == "disagreement" for s, _ in tasks.values())


@pytest.mark.parametrize("flags, message", [
    (["--select", "bald"], "--select and --budget go together"),
    (["--budget", "3"], "--select and --budget go together"),
    (["--select", "bald", "--budget", "3"], "--select bald needs --reward-model"),
    (["--select", "entropy", "--budget", "3"], "pick one of random, disagreement, uncertainty, bald"),
])
def test_campaign_select_errors(tmp_path, capsys, flags, message):
    data = samples_file(tmp_path / "s.jsonl", n_prompts=1, k=2)
    assert main(["campaign", "--db", str(tmp_path / "f.db"), "--data", str(data), *flags]) == 2
    assert message in capsys.readouterr().err


LOOP_FLAGS = ["--rounds", "2", "--budget", "6", "--pool-prompts", "6", "--samples-per-prompt", "3", "--heldout-pairs",
              "8", "--heads", "2", "--rm-epochs", "1", "--dpo-epochs", "1", "--eval-prompts", "4",
              "--eval-reference-samples", "1", "--select", "bald"]


@pytest.fixture(scope="module")
def tiny_sft(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft") / "sft"
    return train_sft(SFTConfig(model="tiny", builtin_size=128, max_steps=20, out=str(out), **FAST))


def loop_rows(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in json.loads((out / "loop.json").read_text())]


def loop_command(sft: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "rlhfkit", "loop", "--model", str(sft), "--out", str(out), *LOOP_FLAGS]


@pytest.mark.slow
def test_loop_killed_in_round_2_resumes_to_the_same_loop_json(tiny_sft, tmp_path):
    """Run the loop to the end once; run it again elsewhere, `kill -9` it as round 2's reward model
    starts, and run the same command again: it says where it resumes and ends with the same
    loop.json (timing aside). Round 2 selects with round 1's ensemble (bald), and every task says so."""
    from rlhfkit.feedback.store import Store, Task

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(loop_command(tiny_sft, whole), env=env, check=True, capture_output=True, text=True)
    rows = loop_rows(whole)
    assert [r["round"] for r in rows] == [1, 2] and [r["selection"] for r in rows] == ["random", "bald"]
    assert rows[0]["labels"] < rows[1]["labels"] <= 8 + 12  # the held-out set and two rounds of 6
    assert all(0 <= r["rm_heldout_accuracy"] <= 1 and 0 <= r["win_rate_vs_sft"] <= 1 for r in rows)
    store = Store.open(str(whole / "round2" / "feedback.db"))
    with store.read() as session:
        assert {s["strategy"] for s in session.scalars(query(Task.selection))} == {"bald"}
    store.dispose()

    proc = subprocess.Popen(loop_command(tiny_sft, killed), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if line.startswith("== round2: rm =="):  # round 2's reward model is starting: it cannot be done yet
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / "round2" / "done" / "rm").exists()
    again = subprocess.run(loop_command(tiny_sft, killed), env=env, check=True, capture_output=True, text=True)
    assert "resuming at round2, stage rm" in again.stdout
    assert "== round1:" not in again.stdout  # round 1 is not done again
    assert loop_rows(killed) == rows


def test_loop_refuses_bad_settings(tmp_path, capsys):
    assert main(["loop", "--model", str(tmp_path / "nope")]) == 2
    assert "no such checkpoint folder" in capsys.readouterr().err
    assert main(["loop", "--model", str(tmp_path), "--select", "entropy"]) == 2
    assert "pick one of random" in capsys.readouterr().err
    assert main(["loop", "--model", str(tmp_path), "--collector", "ai:"]) == 2
    assert "pick simulated, web or ai:<judge" in capsys.readouterr().err
    assert main(["loop", "--model", str(tmp_path), "--label-noise", "1"]) == 2
    assert "--label-noise in [0, 1)" in capsys.readouterr().err


def test_the_loop_report_puts_train_beside_held_out_accuracy():
    """report.md's gap column is train minus held-out accuracy: 0.9 - 0.7 = 0.2; a missing value reads n/a."""
    from rlhfkit.pipelines.loop import loop_report

    row = {"round": 1, "selection": "random", "labels": 30, "rm_train_accuracy": 0.9, "rm_heldout_accuracy": 0.7,
           "rm_heldout_gold_accuracy": None, "win_rate_vs_sft": 0.55, "ci_low": 0.45, "ci_high": 0.65, "kl_to_sft": 0.1}
    text = loop_report([row])
    assert "| 1 | random | 30 | 0.900 | 0.700 | 0.200 | n/a | 0.550 [0.450, 0.650] | 0.10 |" in text


@pytest.mark.slow
def test_a_loop_round_with_an_ai_collector_ppo_and_early_stopping(tiny_sft, tmp_path, capsys):
    """--collector ai:<judge folder>: the AI annotator judges every task of the held-out set and of the
    round; --label-noise reaches the reward model's config; --policy-step ppo trains the round's policy by PPO on its reward model (with --ppo-kl-coef);
    --rm-early-stopping leaves where it stopped in the reward model's eval_metrics.json; report.md has
    the round's line."""
    from judge_helpers import random_llama_chat

    from rlhfkit.feedback.store import Annotator, Judgment, Store, Task

    judge = random_llama_chat(tmp_path / "judge")
    out = tmp_path / "loop"
    assert LOOP_FLAGS[:2] == ["--rounds", "2"]
    assert main(["loop", "--model", str(tiny_sft), "--out", str(out), "--rounds", "1", *LOOP_FLAGS[2:],
                 "--collector", f"ai:{judge}",
                 "--policy-step", "ppo", "--ppo-steps", "2", "--ppo-kl-coef", "0.2", "--rm-early-stopping", "1",
                 "--rm-eval-every", "1", "--label-noise", "0.1"]) == 0
    assert "ai:judge stored" in capsys.readouterr().out
    for folder in ("heldout", "round1"):
        store = Store.open(str(out / folder / "feedback.db"))
        with store.read() as session:
            names = session.execute(query(Annotator.name).join(Judgment, Judgment.annotator_id == Annotator.id)).all()
            tasks = len(session.scalars(query(Task.id)).all())
        store.dispose()
        assert tasks > 0 and len(names) == tasks and {n for (n,) in names} == {"ai:judge"}  # each task once, by the AI
    ppo_log = [json.loads(line) for line in (out / "round1" / "policy" / "metrics.jsonl").read_text().splitlines()]
    assert ppo_log[-1]["step"] == 2 and "kl" in ppo_log[-1]
    assert "kl_coef: 0.2" in (out / "round1" / "policy" / "config.yaml").read_text()
    stopping = json.loads((out / "round1" / "rm" / "eval_metrics.json").read_text())["early_stopping"]
    assert stopping["patience"] == 1 and stopping["best_step"] <= stopping["stopped_step"]
    assert "label_noise: 0.1" in (out / "round1" / "rm" / "config.yaml").read_text()  # the noise-aware likelihood
    assert "| 1 | random |" in (out / "report.md").read_text()


SHOWN = ("() => document.getElementById('prompt').textContent + '|' + "
         "[...document.querySelectorAll('.response .text')].map(e => e.textContent).join('|')")


@pytest.mark.slow
def test_a_web_round_waits_for_people_and_goes_on_when_the_campaign_is_filled(tiny_sft, tmp_path, browser):
    """`loop --collector web` serves the app on loopback and prints a link per campaign (the held-out set,
    then round 1); a person judges every task from the keyboard ("1", Enter); each time the campaign is
    filled the loop says so and goes on, and round 1's row counts the judgments made in the browser."""
    import re

    sys.path.insert(0, str(Path(__file__).parent / "feedback"))
    from feedback_helpers import free_port

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    flags = [f if f != "2" or LOOP_FLAGS[i - 1] != "--rounds" else "1" for i, f in enumerate(LOOP_FLAGS)]
    cmd = [sys.executable, "-m", "rlhfkit", "loop", "--model", str(tiny_sft), "--out", str(tmp_path / "web"), *flags,
           "--budget", "3", "--heldout-pairs", "3", "--collector", "web", "--port", str(port), "--deadline", "600"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    judged, lines = 0, []
    try:
        for line in proc.stdout:
            lines.append(line)
            link = re.search(r"annotator-1: (http://127\.0\.0\.1:\d+/login#token=\S+)", line)
            if not link:
                continue
            page = browser.new_page()
            page.goto(link.group(1))
            page.wait_for_url(re.compile(r".*/annotate$"))
            while True:
                page.wait_for_function("() => document.getElementById('prompt').textContent.trim() !== ''"
                                       " || !document.getElementById('done').hidden")
                if page.locator("#done").is_visible():
                    break
                before = page.evaluate(SHOWN)  # two tasks may share a prompt, never both responses
                page.keyboard.press("1")
                page.keyboard.press("Enter")
                page.wait_for_function(f"(p) => ({SHOWN})() !== p || !document.getElementById('done').hidden",
                                       arg=before)
                judged += 1
            page.close()
        proc.wait(timeout=600)
    finally:
        proc.kill()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert out.count("is filled") == 2 and "--deadline passed" not in out
    rows = loop_rows(tmp_path / "web")
    assert judged >= 2 and rows[0]["labels"] == judged
