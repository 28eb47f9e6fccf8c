"""The recommendation task: boredom in the true utility (by hand), and a small run that shows the
reward model's gain and the KL term keeping the slates diverse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlhfkit.cli import main
from rlhfkit.control.recommend import World, marginal_utilities


def test_marginal_utilities_damp_repeated_genres():
    """Two items of genre 0 (tastes 2 and 1) and one of genre 1 (taste 4), shown in that order, boredom
    0.5: 2 * 0.5^0, 1 * 0.5^1 (one earlier item of genre 0), 4 * 0.5^0 -> (2, 0.5, 4)."""
    world = World(item_vectors=np.array([[2.0], [1.0], [4.0]]), genre=np.array([0, 0, 1]),
                  tastes=np.array([[1.0]]), features=np.array([[1.0]]))
    got = marginal_utilities(world, np.array([0]), np.array([[0, 1, 2]]), boredom=0.5)
    np.testing.assert_allclose(got, [[2.0, 0.5, 4.0]])


def test_feedback_raises_true_utility_and_the_kl_term_keeps_diversity(tmp_path, capsys):
    out = tmp_path / "rec"
    assert main(["recommend", "--users", "400", "--steps", "150", "--betas", "0,1", "--out", str(out)]) == 0
    policies = json.loads((out / "result.json").read_text())["policies"]
    start, greedy, kl = policies["start"], policies["beta=0"], policies["beta=1"]
    assert greedy["true_utility"] > start["true_utility"] + 1  # the reward model learned the users' tastes
    assert kl["genres_per_slate"] > greedy["genres_per_slate"]  # without the KL term, fewer kinds of item
    assert kl["kl_to_start"] < greedy["kl_to_start"]
    assert "<svg" in (out / "report.html").read_text()


def test_bad_betas_are_refused(tmp_path, capsys):
    assert main(["recommend", "--betas", "0,x", "--out", str(tmp_path / "r")]) == 2
    assert "--betas '0,x'" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--slate", "500"), ("--boredom", "0")])
def test_impossible_settings_are_refused(flag, value, tmp_path):
    assert main(["recommend", flag, value, "--out", str(tmp_path / "r")]) == 2
