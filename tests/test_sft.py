"""SFT: completion-only masking, a falling loss, plain HF checkpoints, resume, and multi-process parity."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhfkit.data.tokenization import IGNORE, collate, encode
from rlhfkit.models.loading import build_tiny, save_pretrained_atomic
from rlhfkit.trainers.sft import SFTConfig, train_sft

SMALL = dict(model="tiny", data="builtin:assistant", builtin_size=256, batch_size=8, max_length=128,
             progress=False, log_every=1, lr=2e-3)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny(seed=0)


def test_completion_only_masking_by_hand(tiny):
    """Prompt "Question: Hi?\\nAnswer:" and completion " Yes." are tokenized separately.

    With p = ids(prompt) and c = ids(completion), the example must be input_ids = p + c + [eos]
    and labels = [-100] * len(p) + c + [eos]: the prompt is never learned, the EOS always is.
    After collation with a longer neighbour, pad positions are masked (-100, attention 0).
    """
    _, tokenizer = tiny
    p = tokenizer("Question: Hi?\nAnswer:", add_special_tokens=False)["input_ids"]
    c = tokenizer(" Yes.", add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    example = encode(tokenizer, "Question: Hi?\nAnswer:", " Yes.", max_length=64, where="t")
    assert example.input_ids == p + c + [eos]
    assert example.labels == [IGNORE] * len(p) + c + [eos]
    longer = encode(tokenizer, "Question: Hi?\nAnswer:", " Yes. Yes. Yes.", max_length=64, where="t")
    batch = collate([example, longer], tokenizer.pad_token_id)
    n = len(example)
    assert batch["labels"][0, n:].eq(IGNORE).all() and batch["attention_mask"][0, n:].eq(0).all()
    assert batch["input_ids"][0, n:].eq(tokenizer.pad_token_id).all()
    # a completion that does not fit is cut (and loses its EOS), the prompt stays whole
    cut = encode(tokenizer, "Question: Hi?\nAnswer:", " Yes. Yes. Yes.", max_length=len(p) + 2, where="t")
    assert cut.truncated and cut.labels[: len(p)] == [IGNORE] * len(p) and len(cut) == len(p) + 2


def test_save_load_gives_identical_logits(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = tiny
    save_pretrained_atomic(model, tokenizer, tmp_path / "ckpt")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt")
    ids = AutoTokenizer.from_pretrained(tmp_path / "ckpt")("Question: How do I fix a leaky faucet?\nAnswer:",
                                                           return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_sft_loss_falls_and_output_loads_without_rlhfkit(tmp_path):
    records = []
    out = train_sft(SFTConfig(**SMALL, out=str(tmp_path / "sft"), max_steps=40, eval_every=40),
                    on_step=lambda step, record: records.append(record))
    first, last = records[0]["loss"], records[-1]
    assert last["loss"] < first - 2.0, (first, last["loss"])
    assert last["eval_loss"] < first - 2.0
    metrics = (out / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 40
    code = ("import sys; from transformers import AutoModelForCausalLM, AutoTokenizer; "
            f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); t = AutoTokenizer.from_pretrained({str(out)!r}); "
            "ids = t('Question: How can I sleep better?\\nAnswer:', return_tensors='pt'); "
            "g = m.generate(**ids, max_new_tokens=8, do_sample=False); "
            "print('rlhfkit' in sys.modules, m.generation_config.eos_token_id == t.eos_token_id, g.shape[1] > 1)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.split() == ["False", "True", "True"], result.stderr


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    settings = dict(SMALL, max_steps=10, save_every=4)
    train_sft(SFTConfig(**settings, out=str(tmp_path / "straight")))

    def crash_at_6(step, record):
        if step == 6:
            raise Interrupt()

    with pytest.raises(Interrupt):
        train_sft(SFTConfig(**settings, out=str(tmp_path / "resumed")), on_step=crash_at_6)
    assert (tmp_path / "resumed/checkpoints/step-000004").is_dir()
    assert not (tmp_path / "resumed/model.safetensors").exists()
    train_sft(SFTConfig(**settings, out=str(tmp_path / "resumed")))  # picks up from step 4

    straight = load_file(tmp_path / "straight/model.safetensors")
    resumed = load_file(tmp_path / "resumed/model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)
    steps = [line for line in (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 10  # the log of the crashed steps 5-6 was rewound, not duplicated


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """Loss normalised by the global batch's completion tokens: 2 x 4 accumulated == 1 x 8 (fp32: bf16
    autocast on a GPU rounds the two differently)."""
    base = dict(SMALL, max_steps=3, dtype="fp32")
    base.pop("batch_size")
    train_sft(SFTConfig(**base, batch_size=8, out=str(tmp_path / "big")))
    train_sft(SFTConfig(**base, batch_size=4, grad_accum=2, out=str(tmp_path / "accum")))
    assert_same_weights(tmp_path / "accum", tmp_path / "big")


def assert_same_weights(a: Path, b: Path) -> None:
    """Equal up to float summation order. Adam divides by sqrt(v), so a parameter whose gradient is
    ~0 can move by a visible amount on rounding noise alone: bound the mean difference tightly and
    the worst one loosely (a wrongly weighted micro-batch moves thousands of weights by ~lr)."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        diff = (wa[name] - wb[name]).abs()
        assert diff.mean() < 1e-6 and diff.max() < 2e-4, (name, diff.mean().item(), diff.max().item())


@pytest.mark.slow
def test_two_processes_under_accelerate_match_one_process(tmp_path, two_process_env):
    """`accelerate launch --num_processes 2` with batch 4 each == one process with batch 8 (both in fp32,
    on the CPU where the machine has fewer than two GPUs)."""
    args = ["--model", "tiny", "--builtin-size", "256", "--max-length", "128", "--max-steps", "3", "--lr", "0.002",
            "--no-progress", "--dtype", "fp32"]
    env = two_process_env
    single = subprocess.run([sys.executable, "-m", "rlhfkit", "sft", *args, "--batch-size", "8",
                             "--out", str(tmp_path / "one")], capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    # with its GPUs hidden, accelerate starts CPU processes (gloo) for --multi_gpu
    multi = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                            "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlhfkit", "sft", *args,
                            "--batch-size", "4", "--out", str(tmp_path / "two")],
                           capture_output=True, text=True, env=env, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert_same_weights(tmp_path / "two", tmp_path / "one")
