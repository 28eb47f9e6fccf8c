"""Loading and saving Hugging Face models, and the tiny default model built from a config.

`--model tiny` builds a small Llama-architecture causal LM (`TINY_SHAPE`: 4 layers of width 192,
2.2M parameters with the tied 2,048-token embedding) with a byte-level
BPE tokenizer trained on the built-in assistant task's corpus. Everything is
saved as an ordinary HF checkpoint (config + safetensors + tokenizer + generation config), so
`AutoModelForCausalLM.from_pretrained(DIR)` loads it with nothing from rlhfkit.

Any other `--model` is a local folder or hub id given to the `transformers` Auto classes. A folder
that holds a LoRA adapter (`adapter_config.json`, what a trainer run with `--lora-r` saves) is loaded
as its base model with the adapter merged in (rlhfkit.models.lora), so every stage takes one.
`load_in_4bit` (QLoRA's NF4 base, through bitsandbytes) needs a CUDA GPU and is refused elsewhere.
Leaves out: model parallelism (use `accelerate launch` with FSDP/DeepSpeed).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from rlhfkit.errors import ConfigError
from rlhfkit.tasks import assistant

hf_logging.disable_progress_bar()  # one progress bar per stage is ours; per-shard bars are noise

TINY = "tiny"
EOS, PAD = "<|endoftext|>", "<|pad|>"
TINY_VOCAB = 2048
TINY_SHAPE = dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=512)


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU: where every stage puts its models (trainers through
    `accelerate`, which makes the same choice)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(name: str, device: torch.device | str | None = None) -> torch.dtype:
    """`auto` is fp32 on CPU and bf16 on a GPU that supports it (else fp32)."""
    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported() and str(device or "cuda").startswith("cuda"):
            return torch.bfloat16
        return torch.float32
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if name not in table:
        raise ConfigError(f"unknown dtype {name!r}; use auto, fp32, bf16 or fp16")
    return table[name]


def train_tiny_tokenizer(texts: list[str], vocab_size: int = TINY_VOCAB) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a `PreTrainedTokenizerFast`."""

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, bos_token=EOS, pad_token=PAD,
                                   unk_token=None, model_max_length=TINY_SHAPE["max_position_embeddings"])


def build_tiny(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The `--model tiny` default: a freshly initialised small Llama and its tokenizer."""


    tokenizer = train_tiny_tokenizer(assistant.corpus(seed=0))
    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_SHAPE)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=True, max_new_tokens=96)
    return model, tokenizer


ADAPTER_CONFIG = "adapter_config.json"
BASE_FOLDER = "base"
"""Where a LoRA run keeps its base model when that has no folder of its own (tiny, or a merged adapter)."""


def is_adapter(name: str | Path) -> bool:
    """True for a folder that holds a peft adapter rather than full weights."""
    return (Path(name) / ADAPTER_CONFIG).is_file()


def adapter_base(folder: str | Path) -> tuple[str, str]:
    """(the base model's name or folder, the adapter's task type) of a saved peft adapter."""
    config = json.loads((Path(folder) / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path") or ""
    local = Path(folder) / BASE_FOLDER
    if local.is_dir() and not Path(base).is_dir():  # the run's own copy, after the folder was moved
        base = str(local)
    if not base:
        raise ConfigError(f"{folder}/{ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    return base, config.get("task_type") or "CAUSAL_LM"


def quantization(load_in_4bit: bool) -> dict[str, Any]:
    """from_pretrained arguments of QLoRA's 4-bit NF4 base (bitsandbytes), or none."""
    if not load_in_4bit:
        return {}
    if not torch.cuda.is_available():
        raise ConfigError("--load-in-4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels do not run on "
                          "a CPU; drop the flag (plain LoRA runs anywhere)")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ConfigError("--load-in-4bit needs the bitsandbytes package: pip install bitsandbytes") from None
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=compute)
    # quantized weights are placed when loaded: on this process's GPU (accelerate launch sets LOCAL_RANK)
    return {"quantization_config": config, "device_map": {"": int(os.environ.get("LOCAL_RANK", 0))}}


def _merged_adapter(folder: str, auto_cls: Any, dtype: torch.dtype, **kwargs: Any) -> PreTrainedModel:
    """The base model of the adapter in `folder` with the adapter merged into its weights."""
    from peft import PeftModel

    base_name, _ = adapter_base(folder)
    base = _from_pretrained(auto_cls, base_name, dtype=dtype, **kwargs)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a causal-LM adapter on a classifier: the head is new on purpose
    try:
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; not ours to answer
            warnings.simplefilter("ignore", FutureWarning)
            return PeftModel.from_pretrained(base, folder).merge_and_unload()
    finally:
        hf_logging.set_verbosity(verbosity)


