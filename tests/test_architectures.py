"""Every stage on the common causal-LM families, each with its own chat template and tokenizer.

For each of llama, qwen2, qwen3, gemma2, mistral, gpt2 and phi3: a tiny random model (2 layers, width
32) and a byte-level BPE tokenizer trained here on the test's own texts, carrying the family's chat
template (system / user / assistant, generation prompt) and special tokens. Some families pad with
their EOS id (what Llama 3, Mistral and GPT-2 checkpoints do when no pad token exists), some set the
tokenizer's padding side to the left: rlhfkit pads itself, so neither may change a number.

Two steps each of sft, rm, dpo and ppo (with LoRA) and an eval and a sample run, on conversational
data. "Passes" means each run finishes and its checkpoint, reloaded with plain `transformers` and
evaluated one unpadded sequence at a time, reproduces what the run logged from its own padded batches:
SFT's held-out loss, the reward model's held-out loss (the reward read at each response's EOS, even
where EOS is the pad id), DPO's held-out loss (against the SFT checkpoint), and PPO's merged adapter.

Marked `arch`: `pytest -m "not arch"` skips the matrix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    GenerationConfig,
    PreTrainedTokenizerFast,
)

from rlhfkit.data.records import write_jsonl
from rlhfkit.data.tokenization import encode, render_completion, render_prompt
from rlhfkit.evaluation.evaluate import EvalConfig, run_eval
from rlhfkit.evaluation.responses import SampleConfig, run_sample
from rlhfkit.models.lora import MergeConfig, run_merge
from rlhfkit.trainers.dpo import DPOConfig, train_dpo
from rlhfkit.trainers.ppo import PPOConfig, train_ppo
from rlhfkit.trainers.rm import RMConfig, train_rm
from rlhfkit.trainers.sft import SFTConfig, train_sft

pytestmark = pytest.mark.arch

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
          " + m['content'] + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
# Gemma and Mistral have no system role: the system message opens the first user turn
GEMMA = ("{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}"
         "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}"
         "{% else %}{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n'"
         " + (ns.system if m['role'] == 'user' else '') + m['content'] + '<end_of_turn>\\n' }}"
         "{% set ns.system = '' %}{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")
MISTRAL = ("{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}"
           "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}"
           "{% elif m['role'] == 'user' %}{{ '[INST] ' + ns.system + m['content'] + ' [/INST]' }}"
           "{% set ns.system = '' %}{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}")
PHI3 = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")

SHAPE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=256)

# family: (config class, its shape, chat template, bos, eos, pad (None: pad with EOS), extra specials, padding side)
FAMILIES = {
    "llama": ("LlamaConfig", dict(SHAPE, num_key_value_heads=2), LLAMA3, "<|begin_of_text|>", "<|eot_id|>", None,
              ["<|start_header_id|>", "<|end_header_id|>"], "right"),
    "qwen2": ("Qwen2Config", dict(SHAPE, num_key_value_heads=2), CHATML, None, "<|im_end|>", "<|endoftext|>",
              ["<|im_start|>"], "left"),
    "qwen3": ("Qwen3Config", dict(SHAPE, num_key_value_heads=2, head_dim=8), CHATML, None, "<|im_end|>", None,
              ["<|im_start|>"], "right"),
    "gemma2": ("Gemma2Config", dict(SHAPE, num_key_value_heads=2, head_dim=8, sliding_window=16,
                                    query_pre_attn_scalar=8), GEMMA, "<bos>", "<end_of_turn>", "<pad>",
               ["<start_of_turn>"], "left"),
    "mistral": ("MistralConfig", dict(SHAPE, num_key_value_heads=2, sliding_window=None), MISTRAL, "<s>", "</s>",
                None, ["[INST]", "[/INST]"], "left"),
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=4, n_positions=256), CHATML, None, "<|endoftext|>",
             None, ["<|im_start|>", "<|im_end|>"], "right"),
    "phi3": ("Phi3Config", dict(SHAPE, num_key_value_heads=4), PHI3, None, "<|end|>", "<|endoftext|>",
             ["<|system|>", "<|user|>", "<|assistant|>"], "right"),
}

SYSTEM = {"role": "system", "content": "You are a careful assistant."}
TOPICS = ["boil an egg", "water a cactus", "fix a flat tyre", "learn to juggle", "sharpen a knife",
          "brew green tea", "plant tulips", "clean a cast iron pan", "fold a shirt", "start a campfire",
          "tune a guitar", "bake bread", "store basil", "stretch after running", "iron a collar", "paint a wall"]


def conversation(topic: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": f"How do I {topic}?"}]


def good(topic: str) -> str:
    return f"To {topic}, go step by step and take your time."


def bad(topic: str) -> str:
    return f"No idea about {topic}."


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Conversational demonstrations, preferences and prompts; the last four topics are held out."""
    root = tmp_path_factory.mktemp("arch-data")
    splits = {"train": TOPICS[:12], "held": TOPICS[12:]}
    for split, topics in splits.items():
        write_jsonl(root / f"demos_{split}.jsonl", [
            {"messages": conversation(t) + [{"role": "assistant", "content": good(t)}]} for t in topics])
        write_jsonl(root / f"prefs_{split}.jsonl", [
            {"prompt": conversation(t), "chosen": [{"role": "assistant", "content": good(t)}],
             "rejected": [{"role": "assistant", "content": bad(t)}]} for t in topics])
    write_jsonl(root / "prompts.jsonl", [{"prompt": conversation(t)} for t in TOPICS])
    return {p.stem: p for p in root.glob("*.jsonl")}


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [f"{SYSTEM['content']} How do I {t}? {good(t)} {bad(t)} step by step" for t in TOPICS] * 4


