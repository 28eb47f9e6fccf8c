"""PPO: where the score lands, KL of identical models, tiny end-to-end runs with rloo and gae."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlhfkit.errors import ConfigError
from rlhfkit.trainers.ppo import (
    PPOConfig,
    minibatches,
    response_forward,
    rollout_forward,
    step_prompts,
    train_ppo,
    trim,
)
from rlhfkit.trainers.sft import SFTConfig, train_sft

TINY_PPO = dict(prompts_per_step=4, group_size=2, max_new_tokens=16, max_steps=4, builtin_size=32, minibatch_size=8,
                progress=False, log_every=1)


def test_step_prompts_cover_the_pool_and_are_deterministic():
    """Pool of 6, 4 per step: steps 0-2 cover 12 positions = two shuffled passes."""
    picked = [step_prompts(6, 4, s, seed=3) for s in range(3)]
    assert picked == [step_prompts(6, 4, s, seed=3) for s in range(3)]
    flat = [i for p in picked for i in p]
    assert sorted(flat[:6]) == list(range(6)) and sorted(flat[6:]) == list(range(6))


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    return train_sft(SFTConfig(model="tiny", builtin_size=256, batch_size=8, max_length=128, max_steps=30,
                               progress=False, out=str(out)))


@pytest.mark.parametrize("advantage", ["rloo", "gae"])
def test_tiny_ppo_run(sft_model, tmp_path, advantage):
    records = []
    out = train_ppo(PPOConfig(model=str(sft_model), out=str(tmp_path / "ppo"), advantage=advantage, kl_coef=0.1,
                              **TINY_PPO), on_step=lambda step, record: records.append(record))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    expected = {"score", "gold", "kl", "kl_coef", "entropy", "clip_fraction", "approx_kl", "response_length",
                "loss", "episodes_per_s"} | ({"value_error"} if advantage == "gae" else set())
    for row in rows:
        assert expected <= set(row), row
        assert all(math.isfinite(v) for v in row.values()), row
    # the policy starts as the reference: k1 of identical models is exactly 0 on the first step
    assert abs(records[0]["kl"]) < 1e-5, records[0]
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size > 0


def test_grpo_with_kl_as_a_loss_and_adaptive_beta(sft_model, tmp_path):
    """kl_in_reward=False puts beta * k3 in the loss; the adaptive controller moves beta after each step."""
    records = []
    config = PPOConfig(model=str(sft_model), out=str(tmp_path / "ppo"), advantage="grpo", kl_in_reward=False,
                       kl_estimator="k3", adaptive_kl_target=0.5, **{**TINY_PPO, "max_steps": 2})
    train_ppo(config, on_step=lambda step, record: records.append(record))
    assert records[0]["kl_coef"] == config.kl_coef
    # KL of 0 is below the target: beta shrinks by 20% x (8 episodes / horizon 10000)
    assert math.isclose(records[1]["kl_coef"], config.kl_coef * (1 - 0.2 * 8 / 10_000), rel_tol=1e-9)
    assert all(math.isfinite(v) for r in records for v in r.values())


def test_ptx_term_pulls_the_policy_toward_the_chosen_responses(sft_model, tmp_path):
    """--ptx-data with preference pairs: each update adds coef x the NLL of their chosen responses
    (PPO-ptx). With one pair, a large coefficient and 8 updates, the logged NLL of that chosen text
    falls at every step (measured: 5.23, 5.00, 4.86, 4.77)."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Question: How can I fix a leaky faucet?\nAnswer:",
                                 "chosen": " Turn off the water supply under the sink first.",
                                 "rejected": " No."}) + "\n")
    records = []
    train_ppo(PPOConfig(model=str(sft_model), out=str(tmp_path / "ppo"), ptx_data=str(pairs), ptx_coef=5.0,
                        ptx_batch_size=2, **TINY_PPO), on_step=lambda step, record: records.append(record))
    nll = [r["ptx_nll"] for r in records]
    assert len(nll) == 4 and all(b < a for a, b in zip(nll, nll[1:])) and nll[-1] < nll[0] - 0.2, nll
    with pytest.raises(ConfigError, match="needs --ptx-data"):
        train_ppo(PPOConfig(model=str(sft_model), out=str(tmp_path / "ppo2"), ptx_coef=1.0, **TINY_PPO))
    assert not (tmp_path / "ppo2").exists()


def test_reinforce_resumes_from_its_checkpoint(sft_model, tmp_path, capsys):
    """Two steps with a checkpoint each step, then the same run to three steps: it resumes at step 2
    and metrics.jsonl holds steps 1, 2, 3 once each."""
    base = dict(model=str(sft_model), out=str(tmp_path / "ppo"), advantage="reinforce", save_every=1,
                **{**TINY_PPO, "max_steps": 2})
    train_ppo(PPOConfig(**base))
    out = train_ppo(PPOConfig(**{**base, "max_steps": 3}))
    assert "resuming from" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]


