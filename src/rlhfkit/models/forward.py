"""One forward pass for every log-prob a stage needs: the completion tokens' log-probs under a model.

    fwd = completion_logprobs(model, input_ids, attention_mask, labels)   # labels: IGNORE where not scored
    fwd.logprobs        # (M,) log p of each scored token, row-major
    fwd.row_sums()      # (B,) summed per sequence (DPO, evaluation's KL)
    fwd.scatter(x)      # (M,) values back into (B, L-1): column t holds the value for token t+1

The convention is the one of `rlhfkit.data.tokenization.collate`: `labels[b, t]` is the token at
position t when it is to be scored (it is predicted by position t-1), `IGNORE` (-100) elsewhere. SFT
scores completion tokens; DPO both responses of a pair; online RL and evaluation score the sampled
response after a left-padded prompt (labels = IGNORE over the prompt, every response column scored).

Only the scored positions go through the vocabulary projection (transformers' `logits_to_keep`,
which takes a boolean mask in recent versions and a count of last positions in older ones): the
prompt's and padding's logits are never computed. Models that take neither compute all logits,
which are then selected; `logits_to_keep_kind` says which path a model gets, found in one place.
"""

from __future__ import annotations

import functools
import inspect
import sys
from dataclasses import dataclass
from typing import Literal

import torch

from rlhfkit.data.tokenization import IGNORE
from rlhfkit.math.ops import token_logprobs


def forward_parameters(model) -> set[str]:
    """Argument names of `model.forward` (of the module inside a DistributedDataParallel wrapper)."""
    return set(inspect.signature(getattr(model, "module", model).forward).parameters)


