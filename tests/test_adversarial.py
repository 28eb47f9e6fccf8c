"""Hardening the reward model: adversarial pairs built by hand, label smoothing and the L2 pull
derived by hand, and a short `rm` run that trains on them."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlhfkit.data.adversarial import EDITS, add_filler, adversarial_pairs, repeat_sentence
from rlhfkit.errors import ConfigError
from rlhfkit.evaluation.probes import FILLER, FLATTERY, OVERCONFIDENCE
from rlhfkit.math.losses import bradley_terry_loss, l2_to_reference
from rlhfkit.trainers.rm import RMConfig, train_rm

TEXT = " Use fresh beans. Grind them fine. Brew for four minutes."


class ScriptedRandom:
    """A random source that answers from scripts: which branch an edit takes, which phrase it picks."""

    def __init__(self, uniform=(0.9,), indices=(0,)):
        self.uniform, self.indices = list(uniform), list(indices)

    def random(self) -> float:
        return self.uniform.pop(0)

    def randrange(self, start: int, stop: int) -> int:
        return start + self.indices.pop(0)

    def choice(self, options):
        return options[self.indices.pop(0)]


def test_repetition_edits_by_hand():
    """Branch 1 (uniform 0.9 >= 0.5): the last sentence again in front. Branch 2 (0.1, index 0 -> k = 1):
    the middle sentence doubled in place. Never the probe's edit (first sentence again at the end)."""
    assert repeat_sentence(TEXT, ScriptedRandom((0.9,))) == (
        " Brew for four minutes. Use fresh beans. Grind them fine. Brew for four minutes.")
    assert repeat_sentence(TEXT, ScriptedRandom((0.1,), (0,))) == (
        " Use fresh beans. Grind them fine. Grind them fine. Brew for four minutes.")
    assert repeat_sentence("no sentence here", ScriptedRandom()) is None


def test_filler_and_phrase_edits_by_hand():
    """Filler 0 in front (0.9), or between sentences 1 and 2 (0.1, k = 1); praise 0 at the end (0.7)."""
    first = "It is important to note that every situation is different."
    assert add_filler(TEXT, ScriptedRandom((0.9,), (0,))) == f" {first} {TEXT.strip()}"
    assert add_filler(TEXT, ScriptedRandom((0.1,), (0, 0))) == (
        f" Use fresh beans. {first} Grind them fine. Brew for four minutes.")
    assert EDITS["flattery"](TEXT, ScriptedRandom((0.7,), (0,))) == f"{TEXT} What a wonderful question!"


def test_adversarial_pairs_prefer_the_original_and_differ_from_the_probes():
    rows = [{"prompt": "Q", "chosen": TEXT, "rejected": " Beans. Water. Heat."}] * 50
    pairs = adversarial_pairs(rows, list(EDITS), share=1.0, seed=0)
    assert len(pairs) == 100 and {p["adversarial"] for p in pairs} == set(EDITS)
    assert all(p["chosen"] in (TEXT, " Beans. Water. Heat.") and p["rejected"] != p["chosen"] for p in pairs)
    for p in pairs:  # the probes' own strings and positions never appear in training
        assert FLATTERY not in p["rejected"] and OVERCONFIDENCE not in p["rejected"] and FILLER not in p["rejected"]
        first = p["chosen"].strip().split(". ")[0] + "."
        assert not (p["adversarial"] == "repetition" and p["rejected"].rstrip().endswith(first)
                    and not p["rejected"].strip().startswith(first))
    assert len(adversarial_pairs(rows, ["flattery"], share=0.25, seed=1)) < 50
    assert adversarial_pairs(rows, ["length"], 0.5, seed=3) == adversarial_pairs(rows, ["length"], 0.5, seed=3)
    with pytest.raises(ValueError, match="unknown adversarial edit"):
        adversarial_pairs(rows, ["typos"], 1.0, 0)


def test_label_smoothing_by_hand():
    """d = 0: every eps gives log 2. d = log 3 (sigma(d) = 3/4), eps = 1/4: -(3/4) log(3/4) - (1/4) log(1/4)
    = 0.56233, the entropy of the soft label, which is also this loss's minimum over d."""
    zero = bradley_terry_loss(torch.zeros(1), torch.zeros(1), label_smoothing=0.25)
    torch.testing.assert_close(zero, torch.tensor([math.log(2)]))
    loss = bradley_terry_loss(torch.tensor([math.log(3)]), torch.zeros(1), label_smoothing=0.25)
    torch.testing.assert_close(loss, torch.tensor([-(0.75 * math.log(0.75)) - 0.25 * math.log(0.25)]))
    nearby = bradley_terry_loss(torch.tensor([math.log(3) + 0.5]), torch.zeros(1), label_smoothing=0.25)
    assert nearby > loss  # past sigma = 1 - eps the loss rises again: no push to infinity
    with pytest.raises(ValueError):
        bradley_terry_loss(torch.zeros(1), torch.zeros(1), label_smoothing=0.5)


def test_l2_to_reference_by_hand():
    """theta = (1, 2) against theta0 = (0, 0.5): 1^2 + 1.5^2 = 3.25; its gradient 2 (theta - theta0) = (2, 3)."""
    theta = torch.tensor([1.0, 2.0], requires_grad=True)
    value = l2_to_reference([theta], [torch.tensor([0.0, 0.5])])
    torch.testing.assert_close(value, torch.tensor(3.25))
    value.backward()
    torch.testing.assert_close(theta.grad, torch.tensor([2.0, 3.0]))
    assert l2_to_reference([], []) == 0


def test_rm_trains_with_adversarial_pairs_and_regularisers(tmp_path, capsys):
    out = train_rm(RMConfig(model="tiny", builtin_size=64, batch_size=8, max_length=128, max_steps=3,
                            adversarial_edits=["repetition", "flattery"], adversarial_share=0.5, label_smoothing=0.1,
                            head_l2=0.01, out=str(tmp_path / "rm"), progress=False))
    assert "adversarial pairs (repetition, flattery)" in capsys.readouterr().out
    assert (out / "reward_stats.json").exists()
    with pytest.raises(ConfigError, match="adversarial-edits"):
        RMConfig(adversarial_edits=["typos"]).validate()


def test_rm_extra_data_trains_beside_data_and_records_the_mix(tmp_path):
    from rlhfkit.data.records import load_records, write_jsonl
    from rlhfkit.errors import DataError

    rows = load_records("builtin:assistant", "preferences", builtin_size=48).rows
    write_jsonl(tmp_path / "sft_pairs.jsonl", rows[:32])
    write_jsonl(tmp_path / "policy_pairs.jsonl", rows[32:])
    out = train_rm(RMConfig(model="tiny", data=str(tmp_path / "sft_pairs.jsonl"),
                            extra_data=[str(tmp_path / "policy_pairs.jsonl")], batch_size=8, max_length=128,
                            max_steps=2, out=str(tmp_path / "rm"), progress=False))
    mix = json.loads((out / "eval_metrics.json").read_text())["data_mix"]
    assert mix == {str(tmp_path / "sft_pairs.jsonl"): 32 - 1, str(tmp_path / "policy_pairs.jsonl"): 16}
    (tmp_path / "bad.jsonl").write_text('{"prompt": "Q", "chosen": "a"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: missing field 'rejected'"):
        train_rm(RMConfig(model="tiny", data=str(tmp_path / "sft_pairs.jsonl"), extra_data=[str(tmp_path / "bad.jsonl")],
                          out=str(tmp_path / "rm2"), progress=False))
    assert not (tmp_path / "rm2").exists()
