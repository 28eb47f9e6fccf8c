"""What every trainer shares: its settings, devices and processes, and the loop's state.

The trainers themselves (sft, rm, dpo, ppo) are explicit loops; this file holds only the parts
they would otherwise each write again:
  - `TrainConfig`: the settings every trainer reads; `SupervisedConfig` adds those of the trainers that
    pass over a fixed data set in epochs (sft, rm, dpo), which online RL has no use for;
  - `make_accelerator`: one process or many (`accelerate launch`), fp32 on CPU, bf16 autocast on GPUs that have it,
    `--torch-compile`, and the experiment tracker of `--report-to` (accelerate's trackers);
  - `adapt`: a freshly loaded model made ready to train: `--gradient-checkpointing`, LoRA adapters (`--lora-r`);
  - `lr_schedule`: linear warmup then cosine decay;
  - `TrainingRun`: one run's state: resume from the newest checkpoint, the optimizer step (clip, step,
    schedule), `metrics.jsonl` (and the same lines to the tracker), resumable checkpoints, the final HF
    checkpoint (a peft adapter folder with --lora-r);
  - `Checkpointer` and `MetricsLog`, which it uses;
  - `fit`: the whole loop of the supervised trainers, which plug in an `Objective`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import random
import re
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from tqdm.auto import tqdm

from rlhfkit.data.tokenization import global_batches, split_micro_batches
from rlhfkit.errors import ConfigError, RlhfkitError
from rlhfkit.models.loading import default_device, resolve_dtype, save_pretrained_atomic
from rlhfkit.models.lora import (
    ADAPTER_WEIGHTS,
    LoraSettings,
    add_adapters,
    load_adapter_weights,
    trainable_share,
)


@dataclass
class TrainConfig:
    """Settings every trainer reads."""

    model: str = "tiny"
    """Starting model: `tiny` (built-in small Llama), a checkpoint folder, or a Hugging Face hub id."""
    data: str = "builtin:assistant"
    """Training data: a .jsonl file, a `datasets` folder, or `builtin:assistant`."""
    out: str = "runs/out"
    """Output folder: the final HF checkpoint, checkpoints/, metrics.jsonl, config.yaml."""
    lr: float | None = None
    """Peak learning rate; default: the trainer's choice for the tiny model, a smaller one for pretrained models."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_ratio: float = 0.05
    """Share of the optimizer steps spent warming the learning rate up linearly from 0."""
    min_lr_ratio: float = 0.1
    """The cosine decay ends at this share of the peak learning rate."""
    max_grad_norm: float = 1.0
    """Clip the gradient's global L2 norm to this (0 disables)."""
    max_steps: int | None = None
    """Steps to run."""
    max_length: int = 256
    """Longest prompt + response in tokens; longer responses are truncated, longer prompts are an error."""
    seed: int = 0
    """Seed for initialisation, data order and sampling."""
    dtype: str = "auto"
    """Compute precision: auto (fp32 on CPU, bf16 autocast on GPUs that support it), fp32, bf16, fp16."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding)."""
    log_every: int = 10
    """Write a metrics.jsonl line every this many steps."""
    save_every: int = 100
    """Write a resumable checkpoint every this many steps."""
    save_total_limit: int = 2
    """Keep only this many of the newest checkpoints."""
    resume: bool = True
    """Resume from the newest checkpoint in --out/checkpoints if there is one."""
    progress: bool = True
    """Show a progress bar."""
    lora_r: int = 0
    """LoRA rank: train low-rank adapters (peft) on frozen weights instead of every weight; 0 trains them all."""
    lora_alpha: float = 16.0
    """LoRA scale: each adapter's update is multiplied by lora-alpha / lora-r."""
    lora_dropout: float = 0.0
    """Dropout on the input of each LoRA adapter."""
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])
    """Modules that get adapters, by name (q_proj,v_proj), or all-linear: every Linear layer but the output layer."""
    load_in_4bit: bool = False
    """QLoRA: keep the frozen base in 4-bit NF4 (bitsandbytes, CUDA GPUs only); needs --lora-r."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of keeping them: less memory, more compute."""
    torch_compile: bool = False
    """Compile the model with torch.compile (inductor); the first steps are slow while it compiles."""
    report_to: Literal["none", "tensorboard", "wandb", "trackio", "mlflow"] = "none"
    """Also send the metrics.jsonl lines to an experiment tracker (files under --out/trackers; wandb offline
    unless WANDB_MODE says otherwise, mlflow to a local file store unless MLFLOW_TRACKING_URI is set)."""

    def validate(self) -> None:
        positive = {"max_length": self.max_length, "log_every": self.log_every, "save_every": self.save_every,
                    "save_total_limit": self.save_total_limit}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.lr is not None and not (0 < self.lr < 1):
            raise ConfigError(f"--lr must be in (0, 1), got {self.lr}")
        if self.lora_r < 0 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1 or not self.lora_targets:
            raise ConfigError(f"--lora-r must be >= 0, --lora-alpha positive, --lora-dropout in [0, 1) and "
                              f"--lora-targets non-empty; got {self.lora_r}, {self.lora_alpha}, {self.lora_dropout}, "
                              f"{self.lora_targets}")
        if self.lora_r and importlib.util.find_spec("peft") is None:
            raise ConfigError("--lora-r needs the peft package, which is not installed: pip install peft")
        if self.load_in_4bit and not self.lora_r:
            raise ConfigError("--load-in-4bit (QLoRA) trains adapters on a frozen 4-bit base: give --lora-r too")
        if self.report_to != "none" and importlib.util.find_spec(self.report_to) is None:
            raise ConfigError(f"--report-to {self.report_to} needs the {self.report_to} package, which is not "
                              f"installed: pip install {self.report_to} (or --report-to none)")


