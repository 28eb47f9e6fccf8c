"""Fast batched sampling with a KV cache, returning each token's log-prob under the sampler.

    out = sample(model, tokenizer, prompts, SamplingParams(max_new_tokens=64, temperature=1.0, top_p=0.95))
    out.completions        # decoded texts (EOS stripped)
    out.tokens             # (B, T) generated ids, pad after EOS
    out.logprobs           # (B, T) log-prob of each generated token under the sampling distribution
    out.mask               # (B, T) 1 for real generated tokens (up to and including EOS)

Used by `rlhfkit sample`, evaluation and every online trainer. Prompts are left-padded so that all
rows decode in lock-step: one forward over the prompts fills the cache, then one forward of a
single token per row per step. A prompt given several times (a GRPO group, `--num-samples`) is
prefilled once and its cache copied to each of its rows (with the preallocated cache below), so
the prefill costs what the distinct prompts cost. Rows that emitted EOS feed pads and are masked out; with the
preallocated cache (models whose cache layers are all plain full-attention ones, such as Llama,
Qwen2 or GPT-2), once a quarter of the batch has ended those rows leave the batch and the cache, so
the long tail of a batch costs what its live rows cost; the loop stops as soon as every row is done.
Filtering: temperature, then top-k, then top-p (nucleus).

Leaves out on purpose: beam search, speculative decoding, paged attention (use vLLM for those).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from rlhfkit.data.tokenization import boundary_tokens
from rlhfkit.models.forward import cache_argument, logits_to_keep_kind, padded


@dataclass
class SamplingParams:
    max_new_tokens: int = 96
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class SampleOutput:
    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P)
    tokens: torch.Tensor  # (B, T)
    logprobs: torch.Tensor  # (B, T)
    mask: torch.Tensor  # (B, T)
    completions: list[str]
    finished: torch.Tensor  # (B,) True where the response ended with EOS
    hidden: torch.Tensor | None = None  # (B, T, H) last hidden state that predicted each token (return_hidden)


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Temperature, top-k and top-p applied to (B, V) logits; removed tokens get -inf."""
    logits = logits / max(params.temperature, 1e-6)
    if params.top_k and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass of the tokens strictly before it already reaches top_p
        drop = probs.cumsum(-1) - probs >= params.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


class PreallocatedLayer(DynamicLayer):
    """A `DynamicLayer` with room for `capacity` positions, allocated at the first update.

    HF's `DynamicLayer` appends each step's keys and values with `torch.cat`, copying the whole
    cache every step. This layer writes the new positions into its buffer and hands attention a
    view of the filled part, so nothing is copied, and dropping ended rows is one index into it.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        batch, heads = key_states.shape[:2]
        self.key_buffer = key_states.new_empty(batch, heads, self.capacity, key_states.shape[-1])
        self.value_buffer = value_states.new_empty(batch, heads, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"the preallocated KV cache holds {self.capacity} positions, not {end}")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            indices = indices.to(self.key_buffer.device)
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.keys, self.values = self.key_buffer[:, :, :self.length], self.value_buffer[:, :, :self.length]

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("PreallocatedLayer serves rlhfkit's sampler only (no crop, beams or offloading)")

    crop = batch_repeat_interleave = reorder_cache = offload = prefetch = _unsupported
    is_croppable = False


def preallocated_cache(model, capacity: int) -> DynamicCache | None:
    """A `DynamicCache` of `PreallocatedLayer`s for `model`, or None (the model builds its usual cache)
    when its cache would hold other kinds of layers (sliding windows, linear attention)."""
    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # a config the cache cannot read
        return None
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [PreallocatedLayer(capacity) for _ in cache.layers]
    return cache


def gumbel_max(logp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) log-probs -> (B,) token ids. argmax(log p + Gumbel noise) is an exact draw from p
    (the Gumbel-max trick), and cheaper than `torch.multinomial` on CPU."""
    uniform = torch.rand(logp.shape, generator=generator, device=logp.device).clamp_(min=1e-20)
    return (logp - torch.log(-torch.log(uniform))).argmax(-1)


