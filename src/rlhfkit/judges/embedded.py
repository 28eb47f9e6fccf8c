"""The embedded AI judge: a small chat model that rlhfkit trains on the CPU, judged through the same
`LocalJudge` as any other chat model (it reads the principle's text in its prompt).

    path = train_embedded_judge("runs/judge")                   # about two minutes on a CPU
    judge = LocalJudge("runs/judge")

How it gets its skill, the way a pretrained assistant learned judging before it is asked to: its
training corpus holds comparison demonstrations written by the built-in task's *response generator*
(not its gold rubric): a training-split question, two answers in different styles (helpful, padded,
flattering, off-topic, rant, unsafe), a comparison question, and the letter of the answer that the
question's aspect ranks higher, followed by a one-line critique of the other answer ("[B] gives
dangerous advice."). Each aspect ranks the styles by what it asks about (`ASPECT_ORDERS`: the general
order, or the same order with the style the aspect is about moved to the bottom); a question asking
for the *worse* answer reverses the order. The comparison questions are composed from templates
(`training_questions`) that never produce a sentence of the shipped constitution, and the questions
of the eval split are never used, so the judge is measured on prompts and principle wordings it has
not seen, and no gold label of any pair reaches it.

What it cannot do: judge anything outside the built-in task's narrow language, or tell two answers of
the same style apart (the demonstrations never compare those), and it knows the styles, not facts.
This module imports nothing of the task's gold scorer (tests/test_layout.py checks that).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from rlhfkit.judges.ai import LABELS, Query, judge_messages
from rlhfkit.judges.constitution import Principle
from rlhfkit.models.loading import save_pretrained_atomic, train_tiny_tokenizer
from rlhfkit.tasks.assistant.responses import STYLES, corpus, prompts, response
from rlhfkit.trainers.sft import SFTConfig, train_sft

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
#: Smaller than `--model tiny`: judging must run at a dozen pairs (two forward passes each) per second on two cores.
JUDGE_SHAPE = dict(hidden_size=128, intermediate_size=320, num_hidden_layers=3, num_attention_heads=4,
                   num_key_value_heads=4, max_position_embeddings=768)
GENERAL = ("helpful", "padded", "flattering", "off_topic", "rant", "unsafe")


def _bottom(style: str) -> tuple[str, ...]:
    return tuple(s for s in GENERAL if s != style) + (style,)


#: Styles best first, per aspect a comparison question can ask about.
ASPECT_ORDERS: dict[str, tuple[str, ...]] = {
    "overall": GENERAL, "safety": GENERAL, "neutrality": _bottom("rant"), "clarity": _bottom("padded"),
    "flattery": _bottom("flattering"), "relevance": _bottom("off_topic"),
}
#: (wording of the aspect when the question asks for the better answer, for the worse one).
_ASPECT_WORDS: dict[str, list[tuple[str, str]]] = {
    "overall": [("more useful and truthful", "less useful and truthful"), ("better for the user", "worse for the user"),
                ("more helpful", "less helpful"), ("more honest and useful", "less honest and useful")],
    "safety": [("safer", "riskier"), ("less harmful", "more harmful"), ("less dangerous", "more dangerous"),
               ("free of risky tips", "full of risky tips")],
    "neutrality": [("calmer and fairer", "angrier and more biased"), ("less biased", "more biased"),
                   ("more even-handed", "more one-sided")],
    "clarity": [("shorter and clearer", "longer and more repetitive"), ("less padded", "more padded"),
                ("more to the point", "more wordy")],
    "flattery": [("less flattering", "more flattering"), ("free of praise for the user", "full of praise for the user")],
    "relevance": [("more on topic", "more off topic"), ("closer to the question", "further from the question")],
}
_TEMPLATES = ("Which reply is {w}?", "Pick the reply that is {w}.", "Of these, which response is {w}?",
              "Choose the answer that is {w}.")
#: A one-line critique of the losing answer, by its style (none for helpful: nothing is wrong with it).
CRITIQUES = {"padded": "is padded and repeats itself.", "flattering": "flatters the user.",
             "off_topic": "answers another question.", "rant": "uses loaded, angry language.",
             "unsafe": "gives dangerous advice."}


def training_questions() -> list[tuple[str, str, bool]]:
    """Every (question, aspect, asks for the worse answer) the demonstrations use."""
    return [(template.format(w=words[worse]), aspect, bool(worse))
            for aspect, pairs in _ASPECT_WORDS.items() for words in pairs for template in _TEMPLATES
            for worse in (0, 1)]


def demonstration(rng: random.Random, prompt: str, questions: list[tuple[str, str, bool]]) -> dict:
    """One comparison demonstration {"messages": [user, assistant]}, in the LocalJudge's own prompt format."""
    s1, s2 = rng.sample(STYLES, 2)
    question, aspect, worse = rng.choice(questions)
    order = ASPECT_ORDERS[aspect]
    better, loser = (s1, s2) if order.index(s1) < order.index(s2) else (s2, s1)
    if worse:
        better, loser = loser, better
    texts = {s: response(prompt, s, rng) for s in (s1, s2)}
    shown = [better, loser] if rng.random() < 0.5 else [loser, better]
    principle = Principle("train", "", "", question)
    messages = judge_messages(Query(prompt, [texts[s] for s in shown], principle), [0, 1])
    answer = LABELS[shown.index(better)]
    if not worse and loser in CRITIQUES:
        answer += f". [{LABELS[shown.index(loser)]}] {CRITIQUES[loser]}"
    return {"messages": messages + [{"role": "assistant", "content": answer}]}


def demonstrations(n: int, seed: int = 0) -> list[dict]:
    """`n` comparison demonstrations on training-split prompts."""
    rng = random.Random(f"judge-demos:{seed}")
    questions = training_questions()
    return [demonstration(rng, p["prompt"], questions) for p in prompts(n, seed=seed, split="train")]


def build_judge_model(texts: list[str], seed: int = 0):
    """A fresh small Llama with a tokenizer trained on the task's corpus and the judge's demonstrations,
    and a chat template."""
    tokenizer = train_tiny_tokenizer(corpus(seed=0) + texts)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), tie_word_embeddings=True, bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **JUDGE_SHAPE)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    tokenizer.model_max_length = 768
    return model, tokenizer


def train_embedded_judge(out: str | Path, n: int = 3000, epochs: float = 1.5, seed: int = 0,
                         batch_size: int = 16, progress: bool = True) -> Path:
    """Write the demonstrations, build the model and train it with `rlhfkit sft`; returns `out`."""
    out = Path(out)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    rows = demonstrations(n, seed)
    data = work / "judge_demonstrations.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = [m["content"] for r in rows[:2000] for m in r["messages"]]
    model, tokenizer = build_judge_model(texts, seed)
    save_pretrained_atomic(model, tokenizer, work / "init")
    config = SFTConfig(model=str(work / "init"), data=str(data), out=str(out), epochs=epochs, lr=2e-3,
                       batch_size=batch_size, max_length=768, eval_fraction=0.02, seed=seed, progress=progress,
                       save_every=10**9, resume=False)
    return train_sft(config)
