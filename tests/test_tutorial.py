"""examples/tutorial_capital_of_france.py (docs/tutorial.md): seed 004's toy, run and checked."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "tutorial_capital_of_france.py"


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("tutorial_capital_of_france", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(tutorial):
    return tutorial.main(verbose=False)


def test_pairs_are_the_rankings_ten(tutorial):
    """3 > 1 > 2 > 5 > 4 (1-based) is the index order [2, 0, 1, 4, 3]; its 5·4/2 = 10 pairs each put
    the answer that comes first in the ranking first."""
    assert tutorial.RANKING == [2, 0, 1, 4, 3]
    assert len(tutorial.PAIRS) == 10 == len(set(tutorial.PAIRS))
    position = {answer: rank for rank, answer in enumerate(tutorial.RANKING)}
    assert all(position[better] < position[worse] for better, worse in tutorial.PAIRS)


@pytest.mark.parametrize("loss", ["margin_ranking", "bradley_terry", "plackett_luce"])
def test_learned_scores_respect_the_ranking(tutorial, results, loss):
    scores = results["scores"][loss]
    assert tutorial.learned_order(scores) == tutorial.RANKING
    for better, worse in tutorial.PAIRS:
        assert scores[better] > scores[worse]


def test_margin_ranking_reaches_its_margin(tutorial, results):
    """Margin ranking is satisfied, loss 0, once every pair's gap is at least the margin (1.0)."""
    scores = results["scores"]["margin_ranking"]
    assert min(scores[b] - scores[w] for b, w in tutorial.PAIRS) >= 1.0 - 1e-3


def test_kl_term_keeps_the_policy_closer_to_uniform(tutorial, results):
    kl = results["kl_to_uniform"]
    assert 0.0 <= kl["kl"] < kl["no_kl"] <= math.log(5) + 1e-6
    # without the KL term the policy piles onto the best answer; with it, the others keep mass
    best = tutorial.RANKING[0]
    assert results["policies"]["no_kl"][best] > 0.95
    assert results["policies"]["kl"][best] < 0.9
    assert results["policies"]["kl"][tutorial.RANKING[1]] > 0.1


def test_kl_policy_reaches_the_closed_form_optimum(results):
    """max_p E_p[r] - beta KL(p || u) is solved by p ∝ u exp(r / beta); gradient ascent gets there."""
    for trained, optimum in zip(results["policies"]["kl"], results["optimum"]):
        assert trained == pytest.approx(optimum, abs=5e-3)
