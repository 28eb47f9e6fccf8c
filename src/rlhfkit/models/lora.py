"""LoRA adapters through `peft`: adding them to a model, resuming them, and merging them into full weights.

    peft_model = add_adapters(model, LoraSettings(r=16, alpha=32), task="causal")
    trained = peft_model.get_base_model()     # the same HF model, its Linear layers now carrying adapters
    with peft_model.disable_adapter():        # the starting weights: DPO's and PPO's reference, no copy
        ...

    rlhfkit merge --adapter runs/dpo --out runs/dpo-merged     # full weights for plain `transformers`

Only the adapters (and, for a reward model, its head: peft's `modules_to_save`) are trained; the base
weights stay frozen. A trainer keeps training `trained` (so the forward pass, the sampler and
`accelerate` see an ordinary HF model) and saves `peft_model`, which writes peft's own format
(`adapter_config.json`, `adapter_model.safetensors`). A saved adapter names its base model: the
`--model` folder or hub id, or, when the base exists only in memory (`--model tiny`, or an adapter
that was merged on loading), a copy kept in the run's `base/` folder.

Leaves out: several adapters on one model, DoRA and the other peft methods.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file

from rlhfkit.errors import ConfigError
from rlhfkit.models.loading import (
    BASE_FOLDER,
    TINY,
    adapter_base,
    is_adapter,
    load_causal_lm,
    load_reward_backbone,
    load_tokenizer,
    save_pretrained_atomic,
)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
COPIED_WITH_A_REWARD_MODEL = ("reward_stats.json", "eval_metrics.json")


@dataclass
class LoraSettings:
    """LoRA's shape: rank, scale (alpha / r), dropout, and which Linear layers get adapters."""

    r: int
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("all-linear",)


def add_adapters(model, settings: LoraSettings, task: Literal["causal", "classifier"], base_name: str,
                 out: Path | None = None, main_process: bool = True):
    """`model` (an HF causal LM or sequence classifier) wrapped in a peft model with fresh LoRA adapters.

    `base_name` is the --model the weights came from; when it is not a folder or hub id that holds
    exactly these weights (`tiny`, an adapter merged on loading), the base is saved to `out/base` first
    so that the adapter can always be loaded again.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    targets = list(settings.targets)
    target_modules = targets[0] if targets == ["all-linear"] else targets
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=target_modules,
                        task_type=TaskType.CAUSAL_LM if task == "causal" else TaskType.SEQ_CLS)
    if base_name == TINY or is_adapter(base_name):
        if out is None:
            raise ConfigError(f"LoRA on {base_name!r} needs an output folder to keep its base model in")
        base_name = str((out / BASE_FOLDER).resolve())
        if main_process:
            save_pretrained_atomic(model, None, base_name)
    elif Path(base_name).is_dir():
        base_name = str(Path(base_name).resolve())
    try:
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to answer
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(model, config)
    except ValueError as exc:  # peft: target modules not found in the model
        raise ConfigError(f"--lora-targets {','.join(targets)}: {exc}") from None
    for peft_config in peft_model.peft_config.values():
        peft_config.base_model_name_or_path = base_name
    return peft_model


def load_adapter_weights(peft_model, folder: Path) -> None:
    """Put the adapter (and saved head) weights of a checkpoint folder back into `peft_model`."""
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(peft_model, load_file(folder / ADAPTER_WEIGHTS))
    if result.unexpected_keys:
        raise ConfigError(f"{folder} holds adapter weights this run's model has no place for "
                          f"({result.unexpected_keys[:3]}...); use a new --out or --no-resume")


def trainable_share(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


@dataclass
class MergeConfig:
    """Merge a LoRA adapter into its base model: full weights that load in plain `transformers`."""

    adapter: str = "runs/dpo"
    """Folder of a LoRA run (adapter_config.json and adapter_model.safetensors), or one of its checkpoints."""
    out: str = "runs/merged"
    """Where to write the merged HF checkpoint (config, safetensors, tokenizer)."""
    dtype: str = "fp32"
    """Precision of the merged weights: fp32, bf16 or fp16."""


def run_merge(config: MergeConfig) -> Path:
    """Write the adapter's base model with the adapter merged in; a reward model keeps reward_stats.json."""
    folder, out = Path(config.adapter), Path(config.out)
    if not is_adapter(folder):
        raise ConfigError(f"--adapter {folder}: no adapter_config.json there; give the folder of a run "
                          f"trained with --lora-r")
    if out.resolve() == folder.resolve():
        raise ConfigError("--out must differ from --adapter (the adapter would be overwritten)")
    _, task = adapter_base(folder)
    loader = load_reward_backbone if task == "SEQ_CLS" else load_causal_lm
    model, _ = loader(str(folder), dtype=config.dtype)
    save_pretrained_atomic(model, load_tokenizer(str(folder)), out)
    for name in COPIED_WITH_A_REWARD_MODEL:
        if (folder / name).is_file():
            shutil.copy(folder / name, out / name)
    (out / "merged_from.json").write_text(json.dumps({"adapter": str(folder.resolve()),
                                                      "base": adapter_base(folder)[0]}, indent=2))
    print(f"merged {folder} into its base model; full weights saved to {out}")
    return out
