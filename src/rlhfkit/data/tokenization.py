"""Turning validated records into token ids: prompt/completion rendering, masking, batching.

Rendering (one place for every stage):
  - standard records: the text is `prompt + completion`, exactly as TRL concatenates them;
  - conversational records: the tokenizer's chat template when it has one, otherwise the plain
    template `"{role}: {content}\n"` per message followed by `"assistant:"` as the generation prompt.
The prompt and the completion are tokenized separately and concatenated, so the boundary between
them is exact; the EOS token is appended to every completion ([CLS] ... [SEP] for encoders). Only completion tokens are learned:
prompt positions carry the label -100 (ignored by the loss).

A prompt that leaves no room for a response within `max_length` is an error naming the record's
file and line, raised before any training starts. Completions that do not fit are truncated (and
lose their EOS); the count is reported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from rlhfkit.data.records import Records, split_implicit_prompt
from rlhfkit.errors import DataError

IGNORE = -100
PLAIN_GENERATION_PROMPT = "assistant:"


def _plain_chat(messages: list[dict]) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


def render_prompt(tokenizer: Any, prompt: str | list[dict]) -> str:
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return _plain_chat(prompt) + PLAIN_GENERATION_PROMPT


def render_completion(tokenizer: Any, prompt: str | list[dict], completion: str | list[dict]) -> str:
    """The completion text as it follows `render_prompt(prompt)` (without EOS)."""
    if isinstance(completion, str):
        return completion
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(list(prompt) + list(completion), tokenize=False)
        head = render_prompt(tokenizer, prompt)
        if full.startswith(head):
            text = full[len(head):]
            eos = tokenizer.eos_token or ""
            # the template's own end of turn (and the newline after it, as ChatML, Gemma and Phi-3 write it)
            # is dropped: encode() appends the EOS, once
            return text.rstrip()[: -len(eos)] if eos and text.rstrip().endswith(eos) else text
        return full
    return " " + "\n".join(m["content"] for m in completion)


def demonstration_parts(row: dict) -> tuple[Any, Any]:
    if "messages" in row:
        return row["messages"][:-1], [row["messages"][-1]]
    return row["prompt"], row["completion"]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt positions
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def completion_tokens(self) -> int:
        """Tokens the model learns to predict: the labels that are not IGNORE, after the first position
        (which no position predicts)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


def encode(tokenizer: Any, prompt_text: str, completion_text: str, max_length: int, where: str,
           min_completion_tokens: int = 1) -> Example:
    """Token ids of prompt + completion + EOS, with the prompt masked out of the labels."""
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"] if prompt_text else []
    return assemble(tokenizer, prompt_ids, tokenizer(completion_text, add_special_tokens=False)["input_ids"],
                    max_length, where, min_completion_tokens)


def assemble(tokenizer: Any, prompt_ids: list[int], completion_ids: list[int], max_length: int, where: str,
             min_completion_tokens: int = 1) -> Example:
    """`encode` from the prompt's and the completion's own token ids (what a batched tokenizer call gave)."""
    start, end = boundary_tokens(tokenizer)
    prompt_ids = start + prompt_ids
    completion_ids = completion_ids + end
    room = max_length - len(prompt_ids)
    if room < min_completion_tokens:
        raise located_error(where, f"the prompt is {len(prompt_ids)} tokens, which leaves no room for a response "
                              f"within max_length={max_length}; raise --max-length or shorten the prompt")
    truncated = len(completion_ids) > room
    completion_ids = completion_ids[:room]
    return Example(prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids, truncated)


def boundary_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids that open a sequence and close a completion: BOS when the tokenizer adds one and EOS for
    decoders; [CLS] and [SEP] for encoders such as BERT/MiniLM, which have no EOS."""
    if tokenizer.eos_token_id is not None:
        bos = tokenizer.bos_token_id if getattr(tokenizer, "add_bos_token", False) else None
        return ([bos] if bos is not None else []), [tokenizer.eos_token_id]
    cls, sep = getattr(tokenizer, "cls_token_id", None), getattr(tokenizer, "sep_token_id", None)
    return ([cls] if cls is not None else []), ([sep] if sep is not None else [])


def located_error(where: str, message: str) -> DataError:
    path, _, line = where.rpartition(":")
    if line.isdigit():
        return DataError(message, path, int(line))
    return DataError(f"{where}: {message}")


def encode_demonstrations(records: Records, tokenizer: Any, max_length: int) -> list[Example]:
    examples = []
    for i, row in enumerate(records.rows):
        prompt, completion = demonstration_parts(row)
        examples.append(encode(tokenizer, render_prompt(tokenizer, prompt),
                               render_completion(tokenizer, prompt, completion), max_length, records.location(i)))
    return examples


def encode_preferences(records: Records, tokenizer: Any, max_length: int) -> list[tuple[Example, Example]]:
    """(chosen, rejected) token ids of each preference record, the prompt masked out of both."""
    texts = []  # prompt, chosen, rejected of every record, tokenized in one batched call
    for row in records.rows:
        row = split_implicit_prompt(row)
        texts += [render_prompt(tokenizer, row["prompt"])] + [render_completion(tokenizer, row["prompt"], row[side])
                                                              for side in ("chosen", "rejected")]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    pairs = []
    for i in range(len(records.rows)):
        prompt_ids = ids[3 * i] if texts[3 * i] else []
        pairs.append(tuple(assemble(tokenizer, prompt_ids, ids[3 * i + k], max_length, records.location(i))
                           for k in (1, 2)))
    return pairs


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: input_ids, attention_mask, labels, all (B, T)."""
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def global_batches(lengths: list[int], global_batch: int, seed: int, epoch: int, group_by_length: bool = True,
                   drop_last: bool = True) -> list[list[int]]:
    """Indices of each global batch for one epoch, a function of (seed, epoch) only.

    With `group_by_length`, the shuffled order is cut into windows of 64 global batches and each
    window is sorted by length before it is split into batches, so each batch holds examples of
    similar length (less padding) while the batch order stays random.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group_by_length:
        window = global_batch * 64
        order = [i for s in range(0, len(order), window)
                 for i in sorted(order[s:s + window], key=lambda i: lengths[i])]
    batches = [order[s:s + global_batch] for s in range(0, len(order), global_batch)]
    if drop_last and batches and len(batches[-1]) < global_batch:
        batches.pop()
    if group_by_length:
        rng.shuffle(batches)
    return batches


def split_micro_batches(batch: list[int], n_parts: int) -> list[list[int]]:
    """Split a global batch into `n_parts` contiguous micro-batches of equal size (world × accumulation)."""
    size = len(batch) // n_parts
    if size == 0:
        raise DataError(f"a global batch of {len(batch)} cannot be split into {n_parts} micro-batches")
    return [batch[i * size:(i + 1) * size] for i in range(n_parts)]