@dataclass
class SupervisedConfig(TrainConfig):
    """Settings of the trainers that pass over a fixed data set in epochs (sft, rm, dpo)."""

    eval_data: str | None = None
    """Held-out data; default: the built-in task's eval split, or --eval-fraction of --data."""
    eval_fraction: float = 0.05
    """Share of --data held out for evaluation when --eval-data is not given (0 to disable)."""
    batch_size: int = 16
    """Examples per device per micro-batch (a pair or a ranking counts as one example)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step (global batch = batch-size x grad-accum x processes)."""
    epochs: float = 1.0
    """Passes over the training data (ignored when --max-steps is set)."""
    max_steps: int | None = None
    """Optimizer steps to run; overrides --epochs."""
    eval_every: int = 0
    """Evaluate on the held-out data every this many steps (0: only at the end)."""

    def validate(self) -> None:
        super().validate()
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.epochs <= 0:
            raise ConfigError(f"--epochs must be positive, got {self.epochs}")
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError(f"--eval-fraction must be in [0, 1), got {self.eval_fraction}")
        if self.eval_every < 0:
            raise ConfigError(f"--eval-every must be >= 0, got {self.eval_every}")


def adamw(params, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW, fused where torch has the kernel for the parameters (CPU since torch 2.4, CUDA): one pass over
    all tensors instead of a Python loop per tensor (bench/README.md has the time it saves); the same
    update up to float round-off. Falls back to the plain loop elsewhere
    (older torch, 4-bit parameters)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)


