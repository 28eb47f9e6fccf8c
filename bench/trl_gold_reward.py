"""The gold rubric as a TRL reward function, for `trl.scripts.grpo --reward_funcs trl_gold_reward.gold`.

`bench/whole_command_vs_trl.py` puts this folder on PYTHONPATH so TRL's script can import it by its
dotted name, as a TRL user would pass their own reward function.
"""

from rlhfkit.tasks.assistant import gold_reward


def gold(prompts, completions, **kwargs) -> list[float]:
    """One gold-rubric score per completion (plain-string prompts and completions)."""
    return [gold_reward(prompt, completion) for prompt, completion in zip(prompts, completions)]