def adapter_head_size(folder: str | Path) -> int | None:
    """Outputs of the classifier head saved with a sequence-classification adapter (its `score` or `classifier`)."""
    from safetensors import safe_open

    path = Path(folder) / "adapter_model.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        for key in f.keys():
            if "lora_" not in key and key.endswith(("score.weight", "classifier.weight")):
                return f.get_slice(key).get_shape()[0]
    return None


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    if name == TINY:
        return build_tiny()[1]
    tokenizer = _from_pretrained(AutoTokenizer, name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, dtype: str = "auto", seed: int = 0,
                   load_in_4bit: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer, from `tiny`, a local folder (full weights or a LoRA adapter) or a hub id."""
    quantized = quantization(load_in_4bit)
    if name == TINY:
        if quantized:
            raise ConfigError("--load-in-4bit quantizes a saved checkpoint; --model tiny is built in memory: "
                              "give a checkpoint folder or hub id")
        model, tokenizer = build_tiny(seed)
        return model.to(resolve_dtype(dtype)), tokenizer
    tokenizer = load_tokenizer(name)
    if is_adapter(name):
        model = _merged_adapter(name, AutoModelForCausalLM, resolve_dtype(dtype))
    else:
        model = _from_pretrained(AutoModelForCausalLM, name, dtype=resolve_dtype(dtype), **quantized)
    _sync_special_tokens(model, tokenizer)
    return model, tokenizer


def load_reward_backbone(name: str, dtype: str = "auto", seed: int = 0, num_labels: int | None = None,
                         load_in_4bit: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sequence classifier with one output per reward head.

    A trained reward model keeps its own number of heads; any other checkpoint (a causal LM, an
    encoder) gets a fresh head with `num_labels` outputs (default 1).
    """
    quantized = quantization(load_in_4bit)
    if name == TINY:
        if quantized:
            raise ConfigError("--load-in-4bit quantizes a saved checkpoint; --model tiny is built in memory: "
                              "give a checkpoint folder or hub id")
        lm, tokenizer = build_tiny(seed)
        config = lm.config
        config.num_labels = num_labels or 1
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(config)
        return model.to(resolve_dtype(dtype)), tokenizer

    tokenizer = load_tokenizer(name)
    if is_adapter(name):
        _, task = adapter_base(name)
        saved = adapter_head_size(name) if task == "SEQ_CLS" else None
        model = _merged_adapter(name, AutoModelForSequenceClassification, resolve_dtype(dtype),
                                num_labels=num_labels or saved or 1, ignore_mismatched_sizes=True)
        _sync_special_tokens(model, tokenizer)
        return model, tokenizer
    config = _from_pretrained(AutoConfig, name)
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    kwargs = {} if is_classifier and num_labels is None else {"num_labels": num_labels or 1,
                                                              "ignore_mismatched_sizes": True}
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    if not is_classifier:  # a fresh head is what was asked for: transformers' "score.weight MISSING" report is noise
        hf_logging.set_verbosity_error()
    try:
        model = _from_pretrained(AutoModelForSequenceClassification, name, dtype=resolve_dtype(dtype), **kwargs,
                                 **quantized)
    finally:
        hf_logging.set_verbosity(verbosity)
    _sync_special_tokens(model, tokenizer)
    return model, tokenizer


def _sync_special_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id


def _from_pretrained(auto_cls: Any, name: str, **kwargs: Any) -> Any:
    try:
        return auto_cls.from_pretrained(name, **kwargs)
    except OSError as exc:
        looks_local = name.startswith((".", "/", "~")) or os.path.sep in name and Path(name).parent.exists()
        hint = ("no such folder, or it is not a Hugging Face checkpoint" if looks_local
                else "not a local folder, and it could not be fetched from the hub (offline?)")
        raise ConfigError(f"cannot load model {name!r}: {hint}. Use --model tiny, a checkpoint folder, or a hub id. "
                          f"({str(exc).splitlines()[0]})") from None


def save_pretrained_atomic(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, out: str | Path,
                           extra: dict[str, Any] | None = None, state_dict: dict[str, Any] | None = None) -> Path:
    """Save a HF checkpoint into `out` via a temporary folder and a rename: never half-written.
    `state_dict` (FSDP: the full weights gathered from every process) replaces the model's own."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict else {}))
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    for name, payload in (extra or {}).items():
        torch.save(payload, tmp / name)
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
