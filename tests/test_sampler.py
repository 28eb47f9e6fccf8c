"""The KV-cache sampler against references: HF greedy generation, and a teacher-forced forward pass."""

from __future__ import annotations

import pytest
import torch

from rlhfkit.models.loading import build_tiny
from rlhfkit.models.sampler import SamplingParams, filter_logits, gumbel_max, sample

PROMPTS = ["Question: How can I sleep better at night?\nAnswer:", "Question: Hi?\nAnswer:",
           "Question: What should I do if I find a snake in my rural yard?\nAnswer:"]


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny(seed=3)
    return model.eval(), tokenizer


def test_greedy_matches_transformers_generate(tiny):
    model, tokenizer = tiny
    out = sample(model, tokenizer, PROMPTS, SamplingParams(max_new_tokens=12, temperature=0))
    for i, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ref = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)[0, ids.shape[1]:]
        n = int(out.mask[i].sum())
        assert out.tokens[i, :n].tolist() == ref[:n].tolist()


def test_logprobs_match_a_teacher_forced_forward_pass(tiny):
    """At temperature 1 with no filtering, the returned log-prob of token t must equal
    log_softmax(model(prompt + tokens[:t]))[token t] computed in one un-cached pass."""
    model, tokenizer = tiny
    out = sample(model, tokenizer, PROMPTS, SamplingParams(max_new_tokens=10), torch.Generator().manual_seed(0))
    for i, prompt in enumerate(PROMPTS):
        n = int(out.mask[i].sum())
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        full = torch.cat([ids[0], out.tokens[i, :n]])[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(full).logits[0, ids.shape[1] - 1:-1].float(), -1)
        expected = logp.gather(-1, out.tokens[i, :n, None]).squeeze(-1)
        torch.testing.assert_close(out.logprobs[i, :n], expected, rtol=1e-4, atol=1e-4)
        assert out.mask[i, n:].sum() == 0


def test_a_repeated_prompt_is_prefilled_once_and_each_copy_samples_exactly(tiny):
    """GRPO asks for G samples of each prompt. The prefill must run over the distinct prompts only
    (the first forward sees 2 rows for 6 samples, in any order), and each copy's cache must be a real
    copy: every row's log-probs equal a teacher-forced pass over its own prompt and tokens, and the
    rows' hidden states (return_hidden) equal that pass's last hidden states."""
    model, tokenizer = tiny
    prompts = [PROMPTS[1], PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0], PROMPTS[1]]
    rows_seen = []
    handle = model.register_forward_pre_hook(lambda module, args, kwargs: rows_seen.append(kwargs["input_ids"].shape),
                                             with_kwargs=True)
    try:
        out = sample(model, tokenizer, prompts, SamplingParams(max_new_tokens=10), torch.Generator().manual_seed(1),
                     return_hidden=True)
    finally:
        handle.remove()
    assert rows_seen[0][0] == 2 and all(shape[0] <= 6 for shape in rows_seen[1:])
    assert len({tuple(out.tokens[i].tolist()) for i in range(6)}) > 2  # the copies sampled different tokens
    for i, prompt in enumerate(prompts):
        n = int(out.mask[i].sum())
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        full = torch.cat([ids[0], out.tokens[i, :n]])[None]
        with torch.no_grad():
            forward = model(full, output_hidden_states=True)
        logp = torch.log_softmax(forward.logits[0, ids.shape[1] - 1:-1].float(), -1)
        torch.testing.assert_close(out.logprobs[i, :n], logp.gather(-1, out.tokens[i, :n, None]).squeeze(-1),
                                   rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out.hidden[i, :n], forward.hidden_states[-1][0, ids.shape[1] - 1:-1],
                                   rtol=1e-4, atol=1e-4)
        assert out.prompt_ids[i, -ids.shape[1]:].tolist() == ids[0].tolist()


