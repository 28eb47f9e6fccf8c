"""Evaluation math by hand, KL of a model to itself, and a smoke run of the whole quickstart."""

from __future__ import annotations

import json
import math

import pytest

from rlhfkit.errors import ConfigError
from rlhfkit.evaluation.evaluate import EvalConfig, ReferenceSide, run_eval
from rlhfkit.math.stats import distinct_n, win_rate
from rlhfkit.pipelines.quickstart import QuickstartConfig, run_quickstart


def test_win_rate_by_hand():
    """Scores (policy vs reference) on 4 prompts: 3>1 win, 1<2 loss, 2=2 tie, 5>0 win.
    Outcomes 1, 0, 0.5, 1: mean 0.625; population sd = sqrt(mean of squared deviations)
    = sqrt((.140625 + .390625 + .015625 + .140625) / 4) = sqrt(0.171875) = 0.41458;
    half-width 1.96 * 0.41458 / 2 = 0.40629."""
    result = win_rate([3, 1, 2, 5], [1, 2, 2, 0])
    assert result["win_rate"] == 0.625 and result["ties"] == 1
    assert math.isclose(result["ci_high"], min(1.0, 0.625 + 0.40629), abs_tol=1e-4)
    assert math.isclose(result["ci_low"], 0.625 - 0.40629, abs_tol=1e-4)


def test_win_rate_with_several_reference_responses_by_hand():
    """Prompt 1: policy 3 against references 1, 3, 5, 2 -> 1, .5, 0, 1, mean .625. Prompt 2: policy 0
    against 0, 1, 0, 2 -> .5, 0, .5, 0, mean .25. Win-rate (.625 + .25) / 2 = .4375; the interval is over
    the 2 prompts: population sd of (.625, .25) = .1875, half-width 1.96 * .1875 / sqrt(2) = .25987.
    Ties are counted per comparison: 3."""
    result = win_rate([3, 0], [[1, 3, 5, 2], [0, 1, 0, 2]])
    assert result["win_rate"] == 0.4375 and result["n"] == 2 and result["comparisons"] == 8
    assert result["ties"] == 3
    assert math.isclose(result["ci_low"], 0.4375 - 0.25987, abs_tol=1e-4)
    # one reference response per prompt, as a list or as a number, is the one-to-one win-rate
    assert win_rate([3, 1], [[1], [2]])["win_rate"] == win_rate([3, 1], [1, 2])["win_rate"] == 0.5
    with pytest.raises(ValueError, match="one policy score"):
        win_rate([3, 1], [[1], []])


@pytest.mark.parametrize("field, value", [("dpo_rounds", 0), ("dpo_round_prompts", 5), ("ppo_group_size", 1),
                                          ("eval_reference_samples", 0)])
def test_quickstart_settings_are_checked_before_any_work(tmp_path, field, value):
    with pytest.raises(ConfigError, match=field.replace("_", "-")):
        run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), **{field: value}))
    assert not (tmp_path / "qs").exists()


def test_distinct_n_by_hand():
    """'a b a b' has unigrams a,b,a,b (2 distinct of 4 = 0.5) and bigrams ab,ba,ab (2 of 3)."""
    assert distinct_n(["a b a b"], 1) == 0.5
    assert math.isclose(distinct_n(["a b a b"], 2), 2 / 3)