def make_accelerator(config: TrainConfig) -> Accelerator:
    """An `Accelerator` for one process or many; picks autocast from `--dtype` and the hardware, compiles
    with `--torch-compile`, and logs to `--report-to`."""
    device = default_device()
    use_cpu = device.type == "cpu"
    dtype = resolve_dtype(config.dtype, device.type)
    mixed = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    if use_cpu and mixed == "fp16":
        raise ConfigError("--dtype fp16 needs a GPU; use fp32 (or bf16) on CPU")
    if not use_cpu and mixed == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"--dtype bf16: this GPU ({torch.cuda.get_device_name()}) has no bf16; use fp16 or fp32")
    if use_cpu and mixed == "bf16" and not cpu_has_native_bf16():
        print("note: --dtype bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): autocast emulates it, "
              "much slower than fp32 (docs/models.md); fp32 is the CPU default")
    tracker = None if config.report_to == "none" else config.report_to
    return Accelerator(cpu=use_cpu, mixed_precision=mixed, dynamo_backend="inductor" if config.torch_compile else "no",
                       log_with=tracker, project_dir=str(Path(config.out) / "trackers") if tracker else None)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles; torch's own probes)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def adapt(config: TrainConfig, model, task: str, acc):
    """A freshly loaded HF model made ready to train: (the module to train, the one whose save_pretrained
    writes the checkpoint). Without --lora-r both are `model`; with it, the first is `model` with LoRA
    adapters in its Linear layers and the second the peft model around it, which saves only the adapters."""
    if config.gradient_checkpointing:  # non-reentrant: correct with frozen inputs (LoRA) and with no_sync
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # its name from transformers 5.x on
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if not config.lora_r:
        return model, model
    if config.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    settings = LoraSettings(config.lora_r, config.lora_alpha, config.lora_dropout, tuple(config.lora_targets))
    peft_model = add_adapters(model, settings, task, config.model, Path(config.out), acc.is_main_process)
    acc.wait_for_everyone()
    if acc.is_main_process:
        trained, total = trainable_share(peft_model)
        print(f"lora: rank {config.lora_r} on {','.join(config.lora_targets)}; {trained:,} of {total:,} "
              f"parameters trained ({100 * trained / total:.2f}%)")
    return peft_model.get_base_model(), peft_model