@pytest.mark.slow
def test_ppo_under_accelerate_with_two_processes(sft_model, tmp_path, two_process_env):
    """`accelerate launch --multi_gpu --num_processes 2` (CPU processes over gloo on a machine with
    fewer than two GPUs): each process samples its own share of the prompts, gradients are averaged, one process
    writes metrics and the final model, and the model has moved from its starting weights."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    out = tmp_path / "ppo2"
    run = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlhfkit", "ppo",
                          "--model", str(sft_model), "--out", str(out), "--max-steps", "2", "--prompts-per-step", "4",
                          "--group-size", "2", "--max-new-tokens", "16", "--builtin-size", "32", "--minibatch-size", "8",
                          "--no-progress"],
                         capture_output=True, text=True, env=two_process_env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    start = AutoModelForCausalLM.from_pretrained(sft_model).state_dict()
    end = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert any(not torch.equal(start[k], end[k]) for k in start)


def test_minibatches_cover_every_episode_once_and_group_by_length():
    """10 episodes with lengths 0..9 (shuffled), minibatches of 4: each pass uses every episode once;
    grouped by length, the minibatches are {0-3}, {4-7}, {8, 9} in some order."""
    lengths = torch.tensor([7, 2, 9, 0, 5, 3, 8, 1, 6, 4])
    torch.manual_seed(0)
    for by_length in (False, True):
        chunks = minibatches(lengths, 4, by_length)
        assert sorted(torch.cat(chunks).tolist()) == list(range(10))
        assert sorted(len(c) for c in chunks) == [2, 4, 4]
    grouped = sorted(sorted(lengths[c].tolist()) for c in minibatches(lengths, 4, True))
    assert grouped == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_minibatches_of_whole_groups():
    """12 episodes in 6 groups of 2 (episodes 2g, 2g+1), group totals [3, 11, 7, 15, 19, 23] from
    lengths [1,2, 5,6, 3,4, 7,8, 9,10, 11,12]; minibatches of 4 = 2 groups: every minibatch holds whole
    groups, every episode once; grouped by length the group pairs are sorted by total:
    {0, 2} (3, 7), {1, 3} (11, 15), {4, 5} (19, 23), i.e. episodes {0,1,4,5}, {2,3,6,7}, {8,9,10,11}."""
    lengths = torch.tensor([1, 2, 5, 6, 3, 4, 7, 8, 9, 10, 11, 12])
    torch.manual_seed(0)
    for by_length in (False, True):
        chunks = minibatches(lengths, 4, by_length, group=2)
        assert sorted(torch.cat(chunks).tolist()) == list(range(12))
        assert all(set(c.tolist()) == {2 * g + k for g in {i // 2 for i in c.tolist()} for k in (0, 1)}
                   for c in chunks)
    grouped = sorted(sorted(c.tolist()) for c in minibatches(lengths, 4, True, group=2))
    assert grouped == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 10, 11]]


def test_trim_cuts_padding_columns_only():
    """Prompts left-padded to 4 columns, responses right-padded to 5: a minibatch whose longest prompt
    has 2 tokens and longest response 3 keeps the last 2 prompt columns and the first 3 response ones."""
    batch = {"prompt_ids": torch.tensor([[0, 0, 5, 6], [0, 0, 0, 7]]),
             "prompt_mask": torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1]]),
             "tokens": torch.arange(10).view(2, 5), "mask": torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 0, 0, 0]]),
             "advantages": torch.ones(2, 5), "scores": torch.ones(2)}
    out = trim(batch)
    assert out["prompt_ids"].tolist() == [[5, 6], [0, 7]] and out["prompt_mask"].tolist() == [[1, 1], [0, 1]]
    assert out["tokens"].tolist() == [[0, 1, 2], [5, 6, 7]] and out["advantages"].shape == (2, 3)
    assert out["scores"].shape == (2,)


def test_rollout_forward_in_chunks_equals_one_padded_forward():
    """Length-sorted, trimmed chunks of 3 rows must give the same per-token log-probs and values as
    one forward over the whole padded rollout (positions past a row's end are 0 in the chunked one)."""
    from rlhfkit.models.loading import build_tiny
    from rlhfkit.models.sampler import SamplingParams, sample

    model, tokenizer = build_tiny(seed=1)
    model.eval()
    head = torch.nn.Linear(model.config.hidden_size, 1)
    prompts = ["Question: Hi?\nAnswer:", "Question: How can I sleep better at night?\nAnswer:"] * 4
    out = sample(model, tokenizer, prompts, SamplingParams(max_new_tokens=12), torch.Generator().manual_seed(0))
    mask = out.mask.float()
    mask[1, 3:] = 0  # rows of different lengths (as if they had ended early)
    mask[4, 7:] = 0
    batch = {"prompt_ids": out.prompt_ids, "prompt_mask": out.prompt_mask, "tokens": out.tokens, "mask": mask}
    logprobs, values = rollout_forward(model, batch, 1.0, 3, head)
    with torch.no_grad():
        full_logprobs, _, full_values = response_forward(model, batch, 1.0, head)
    torch.testing.assert_close(logprobs, full_logprobs * mask, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values * mask, full_values * mask, atol=1e-5, rtol=1e-5)


def test_vllm_sampler_refuses_what_it_cannot_start_before_any_work():
    """--sampler vllm with a LoRA policy, or with the in-memory tiny model, is a clear ConfigError at
    validation (vLLM is never imported)."""
    with pytest.raises(ConfigError, match="LoRA"):
        PPOConfig(model="runs/sft", max_steps=1, sampler="vllm", lora_r=8).validate()
    with pytest.raises(ConfigError, match="checkpoint folder"):
        PPOConfig(model="tiny", max_steps=1, sampler="vllm").validate()
