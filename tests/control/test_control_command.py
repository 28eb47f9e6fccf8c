"""`rlhfkit control` end to end on a tiny budget (the numbers that matter are measured in docs/control.md),
and the errors it gives before any work starts."""

from __future__ import annotations

import json

import pytest

from rlhfkit.cli import main
from rlhfkit.control.loop import load_policy
from rlhfkit.control.ppo import evaluate


def test_a_tiny_run_writes_every_output_and_caches_the_oracle(tmp_path, capsys):
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["control", "--steps", "512", "--num-envs", "2", "--rollout-steps", "128", "--labels", "6",
            "--segment-length", "16", "--rm-steps", "5", "--ppo-epochs", "1", "--eval-episodes", "2",
            "--eval-every", "1", "--cache-dir", str(cache), "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    for key in ("true_return", "oracle_return", "random_return", "normalised_return", "labels", "curve"):
        assert key in result
    assert result["labels"] == 6 and result["env_steps"] == 512 and not result["oracle_cached"]
    # --keep best scores every snapshot's evaluation episodes with the reward model: 512 / (2 x 128) = 2
    # iterations, each evaluated (--eval-every 1) on 2 episodes of Pendulum's 200 steps
    assert result["selection_env_steps"] == 2 * 2 * 200
    assert -2000 < result["random_return"] < -500  # Pendulum's uniform random actions
    for name in ("metrics.jsonl", "pairs.jsonl", "policy.pt", "reward_model.pt", "report.html", "feedback.db"):
        assert (out / name).exists(), name
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    for p in pairs:  # the oracle's answers, read back from the store, prefer the higher true return
        if p["true_return_a"] != p["true_return_b"]:
            assert p["label"] == float(p["true_return_a"] > p["true_return_b"])
    assert "<svg" in (out / "report.html").read_text()
    # the saved policy loads back whole: its final evaluation (2 x 2 episodes, seeds 20000 + i) replays exactly
    assert evaluate("Pendulum-v1", load_policy(out / "policy.pt", "Pendulum-v1"), 4, 20_000) == result["true_return"]
    capsys.readouterr()
    assert main(args) == 0  # again: the oracle comes from the cache
    assert json.loads((out / "result.json").read_text())["oracle_cached"]


@pytest.mark.parametrize("args, message", [
    (["--env", "CartPole-v1"], "needs continuous (Box) actions"),
    (["--env", "NoSuchEnv-v0"], "--env 'NoSuchEnv-v0'"),
    (["--labels", "0"], "--labels must be at least 1"),
    (["--segment-length", "2000"], "longer than --rollout-steps"),
    (["--teacher-mistake", "0.7"], "teacher mistake must be in [0, 0.5)"),
    (["--query-until-steps", "0"], "--query-until-steps must be at least 1"),
    (["--initial-labels", "1.5"], "--initial-labels is a share in (0, 1], got 1.5"),
])
def test_bad_settings_are_refused_with_a_clear_message(args, message, tmp_path, capsys):
    assert main(["control", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err
