"""The label schedule of `rlhfkit control` (`loop.query_plan`) as plain logic: which PPO iteration asks
how many labels. It counts env steps, so a longer run asks the same labels at the same steps."""

from __future__ import annotations

from rlhfkit.control.loop import ControlConfig, query_plan

DEFAULT_PLAN = {0: 125} | {i: 22 for i in range(1, 18)} | {9: 23}


def test_the_default_plan_worked_by_hand():
    """Defaults: 500 labels, a quarter first, labels until 73,728 env steps, 4 envs x 1,024 steps = 4,096
    steps an iteration, 24 iterations at --steps 100000 (100,000 // 4,096).

    Rounds: iterations whose rollout ends by 73,728 steps: 73,728 // 4,096 = 18, iterations 0..17.
    Iteration 0: round(0.25 x 500) = 125. The other 375 over iterations 1..17: the cumulative counts are
    375 k / 17 = 22.06 k rounded, k = 1..17: 22, 44, 66, 88, 110, 132, 154, 176, then 198.53 -> 199,
    220.59 -> 221, 243, 265, 287, 309, 331, 353, 375. Their differences: 22 at iterations 1..8, 23 at 9,
    22 at 10..17 (125 + 16 x 22 + 23 = 500). Nothing after iteration 17."""
    config = ControlConfig()
    assert config.query_until_steps == 73_728 and config.steps == 100_000 and config.labels == 500
    plan = query_plan(500, 0.25, 73_728, 4 * 1024, 24)
    assert plan == DEFAULT_PLAN and sum(plan.values()) == 500


def test_a_longer_run_asks_the_same_labels_at_the_same_env_steps():
    """--steps 188416 is 188,416 // 4,096 = 46 iterations: the rounds are still those whose rollout ends by
    73,728 steps (18), so the plan is the 100,000-step run's. (As a share of the run, 0.75 x 46 = 34.5 ->
    35 rounds would have spread the 375 later labels over 34 rounds, about 11 each.)"""
    assert query_plan(500, 0.25, 73_728, 4096, 46) == DEFAULT_PLAN
    assert query_plan(500, 0.25, 73_728, 4096, 1000) == DEFAULT_PLAN


def test_small_plans_worked_by_hand():
    """10 labels, a fifth first, 100 steps an iteration, labels until 350 steps: 350 // 100 = 3 rounds
    (iterations 0, 1, 2; iteration 3's rollout ends at 400 > 350). First round(0.2 x 10) = 2; the other 8
    over 2 rounds: cumulative 4, 8, so 4 and 4."""
    assert query_plan(10, 0.2, 350, 100, 5) == {0: 2, 1: 4, 2: 4}
    assert query_plan(10, 0.2, 350, 100, 50) == {0: 2, 1: 4, 2: 4}
    # a run of 2 iterations ends before 350 steps: 2 rounds, the 8 later labels all at iteration 1
    assert query_plan(10, 0.2, 350, 100, 2) == {0: 2, 1: 8}
    # labels until fewer steps than one rollout: one round, the whole budget on the first rollout
    assert query_plan(10, 0.2, 99, 100, 5) == {0: 10}
    # 3 labels over 4 rounds, one first: cumulative 2 k / 3 rounded = 1 (0.67), 1 (1.33), 2: one label at
    # iterations 1 and 3, none at 2 (an iteration with no labels is left out of the plan)
    assert query_plan(3, 0.2, 400, 100, 10) == {0: 1, 1: 1, 3: 1}
