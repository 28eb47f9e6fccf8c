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