def tracker_values(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics.jsonl line (trackers take scalars only)."""
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


SMALL_MODEL_PARAMS = 50_000_000


def default_lr(config: TrainConfig, model: torch.nn.Module, small: float, large: float) -> float:
    """--lr if given; otherwise `small` for models under 50M parameters (the tiny default and what was
    fine-tuned from it), `large` for pretrained models, which need gentle updates."""
    if config.lr is not None:
        return config.lr
    return small if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS else large


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np  # optional: seeded when present

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def lr_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float, min_ratio: float):
    """Linear warmup to the peak, then cosine decay to `min_ratio` of it: 1) warmup  2) decay."""
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class MetricsLog:
    """Appends one JSON object per logged step to `metrics.jsonl` (main process only)."""

    def __init__(self, path: Path, enabled: bool = True, resume_step: int = 0):
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        with self.path.open("a") as fh:
            fh.write(json.dumps(clean) + "\n")


STATE_FILE = "trainer_state.pt"


class Checkpointer:
    """Resumable checkpoints under `out/checkpoints/step-NNNNNN/`, each a complete HF folder."""

    def __init__(self, out: Path, keep: int, accelerator):
        self.root, self.keep, self.acc = out / "checkpoints", keep, accelerator

    def latest(self) -> Path | None:
        if not self.root.is_dir():
            return None
        found = sorted(p for p in self.root.iterdir() if re.fullmatch(r"step-\d{6,}", p.name) and (p / STATE_FILE).exists())
        return found[-1] if found else None

    def save(self, step: int, hf_model, tokenizer, state: dict[str, Any], weights: dict | None = None) -> None:
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            state = {**state, "step": step, "rng": rng_state()}
            save_pretrained_atomic(hf_model, tokenizer, self.root / f"step-{step:06d}", extra={STATE_FILE: state},
                                   state_dict=weights)
            for old in sorted(p for p in self.root.iterdir() if re.fullmatch(r"step-\d{6,}", p.name))[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.acc.wait_for_everyone()

    @staticmethod
    def load_state(folder: Path) -> dict[str, Any]:
        return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)

    @staticmethod
    def resume(folder: Path, hf_model, optimizer, scheduler) -> dict[str, Any]:
        """Load weights, optimizer, schedule and RNG from `folder`; return its state (step, extras)."""
        state = Checkpointer.load_state(folder)
        if (folder / ADAPTER_WEIGHTS).is_file():  # --lora-r: the adapters (and a reward model's head) only
            load_adapter_weights(hf_model, folder)
        else:
            result = hf_model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
            tied = set(getattr(hf_model, "_tied_weights_keys", None) or []) | {"lm_head.weight"}
            if result.unexpected_keys or set(result.missing_keys) - tied:
                raise RlhfkitError(f"{folder} does not match the model of this run (missing {result.missing_keys}, "
                                   f"unexpected {result.unexpected_keys}); use a new --out or --no-resume")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        return state


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_config(config: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


class TrainingRun:
    """One run's loop state, shared by every trainer: where it resumes, how it steps, logs and saves.

        run = TrainingRun(config, acc, "ppo", model, tokenizer, optimizer, scheduler, total_steps)
        extra = run.resume()           # 1) the newest checkpoint's weights, optimizer, schedule, RNG
        while run.step < run.total:
            ... loss.backward() ...
            run.optimizer_step()       # 2) clip, step, schedule (any number of times per step)
            run.end_step(record, extra_state)   # 3) log, progress bar, checkpoint
        run.finish()                   # 4) the final HF checkpoint into --out

    `inner(model)` (optional) picks the HF model to save out of a wrapper module (the reward model's).
    """

    def __init__(self, config: TrainConfig, acc, name: str, model, tokenizer, optimizer, scheduler, total: int,
                 params=None, inner=None):
        self.config, self.acc, self.name, self.total = config, acc, name, total
        self.model, self.tokenizer, self.optimizer, self.scheduler = model, tokenizer, optimizer, scheduler
        self.params = list(params) if params is not None else None
        self.inner = inner or (lambda m: m)
        self.out = Path(config.out)
        self.checkpoints = Checkpointer(self.out, config.save_total_limit, acc)
        self.step, self.started = 0, time.perf_counter()
        self.log: MetricsLog | None = None
        self.bar = None

    def hf_model(self):
        return self.inner(self.acc.unwrap_model(self.model))

    def gathered_weights(self) -> dict[str, Any] | None:
        """Under FSDP, the full weights of `hf_model()` gathered from every process (a collective: every
        process calls it); otherwise None, and the model saves its own."""
        if self.acc.distributed_type != DistributedType.FSDP:
            return None
        full, hf = self.acc.get_state_dict(self.model), self.hf_model()
        unwrapped = self.acc.unwrap_model(self.model)
        prefix = next((name + "." for name, module in unwrapped.named_modules() if module is hf and name), "")
        return {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}

    def resume(self) -> dict[str, Any]:
        """Resume from the newest checkpoint (unless --no-resume), write config.yaml, open the log and
        the progress bar; return the checkpoint's state (empty for a fresh run) for the trainer's extras."""
        state: dict[str, Any] = {}
        latest = self.checkpoints.latest() if self.config.resume else None
        if self.acc.distributed_type == DistributedType.FSDP and (latest is not None or self.config.lora_r):
            raise ConfigError("under FSDP rlhfkit saves full weights but neither resumes (its optimizer state is "
                              "sharded) nor trains LoRA adapters; use --no-resume or a new --out, and DDP for LoRA")
        if latest is not None:
            state = self.checkpoints.resume(latest, self.hf_model(), self.optimizer, self.scheduler)
            self.step = state["step"]
            if self.acc.is_main_process:
                print(f"resuming from {latest} (step {self.step} of {self.total})")
        if self.acc.is_main_process:
            write_config(self.config, self.out)
        if self.config.report_to != "none":
            settings = {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
                        for k, v in dataclasses.asdict(self.config).items()}
            if self.config.report_to == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):
                import mlflow  # a file store under --out, not a server nor ./mlruns

                mlflow.set_tracking_uri((self.out / "trackers" / "mlruns").resolve().as_uri())
            self.acc.init_trackers(self.name, config=settings,
                                   init_kwargs={"wandb": {"mode": os.environ.get("WANDB_MODE", "offline"),
                                                          "dir": str(self.out / "trackers")}})
        self.log = MetricsLog(self.out / "metrics.jsonl", self.acc.is_main_process, resume_step=self.step)
        self.bar = tqdm(total=self.total, initial=self.step, disable=not (self.config.progress and self.acc.is_main_process),
                        desc=self.name, dynamic_ncols=True)
        self.started = time.perf_counter()
        return state

    def optimizer_step(self) -> tuple[float | None, float]:
        """Clip the gradient, step the optimizer and the schedule, zero the gradient; return the gradient's
        norm before clipping (None when clipping is off) and the learning rate the update was taken with."""
        params = self.params if self.params is not None else self.model.parameters()
        grad_norm = (self.acc.clip_grad_norm_(params, self.config.max_grad_norm)
                     if self.config.max_grad_norm > 0 else None)
        lr_used = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return (float(grad_norm) if grad_norm is not None else None), lr_used

    def per_second(self, amount: float) -> float:
        """`amount` (examples, tokens, episodes seen since this process started) per second of this run."""
        return amount / (time.perf_counter() - self.started)

    def end_step(self, record: dict[str, Any], extra_state: dict[str, Any] | None = None, force_log: bool = False,
                 postfix: dict[str, str] | None = None) -> None:
        """Count the step; log `record` every --log-every steps (and at the end, or when `force_log`);
        checkpoint every --save-every steps and at the end, with the trainer's `extra_state`."""
        self.step += 1
        if self.step % self.config.log_every == 0 or self.step == self.total or force_log:
            self.log.write(record)
            if self.config.report_to != "none":
                self.acc.log(tracker_values(record), step=self.step)
        self.bar.update(1)
        if postfix:
            self.bar.set_postfix(**postfix)
        if self.step % self.config.save_every == 0 or self.step == self.total:
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     **(extra_state or {})}
            self.checkpoints.save(self.step, self.hf_model(), self.tokenizer, state, self.gathered_weights())

    def finish(self) -> None:
        """Write the final HF checkpoint into --out itself, file by file through a temporary folder:
        loadable with nothing from rlhfkit."""
        self.bar.close()
        if self.config.report_to != "none":
            self.acc.end_training()
        weights = self.gathered_weights()
        self.acc.wait_for_everyone()
        if self.acc.is_main_process:
            staged = save_pretrained_atomic(self.hf_model(), self.tokenizer, self.out / ".final", state_dict=weights)
            for f in staged.iterdir():
                f.replace(self.out / f.name)
            staged.rmdir()
        self.acc.wait_for_everyone()


