"""rlhfkit: the whole RLHF loop — SFT, human and AI feedback, reward models, DPO, PPO, evaluation.

`import rlhfkit` is cheap on purpose: it imports neither torch nor transformers. Each stage lives in
its own module (`rlhfkit.trainers.sft`, `rlhfkit.math.losses`, ...) and is imported when used.
"""

__version__ = "0.1.0"