def test_filtering_by_hand():
    """logits [2, 1, 0, -1] (probs ~.64 .24 .09 .03): top-k 2 keeps the first two; top-p 0.7 keeps
    tokens while the mass before them is < 0.7, i.e. the first two (0 and .64 before them)."""
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    k = filter_logits(logits, SamplingParams(top_k=2))
    assert torch.isinf(k[0, 2:]).all() and torch.isfinite(k[0, :2]).all()
    p = filter_logits(logits, SamplingParams(top_p=0.7))
    assert torch.isinf(p[0, 2:]).all() and torch.isfinite(p[0, :2]).all()
    assert torch.isfinite(filter_logits(logits, SamplingParams(top_p=0.5))).sum() == 1


def test_stops_at_eos_and_masks_after(tiny):
    model, tokenizer = tiny
    out = sample(model, tokenizer, PROMPTS * 4, SamplingParams(max_new_tokens=40), torch.Generator().manual_seed(1))
    for row, mask in zip(out.tokens, out.mask):
        n = int(mask.sum())
        eos_at = (row[:n] == tokenizer.eos_token_id).nonzero()
        if len(eos_at):
            assert eos_at[0].item() == n - 1  # EOS is the last real token


def test_gumbel_max_draws_from_the_distribution():
    """p = [0.5, 0.3, 0.2]: over 40,000 draws each frequency is within 4 standard errors
    (sqrt(p(1-p)/n) <= 0.0025) of p."""
    p = torch.tensor([0.5, 0.3, 0.2])
    draws = gumbel_max(p.log().expand(40_000, 3), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).float() / 40_000
    torch.testing.assert_close(freq, p, rtol=0, atol=0.01)


def test_rows_that_end_leave_the_batch_and_their_log_probs_stay_exact(tiny):
    """A hook adds 7 to the EOS logit of the untrained model (EOS then has probability about
    e^7 / (e^7 + 2048) = 0.35 per step), so rows end after a few tokens at different steps. The
    sampler must then shrink its decoding batch (the hook sees fewer rows), and every row's
    log-probs must still equal a teacher-forced pass of the same hooked model, EOS last, pads after.
    The returned hidden states (what a value head reads) must equal that pass's last hidden states
    at the positions that predicted each token."""
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id
    batch_sizes = []

    def boost_eos(module, inputs, output):
        output.logits[..., eos] += 7.0
        batch_sizes.append(output.logits.shape[0])

    handle = model.register_forward_hook(boost_eos)
    try:
        prompts = PROMPTS * 4
        out = sample(model, tokenizer, prompts, SamplingParams(max_new_tokens=20), torch.Generator().manual_seed(2),
                     return_hidden=True)
        decode_sizes = batch_sizes[1:]
        assert decode_sizes and min(decode_sizes) < len(prompts)  # ended rows left the batch
        lengths = out.mask.sum(-1).tolist()
        assert len(set(lengths)) > 2
        for i, prompt in enumerate(prompts):
            n = int(lengths[i])
            assert out.finished[i] == (out.tokens[i, n - 1] == eos)
            assert (out.tokens[i, n:] == tokenizer.pad_token_id).all() and out.mask[i, n:].sum() == 0
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                full = model(torch.cat([ids[0], out.tokens[i, :n]])[None], output_hidden_states=True)
            logits = full.logits[0, ids.shape[1] - 1:-1]
            expected = torch.log_softmax(logits.float(), -1).gather(-1, out.tokens[i, :n, None]).squeeze(-1)
            torch.testing.assert_close(out.logprobs[i, :n], expected, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(out.hidden[i, :n], full.hidden_states[-1][0, ids.shape[1] - 1:-1],
                                       rtol=1e-4, atol=1e-4)
    finally:
        handle.remove()


def test_sampling_builds_no_autograd_graph(tiny):
    """The sampler runs without gradients even for a model in train mode with trainable weights: its
    log-probs enter the PPO loss as constants, and a graph through the in-place KV cache would fail there."""
    model, tokenizer = tiny
    model.train()
    try:
        out = sample(model, tokenizer, ["Question: hi?\nAnswer:"] * 2, SamplingParams(max_new_tokens=6),
                     torch.Generator().manual_seed(0))
    finally:
        model.eval()
    assert not out.logprobs.requires_grad and out.logprobs.grad_fn is None
