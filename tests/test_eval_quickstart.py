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
    """Every stage on a very short schedule, the reward-hacking experiment included."""
    report = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, eval_prompts=8,
                                             sft_max_steps=20, ppo_steps=2, hacking_steps=2, reward_hacking=True,
                                             progress=False))
    saved = json.loads((tmp_path / "qs/report.json").read_text())
    assert set(saved["policies"]) == {"dpo", "ppo", "best_of_4"}
    for policy in saved["policies"].values():
        assert 0 <= policy["gold_win_rate_vs_sft"] <= 1 and math.isfinite(policy["kl_to_sft"])
    assert saved["seconds_total"] > 0 and report["preference_pairs"] > 0
    assert math.isclose(saved["policies"]["best_of_4"]["kl_to_sft"], math.log(4) - 3 / 4)
    assert [r["step"] for r in saved["curves"]["ppo"]] == [1, 2]
    runs = saved["reward_hacking"]["runs"]
    assert set(runs) == {"beta=0", "beta=0.05"} and all(len(r["curve"]) == 2 for r in runs.values())
    probes = saved["reward_model_probes"]
    assert set(probes) == {"dpo", "ppo", "best_of_4", "sft"}
    assert set(probes["ppo"]) <= {"repetition", "flattery", "overconfidence", "length"} and "flattery" in probes["ppo"]
    assert all(0 <= p["prefers_hacked"] <= 1 and "gold_delta" in p for p in probes["ppo"].values())
    page = (tmp_path / "qs/report.html").read_text()
    assert "<svg" in page and "Before vs after" in page and "Reward hacking and its cure" in page
    assert "Does the reward model fall for the reward-hacking table?" in page
    # a second run finds every stage done and only evaluates again
    again = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, eval_prompts=8, sft_max_steps=20,
                                            ppo_steps=2, best_of=0, progress=False))
    assert set(again["policies"]) == {"dpo", "ppo"} and again["seconds_by_stage"]["7) ppo"] < 5
    # a policy compared with itself: every log-ratio is exactly 0
    same = run_eval(EvalConfig(policy=str(tmp_path / "qs/sft"), reference=str(tmp_path / "qs/sft"), num_prompts=4))
    assert same["kl_to_reference"] == 0.0
