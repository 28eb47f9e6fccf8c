"""Fast batched sampling with a KV cache, returning each token's log-prob under the sampler.

    out = sample(model, tokenizer, prompts, SamplingParams(max_new_tokens=64, temperature=1.0, top_p=0.95))
    out.completions        # decoded texts (EOS stripped)
    out.tokens             # (B, T) generated ids, pad after EOS
    out.logprobs           # (B, T) log-prob of each generated token under the sampling distribution
    out.mask               # (B, T) 1 for real generated tokens (up to and including EOS)

Used by `rlhfkit sample`, evaluation and every online trainer. Prompts are left-padded so that all
rows decode in lock-step: one forward over the prompts fills the cache, then one forward of a
single token per row per step. Rows that emitted EOS keep feeding pads and are masked out; the
loop stops as soon as every row is done. Filtering: temperature, then top-k, then top-p (nucleus).

Leaves out on purpose: beam search, speculative decoding, paged attention (use vLLM for those).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


def takes_logits_to_keep(model) -> bool:
    """Whether `model` (or the module inside a DistributedDataParallel wrapper) accepts `logits_to_keep`."""
    import inspect

    inner = getattr(model, "module", model)
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def gumbel_max(logp: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) log-probs -> (B,) token ids. argmax(log p + Gumbel noise) is an exact draw from p
    (the Gumbel-max trick), and cheaper than `torch.multinomial` on CPU."""
    uniform = torch.rand(logp.shape, generator=generator, device=logp.device).clamp_(min=1e-20)
    return (logp - torch.log(-torch.log(uniform))).argmax(-1)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], params: SamplingParams, generator: torch.Generator | None = None,
           ) -> SampleOutput:
    """Sample one completion per prompt text (repeat prompts for several samples)."""
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    from rlhfkit.tokenization import boundary_tokens

    start, _ = boundary_tokens(tokenizer)
    encoded = [start + tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(len(e) for e in encoded)
    prompt_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    prompt_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        prompt_ids[i, width - len(ids):] = torch.tensor(ids)
        prompt_mask[i, width - len(ids):] = 1
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)

    batch = len(prompts)
    tokens = torch.full((batch, params.max_new_tokens), pad, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, params.max_new_tokens), device=device)
    mask = torch.zeros((batch, params.max_new_tokens), dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    width_total = prompt_mask.shape[1] + params.max_new_tokens
    attention_full = torch.ones((batch, width_total), dtype=torch.long, device=device)  # finished rows are ignored
    attention_full[:, :prompt_mask.shape[1]] = prompt_mask
    attention = prompt_mask
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    # only the last position's logits are needed: models that support it skip the (P x V) projection
    extra = {"logits_to_keep": 1} if takes_logits_to_keep(model) else {}
    out = model(input_ids=prompt_ids, attention_mask=attention, position_ids=positions, use_cache=True, **extra)
    cache, next_logits = out.past_key_values, out.logits[:, -1].float()  # (B, V)
    last_pos = positions[:, -1]
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
        chosen = torch.where(done, torch.full_like(chosen, pad), chosen)
        tokens[:, t], logprobs[:, t] = chosen, torch.where(done, torch.zeros_like(logp), logp)
        mask[:, t] = (~done).long()
        done = done | (chosen == eos)
        steps = t + 1
        if done.all():
            break
        attention = attention_full[:, :prompt_mask.shape[1] + t + 1]
        last_pos = last_pos + 1
        out = model(input_ids=chosen[:, None], attention_mask=attention, position_ids=last_pos[:, None],
                    past_key_values=cache, use_cache=True, **extra)
        cache, next_logits = out.past_key_values, out.logits[:, -1].float()
    tokens, logprobs, mask = tokens[:, :steps], logprobs[:, :steps], mask[:, :steps]
    texts = tokenizer.batch_decode(tokens.masked_fill(mask == 0, pad).tolist(), skip_special_tokens=True)
    finished = ((tokens == eos) & (mask == 1)).any(-1)
    return SampleOutput(prompt_ids, prompt_mask, tokens, logprobs, mask, texts, finished)