def encode_prompts(tokenizer, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) left-padded prompt token ids (after the tokenizer's start tokens) and their mask."""
    start, _ = boundary_tokens(tokenizer)
    encoded = [start + ids for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]] if prompts else []
    prompt_ids, prompt_mask = padded(encoded, tokenizer.pad_token_id, left=True)
    return prompt_ids.to(device), prompt_mask.to(device)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], params: SamplingParams, generator: torch.Generator | None = None,
           return_hidden: bool = False) -> SampleOutput:
    """Sample one completion per prompt text (repeat prompts for several samples).

    `return_hidden` also returns the final hidden state at the position that predicted each token,
    which is what a value head reads: PPO gets its rollout-time values without another forward."""
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    index = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    prompt_ids, prompt_mask = encode_prompts(tokenizer, list(index), device)
    # row i of the batch is distinct prompt copies[i]; the prefill runs once per distinct prompt
    copies = torch.tensor([index[p] for p in prompts] if len(index) < len(prompts) else [],
                          dtype=torch.long, device=device)

    batch = len(prompts)
    tokens = torch.full((batch, params.max_new_tokens), pad, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, params.max_new_tokens), device=device)
    mask = torch.zeros((batch, params.max_new_tokens), dtype=torch.long, device=device)
    width_total = prompt_mask.shape[1] + params.max_new_tokens
    # only the last position's logits are needed: models that support it skip the (P x V) projection
    extra = {"logits_to_keep": 1} if logits_to_keep_kind(model) else {}
    cache = preallocated_cache(model, width_total)
    compactable = cache is not None
    if len(copies) and not compactable:  # a cache that cannot be copied row by row: prefill every row
        prompt_ids, prompt_mask, copies = prompt_ids[copies], prompt_mask[copies], copies[:0]
    if return_hidden:
        extra["output_hidden_states"] = True
        hidden = torch.zeros((batch, params.max_new_tokens, model.config.hidden_size), device=device)
    cache_name = cache_argument(model)
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                **{cache_name: cache}, **extra)
    cache, next_logits = out[cache_name], out.logits[:, -1].float()  # (B, V)
    last_hidden = out.hidden_states[-1][:, -1] if return_hidden else None
    if len(copies):  # one row per sample from here on
        cache.batch_select_indices(copies)
        prompt_ids, prompt_mask, positions, next_logits = (prompt_ids[copies], prompt_mask[copies], positions[copies],
                                                           next_logits[copies])
        last_hidden = last_hidden[copies] if return_hidden else None
    attention_full = torch.ones((batch, width_total), dtype=torch.long, device=device)  # ended rows are ignored
    attention_full[:, :prompt_mask.shape[1]] = prompt_mask
    last_pos = positions[:, -1]
    # the decoding batch shrinks as rows end: `rows` maps its rows to output rows, `live` marks those
    # that have not emitted EOS yet
    rows = torch.arange(batch, device=device)
    live = torch.ones(batch, dtype=torch.bool, device=device)
    steps = 0
    for t in range(params.max_new_tokens):
        if params.temperature == 0:
            chosen = next_logits.argmax(-1)
            logp = torch.log_softmax(next_logits, -1).gather(-1, chosen[:, None]).squeeze(-1)
        else:
            plain = params.temperature == 1.0 and not params.top_k and params.top_p >= 1.0
            filtered = next_logits if plain else filter_logits(next_logits, params)
            logp_all = torch.log_softmax(filtered, -1)
            chosen = gumbel_max(logp_all, generator)
            logp = logp_all.gather(-1, chosen[:, None]).squeeze(-1)
        chosen = torch.where(live, chosen, torch.full_like(chosen, pad))
        tokens[rows, t], logprobs[rows, t] = chosen, torch.where(live, logp, torch.zeros_like(logp))
        mask[rows, t] = live.long()
        if return_hidden:
            hidden[rows, t] = last_hidden.float()
        live = live & (chosen != eos)
        steps = t + 1
        n_live = int(live.sum())
        if n_live == 0:
            break
        if compactable and n_live <= 0.75 * len(rows):  # drop ended rows from the batch and the cache
            keep = live.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, live, chosen, last_pos, attention_full = (rows[keep], live[keep], chosen[keep], last_pos[keep],
                                                            attention_full[keep])
        attention = attention_full[:, :prompt_mask.shape[1] + t + 1]
        last_pos = last_pos + 1
        out = model(input_ids=chosen[:, None], attention_mask=attention, position_ids=last_pos[:, None],
                    use_cache=True, **{cache_name: cache}, **extra)
        cache, next_logits = out[cache_name], out.logits[:, -1].float()
        last_hidden = out.hidden_states[-1][:, -1] if return_hidden else None
    tokens, logprobs, mask = tokens[:, :steps], logprobs[:, :steps], mask[:, :steps]
    texts = tokenizer.batch_decode(tokens.masked_fill(mask == 0, pad).tolist(), skip_special_tokens=True)
    finished = ((tokens == eos) & (mask == 1)).any(-1)
    return SampleOutput(prompt_ids, prompt_mask, tokens, logprobs, mask, texts, finished,
                        hidden[:, :steps] if return_hidden else None)
