"""The switches of bigger runs: experiment trackers (--report-to), gradient checkpointing, precision refusals."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file

from rlhfkit.errors import ConfigError
from rlhfkit.models.loading import build_tiny
from rlhfkit.trainers.loop import adapt, make_accelerator
from rlhfkit.trainers.sft import SFTConfig, train_sft

SMALL = dict(model="tiny", builtin_size=64, batch_size=8, max_length=128, progress=False, log_every=1, lr=2e-3,
             dtype="fp32", max_steps=3)


def test_tensorboard_events_hold_the_metrics_jsonl_lines(tmp_path):
    """TensorBoard's own reader loads the event files, and each scalar equals its metrics.jsonl value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = train_sft(SFTConfig(out=str(tmp_path / "sft"), report_to="tensorboard", **SMALL))
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    events = sorted((out / "trackers").rglob("events.out.tfevents.*"))
    assert events
    scalars: dict[str, dict[int, float]] = {}
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "eval_loss"} <= set(scalars), sorted(scalars)
    for row in logged:
        for key in ("loss", "lr", "grad_norm"):
            assert scalars[key][row["step"]] == pytest.approx(row[key], rel=1e-5, abs=1e-7), (key, row)
    assert scalars["eval_loss"][logged[-1]["step"]] == pytest.approx(logged[-1]["eval_loss"], rel=1e-5)


@pytest.mark.parametrize("tracker", ["wandb", "trackio", "mlflow"])
def test_a_tracker_that_is_not_installed_is_refused_by_name(tracker):
    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed here")
    with pytest.raises(ConfigError, match=f"pip install {tracker}"):
        SFTConfig(report_to=tracker).validate()


def test_gradient_checkpointing_gives_the_same_weights(tmp_path, lora_r=4):
    """Recomputing activations in the backward pass changes memory, not the result (fp32, same seed). With
    LoRA, the harder case: the checkpointed layers' inputs come from frozen weights (non-reentrant
    checkpointing still carries the adapters' gradients through them)."""
    config = SFTConfig(out=str(tmp_path / "probe"), lora_r=lora_r, gradient_checkpointing=True, **SMALL)
    trained, _ = adapt(config, build_tiny()[0], "causal", make_accelerator(config))
    flag = "is_activation_checkpointing" if hasattr(trained, "is_activation_checkpointing") else "is_gradient_checkpointing"
    assert getattr(trained, flag)
    plain = train_sft(SFTConfig(out=str(tmp_path / "plain"), lora_r=lora_r, **SMALL))
    recomputed = train_sft(SFTConfig(out=str(tmp_path / "ckpt"), lora_r=lora_r, gradient_checkpointing=True,
                                     **SMALL))
    name = "adapter_model.safetensors" if lora_r else "model.safetensors"
    a, b = load_file(plain / name), load_file(recomputed / name)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_fp16_is_refused_on_a_cpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        make_accelerator(SFTConfig(dtype="fp16"))
