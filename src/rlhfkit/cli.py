"""The `rlhfkit` command: one subcommand per stage, each a config dataclass and a run function.

    rlhfkit sft --help
    rlhfkit sft --model tiny --data builtin:assistant --out runs/sft
    rlhfkit sample --model runs/sft --num-samples 2

Subcommands are imported only when called, so `rlhfkit --help` is instant. An `RlhfkitError`
(bad data, bad config) is printed as one line and exits with status 2.
"""

from __future__ import annotations

import importlib
import sys

from rlhfkit import __version__
from rlhfkit.config import parse_config
from rlhfkit.errors import RlhfkitError

# name: (module, config class, run function, one-line summary)
COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "quickstart": ("rlhfkit.pipelines.quickstart", "QuickstartConfig", "run_quickstart",
                   "the whole loop on the built-in task, with a report"),
    "loop": ("rlhfkit.pipelines.loop", "LoopConfig", "run_loop",
             "iterated RLHF: rounds of sample, active query selection, feedback, reward model, DPO, eval"),
    "sft": ("rlhfkit.trainers.sft", "SFTConfig", "train_sft", "supervised fine-tuning on demonstrations"),
    "rm": ("rlhfkit.trainers.rm", "RMConfig", "train_rm", "train a reward model on preferences or rankings"),
    "dpo": ("rlhfkit.trainers.dpo", "DPOConfig", "train_dpo", "direct preference optimization (no reward model)"),
    "eval": ("rlhfkit.evaluation.evaluate", "EvalConfig", "run_eval", "win-rate, KL, length and gold vs proxy reward of a policy"),
    "ppo": ("rlhfkit.trainers.ppo", "PPOConfig", "train_ppo",
            "online RL against a judge: PPO (gae) or critic-free RLOO/GRPO/REINFORCE, KL to the start"),
    "sample": ("rlhfkit.evaluation.responses", "SampleConfig", "run_sample", "sample responses from a checkpoint"),
    "merge": ("rlhfkit.models.lora", "MergeConfig", "run_merge",
              "merge a LoRA adapter (--lora-r runs) into full weights for plain transformers"),
    "campaign": ("rlhfkit.feedback.commands", "CampaignConfig", "run_campaign",
                 "create a comparison campaign in the feedback store"),
    "serve": ("rlhfkit.feedback.commands", "ServeConfig", "run_serve", "serve the annotation web app"),
    "annotate": ("rlhfkit.feedback.commands", "AnnotateConfig", "run_annotate",
                 "fill a campaign with simulated annotators"),
    "export": ("rlhfkit.feedback.commands", "ExportConfig", "run_export",
               "aggregate judgments and write preference JSONL"),
    "critique": ("rlhfkit.judges.critique", "CritiqueConfig", "run_critique", "self-critique and revision against a constitution (SL-CAI): demonstrations and pairs"),
    "judge": ("rlhfkit.pipelines.ai_feedback", "JudgeConfig", "run_judge", "fill a campaign with an AI judge guided by a constitution (RLAIF)"),
    "control": ("rlhfkit.control.loop", "ControlConfig", "run_control",
                "RLHF on a gymnasium agent: segment comparisons -> reward model -> PPO"),
    "recommend": ("rlhfkit.control.recommend", "RecommendConfig", "run_recommend",
                  "feedback on recommendations: simulated thumbs -> reward model -> recommender with a KL term"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: rlhfkit <command> [--help] [flags]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, _, _, summary) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"rlhfkit: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module_name, config_name, run_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        config = parse_config(getattr(module, config_name), rest, prog=f"rlhfkit {name}")
        getattr(module, run_name)(config)
    except RlhfkitError as exc:
        print(f"rlhfkit {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlhfkit {name}: interrupted; run the same command again to resume from the last checkpoint",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
