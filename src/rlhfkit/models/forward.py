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
    """(R,) summed log-probs of responses[r] after prompts[prompt_of[r]], each prompt run through the model
    once (`packed_logprobs`)."""
    fwd = packed_logprobs(model, prompts, responses, prompt_of, pad_id, groups)
    owner = torch.repeat_interleave(torch.arange(len(responses)), torch.tensor([len(r) for r in responses]))
    return fwd.logprobs.new_zeros(len(responses)).index_add(0, owner.to(fwd.logprobs.device), fwd.logprobs)


@dataclass
class PackedForward:
    """What `packed_logprobs` computed, for every response token in order (response 0's, then 1's, ...)."""

    logprobs: torch.Tensor  # (N,)
    logits: torch.Tensor | None = None  # (N, V) float32 (divided by the temperature), when asked for


def packed_logprobs(model, prompts: list[list[int]], responses: list[list[int]], prompt_of: list[int], pad_id: int,
                    groups: int = 1, temperature: float = 1.0, return_logits: bool = False) -> PackedForward:
    """Teacher-forced log-probs of every token of responses[r] after prompts[prompt_of[r]], each prompt run
    through the model once.

    Packed rows: each prompt is one row, followed by all of its responses, and a 4D attention mask
    lets each response see the prompt and its own earlier tokens only (`packed_rows`); positions
    restart after the prompt for every response, so the log-probs equal `completion_logprobs` on
    prompt + response up to float round-off. The rows are sorted by length and cut into `groups`
    right-padded passes; logits only where a position predicts a response token (the prompt's last
    position predicts the first token of every response). A prompt shared by k responses is computed
    once instead of k times, in one pass per group: the matrix products keep their row counts, and
    the weight gradients are not split over extra passes (a KV-cache version, prompts first and then
    the responses on their cache, was slower on the CPU for both reasons).
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    by_prompt: list[list[int]] = [[] for _ in prompts]
    for r, p in enumerate(prompt_of):
        by_prompt[p].append(r)
    used = [p for p in range(len(prompts)) if by_prompt[p]]
    starts = torch.tensor([0] + [len(r) for r in responses]).cumsum(0).tolist()
    n_tokens = starts[-1]
    logprobs, logits_out = None, None
    for cut in length_groups([len(prompts[p]) + sum(len(responses[r]) for r in by_prompt[p]) for p in used], groups):
        members = [by_prompt[used[i]] for i in cut]
        rows = packed_rows([prompts[used[i]] for i in cut], [[responses[r] for r in m] for m in members], pad_id)
        mask = rows.mask[:, None]
        if attention_implementation(model) == "eager":  # eager adds the mask to the scores; sdpa takes True = attend
            mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
        logits, _ = _kept_logits(model, rows.keep.to(device), input_ids=rows.input_ids.to(device),
                                 attention_mask=mask.to(device), position_ids=rows.position_ids.to(device))
        logits = logits[rows.logit_row.to(device)]
        if temperature != 1.0 or return_logits:
            logits = logits.float() / temperature
        got = token_logprobs(logits.unsqueeze(0), rows.targets.to(device).unsqueeze(0)).squeeze(0)
        flat = [r for m in members for r in m]  # the pass's responses, in the order of rows.owner
        slot = (torch.tensor([starts[r] for r in flat])[rows.owner] + rows.offset).to(device)
        logprobs = (got.new_zeros(n_tokens) if logprobs is None else logprobs).index_copy(0, slot, got)
        if return_logits:
            base = logits.new_zeros(n_tokens, logits.shape[-1]) if logits_out is None else logits_out
            logits_out = base.index_copy(0, slot, logits)
    if logprobs is None:
        logprobs = torch.zeros(0, device=device)
    return PackedForward(logprobs, logits_out)


@dataclass
class PackedRows:
    """One right-padded row per prompt: the prompt, then each of its responses (see `packed_rows`)."""

    input_ids: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L): 0.. over the prompt, restarting at the prompt's length per response
    mask: torch.Tensor  # (B, L, L) bool: query i may attend to key j
    keep: torch.Tensor  # (B, L) bool: the positions whose logits are needed
    logit_row: torch.Tensor  # (M,) for each scored token, its predicting position's row among the kept logits
    targets: torch.Tensor  # (M,) the scored tokens
    owner: torch.Tensor  # (M,) which response (numbered row by row) each scored token belongs to
    offset: torch.Tensor  # (M,) its index within that response


def packed_rows(prompts: list[list[int]], responses: list[list[list[int]]], pad_id: int) -> PackedRows:
    """Rows of prompt + responses for `packed_logprobs`.

    In a row `[p_0..p_{P-1}, a_0..a_{A-1}, b_0..b_{B-1}, pad...]`, token a_k may attend to the prompt
    and a_0..a_k, token b_k to the prompt and b_0..b_k (never to a); a_k sits at position P + k and
    so does b_k. Token a_0 (and b_0) is predicted by p_{P-1}, a_k by a_{k-1}. Padding attends to
    itself only, so no attention row is empty (an empty one would give NaN and poison the backward).
    """
    width = max(len(p) + sum(len(r) for r in rs) for p, rs in zip(prompts, responses))
    n = len(prompts)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n, width), dtype=torch.long)
    segment = torch.full((n, width), -1, dtype=torch.long)  # 0 prompt, k+1 response k, -1 padding
    predictor, targets, offset = [], [], []
    for b, (prompt, rows) in enumerate(zip(prompts, responses)):
        start = len(prompt)
        ids[b, :start] = torch.tensor(prompt)
        positions[b, :start] = torch.arange(start)
        segment[b, :start] = 0
        for k, response in enumerate(rows):
            end = start + len(response)
            ids[b, start:end] = torch.tensor(response, dtype=torch.long)
            positions[b, start:end] = torch.arange(len(prompt), len(prompt) + len(response))
            segment[b, start:end] = k + 1
            if response:
                predictor += [b * width + len(prompt) - 1] + [b * width + i for i in range(start, end - 1)]
            targets += response
            offset += range(len(response))
            start = end
    index = torch.arange(width)
    causal = index[None, :] <= index[:, None]  # (L, L): key j at or before query i
    same = (segment[:, None, :] == 0) | (segment[:, None, :] == segment[:, :, None])  # (B, L, L)
    real = (segment >= 0)[:, None, :] & (segment >= 0)[:, :, None]
    mask = (causal & same & real) | torch.eye(width, dtype=torch.bool)
    keep = torch.zeros(n * width, dtype=torch.bool)
    keep[predictor] = True
    rank = keep.long().cumsum(0) - 1  # a kept position's row in the (M_kept, V) logits
    counts = torch.tensor([len(r) for rs in responses for r in rs])
    return PackedRows(ids, positions, mask, keep.view(n, width), rank[torch.tensor(predictor)],
                      torch.tensor(targets, dtype=torch.long), torch.repeat_interleave(torch.arange(len(counts)), counts),
                      torch.tensor(offset, dtype=torch.long))


def attention_implementation(model) -> str:
    """The attention kernel family `model` runs (`sdpa`, `eager`, ...), as its config names it."""
    inner = getattr(model, "module", model)
    return getattr(inner.config, "_attn_implementation", None) or "eager"


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


def packed_response_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, tokens: torch.Tensor,
                             mask: torch.Tensor, temperature: float = 1.0, groups: int = 1,
                             return_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sampled responses (B, T) after left-padded prompts (B, P), as `packed_logprobs` takes them: rows
    with the same prompt tokens share one prompt (a grpo/rloo group), and only each response's real
    tokens (mask 1, a prefix of its row) are scored. Returns (B, T) log-probs, 0 where mask is 0, and
    (B, T, V) logits, 0 there, when asked for."""
    prompts: dict[tuple[int, ...], int] = {}
    prompt_of, responses = [], []
    for ids, keep, row, live in zip(prompt_ids.tolist(), prompt_mask.tolist(), tokens.tolist(), mask.tolist()):
        prompt = tuple(t for t, k in zip(ids, keep) if k)
        prompt_of.append(prompts.setdefault(prompt, len(prompts)))
        responses.append(row[:int(sum(live))])
    # pad_id 0: padding attends to itself only and is never scored, so its id does not matter
    fwd = packed_logprobs(model, [list(p) for p in prompts], responses, prompt_of, pad_id=0, groups=groups,
                          temperature=temperature, return_logits=return_logits)
    scored = mask.bool()
    logprobs = fwd.logprobs.new_zeros(scored.shape).masked_scatter(scored, fwd.logprobs)
    logits = None
    if return_logits:
        logits = fwd.logits.new_zeros(*scored.shape, fwd.logits.shape[-1]).masked_scatter(scored[..., None],
                                                                                         fwd.logits)
    return logprobs, logits


def supports_shared_prompt(model) -> bool:
    """Whether `shared_prompt_logprobs` can run on `model`: full-attention layers only (a sliding window
    would need its own packed mask), an attention kernel that takes a custom 4D mask (`sdpa`, `eager`;
    not flash-attention), and a decoder-only model."""
    inner = getattr(model, "module", model)
    config = inner.config.get_text_config() if hasattr(inner.config, "get_text_config") else inner.config
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return (getattr(config, "sliding_window", None) is None and set(layer_types) == {"full_attention"}
            and attention_implementation(model) in ("sdpa", "eager") and not config.is_encoder_decoder)
