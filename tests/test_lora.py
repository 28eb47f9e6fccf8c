"""LoRA through peft: adapters in every trainer, the reference as the adapters switched off, peft's own
format on disk, `rlhfkit merge` to plain transformers, resuming, and QLoRA refused on a CPU."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from rlhfkit.data.tokenization import collate, encode
from rlhfkit.errors import ConfigError
from rlhfkit.evaluation.evaluate import EvalConfig, run_eval
from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.models.loading import load_causal_lm, load_tokenizer
from rlhfkit.models.lora import MergeConfig, run_merge
from rlhfkit.models.reward_model import RewardScorer
from rlhfkit.trainers.dpo import DPOConfig, train_dpo
from rlhfkit.trainers.loop import make_accelerator
from rlhfkit.trainers.ppo import PPOConfig, setup, train_ppo
from rlhfkit.trainers.rm import RMConfig, train_rm
from rlhfkit.trainers.sft import SFTConfig, train_sft

LORA = dict(lora_r=4, lora_alpha=8.0, progress=False, log_every=1)
FAST = dict(batch_size=8, max_length=128, builtin_size=64, **LORA)


def logits(model, tokenizer) -> torch.Tensor:
    example = encode(tokenizer, "Question: how do I boil an egg?\nAnswer:", " Put it in water.", 64, "t")
    batch = collate([example], tokenizer.pad_token_id)
    with torch.no_grad():
        return model.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@pytest.fixture(scope="module")
def sft_lora(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "sft"
    return train_sft(SFTConfig(model="tiny", out=str(out), max_steps=3, lr=5e-3, **FAST))


def test_sft_saves_an_adapter_on_a_frozen_base(sft_lora):
    """--out holds peft's files and no full weights; the base saved beside it is the untouched start,
    and the adapter moved the model away from it (lora_B starts at 0, so it must have been trained)."""
    assert (sft_lora / "adapter_config.json").is_file() and (sft_lora / "adapter_model.safetensors").is_file()
    assert not (sft_lora / "model.safetensors").exists()
    config = json.loads((sft_lora / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["task_type"] == "CAUSAL_LM"
    weights = load_file(sft_lora / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(v.abs().max() > 0 for k, v in weights.items() if "lora_B" in k)
    tokenizer = load_tokenizer(str(sft_lora))
    base = AutoModelForCausalLM.from_pretrained(sft_lora / "base")
    merged, _ = load_causal_lm(str(sft_lora), dtype="fp32")
    assert not torch.allclose(logits(base, tokenizer), logits(merged, tokenizer), atol=1e-4)


def test_lora_dpo_adapter_loads_with_peft_and_merged_with_plain_transformers(sft_lora, tmp_path):
    """DPO from an adapter folder (merged on loading, kept as the new base): its adapter loads with peft
    onto that base, and `rlhfkit merge` writes full weights giving the same logits in plain transformers."""
    dpo = train_dpo(DPOConfig(model=str(sft_lora), out=str(tmp_path / "dpo"), max_steps=2, lr=5e-3, **FAST))
    rows = [json.loads(line) for line in (dpo / "metrics.jsonl").read_text().splitlines()]
    # the reference is the adapters switched off: at step 1 policy == reference, the loss is exactly log 2
    assert abs(rows[0]["loss"] - 0.693147) < 1e-4, rows[0]
    tokenizer = load_tokenizer(str(dpo))
    base_name = json.loads((dpo / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base_name == str((dpo / "base").resolve())
    with_peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_name), dpo)
    merged = run_merge(MergeConfig(adapter=str(dpo), out=str(tmp_path / "merged")))
    plain = AutoModelForCausalLM.from_pretrained(merged)
    torch.testing.assert_close(logits(plain, tokenizer), logits(with_peft, tokenizer), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="no adapter_config.json"):
        run_merge(MergeConfig(adapter=str(merged), out=str(tmp_path / "again")))


def test_lora_rm_trains_adapters_and_its_head(tmp_path):
    """The reward model's head is saved with the adapters (peft's modules_to_save); the scorer, the merged
    checkpoint in plain transformers and the training run's own held-out pass agree."""
    rm = train_rm(RMConfig(model="tiny", out=str(tmp_path / "rm"), max_steps=3, lr=5e-3, heads=2, **FAST))
    weights = load_file(rm / "adapter_model.safetensors")
    head = [k for k in weights if "lora_" not in k]
    assert head and all("score" in k for k in head) and weights[head[0]].shape[0] == 2
    initial = load_file(rm / "base" / "model.safetensors")["score.weight"]  # the head before training
    assert initial.shape == weights[head[0]].shape and not torch.allclose(initial, weights[head[0]])
    prompts, completions = ["Question: hi?\nAnswer:"] * 2, [" Hello.", " Go away."]
    scorer = RewardScorer(rm)
    rewards = scorer.score_heads(prompts, completions)
    merged = run_merge(MergeConfig(adapter=str(rm), out=str(tmp_path / "merged")))
    assert (merged / "reward_stats.json").is_file()
    assert AutoModelForSequenceClassification.from_pretrained(merged).config.num_labels == 2
    torch.testing.assert_close(RewardScorer(merged).score_heads(prompts, completions), rewards)


