"""Reward models: a transformer with a scalar head, read at the last real token of each sequence.

A reward model is an ordinary HF `AutoModelForSequenceClassification` checkpoint with one output per
ensemble head, then (with `rlhfkit rm --criteria-coef`) one per rubric criterion, named in `id2label`;
the reward is the mean of the ensemble heads. For decoder backbones (Llama, GPT-2, Qwen, ...) the reward is
the head applied to the hidden state of the last token under the attention mask — the EOS that ends
the response — never a pad, even when the tokenizer's pad and EOS ids coincide (where HF's own
pooling, which looks for the last non-pad id, would pick the wrong token). Encoder backbones (BERT,
MiniLM) use their own pooled [CLS] classifier.

After training, `reward_stats.json` beside the weights holds the mean and std of the raw reward on
a reference sample; `RewardScorer` returns normalised rewards (mean 0, std 1 on that sample).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlhfkit.data.tokenization import collate, encode, render_completion, render_prompt
from rlhfkit.math.ops import last_real_index
from rlhfkit.models.loading import default_device, load_reward_backbone

STATS_FILE = "reward_stats.json"


class RewardModel(nn.Module):
    """(B, T) token ids -> (B, outputs) rewards (heads, then any criterion heads) at each row's last attended token.

    Exists so that `accelerate`/DDP wraps the whole reward computation (the backbone *and* the head
    at our chosen index) in one forward call; it holds no parameters of its own.
    """

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.decoder_head = getattr(classifier, "score", None)

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters outside the backbone: the reward head(s)."""
        prefix = getattr(self.classifier, "base_model_prefix", "") + "."
        return [p for name, p in self.classifier.named_parameters() if not name.startswith(prefix)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.decoder_head is None:
            return self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, heads)
        hidden = self.classifier.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, C)
        last = last_real_index(attention_mask)  # (B,)
        return self.decoder_head(hidden[torch.arange(len(last), device=last.device), last])  # (B, heads)


def save_reward_stats(out: Path, mean: float, std: float, heads: int, reference: str,
                      criteria: list[str] = ()) -> None:
    """The reward's normalisation; `heads` outputs are the reward, the `criteria` heads after them are auxiliary."""
    (out / STATS_FILE).write_text(json.dumps({"mean": mean, "std": std, "heads": heads, "reference": reference,
                                              "criteria": list(criteria)}, indent=2))


class RewardScorer:
    """Scores (prompt, completion) pairs with a trained reward model, normalised by its saved stats."""

    def __init__(self, path: str | Path, device: str | None = None, batch_size: int = 32, max_length: int = 512):
        self.path = Path(path)
        self.device = device or default_device()
        classifier, self.tokenizer = load_reward_backbone(str(path))
        self.model = RewardModel(classifier).to(self.device).eval()
        stats_file = self.path / STATS_FILE
        stats: dict[str, Any] = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        self.mean, self.std = float(stats.get("mean", 0.0)), float(stats.get("std", 1.0)) or 1.0
        reward_outputs = [name for name in (classifier.config.id2label or {}).values()
                          if not str(name).startswith("criterion:")]
        # outputs after the reward heads are rubric-criterion heads (rlhfkit rm --criteria-coef)
        self.heads = int(stats.get("heads", len(reward_outputs) or classifier.config.num_labels))
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def score_heads(self, prompts: list[Any], completions: list[Any]) -> torch.Tensor:
        """(N, heads) normalised rewards."""
        out = []
        for s in range(0, len(prompts), self.batch_size):
            examples = [encode(self.tokenizer, render_prompt(self.tokenizer, p),
                               render_completion(self.tokenizer, p, c), self.max_length, f"response {s + i + 1}")
                        for i, (p, c) in enumerate(zip(prompts[s:s + self.batch_size], completions[s:s + self.batch_size]))]
            batch = collate(examples, self.tokenizer.pad_token_id)
            rewards = self.model(batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device))
            out.append(rewards[:, :self.heads].float().cpu())
        return (torch.cat(out) - self.mean) / self.std

    def __call__(self, prompts: list[Any], completions: list[Any]) -> torch.Tensor:
        """(N,) normalised rewards: the mean over ensemble heads."""
        return self.score_heads(prompts, completions).mean(dim=1)