def cache_argument(model) -> str:
    """The name `model.forward` takes its KV cache under: `cache` in recent `transformers` (which warns
    that `past_key_values` goes away in 5.40), `past_key_values` before that."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"


def logits_to_keep_kind(model) -> Literal["mask", "count"] | None:
    """How `model` can skip logits: `mask` (a (B, L) boolean `logits_to_keep`), `count` (an int: the last
    n positions), or None (it computes every position's logits). Found once per model class."""
    return _keep_kind(type(getattr(model, "module", model)))


@functools.cache
def _keep_kind(cls: type) -> Literal["mask", "count"] | None:
    if "logits_to_keep" not in inspect.signature(cls.forward).parameters:
        return None
    helper = getattr(sys.modules.get(cls.__module__), "slice_logits_to_keep", None)
    # the helper takes a boolean mask only in recent transformers: ask it, on a (1, 2, 1) tensor
    if helper is not None and helper(torch.zeros(1, 2, 1), torch.tensor([[False, True]])).shape == (1, 1):
        return "mask"
    return "count"


@dataclass
class CompletionForward:
    """What `completion_logprobs` computed, at the M scored positions (row-major)."""

    predicts: torch.Tensor
    """(B, L-1) bool: True where position t predicts a scored token t+1."""
    logprobs: torch.Tensor
    """(M,) log-probability of each scored token."""
    logits: torch.Tensor | None = None
    """(M, V) float32 logits (divided by the temperature), when asked for."""
    hidden: torch.Tensor | None = None
    """(M, H) last hidden state at each predicting position, when asked for (what a value head reads)."""

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """(M,) values -> (B, L-1), zeros where nothing is scored (a masked scatter: deterministic)."""
        return values.new_zeros(self.predicts.shape).masked_scatter(self.predicts, values)

    def row_sums(self) -> torch.Tensor:
        """(B,) summed log-prob of each sequence's scored tokens."""
        return self.scatter(self.logprobs).sum(-1)


def _kept_logits(model, keep: torch.Tensor, **inputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(M, V) logits at the True positions of `keep` (B, L), and the model's last hidden states (B, L, H) if
    `output_hidden_states` is among the inputs."""
    kind = logits_to_keep_kind(model)
    if kind == "mask":
        out = model(**inputs, logits_to_keep=keep)
        logits = out.logits
    elif kind == "count":
        first = int(keep.any(0).nonzero().min()) if keep.any() else keep.shape[1]
        out = model(**inputs, logits_to_keep=keep.shape[1] - first)
        logits = out.logits[keep[:, first:]]
    else:
        out = model(**inputs)
        logits = out.logits[keep]
    hidden = out.hidden_states[-1] if inputs.get("output_hidden_states") else None
    return logits, hidden


def completion_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor, *,
                        position_ids: torch.Tensor | None = None, temperature: float = 1.0,
                        return_logits: bool = False, return_hidden: bool = False) -> CompletionForward:
    """Teacher-forced log-probs of the scored tokens of `labels` (B, L) under `model`.

    log p(y_t) = z_t[y_t] - logsumexp(z_t) with z_t = logits at position t-1 / temperature, at the M
    positions where labels[:, 1:] != IGNORE. The masks are made on the host and moved once: indexing
    by a GPU tensor would make the host wait for the GPU.
    """
    device = input_ids.device
    targets = labels[:, 1:].cpu()  # (B, L-1): the token position t predicts
    scored = targets != IGNORE  # (B, L-1), on the host
    keep = torch.cat([scored, scored.new_zeros(len(targets), 1)], dim=1)  # (B, L): no target after the end
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if position_ids is not None:
        inputs["position_ids"] = position_ids
    if return_hidden:
        inputs["output_hidden_states"] = True
    logits, hidden = _kept_logits(model, keep.to(device), **inputs)  # (M, V)
    if temperature != 1.0 or return_logits:
        logits = logits.float() / temperature
    predicts = scored.to(device)
    logprobs = token_logprobs(logits.unsqueeze(0), targets[scored].to(device).unsqueeze(0)).squeeze(0)
    kept_hidden = hidden[:, :-1][predicts] if hidden is not None else None
    return CompletionForward(predicts, logprobs, logits if return_logits else None, kept_hidden)


def response_inputs(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, tokens: torch.Tensor,
                    mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sampled responses (B, T) after left-padded prompts (B, P), as the inputs of `completion_logprobs`:
    every response column is scored (padding after EOS too, so M = B * T and the log-probs reshape to
    (B, T); the caller's mask drops the padding), positions count real tokens only (as the sampler's)."""
    attention = torch.cat([prompt_mask, mask.long()], 1)  # (B, P+T)
    return {"input_ids": torch.cat([prompt_ids, tokens], 1), "attention_mask": attention,
            "labels": torch.cat([torch.full_like(prompt_ids, IGNORE), tokens], 1),
            "position_ids": (attention.cumsum(-1) - 1).clamp(min=0)}


def shared_prompt_logprobs(model, prompts: list[list[int]], responses: list[list[int]], prompt_of: list[int],
                           pad_id: int, groups: int = 1) -> torch.Tensor:
    """(R,) summed log-probs of responses[r] after prompts[prompt_of[r]], each prompt run through the model once.

    Prompt passes: the prompts, sorted by length and cut into `groups` left-padded passes, with a KV
    cache and only the last position's logits (they predict each response's first token); the caches
    are left-padded (zeros, masked) to one width. Response passes: the responses, sorted by length and
    cut into `groups` right-padded passes, each row attending to its own prompt's cache rows; logits
    only where a response token predicts the next one. Gradients flow through the caches into the prompt
    passes. Positions count real tokens only (as in one unpadded sequence), so each sum equals
    `completion_logprobs` on prompt + response up to float round-off, while a prompt shared by k
    responses is computed once instead of k times.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    cache_name, kind = cache_argument(model), logits_to_keep_kind(model)
    lengths = torch.tensor([len(p) for p in prompts])
    width = int(lengths.max())
    keys, values, last, order = [], [], [], []
    for cut in length_groups([len(p) for p in prompts], groups):
        ids, mask = padded([prompts[i] for i in cut], pad_id, left=True)
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(device), use_cache=True,
                    **({"logits_to_keep": 1} if kind else {}))
        cache = out[cache_name] if cache_name in out else out.past_key_values
        pad = (0, 0, width - ids.shape[1], 0)  # left-pad this pass's cache to the widest prompt
        keys.append([torch.nn.functional.pad(layer.keys, pad) for layer in cache.layers])
        values.append([torch.nn.functional.pad(layer.values, pad) for layer in cache.layers])
        last.append(out.logits[:, -1])
        order += cut
    back = torch.argsort(torch.tensor(order)).to(device)  # prompt i's row in the concatenated passes
    keys = [torch.cat(layer)[back] for layer in zip(*keys)]
    values = [torch.cat(layer)[back] for layer in zip(*values)]
    last = torch.cat(last)[back]  # (n, V): the logits that predict each response's first token
    prompt_mask = padded(prompts, pad_id, left=True)[1]

    sums, order = [], []
    for cut in length_groups([len(r) for r in responses], groups):
        rows = torch.tensor([prompt_of[r] for r in cut])
        ids, mask = padded([responses[r] for r in cut], pad_id)
        keep = torch.zeros(ids.shape, dtype=torch.bool)  # position t predicts response token t+1
        keep[:, :-1] = mask[:, 1:].bool()
        at = rows.to(device)
        cache = DynamicCache(ddp_cache_data=[(k[at], v[at]) for k, v in zip(keys, values)],
                             config=getattr(model, "module", model).config)
        logits, _ = _kept_logits(model, keep.to(device), input_ids=ids.to(device),
                                 attention_mask=torch.cat([prompt_mask[rows], mask], 1).to(device),
                                 position_ids=(lengths[rows][:, None] + torch.arange(ids.shape[1])).to(device),
                                 use_cache=True, **{cache_name: cache})
        first = token_logprobs(last[at], ids[:, 0].to(device))
        rest = token_logprobs(logits.unsqueeze(0), ids[:, 1:][keep[:, :-1]].to(device).unsqueeze(0)).squeeze(0)
        sums.append(first + rest.new_zeros(keep.shape).masked_scatter(keep.to(device), rest).sum(-1))
        order += cut
    return torch.cat(sums)[torch.argsort(torch.tensor(order)).to(device)]


def length_groups(lengths: list[int], groups: int) -> list[list[int]]:
    """Indices sorted by length (shortest first), cut into `groups` runs of about equal size."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups = max(1, min(groups, len(order)))
    return [order[g * len(order) // groups:(g + 1) * len(order) // groups] for g in range(groups)]


def padded(sequences: list[list[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) token ids and attention mask, padded on the right (or the left) to the longest sequence."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, span], mask[row, span] = torch.tensor(seq, dtype=torch.long), 1
    return ids, mask


def supports_shared_prompt(model) -> bool:
    """Whether `shared_prompt_logprobs` can run on `model`: full-attention layers only (no sliding window,
    whose cache the prompt passes would have to cut), and no activation checkpointing (which turns the
    cache off in training)."""
    inner = getattr(model, "module", model)
    checkpointing = getattr(inner, "is_activation_checkpointing", None)
    if checkpointing is None:
        checkpointing = getattr(inner, "is_gradient_checkpointing", False)
    if checkpointing and inner.training:
        return False
    config = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return (getattr(config, "sliding_window", None) is None and set(layer_types) == {"full_attention"}
            and getattr(config, "use_cache", True) is not False and not config.is_encoder_decoder)
