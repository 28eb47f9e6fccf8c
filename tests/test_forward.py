"""rlhfkit.models.forward: one completion_logprobs for every stage, checked against a plain
log-softmax over all logits, on both layouts (right-padded examples, sampled responses after
left-padded prompts) and on every way a model can skip logits (boolean mask, last-n count, none)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlhfkit.data.tokenization import IGNORE
from rlhfkit.models.forward import completion_logprobs, logits_to_keep_kind, response_inputs
from rlhfkit.models.loading import build_tiny


class CountOnly(nn.Module):
    """A model that takes `logits_to_keep` only as a count of last positions (older transformers)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, position_ids=None, output_hidden_states=False, logits_to_keep=0):
        assert isinstance(logits_to_keep, int)
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          output_hidden_states=output_hidden_states, logits_to_keep=logits_to_keep)


class KeepsAll(nn.Module):
    """A model that always computes every position's logits."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, position_ids=None, output_hidden_states=False):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          output_hidden_states=output_hidden_states)


@pytest.fixture(scope="module")
def tiny():
    model, _ = build_tiny(0)
    return model.eval()


def reference_logprobs(model, input_ids, attention_mask, labels, position_ids=None, temperature=1.0):
    """(B, L-1): log_softmax over all logits, gathered at the labels, 0 where the label is IGNORE."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    logp = torch.log_softmax(logits[:, :-1].float() / temperature, -1)
    targets = labels[:, 1:]
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(targets != IGNORE, picked, torch.zeros_like(picked))


def right_padded_batch():
    """Three sequences of lengths 9, 6, 4, right-padded to 9; prompts of 3, 2, 1 tokens (IGNORE)."""
    torch.manual_seed(1)
    ids = torch.randint(2, 2000, (3, 9))
    attention = torch.zeros(3, 9, dtype=torch.long)
    labels = torch.full((3, 9), IGNORE)
    for row, (length, prompt) in enumerate([(9, 3), (6, 2), (4, 1)]):
        attention[row, :length] = 1
        labels[row, prompt:length] = ids[row, prompt:length]
    return ids, attention, labels


@pytest.mark.parametrize("wrap", [None, CountOnly, KeepsAll])
def test_completion_logprobs_match_a_full_log_softmax(tiny, wrap):
    model = tiny if wrap is None else wrap(tiny)
    assert logits_to_keep_kind(model) == {None: "mask", CountOnly: "count", KeepsAll: None}[wrap]
    ids, attention, labels = right_padded_batch()
    with torch.no_grad():
        fwd = completion_logprobs(model, ids, attention, labels, return_logits=True, return_hidden=True)
        expected = reference_logprobs(tiny, ids, attention, labels)
    scored = int((labels[:, 1:] != IGNORE).sum())
    assert fwd.logprobs.shape == (scored,) and fwd.logits.shape == (scored, tiny.config.vocab_size)
    assert fwd.hidden.shape == (scored, tiny.config.hidden_size)
    torch.testing.assert_close(fwd.scatter(fwd.logprobs), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fwd.row_sums(), expected.sum(-1), atol=1e-4, rtol=1e-5)