def make_base(family: str, folder: Path, corpus: list[str]) -> Path:
    """A random tiny `family` model and its freshly trained tokenizer, saved as an HF checkpoint."""
    config_name, shape, template, bos, eos, pad, extra, side = FAMILIES[family]
    specials = [t for t in (bos, eos, pad) if t] + extra
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos, pad_token=pad or eos,
                                        padding_side=side, chat_template=template, model_max_length=256)
    ids = dict(bos_token_id=tokenizer.convert_tokens_to_ids(bos) if bos else tokenizer.eos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = getattr(transformers, config_name)(vocab_size=len(tokenizer), **shape, **ids)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def unpadded(model, tokenizer, prompt, completion) -> tuple[torch.Tensor, int]:
    """One sequence, no padding, through a plain transformers model: (ids, index of the first completion token)."""
    example = encode(tokenizer, render_prompt(tokenizer, prompt), render_completion(tokenizer, prompt, completion),
                     256, "t")
    start = next(i for i, label in enumerate(example.labels) if label != -100)
    return torch.tensor([example.input_ids]), start


def completion_logp(model, tokenizer, prompt, completion) -> float:
    ids, start = unpadded(model, tokenizer, prompt, completion)
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return logp[torch.arange(start - 1, ids.shape[1] - 1), ids[0, start:]].sum().item()


def plain_reward(model, tokenizer, prompt, completion) -> float:
    """The head on the hidden state of the response's last token (its EOS)."""
    ids, _ = unpadded(model, tokenizer, prompt, completion)
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids).last_hidden_state[:, -1]
        return model.score(hidden)[0, 0].item()


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_stage_on_a_tiny_model_of_the_family(family, tmp_path, data, corpus):
    base = make_base(family, tmp_path / "base", corpus)
    common = dict(max_steps=2, batch_size=4, max_length=256, progress=False, log_every=1, dtype="fp32")
    held_demos, held_prefs = rows(data["demos_held"]), rows(data["prefs_held"])
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    ids, start = unpadded(None, tokenizer, held_demos[0]["messages"][:-1], held_demos[0]["messages"][-1:])
    text = tokenizer.decode(ids[0])  # the template's turns, and one EOS after the response
    response = tokenizer.decode(ids[0, start:])  # GPT-2 on ChatML ends its turn with <|im_end|>, then its EOS
    assert response.startswith(good(TOPICS[12])) and response.endswith(tokenizer.eos_token), text
    assert response.count(tokenizer.eos_token) == 1, text
    assert text.count(SYSTEM["content"]) == 1 and ids[0, -1] == tokenizer.eos_token_id

    # sft: the held-out loss it logged == the reloaded checkpoint's, sequence by sequence
    sft = train_sft(SFTConfig(model=str(base), data=str(data["demos_train"]), eval_data=str(data["demos_held"]),
                              lr=1e-2, out=str(tmp_path / "sft"), **common))
    policy = AutoModelForCausalLM.from_pretrained(sft).eval()
    nll, tokens = 0.0, 0
    for row in held_demos:
        prompt, completion = row["messages"][:-1], row["messages"][-1:]
        nll -= completion_logp(policy, tokenizer, prompt, completion)
        ids, start = unpadded(policy, tokenizer, prompt, completion)
        tokens += ids.shape[1] - start
    assert math.isclose(rows(sft / "metrics.jsonl")[-1]["eval_loss"], nll / tokens, rel_tol=1e-4)

    # rm: the held-out loss it logged from right-padded batches == the reloaded one's, unpadded
    rm = train_rm(RMConfig(model=str(sft), data=str(data["prefs_train"]), eval_data=str(data["prefs_held"]),
                           lr=1e-2, out=str(tmp_path / "rm"), **common))
    classifier = AutoModelForSequenceClassification.from_pretrained(rm).eval()
    losses = [-F.logsigmoid(torch.tensor(plain_reward(classifier, tokenizer, r["prompt"], r["chosen"])
                                         - plain_reward(classifier, tokenizer, r["prompt"], r["rejected"]))).item()
              for r in held_prefs]
    logged = json.loads((rm / "eval_metrics.json").read_text())["loss"]
    assert math.isclose(logged, sum(losses) / len(losses), rel_tol=1e-4), (logged, losses)

    # dpo: the held-out DPO loss it logged == the one from the reloaded policy and the SFT reference
    dpo = train_dpo(DPOConfig(model=str(sft), data=str(data["prefs_train"]), eval_data=str(data["prefs_held"]),
                              lr=1e-2, beta=0.5, out=str(tmp_path / "dpo"), **common))
    new = AutoModelForCausalLM.from_pretrained(dpo).eval()
    dpo_losses = []
    for r in held_prefs:
        margin = sum(sign * (completion_logp(new, tokenizer, r["prompt"], r[side])
                             - completion_logp(policy, tokenizer, r["prompt"], r[side]))
                     for sign, side in ((1, "chosen"), (-1, "rejected")))
        dpo_losses.append(-F.logsigmoid(torch.tensor(0.5 * margin)).item())
    logged = rows(dpo / "metrics.jsonl")[-1]["eval_loss"]
    assert math.isclose(logged, sum(dpo_losses) / len(dpo_losses), rel_tol=1e-3, abs_tol=1e-5)

    # ppo with LoRA against the reward model; its merged adapter loads in plain transformers
    ppo = train_ppo(PPOConfig(model=str(sft), data=str(data["prompts"]), reward=str(rm), out=str(tmp_path / "ppo"),
                              max_steps=2, prompts_per_step=2, group_size=2, max_new_tokens=8, minibatch_size=4,
                              lora_r=4, progress=False, dtype="fp32"))
    assert all(math.isfinite(r["score"]) and math.isfinite(r["kl"]) for r in rows(ppo / "metrics.jsonl"))
    merged = run_merge(MergeConfig(adapter=str(ppo), out=str(tmp_path / "merged")))
    ids, _ = unpadded(policy, tokenizer, held_demos[0]["messages"][:-1], held_demos[0]["messages"][-1:])
    with torch.no_grad():
        merged_logits = AutoModelForCausalLM.from_pretrained(merged)(input_ids=ids).logits
    assert torch.isfinite(merged_logits).all() and not torch.allclose(merged_logits, policy(input_ids=ids).logits)

    # eval and sample read the adapter folder
    result = run_eval(EvalConfig(policy=str(ppo), reference=str(sft), data=str(data["prompts"]), judge=str(rm),
                                 num_prompts=4, max_new_tokens=8, probes=False))
    assert 0 <= result["win_rate"] <= 1
    samples = run_sample(SampleConfig(model=str(ppo), data=str(data["prompts"]), max_new_tokens=8,
                                      out=str(tmp_path / "samples.jsonl")))
    assert len(rows(samples)) == len(TOPICS)