@dataclass
class Objective:
    """What a supervised trainer (sft, rm, dpo) plugs into `fit`.

    `weight(ids)` is the normaliser of one global batch (completion tokens for SFT, pairs for RM and
    DPO), computed from the data alone so every process agrees without communication.
    `loss(model, ids)` returns the *summed* loss over the micro-batch `ids` and a dict of summed
    statistics; `fit` divides both by the global batch's weight.
    `evaluate(model)` returns held-out metrics (or None).
    `stop(model, record, last)`, after every step (`last`: the final one), True ends training there; it
    may first load other weights into the model, which are then the ones saved (rm --early-stopping).
    """

    lengths: list[int]
    weight: Any
    loss: Any
    evaluate: Any = None
    stop: Any = None
    unit: str = "examples"
    """What `weight` counts, for the throughput column `<unit>_per_s` of metrics.jsonl."""


def fit(config: SupervisedConfig, acc, model, tokenizer, optimizer, objective: Objective, name: str,
        lr: float, on_step=None, inner=None) -> dict[str, Any]:
    """The optimizer loop shared by sft, rm and dpo; returns the last logged record.

    1) resume from the newest checkpoint  2) per optimizer step: the global batch is split into
    (processes x grad-accum) micro-batches, each process runs its own, gradients synchronised only
    on the last  3) clip, step, schedule  4) log, evaluate, checkpoint  5) final checkpoint.
    """
    world, accum = acc.num_processes, config.grad_accum
    global_batch = config.batch_size * accum * world
    if len(objective.lengths) < global_batch:
        raise ConfigError(f"{len(objective.lengths)} training examples are fewer than one global batch of "
                          f"{global_batch} (batch-size x grad-accum x processes); lower --batch-size")
    steps_per_epoch = len(global_batches(objective.lengths, global_batch, config.seed, 0, config.group_by_length))
    total_steps = config.max_steps or max(1, round(config.epochs * steps_per_epoch))
    scheduler = lr_schedule(optimizer, total_steps, config.warmup_ratio, config.min_lr_ratio)

    # 1) resume
    run = TrainingRun(config, acc, name, model, tokenizer, optimizer, scheduler, total_steps, inner=inner)
    run.resume()
    model.train()
    seen = 0.0
    record: dict[str, Any] = {}
    batches, batches_epoch = [], -1
    while run.step < total_steps:
        # 2) this step's global batch, and this process's share of it
        epoch, index = divmod(run.step, steps_per_epoch)
        if epoch != batches_epoch:  # the epoch's order is a function of (seed, epoch): shuffled once, not every step
            batches, batches_epoch = global_batches(objective.lengths, global_batch, config.seed, epoch,
                                                    config.group_by_length), epoch
        batch_ids = batches[index]
        weight = float(objective.weight(batch_ids))
        micro = split_micro_batches(batch_ids, world * accum)
        mine = micro[acc.process_index * accum:(acc.process_index + 1) * accum]
        sums: dict[str, torch.Tensor] = {}
        for k, ids in enumerate(mine):
            with acc.no_sync(model) if k < accum - 1 else nullcontext(), acc.autocast():
                loss_sum, stats = objective.loss(model, ids)
                # DDP averages gradients over processes, hence x world: what is summed is loss_sum / weight
                acc.backward(loss_sum / max(weight, 1e-8) * world)
            for key, value in {"loss": loss_sum, **stats}.items():
                sums[key] = sums.get(key, 0) + value.detach().float()

        # 3) clip, step, schedule
        grad_norm, lr_used = run.optimizer_step()
        seen += weight

        # 4) log, evaluate, checkpoint
        step = run.step + 1
        keys = sorted(sums)
        totals = acc.reduce(torch.stack([sums[k] for k in keys]), "sum") / max(weight, 1e-8)
        record = {"step": step, "epoch": round(step / steps_per_epoch, 4),
                  **{k: v for k, v in zip(keys, totals.tolist())}, "lr": lr_used}
        if record["loss"] != record["loss"]:
            raise RlhfkitError(f"the {name} loss became NaN at step {step}; lower --lr (now {lr}) or check the data")
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        record[f"{objective.unit}_per_s"] = run.per_second(seen)
        evaluate_now = objective.evaluate is not None and (
            (config.eval_every and step % config.eval_every == 0) or step == total_steps)
        if evaluate_now:
            model.eval()
            with torch.no_grad():
                record.update({f"eval_{k}": v for k, v in objective.evaluate(model).items()})
            model.train()
        run.end_step(record, force_log=evaluate_now, postfix={"loss": f"{record['loss']:.3f}"})
        if on_step is not None:
            on_step(step, record)
        if objective.stop is not None and objective.stop(model, record, step == total_steps):
            break

    # 5) the final model into --out, loadable with nothing from rlhfkit
    run.finish()
    return record