def test_sampled_responses_after_left_padded_prompts(tiny):
    """Prompts of 3 and 1 real tokens left-padded to 3, responses of T = 4 with the second ending
    early (mask [1, 1, 0, 0]): every response column is scored (M = B * T), temperature 2 divides the
    logits, and the values equal the full log-softmax's at the response positions."""
    torch.manual_seed(2)
    prompt_ids = torch.randint(2, 2000, (2, 3))
    prompt_mask = torch.tensor([[1, 1, 1], [0, 0, 1]])
    tokens = torch.randint(2, 2000, (2, 4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    inputs = response_inputs(prompt_ids, prompt_mask, tokens, mask)
    assert inputs["position_ids"][1].tolist() == [0, 0, 0, 1, 2, 2, 2]  # padding repeats the last position
    with torch.no_grad():
        fwd = completion_logprobs(tiny, **inputs, temperature=2.0)
        expected = reference_logprobs(tiny, inputs["input_ids"], inputs["attention_mask"], inputs["labels"],
                                      inputs["position_ids"], temperature=2.0)
    assert fwd.logprobs.shape == (8,)
    torch.testing.assert_close(fwd.logprobs.view(2, 4), expected[:, -4:], atol=1e-5, rtol=1e-5)


def test_packed_rows_layout_by_hand():
    """Prompt [5, 6] with responses [7, 8] and [9]; prompt [4] with response [3, 2, 1]. Row 0 is
    [5, 6, 7, 8, 9] (width 5 = the longest row), row 1 [4, 3, 2, 1, pad].
    Positions: row 0 prompt 0, 1; response a at 2, 3; response b restarts at 2 -> [0, 1, 2, 3, 2];
    row 1 [0, 1, 2, 3, 0].
    Attention of row 0 (query i, key j): 9 (i=4) sees the prompt (j=0, 1) and itself, not 7, 8:
    [1, 1, 0, 0, 1]; 8 (i=3) sees [1, 1, 1, 1, 0]. Row 1's pad (i=4) sees only itself.
    Predictors, flat index b*5+t: a_0=7 by 6 (t=1), a_1=8 by 7 (t=2); b_0=9 by 6 again (t=1);
    row 1: 3 by 4 (5), 2 by 3 (6), 1 by 2 (7). Kept positions {1, 2, 5, 6, 7} in row-major order, so
    the logit rows are [0, 1, 0, 2, 3, 4]; targets [7, 8, 9, 3, 2, 1]; owners (responses numbered row
    by row) [0, 0, 1, 2, 2, 2]; offsets [0, 1, 0, 0, 1, 2]."""
    from rlhfkit.models.forward import packed_rows

    rows = packed_rows([[5, 6], [4]], [[[7, 8], [9]], [[3, 2, 1]]], pad_id=0)
    assert rows.input_ids.tolist() == [[5, 6, 7, 8, 9], [4, 3, 2, 1, 0]]
    assert rows.position_ids.tolist() == [[0, 1, 2, 3, 2], [0, 1, 2, 3, 0]]
    assert rows.mask[0, 4].long().tolist() == [1, 1, 0, 0, 1]
    assert rows.mask[0, 3].long().tolist() == [1, 1, 1, 1, 0]
    assert rows.mask[1, 4].long().tolist() == [0, 0, 0, 0, 1]
    assert rows.mask[1, 2].long().tolist() == [1, 1, 1, 0, 0]
    assert rows.keep.long().tolist() == [[0, 1, 1, 0, 0], [1, 1, 1, 0, 0]]
    assert rows.logit_row.tolist() == [0, 1, 0, 2, 3, 4]
    assert rows.targets.tolist() == [7, 8, 9, 3, 2, 1]
    assert rows.owner.tolist() == [0, 0, 1, 2, 2, 2]
    assert rows.offset.tolist() == [0, 1, 0, 0, 1, 2]


@pytest.mark.parametrize("family", ["llama", "llama-eager", "gpt2"])
def test_packed_response_logprobs_equal_separate_sequences_with_gradients(family):
    """Two groups of 3 sampled responses (prompts of 3 and 1 real tokens, left-padded; responses ending
    at different steps): the packed forward, each prompt computed once, gives the per-token log-probs
    and logits of completion_logprobs on each prompt + response (0 after a response's end), and the
    same gradient of their masked sum, in 1 and 2 passes, with sdpa's boolean mask, eager's additive
    one, and learned absolute positions (gpt2)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhfkit.models.forward import packed_response_logprobs

    model, _ = build_tiny(0)
    if family == "llama-eager":
        model, _ = build_tiny(0)
        model.set_attn_implementation("eager")
    if family == "gpt2":
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=2048, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    model.train()
    torch.manual_seed(3)
    prompt_ids = torch.randint(2, 2000, (2, 3)).repeat_interleave(3, 0)
    prompt_mask = torch.tensor([[1, 1, 1], [0, 0, 1]]).repeat_interleave(3, 0)
    tokens = torch.randint(2, 2000, (6, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0],
                         [1, 0, 0, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]).float()

    def grads():
        out = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        model.zero_grad()
        return out

    inputs = response_inputs(prompt_ids, prompt_mask, tokens, mask)
    fwd = completion_logprobs(model, **inputs, temperature=0.7, return_logits=True)
    expected = fwd.logprobs.view(6, 5) * mask
    (expected.sum()).backward()
    expected_grad = grads()
    expected_logits = fwd.logits.view(6, 5, -1) * mask[..., None]
    for groups in (1, 2):
        logprobs, logits = packed_response_logprobs(model, prompt_ids, prompt_mask, tokens, mask, 0.7, groups,
                                                    return_logits=True)
        torch.testing.assert_close(logprobs, expected.detach(), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(logits, expected_logits.detach(), atol=1e-4, rtol=1e-5)
        logprobs.sum().backward()
        torch.testing.assert_close(grads(), expected_grad, atol=1e-4, rtol=1e-4)