def test_quickstart_smoke_run(tmp_path):
    """Every stage on a very short schedule, the reward-hacking experiment included."""
    report = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, dpo_round_prompts=20,
                                             eval_prompts=8, sft_max_steps=20, ppo_steps=2, hacking_steps=2,
                                             reward_hacking=True, frontier_prompts=4, frontier_every=1,
                                             eval_reference_samples=2, best_of=2, compare_plain_rm=True,
                                             progress=False))
    saved = json.loads((tmp_path / "qs/report.json").read_text())
    assert set(saved["policies"]) == {"dpo", "ppo", "best_of_2"}
    # round 2 of DPO: the panel compared samples of round 1's policy, and DPO continued from it
    round2 = (tmp_path / "qs/round2/preferences.jsonl").read_text().splitlines()
    assert round2 and (tmp_path / "qs/round2/samples.jsonl").exists()
    assert f"model: {tmp_path / 'qs/dpo'}" in (tmp_path / "qs/dpo_round2/config.yaml").read_text()
    assert saved["curves"]["dpo_round2"] and saved["curves"]["dpo"]
    for policy in saved["policies"].values():
        assert 0 <= policy["gold_win_rate_vs_sft"] <= 1 and math.isfinite(policy["kl_to_sft"])
    assert saved["seconds_total"] > 0 and report["preference_pairs"] > 0 and saved["sft"]["length"] > 0
    assert math.isclose(saved["policies"]["best_of_2"]["kl_to_sft"], math.log(2) - 1 / 2)
    assert [r["step"] for r in saved["curves"]["ppo"]] == [1, 2]
    runs = saved["reward_hacking"]["runs"]
    assert set(runs) == {"beta=0", "beta=0.1"} and all(len(r["curve"]) == 2 for r in runs.values())
    probes = saved["reward_model_probes"]
    assert set(probes) == {"dpo", "ppo"}  # best-of-2's text is SFT's own: no probes
    # --harden-rm: PPO optimised the hardened reward model; the plain one is probed on the same samples
    assert saved["reward_model_path"] == str(tmp_path / "qs/rm_hardened")
    assert "- repetition" in (tmp_path / "qs/rm_hardened/config.yaml").read_text()
    assert f"reward: {tmp_path / 'qs/rm_hardened'}" in (tmp_path / "qs/ppo/config.yaml").read_text()
    assert set(saved["reward_model_probes_plain"]) == {"dpo", "ppo"} and saved["reward_model_plain"]["pairs"] > 0
    assert all(0 <= p["repetition_rate"] <= 1 for p in saved["policies"].values())
    # every policy was compared with the same SFT responses
    evals = [json.loads((tmp_path / f"qs/eval_{name}.json").read_text()) for name in ("dpo", "ppo", "best_of_2")]
    assert len({(e["reference_gold"], e["reference_length"], e["examples"][0]["reference"]) for e in evals}) == 1
    assert set(probes["ppo"]) <= {"repetition", "flattery", "overconfidence", "length"} and "flattery" in probes["ppo"]
    assert all(0 <= p["prefers_hacked"] <= 1 and "gold_delta" in p for p in probes["ppo"].values())
    # the seeds' tables and the frontier: every style, the panel's reasons, calibration bins, every method
    from rlhfkit.tasks import assistant

    assert set(saved["reward_by_style"]) == set(assistant.STYLES)
    assert all(v["n"] == 64 and 0 <= v["gold"] <= 1 for v in saved["reward_by_style"].values())
    assert saved["rationales"] and all(r["rationale"] and r["chosen"] for r in saved["rationales"])
    assert sum(b["n"] for b in saved["calibration"]["bins"]) == saved["reward_model"]["pairs"]
    names = [p["policy"] for p in saved["frontier"]]
    assert names == ["dpo-round-1", "dpo-round-2", "ppo-step-1", "ppo-step-2", "best_of_1", "best_of_2", "best_of_4"]
    best = {p["policy"]: p for p in saved["frontier"] if p["policy"].startswith("best_of")}
    assert best["best_of_1"]["kl"] == 0 and best["best_of_4"]["kl"] <= best["best_of_4"]["kl_bound"] + 1e-9
    # best-of-n from the evaluation's own SFT samples: 2 reference responses + best-of-2's 2 candidates
    assert all(p["samples_per_prompt"] == 4 and p["prompts"] == 8 for p in best.values())
    # the final policies' points are their evaluations (8 prompts); earlier ones on --frontier-prompts
    frontier = {p["policy"]: p for p in saved["frontier"]}
    assert frontier["ppo-step-2"]["kl"] == saved["policies"]["ppo"]["kl_to_sft"] and frontier["ppo-step-1"]["prompts"] == 4
    page = (tmp_path / "qs/report.html").read_text()
    assert "<svg" in page and "Before vs after" in page and "Reward hacking and its cure" in page
    for heading in ("The reward–KL frontier", "Reward score per kind of response", "What the panel said",
                    "Reward model (held-out pairs)"):
        assert heading in page
    assert "Does the reward model fall for the reward-hacking table?" in page
    # a second run finds every stage done and only evaluates again
    again = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, dpo_round_prompts=20,
                                            eval_prompts=8, sft_max_steps=20, ppo_steps=2, best_of=0, progress=False))
    assert set(again["policies"]) == {"dpo", "ppo"} and again["seconds_by_stage"]["7) ppo"] < 5
    assert report["stages_reused"] == [] and {"1) sft", "7) ppo", "6) dpo round 2"} <= set(again["stages_reused"])
    assert "stages reused from an earlier run" in (tmp_path / "qs/report.html").read_text()
    assert again["seconds_by_stage"]["6) dpo round 2"] < 5
    assert json.loads((tmp_path / "qs/eval_dpo.json").read_text())["policy"] == str(tmp_path / "qs/dpo_round2")
    # one round: the round-1 policy is the one evaluated, and no round-2 curve is reported
    single = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, eval_prompts=8, sft_max_steps=20,
                                             ppo_steps=2, best_of=0, dpo_rounds=1, progress=False))
    assert "dpo_round2" not in single["curves"] and "6) dpo round 2" not in single["seconds_by_stage"]
    assert json.loads((tmp_path / "qs/eval_dpo.json").read_text())["policy"] == str(tmp_path / "qs/dpo")
    # --ai-feedback with a given judge (a tiny random chat model: no judge training): the judge labels the
    # SFT samples and round 2's, and the policies trained on its labels alone are evaluated beside the panel's
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from judge_helpers import random_llama_chat

    chat = random_llama_chat(tmp_path / "chat")
    ai = run_quickstart(QuickstartConfig(out=str(tmp_path / "qs"), prompts=40, dpo_round_prompts=20, eval_prompts=8,
                                         sft_max_steps=20, ppo_steps=2, best_of=0, ai_feedback=True, judge=str(chat),
                                         progress=False))
    assert set(ai["policies"]) == {"dpo", "ppo", "dpo_ai", "ppo_ai"} and set(ai["ai_feedback"]["labels"]) == {"round1", "round2"}
    assert ai["ai_feedback"]["labels"]["round1"]["judgments"] == ai["preference_pairs"]
    assert f"reward: {tmp_path / 'qs/ai/rm'}" in (tmp_path / "qs/ai/ppo/config.yaml").read_text()
    assert f"model: {tmp_path / 'qs/ai/dpo'}" in (tmp_path / "qs/ai/dpo_round2/config.yaml").read_text()
    assert "Human feedback vs AI feedback" in (tmp_path / "qs/report.html").read_text()
    # a policy compared with itself: every log-ratio is exactly 0
    same = run_eval(EvalConfig(policy=str(tmp_path / "qs/sft"), reference=str(tmp_path / "qs/sft"), num_prompts=4))
    assert same["kl_to_reference"] == 0.0
    # each policy response against 3 reference responses: 12 gold comparisons over 4 prompts
    several = run_eval(EvalConfig(policy=str(tmp_path / "qs/dpo"), reference=str(tmp_path / "qs/sft"), num_prompts=4,
                                  reference_samples=3))
    assert several["n"] == 4 and several["comparisons"] == 12 and len(several["examples"]) == 4
    # a shared reference side: sampled and scored by the first evaluation, reused by the next
    side = ReferenceSide()
    settings = dict(reference=str(tmp_path / "qs/sft"), num_prompts=4, reference_samples=2)
    first = run_eval(EvalConfig(policy=str(tmp_path / "qs/dpo"), **settings), side)
    assert len(side.responses) == len(side.lengths) == 8 and len(side.scores["gold"]) == 8
    second = run_eval(EvalConfig(policy=str(tmp_path / "qs/ppo"), **settings), side)
    assert [e["reference"] for e in second["examples"]] == side.responses[::2]
    assert (second["reference_gold"], second["reference_length"]) == (first["reference_gold"], first["reference_length"])
    for other in ({"reference_samples": 3}, {"seed": 5}):  # other prompts with another seed
        with pytest.raises(ConfigError, match="shared reference responses"):
            run_eval(EvalConfig(policy=str(tmp_path / "qs/ppo"), **{**settings, **other}), side)
