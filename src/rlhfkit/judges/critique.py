"""`rlhfkit critique`: supervised Constitutional AI (SL-CAI). A model answers, critiques its own answer
against a principle drawn at random from the constitution, revises it, and repeats for `--rounds`.

    rlhfkit critique --model runs/sft --critic runs/chat --rounds 2 --out runs/critique
    rlhfkit sft --model runs/sft --data runs/critique/demonstrations.jsonl --out runs/sft-cai
    rlhfkit dpo --model runs/sft --data runs/critique/preferences.jsonl --out runs/dpo-cai

1) the policy (`--model`) samples a response to each prompt  2) per round, for each prompt a principle
is drawn; the critic (`--critic`, default the policy itself, as in the paper) writes a critique after
"Critique request: <principle.critique>", then a revision after "Revision request:
<principle.revision>", each as a user turn of one conversation (the critic's chat template when its
tokenizer has one, else plain `role: content` lines)  3) the revision becomes the response for the
next round. It writes
    demonstrations.jsonl   {"prompt", "completion": the last revision, "principles": [names]}   (rlhfkit sft)
    preferences.jsonl      {"prompt", "chosen": the last revision, "rejected": the first response,
                            "rationale": the critiques, "annotator": "critique:<principle>,..."}  (rlhfkit dpo / rm)
A revision that is empty, or the same as the original, gives no pair.

Left out: few-shot critique examples in the prompt (the paper's), and any filtering of revisions by
a judge (pipe preferences.jsonl through `rlhfkit judge` for that).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rlhfkit.data.records import load_records, write_jsonl
from rlhfkit.data.tokenization import render_prompt
from rlhfkit.errors import ConfigError
from rlhfkit.judges.constitution import load_constitution
from rlhfkit.models.loading import default_device, load_causal_lm
from rlhfkit.models.sampler import SamplingParams, sample


@dataclass
class CritiqueConfig:
    """Self-critique and revision against a constitution: demonstrations and revision > original pairs."""

    model: str = "runs/sft"
    """The policy whose answers are critiqued and revised (a checkpoint folder or hub id)."""
    critic: str | None = None
    """The model that writes critiques and revisions (default: --model itself, as in Constitutional AI)."""
    data: str = "builtin:assistant"
    """Prompts: a {"prompt"} JSONL file, or builtin:assistant (its training prompts)."""
    num_prompts: int = 64
    """How many built-in prompts."""
    rounds: int = 1
    """Critique-and-revise rounds per prompt, each with a freshly drawn principle."""
    constitution: str | None = None
    """Constitution YAML (default: the one rlhfkit ships)."""
    principles: list[str] = field(default_factory=list)
    """Draw only from these principles (default: all)."""
    out: str = "runs/critique"
    """Output folder: demonstrations.jsonl and preferences.jsonl."""
    max_new_tokens: int = 96
    """Longest response, critique or revision in tokens."""
    temperature: float = 0.7
    """Sampling temperature (0 = greedy)."""
    batch_size: int = 16
    """Prompts generated together."""
    seed: int = 0
    """Seed of the principle draw and of sampling."""

    def validate(self) -> None:
        if self.rounds < 1 or self.num_prompts < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("--rounds, --num-prompts, --batch-size and --max-new-tokens must be at least 1")
        if self.temperature < 0:
            raise ConfigError("--temperature must be >= 0")


class _Generator:
    def __init__(self, name: str, config: CritiqueConfig, generator: torch.Generator):
        self.model, self.tokenizer = load_causal_lm(name, dtype="fp32")
        self.model.to(default_device()).eval()
        self.params = SamplingParams(config.max_new_tokens, config.temperature)
        self.batch_size, self.generator = config.batch_size, generator

    @torch.no_grad()
    def __call__(self, conversations: list) -> list[str]:
        texts = [render_prompt(self.tokenizer, c) for c in conversations]
        out: list[str] = []
        for s in range(0, len(texts), self.batch_size):
            out += sample(self.model, self.tokenizer, texts[s:s + self.batch_size], self.params, self.generator).completions
        return [" ".join(t.split()) for t in out]


def run_critique(config: CritiqueConfig) -> Path:
    constitution = load_constitution(config.constitution).select(config.principles)
    records = load_records(config.data, "prompts", split="train", builtin_size=config.num_prompts, seed=config.seed)
    prompts = [r["prompt"] for r in records]
    generator = torch.Generator(device=default_device()).manual_seed(config.seed)
    policy = _Generator(config.model, config, generator)
    critic = policy if not config.critic or config.critic == config.model else _Generator(config.critic, config, generator)
    rng = random.Random(config.seed)

    # 1) the policy's first answers
    original = policy(prompts)
    current, used, critiques = list(original), [[] for _ in prompts], [[] for _ in prompts]
    # 2) rounds of critique and revision, one principle drawn per prompt and round
    for _round in range(config.rounds):
        drawn = [constitution.draw(rng) for _ in prompts]
        talks = [[{"role": "user", "content": p}, {"role": "assistant", "content": r},
                  {"role": "user", "content": f"Critique request: {pr.critique}"}]
                 for p, r, pr in zip(prompts, current, drawn)]
        said = critic(talks)
        talks = [t + [{"role": "assistant", "content": c}, {"role": "user", "content": f"Revision request: {pr.revision}"}]
                 for t, c, pr in zip(talks, said, drawn)]
        revised = critic(talks)
        for i, (pr, c, r) in enumerate(zip(drawn, said, revised)):
            used[i].append(pr.name)
            critiques[i].append(f"{pr.name}: {c}")
            current[i] = " " + r if r.strip() else current[i]  # 3) the revision answers the next round
    # 4) the files sft and dpo read
    demos = [{"prompt": p, "completion": c, "principles": u} for p, c, u in zip(prompts, current, used)]
    pairs = [{"prompt": p, "chosen": c, "rejected": o, "rationale": "\n".join(k),
              "annotator": ",".join(f"critique:{n}" for n in u)}
             for p, c, o, k, u in zip(prompts, current, original, critiques, used) if c.strip() and c != o]
    out = Path(config.out)
    write_jsonl(out / "demonstrations.jsonl", demos)
    write_jsonl(out / "preferences.jsonl", pairs)
    print(f"critique: {len(prompts)} prompts, {config.rounds} round(s); wrote {len(demos)} demonstrations and "
          f"{len(pairs)} revision > original pairs to {out}")
    return out
