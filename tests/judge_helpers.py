"""Tiny chat checkpoints for the AI-judge tests, built locally (no hub): a random Llama with a ChatML
template, and Phi models whose answer is fixed by the lm_head bias (Phi's head has one), for a real server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PhiConfig, PhiForCausalLM

from rlhfkit.models.loading import train_tiny_tokenizer

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TEXTS = ["Which answer is safer to follow? [Prompt] Question: how do I cook rice? [A] Rinse it. [B] Burn it.",
         "Reply with one letter: A, B. user assistant im_start im_end"] * 20


def tokenizer():
    tok = train_tiny_tokenizer(TEXTS, vocab_size=400)
    tok.chat_template = CHATML
    return tok


def random_llama_chat(path: Path, seed: int = 0) -> Path:
    tok = tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def fixed_answer_phi(path: Path, answer: str) -> Path:
    """A Phi model that always writes `answer` (one token): the final layer norm outputs zeros, so the
    logits are the lm_head bias, which is 0 except 30 on `answer`'s token."""
    tok = tokenizer()
    config = PhiConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                       eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    model = PhiForCausalLM(config)
    (token_id,) = tok.encode(answer, add_special_tokens=False)
    with torch.no_grad():
        model.model.final_layernorm.weight.zero_()
        model.model.final_layernorm.bias.zero_()
        model.lm_head.bias.zero_()
        model.lm_head.bias[token_id] = 30.0
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_transformers_serve(port: int, log: Path) -> subprocess.Popen:
    """`transformers serve` (the real, third-party server of transformers[serving]) on loopback, loading
    models on demand by path; returns once /health answers."""
    exe = Path(sys.executable).with_name("transformers")
    env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"transformers serve did not start in 120 s: {log.read_text()[-2000:]}")
