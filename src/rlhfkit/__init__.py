"""rlhfkit: the whole RLHF loop — SFT, human and AI feedback, reward models, DPO, PPO, evaluation.

`import rlhfkit` is cheap on purpose: it imports neither torch nor transformers. Each stage lives in
its own module and is imported when used.

The layers (imports point down only; tests/test_layout.py fails when one points up):

    cli                 `rlhfkit <command>`: each command is a config dataclass and a run function
      pipelines         quickstart (the whole loop on the built-in task) and its report; loop (iterated RLHF)
        trainers        sft, rm, dpo, ppo (online RL): explicit loops on one shared loop state (trainers.loop)
        evaluation      eval (win-rate, KL, gold vs proxy), the reward-hacking probes, sample (responses to JSONL)
        judges          who scores a response: reward specs (gold, a reward model, module:function, sums)
          models        loading and saving HF checkpoints, the sampler, completion log-probs (models.forward),
                        the reward model read at the last real token
            data        records and their validation (torch-free), built-in data, tokenization and collation
              math      pure math: ops (masks, log-probs, KL, advantages, per-token rewards), losses, stats
              tasks     built-in domains (the assistant task: responses, gold rubric, simulated annotators)
                        errors and config at the bottom, importable by every layer

    control             RLHF on gymnasium agents: segment comparisons, a reward ensemble over (obs, action),
                        PPO for continuous actions; above math, beside pipelines (it uses the feedback store
                        for people and the report's chart helpers); imported only by `rlhfkit control`

    feedback            beside them: the store, the web app, aggregation and export; it imports only
                        errors, config, data.records, tasks and math.selection, and never torch

Trainers, evaluation and judges form one layer and may import each other; every arrow between stages
is a file with a documented format (../shared/DESIGN.md), not a Python object.
"""

__version__ = "0.1.0"