def test_lora_ppo_reference_is_the_policy_with_adapters_off(sft_lora, tmp_path):
    """No second model: the reference is None and `disable_adapter` gives the base model's logits even
    after the adapters have changed; a 2-step run starts at KL 0 and eval/sample read its adapter folder."""
    config = PPOConfig(model=str(sft_lora), out=str(tmp_path / "setup"), max_steps=2, prompts_per_step=2,
                       group_size=2, max_new_tokens=8, builtin_size=16, **LORA)
    rl = setup(config, make_accelerator(config))
    assert rl.reference is None and rl.saved is not rl.model
    tokenizer = rl.tokenizer
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "setup" / "base")
    for name, p in rl.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    with rl.saved.disable_adapter():
        off = logits(rl.model, tokenizer)
    torch.testing.assert_close(off, logits(base, tokenizer), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits(rl.model, tokenizer), off, atol=1e-3)

    records = []
    out = train_ppo(PPOConfig(model=str(sft_lora), out=str(tmp_path / "ppo"), max_steps=2, prompts_per_step=2,
                              group_size=2, max_new_tokens=8, builtin_size=16, **LORA),
                    on_step=lambda step, record: records.append(record))
    assert abs(records[0]["kl"]) < 1e-5 and (out / "adapter_model.safetensors").is_file()
    result = run_eval(EvalConfig(policy=str(out), reference=str(sft_lora), num_prompts=4, max_new_tokens=8,
                                 probes=False))
    assert 0 <= result["win_rate"] <= 1
    samples = run_sample(SampleConfig(model=str(out), num_prompts=2, max_new_tokens=8,
                                      out=str(tmp_path / "samples.jsonl")))
    assert len(samples.read_text().splitlines()) == 2


class Interrupt(Exception):
    pass


def test_lora_resume_matches_an_uninterrupted_run(tmp_path):
    """Four steps with a crash after step 3 and a resume from the step-2 checkpoint == four steps straight:
    the adapters, optimizer, schedule and RNG come back from peft-format checkpoints (bit for bit)."""
    common = dict(model="tiny", max_length=128, batch_size=8, builtin_size=64, lr=5e-3, eval_fraction=0.0,
                  max_steps=4, save_every=2, **LORA)
    straight = train_sft(SFTConfig(out=str(tmp_path / "a"), **common))

    def crash_at_3(step, record):
        if step == 3:
            raise Interrupt()

    with pytest.raises(Interrupt):
        train_sft(SFTConfig(out=str(tmp_path / "b"), **common), on_step=crash_at_3)
    resumed = train_sft(SFTConfig(out=str(tmp_path / "b"), **common))
    a, b = load_file(straight / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_qlora_and_bad_lora_settings_are_refused_before_work():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: 4-bit loading is allowed here")
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        load_causal_lm("some/model", load_in_4bit=True)
    with pytest.raises(ConfigError, match="give --lora-r too"):
        SFTConfig(load_in_4bit=True).validate()
    with pytest.raises(ConfigError, match="--lora-r must be >= 0"):
        SFTConfig(lora_r=-1).validate()

