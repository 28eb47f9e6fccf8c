"""rlhfkit.pipelines.report on a made-up report: every section renders, offline, with escaped text."""

from __future__ import annotations

from rlhfkit.pipelines.report import method_of, render_html


def made_up_report() -> dict:
    curve = [{"step": s, "loss": 1.0 / s, "reward_margin": 0.1 * s, "score": 0.1 * s, "gold": 0.5, "kl": 0.2 * s}
             for s in range(1, 5)]
    policy = {"gold_win_rate_vs_sft": 0.7, "ci_low": 0.65, "ci_high": 0.75, "kl_to_sft": 1.2, "gold": 0.8,
              "proxy": 0.9, "length": 30.0, "distinct_2": 0.5}
    return {
        "config": {"annotators": 3, "noise": 0.1, "bias": None, "dpo_rounds": 2},
        "seconds_total": 300.0, "seconds_by_stage": {"1) sft": 60.0}, "stages_reused": [], "preference_pairs": 10,
        "reward_model": {"accuracy": 0.8, "ece": 0.05, "reward_length_corr": 0.01, "pairs": 10},
        "calibration": {"ece": 0.05, "bins": [{"confidence": 0.6, "accuracy": 0.55, "n": 6},
                                              {"confidence": 0.9, "accuracy": 0.95, "n": 4}]},
        "sft": {"gold": 0.7, "proxy": 0.0, "length": 28.0, "distinct_2": 0.6},
        "policies": {"dpo": policy, "ppo": policy, "best_of_4": policy},
        "curves": {"sft": curve, "rm": curve, "dpo": curve, "dpo_round2": curve, "ppo": curve},
        "before_after": [{"prompt": "<b>q</b>", "sft": "a", "dpo": "b", "ppo": "c"}],
        "reward_model_probes": {"ppo": {"flattery": {"prefers_hacked": 0.6, "reward_delta": 0.1, "gold_delta": -0.1,
                                                     "n": 8}}},
        "reward_by_style": {"helpful": {"reward": 1.0, "gold": 0.9, "n": 64}, "rant": {"reward": -1.0, "gold": 0.2,
                                                                                     "n": 64}},
        "rationales": [{"prompt": "q", "chosen": "a", "rejected": "b", "rationale": "A is <clearer>",
                        "criteria": {"clarity": "chosen"}}],
        "frontier": [{"policy": "dpo-round-1", "kl": 0.5, "gold": 0.75, "proxy": 0.5},
                     {"policy": "ppo-step-10", "kl": 1.0, "gold": 0.8, "proxy": 0.8},
                     {"policy": "ppo-step-20", "kl": 2.0, "gold": 0.78, "proxy": 1.1},
                     {"policy": "best_of_1", "kl": 0.0, "kl_bound": 0.0, "gold": 0.7, "proxy": 0.0},
                     {"policy": "best_of_4", "kl": 0.6, "kl_bound": 0.636, "gold": 0.76, "proxy": 0.7}],
    }


def test_every_section_renders_offline_and_escaped():
    page = render_html(made_up_report())
    for heading in ("Policies against SFT", "The reward–KL frontier", "Reward score per kind of response",
                    "Reward model (held-out pairs)", "What the panel said", "Does the reward model fall",
                    "Training", "Before vs after", "Time by stage"):
        assert heading in page, heading
    assert page.count("<svg") >= 8  # the frontier, calibration and six training charts
    assert "<b>q</b>" not in page and "&lt;b&gt;q&lt;/b&gt;" in page and "&lt;clearer&gt;" in page
    # opens offline: nothing to fetch (no script, no external image, style sheet or font)
    assert "<script" not in page and not any(f'{attr}="http' in page for attr in ("src", "href"))
    assert "<metadata>" not in page


def test_each_method_keeps_its_colour_family():
    assert [method_of(n) for n in ("ppo-step-20", "dpo-round-2", "dpo_round2", "best_of_8", "sft", "beta=0.1")] == [
        "ppo", "dpo", "dpo", "best_of_n", "sft", "ppo"]


def test_probe_table_shows_plain_and_hardened_side_by_side_and_repetition():
    report = made_up_report()
    report["policies"]["ppo"] = {**report["policies"]["ppo"], "repetition_rate": 0.22}
    report["reward_model_probes_plain"] = {"ppo": {"flattery": {"prefers_hacked": 0.71, "reward_delta": 0.2,
                                                                "gold_delta": -0.1, "n": 8}}}
    page = render_html(report)
    assert "plain RM prefers the edit" in page and "hardened RM prefers the edit" in page
    row = page[page.index("<td>ppo</td><td>flattery</td>"):]
    assert row.index("71%") < row.index("60%")  # plain first, then hardened, on the same samples
    assert "repeats a sentence" in page and "22%" in page
    assert "plain RM prefers" not in render_html(made_up_report())  # one reward model: one column


def test_human_vs_ai_table_says_whether_the_intervals_overlap():
    """DPO: panel [0.65, 0.75] against AI [0.60, 0.66] overlap (0.65 <= 0.66); PPO: panel [0.65, 0.75] against
    AI [0.55, 0.64] do not (0.65 > 0.64). A grading judge has no presentation orders to be consistent about."""
    report = made_up_report()
    ai = {"gold_win_rate_vs_sft": 0.63, "ci_low": 0.60, "ci_high": 0.66, "kl_to_sft": 1.0, "gold": 0.7, "proxy": 0.5,
          "length": 30.0, "distinct_2": 0.5}
    report["policies"] |= {"dpo_ai": ai, "ppo_ai": ai | {"ci_low": 0.55, "ci_high": 0.64}}
    report["ai_feedback"] = {"judge": "runs/<judge>", "panel_agreement_with_gold": 0.9,
                             "labels": {"round1": {"judgments": 10, "mode": "grade", "judgments_per_s": 50.0,
                                                   "judgments_per_day": 4320000, "order_consistency": 1.0,
                                                   "agreement_with_gold": 0.64, "cpu_seconds_per_1000": 16.0},
                                        "round2": {"judgments": 7}}}
    page = render_html(report)
    section = page[page.index("Human feedback vs AI feedback"):]
    assert "0.630 [0.600, 0.660] (intervals overlap: yes)" in section
    assert "0.630 [0.550, 0.640] (intervals overlap: no)" in section
    assert "7 more in the later DPO rounds" in section and "4,320,000 a day" in section
    assert "graded one response at a time" in section and "runs/&lt;judge&gt;" in section
