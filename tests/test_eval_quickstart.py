"""Evaluation math by hand, KL of a model to itself, and a smoke run of the whole quickstart."""

from __future__ import annotations

import json
import math

from rlhfkit.evaluate import EvalConfig, distinct_n, run_eval, win_rate
from rlhfkit.quickstart import QuickstartConfig, run_quickstart


def test_win_rate_by_hand():
    """Scores (policy vs reference) on 4 prompts: 3>1 win, 1<2 loss, 2=2 tie, 5>0 win.
    Outcomes 1, 0, 0.5, 1: mean 0.625; population sd = sqrt(mean of squared deviations)
    = sqrt((.140625 + .390625 + .015625 + .140625) / 4) = sqrt(0.171875) = 0.41458;
    half-width 1.96 * 0.41458 / 2 = 0.40629."""
    result = win_rate([3, 1, 2, 5], [1, 2, 2, 0])
    assert result["win_rate"] == 0.625 and result["ties"] == 1
    assert math.isclose(result["ci_high"], min(1.0, 0.625 + 0.40629), abs_tol=1e-4)
    assert math.isclose(result["ci_low"], 0.625 - 0.40629, abs_tol=1e-4)


def test_distinct_n_by_hand():
    """'a b a b' has unigrams a,b,a,b (2 distinct of 4 = 0.5) and bigrams ab,ba,ab (2 of 3)."""
    assert distinct_n(["a b a b"], 1) == 0.5
    assert math.isclose(distinct_n(["a b a b"], 2), 2 / 3)


def test_quickstart_smoke_run(tmp_path):
    report = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, eval_prompts=8,
                                             sft_max_steps=20, progress=False))
    saved = json.loads((tmp_path / "qs/report.json").read_text())
    dpo = saved["policies"]["dpo"]
    assert 0 <= dpo["gold_win_rate_vs_sft"] <= 1 and math.isfinite(dpo["kl_to_sft"]) and saved["seconds_total"] > 0
    assert report["preference_pairs"] > 0
    page = (tmp_path / "qs/report.html").read_text()
    assert "<svg" in page and "Before vs after" in page
    # a policy compared with itself: every log-ratio is exactly 0
    same = run_eval(EvalConfig(policy=str(tmp_path / "qs/sft"), reference=str(tmp_path / "qs/sft"), num_prompts=4))
    assert same["kl_to_reference"] == 0.0
