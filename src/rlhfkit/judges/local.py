"""A local `transformers` chat model as an AI judge: the choice is read from the next-token log-probs of
the option labels, under the model's own chat template.

    judge = LocalJudge("runs/judge")            # any causal LM folder or hub id whose tokenizer has a chat template
    judge.judge_many([Query(prompt, [a, b], principle)])

For each query and each of the two presentation orders (judges.ai), the judge's messages are rendered
with `apply_chat_template(..., add_generation_prompt=True)` and one forward pass gives the logits of
the next token. A label's log-prob is the log-sum-exp over its spellings that are one token ("A" and
" A"); the labels' probabilities are renormalised among themselves (the model may also put mass on
other tokens), then the two orders are averaged. Queries are batched (right padding; the logits are
read at each row's last real token).

A judge trained to grade (a folder whose `judge.json` says `{"mode": "grade", "temperature": t}`, as
the embedded judge's does, or `mode="grade"`) is asked `grade_messages` instead: one pass per response,
the digits 1-6 renormalised among themselves, the expected grade per response, and `grades_verdict`.

Left out: rationales (the backend only scores; `rlhfkit critique` generates text), multi-token labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from rlhfkit.errors import ConfigError
from rlhfkit.judges.ai import (
    GRADES,
    LABELS,
    Query,
    Verdict,
    check_query,
    combine_orders,
    grade_messages,
    grades_verdict,
    judge_messages,
    presentation_orders,
)
from rlhfkit.models.loading import default_device, load_causal_lm

MODES = ("compare", "grade")


def judge_settings(model: str) -> dict:
    """The folder's `judge.json` ({"mode", "temperature"}), or {} for a plain chat model."""
    path = Path(model) / "judge.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def label_token_ids(tokenizer, k: int, labels: str = LABELS) -> list[list[int]]:
    """For each of the first `k` labels, the token ids that spell it alone: "A" and " A" where each is one token."""
    out = []
    for label in labels[:k]:
        ids = {tuple(tokenizer.encode(text, add_special_tokens=False)) for text in (label, " " + label)}
        singles = sorted(t[0] for t in ids if len(t) == 1)
        if not singles:
            raise ConfigError(f"the judge's tokenizer has no single token for the label {label!r}")
        out.append(singles)
    return out


class LocalJudge:
    """Judge with a local causal LM (see the module docstring)."""

    def __init__(self, model: str, batch_size: int = 32, device: str | None = None, dtype: str = "auto",
                 mode: str | None = None, temperature: float | None = None):
        self.name = model
        settings = judge_settings(model)
        self.mode = mode or settings.get("mode", "compare")
        if self.mode not in MODES:
            raise ConfigError(f"judge mode {self.mode!r} is not one of {', '.join(MODES)}")
        self.temperature = float(temperature or settings.get("temperature", 1.0))
        self.model, self.tokenizer = load_causal_lm(model, dtype=dtype)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"judge model {model!r} has no chat template; a judge asks through the chat template")
        self.device = torch.device(device) if device else default_device()
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self._labels: dict[int | str, list[list[int]]] = {}

    def _label_ids(self, k: int) -> list[list[int]]:
        if k not in self._labels:
            self._labels[k] = label_token_ids(self.tokenizer, k)
        return self._labels[k]

    def render(self, query: Query, order: list[int]) -> list[int]:
        text = self.tokenizer.apply_chat_template(judge_messages(query, order), tokenize=False,
                                                  add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    @torch.no_grad()
    def next_token_logprobs(self, sequences: list[list[int]]) -> torch.Tensor:
        """(N, V) log-probs of the token after each sequence."""
        out = []
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for s in range(0, len(sequences), self.batch_size):
            chunk = sequences[s:s + self.batch_size]
            width = max(map(len, chunk))
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, seq in enumerate(chunk):
                ids[i, :len(seq)] = torch.tensor(seq)
                mask[i, :len(seq)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits  # (B, T, V)
            last = mask.sum(1).to(self.device) - 1  # (B,) the last real token
            out.append(torch.log_softmax(logits[torch.arange(len(chunk)), last].float(), -1).cpu())
        return torch.cat(out)

    def _grade_many(self, queries: list[Query]) -> list[Verdict]:
        sequences = [self.tokenizer.encode(self.tokenizer.apply_chat_template(
            grade_messages(q, i), tokenize=False, add_generation_prompt=True), add_special_tokens=False)
            for q in queries for i in range(len(q.responses))]
        if "grade" not in self._labels:
            self._labels["grade"] = label_token_ids(self.tokenizer, len(GRADES), GRADES)
        logprobs = self.next_token_logprobs(sequences)
        grade_lp = torch.stack([torch.logsumexp(logprobs[:, ids], 1) for ids in self._labels["grade"]], 1)
        expected = (torch.softmax(grade_lp, 1) * torch.arange(1, len(GRADES) + 1)).sum(1).tolist()  # (N,)
        verdicts, row = [], 0
        for q in queries:
            verdicts.append(grades_verdict(expected[row:row + len(q.responses)], self.temperature))
            row += len(q.responses)
        return verdicts

    def judge_many(self, queries: list[Query]) -> list[Verdict]:
        for query in queries:
            check_query(query)
        if self.mode == "grade":
            return self._grade_many(queries)
        plans = [(q, presentation_orders(len(q.responses))) for q in queries]
        sequences = [self.render(q, order) for q, orders in plans for order in orders]
        logprobs = self.next_token_logprobs(sequences)
        verdicts, row = [], 0
        for _query, orders in plans:
            per_order = []
            for _order in orders:
                label_lp = [torch.logsumexp(logprobs[row, ids], 0).item() for ids in self._label_ids(len(orders[0]))]
                top = max(label_lp)
                per_order.append([math.exp(lp - top) for lp in label_lp])
                row += 1
            verdicts.append(combine_orders(per_order, orders))
        return verdicts
