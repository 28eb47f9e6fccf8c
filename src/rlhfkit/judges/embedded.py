"""The embedded AI judge: a small chat model that rlhfkit trains on the CPU, asked through the same
`LocalJudge` as any other chat model (it reads the principle's text in its prompt).

    path = train_embedded_judge("runs/judge")     # three sft passes (PASSES; time: docs/ai-feedback.md)
    judge = LocalJudge("runs/judge")              # its judge.json says: grade one response at a time

It grades rather than compares (judges.ai.grade_messages): each response is shown alone under the
principle's question and graded 1-6; the verdict is Bradley-Terry on the expected grades. A model
this small, trained from scratch, did not learn to compare two answers shown together.

How it gets its skill, the way a pretrained assistant learned judging before anyone asks it to: its
training corpus is written by the built-in task's *response generator* (never its gold rubric).
Grading demonstrations show a training-split question, one answer in a random style (helpful,
padded, flattering, off-topic, rant, unsafe), a question about the answers, and the grade that the
question's aspect gives that style (`ASPECT_ORDERS`, `grade`), then a one-line critique. A quarter
are question-reading demonstrations: a question alone, and what kind of answer it asks for. The
questions come from a grammar of aspects, directions, sentence forms and words (`draw_question`).
Any question that equals one of the shipped constitution's, up to the noun and punctuation, is
redrawn, and the eval split's prompts are never used. So the judge is measured on prompts and
principle wordings it has not seen, and no gold label of any pair reaches it. The grammar's
vocabulary does cover the constitution's words.

What it cannot do: judge anything outside the built-in task's narrow language, tell two answers of
the same style apart, or read words its grammar never used; it knows the styles, not facts. This
module imports nothing of the task's gold scorer (tests/test_layout.py checks that). The grammar is
written by hand because no library generates judging prompts with known answers for this task.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

from rlhfkit.judges.ai import GRADES, Query, grade_messages
from rlhfkit.judges.constitution import Principle, load_constitution
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


#: Styles best first, per aspect a question can ask about.
ASPECT_ORDERS: dict[str, tuple[str, ...]] = {
    "overall": GENERAL, "safety": GENERAL, "neutrality": _bottom("rant"), "clarity": _bottom("padded"),
    "flattery": _bottom("flattering"), "relevance": _bottom("off_topic"),
}
#: The judge's vocabulary per aspect, the way a pretrained assistant knows words for good and bad answers:
#: comparatives for a better / a worse answer, what a bad answer does (third person, gerund), what a good
#: one does, and countable bad things.
_GOOD_ADJ = {
    "overall": ["more helpful", "more useful", "more accurate", "more honest", "more truthful", "better",
                "more informative", "more trustworthy"],
    "safety": ["safer", "less harmful", "less dangerous", "less risky", "more careful", "more responsible"],
    "neutrality": ["calmer", "fairer", "more neutral", "more balanced", "less biased", "more even-handed",
                   "more polite", "more respectful", "less preachy"],
    "clarity": ["clearer", "more concise", "shorter", "less wordy", "less repetitive", "more direct",
                "more to the point", "tighter"],
    "flattery": ["less flattering", "less gushing", "more sincere", "more matter-of-fact", "less fawning"],
    "relevance": ["more on topic", "more relevant", "closer to the question", "more focused"],
}
_BAD_ADJ = {
    "overall": ["less helpful", "less useful", "worse", "less accurate", "less honest", "less truthful",
                "less informative", "less trustworthy"],
    "safety": ["riskier", "more harmful", "more dangerous", "more reckless", "less careful", "less responsible"],
    "neutrality": ["angrier", "more biased", "more one-sided", "ruder", "more preachy", "more hostile",
                   "less polite", "less balanced"],
    "clarity": ["longer", "wordier", "more repetitive", "more padded", "more rambling", "less concise"],
    "flattery": ["more flattering", "more gushing", "more fawning", "less sincere"],
    "relevance": ["more off topic", "less relevant", "further from the question", "less focused"],
}
_BAD_ACTS = {
    "overall": [("misleads the user", "misleading the user"), ("gets the facts wrong", "getting the facts wrong")],
    "safety": [("gives dangerous advice", "giving dangerous advice"), ("suggests something illegal", "suggesting something illegal"),
               ("recommends risky shortcuts", "recommending risky shortcuts"), ("could get someone hurt", "getting someone hurt"),
               ("promises that its tip always works", "promising that its tip always works"),
               ("makes overconfident claims", "making overconfident claims"),
               ("claims its advice always works", "claiming its advice always works"),
               ("states guesses as certain", "stating guesses as certain")],
    "neutrality": [("uses loaded language", "using loaded language"), ("insults people", "insulting people"),
                   ("lectures the reader", "lecturing the reader"), ("pushes its own opinion", "pushing its own opinion"),
                   ("takes a political side", "taking a political side"), ("scolds the user", "scolding the user"),
                   ("lectures", "lecturing"), ("pushes an agenda", "pushing an agenda")],
    "clarity": [("repeats itself", "repeating itself"), ("pads the answer with filler", "padding the answer with filler"),
                ("rambles", "rambling"), ("says the same thing twice", "saying the same thing twice")],
    "flattery": [("flatters the reader", "flattering the reader"), ("praises the person asking", "praising the person asking"),
                 ("compliments the user", "complimenting the user"), ("butters up the reader", "buttering up the reader")],
    "relevance": [("answers a different question", "answering a different question"), ("drifts off topic", "drifting off topic"),
                  ("ignores what was asked", "ignoring what was asked")],
}
_GOOD_ACTS = {
    "overall": ["answers the question", "gives correct facts", "helps the user", "tells the truth", "gives useful facts",
                "helps"],
    "safety": ["keeps the user safe", "gives safe advice", "only says what is certain"],
    "neutrality": ["stays calm", "leaves the decision to the user", "treats everyone fairly",
                   "leaves the choice to the reader"],
    "clarity": ["gets to the point", "says it once", "keeps it short"],
    "flattery": ["sticks to the facts", "treats the user as an adult"],
    "relevance": ["stays on topic", "addresses the question"],
}
_BAD_NOUNS = {
    "overall": ["mistakes", "wrong facts"],
    "safety": ["risky tips", "harmful suggestions", "reckless claims", "false guarantees", "illegal suggestions",
               "overconfident claims", "false promises", "empty promises"],
    "neutrality": ["insults", "loaded words", "political jabs", "lectures"],
    "clarity": ["filler phrases", "repeated sentences", "empty phrases"],
    "flattery": ["compliments", "words of praise"],
    "relevance": ["unrelated facts"],
}
#: Plain adjectives (after "more" / "less", in lists): for a good answer, for a bad one.
_GOOD_BASE = {
    "overall": ["helpful", "useful", "accurate", "honest", "truthful", "informative"],
    "safety": ["safe", "harmless", "careful", "responsible"],
    "neutrality": ["balanced", "neutral", "calm", "fair", "polite", "respectful"],
    "clarity": ["clear", "concise", "direct", "brief"],
    "flattery": ["sincere", "matter-of-fact"],
    "relevance": ["relevant", "focused"],
}
_BAD_BASE = {
    "overall": ["unhelpful", "misleading", "inaccurate", "vague"],
    "safety": ["dangerous", "harmful", "risky", "reckless", "illegal", "unsafe"],
    "neutrality": ["loaded", "one-sided", "biased", "hostile", "rude", "preachy"],
    "clarity": ["padded", "repetitive", "wordy", "long-winded"],
    "flattery": ["flattering", "gushing", "fawning"],
    "relevance": ["irrelevant", "unfocused"],
}
_SUFFIXES = ("", "", "", " to follow", " for the question", " for what was asked", " for the person asking")
_MORE = ("more", "more strongly", "more often")
_WHICH = ("Which", "Of these, which", "Of the two, which", "Say which")
_PICK = ("Pick", "Choose", "Select", "Name")
_NOUNS = ("answer", "reply", "response")
#: A one-line critique of a graded answer, by its style (none for helpful: nothing is wrong with it).
CRITIQUES = {"padded": "is padded and repeats itself.", "flattering": "flatters the user.",
             "off_topic": "answers another question.", "rant": "uses loaded, angry language.",
             "unsafe": "gives dangerous advice."}


def _normalized(question: str) -> str:
    words = "".join(c if c.isalnum() or c == " " else " " for c in question.lower()).split()
    return " ".join("answer" if w in _NOUNS else w for w in words)


def _shipped() -> set[str]:
    """The shipped constitution's questions, normalised: the judge is measured on these, so it never trains on them."""
    constitution = load_constitution()
    return {_normalized(q) for p in constitution.principles for q in (p.compare, p.inverse) if q}


def _listed(words: list[str], joiner: str) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {joiner} {words[-1]}"


def _compose(rng: random.Random, aspect: str, worse: bool) -> str:
    """One question about `aspect` asking for the better answer (or the worse one, `worse`): a form drawn
    uniformly, its words drawn from the aspect's vocabulary."""
    which, pick, noun, end = rng.choice(_WHICH), rng.choice(_PICK), rng.choice(_NOUNS), rng.choice(_SUFFIXES)
    adjs, ask = (_BAD_ADJ, _BAD_BASE) if worse else (_GOOD_ADJ, _GOOD_BASE)
    shun = _GOOD_BASE if worse else _BAD_BASE  # the other polarity, asked with "less"
    (bad_third, bad_ger), (third2, _) = rng.sample(_BAD_ACTS[aspect], 2)
    good, good2 = rng.sample(_GOOD_ACTS[aspect] + _GOOD_ACTS["overall"], 2)
    bad_noun = rng.choice(_BAD_NOUNS[aspect])
    bases = rng.sample(ask[aspect] + (ask["safety" if aspect == "overall" else "overall"] if aspect in ("overall", "safety") else []),
                       k=min(rng.choice((1, 2, 3)), len(ask[aspect])))
    forms = [f"{which} {noun} is {rng.choice(adjs[aspect])}{end}?", f"{pick} the {noun} that is {rng.choice(adjs[aspect])}{end}.",
             f"{which} {noun} is {' and '.join(rng.sample(adjs[aspect], 2))}{end}?",
             f"{which} {noun} is more {_listed(bases, 'and')}{end}?",
             f"{which} {noun} is less {_listed(rng.sample(shun[aspect], min(2, len(shun[aspect]))), 'and')}{end}?"]
    if worse:
        forms += [f"{which} {noun} {bad_third}?", f"{which} {noun} {bad_third} {rng.choice(_MORE)}?",
                  f"{pick} the {noun} that {bad_third}.", f"{which} {noun} has more {bad_noun}?",
                  f"{which} {noun} is full of {bad_noun}?", f"{which} {noun} makes more {bad_noun}?",
                  f"{which} {noun} {bad_third} more and {third2}?",
                  f"{which} {noun} gives more {_listed(rng.sample(_BAD_BASE[aspect], min(3, len(_BAD_BASE[aspect]))), 'or')} advice?",
                  f"{which} {noun} uses more {' and '.join(rng.sample(_BAD_BASE[aspect], 2))} language?"]
    else:
        forms += [f"{which} {noun} avoids {bad_ger}?", f"{pick} the {noun} that avoids {bad_ger}.",
                  f"{which} {noun} {good} without {bad_ger}?", f"{which} {noun} {good}?",
                  f"{which} {noun} {bad_third} less?", f"{which} {noun} has fewer {bad_noun}?",
                  f"{which} {noun} makes fewer {bad_noun} and {good}?", f"{which} {noun} {good} and {good2}, without {bad_ger}?",
                  f"{which} {noun} avoids {_listed(rng.sample(_BAD_BASE[aspect], min(3, len(_BAD_BASE[aspect]))), 'or')} advice?",
                  f"{which} {noun} is {rng.choice(adjs[aspect])}, without {bad_noun}?"]
    return rng.choice(forms)


def draw_question(rng: random.Random, shipped: set[str]) -> tuple[str, str, bool]:
    """(question, aspect, asks for the worse answer): an aspect and a direction drawn uniformly, then a
    form and its words; redrawn while it is (up to the noun and punctuation) a question of the shipped
    constitution."""
    aspect = rng.choice(tuple(ASPECT_ORDERS))
    worse = rng.random() < 0.5
    question = _compose(rng, aspect, worse)
    while _normalized(question) in shipped:
        question = _compose(rng, aspect, worse)
    return question, aspect, worse


def grade(style: str, aspect: str, worse: bool) -> int:
    """The demonstrations' grade of a `style` answer: 6 for the aspect's best style down to 1 for its
    worst, turned around when the question asks for the worse answer."""
    rank = ASPECT_ORDERS[aspect].index(style)
    return rank + 1 if worse else len(GRADES) - rank


def demonstration(rng: random.Random, prompt: str, shipped: set[str]) -> dict:
    """One grading demonstration {"messages": [user, assistant]}, in the LocalJudge's own grading format."""
    style = rng.choice(STYLES)
    question, aspect, worse = draw_question(rng, shipped)
    query = Query(prompt, [response(prompt, style, rng)], Principle("train", "", "", question))
    answer = str(grade(style, aspect, worse))
    if not worse and style in CRITIQUES:
        answer += f". [A] {CRITIQUES[style]}"
    return {"messages": grade_messages(query, 0) + [{"role": "assistant", "content": answer}]}


#: How the intent demonstrations name what a question asks for: (the best answer, the worst answer) per aspect.
INTENTS = {"overall": ("most helpful", "least helpful"), "safety": ("safest", "most dangerous"),
           "neutrality": ("calmest", "most hostile"), "clarity": ("clearest", "most padded"),
           "flattery": ("least flattering", "most flattering"), "relevance": ("most relevant", "least relevant")}


def intent_demonstration(rng: random.Random, shipped: set[str]) -> dict:
    """A short demonstration of reading a question: what kind of answer it asks for."""
    question, aspect, worse = draw_question(rng, shipped)
    return {"messages": [{"role": "user", "content": f"{question}\nWhat kind of answer does that question ask for?"},
                         {"role": "assistant", "content": f"The {INTENTS[aspect][worse]} one."}]}


def demonstrations(n: int, seed: int = 0, intent_share: float = 0.25) -> list[dict]:
    """`n` demonstrations on training-split prompts: grading ones, and a share `intent_share` of
    question-reading ones (`intent_demonstration`), which teach the words of a question apart from
    the answers they are asked about."""
    rng = random.Random(f"judge-demos:{seed}")
    shipped = _shipped()
    return [intent_demonstration(rng, shipped) if rng.random() < intent_share else demonstration(rng, p["prompt"], shipped)
            for p in prompts(n, seed=seed, split="train")]


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


#: How the trained judge is asked (judges.local reads it from the folder's judge.json).
JUDGE_SETTINGS = {"mode": "grade", "temperature": 0.5}


def _write(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


#: The sft passes of `train_embedded_judge`: (epochs, learning rate), each on fresh demonstrations and
#: continuing the pass before (what each pass adds is measured in docs/ai-feedback.md).
PASSES: tuple[tuple[float, float], ...] = ((3.0, 2e-3), (2.0, 1e-3), (2.0, 5e-4))


def train_embedded_judge(out: str | Path, n: int = 16000, passes: tuple[tuple[float, float], ...] = PASSES,
                         seed: int = 0, batch_size: int = 16, progress: bool = True) -> Path:
    """Build the model and train it with `rlhfkit sft`, one pass per (epochs, lr) of `passes`: pass i
    on `n` fresh demonstrations (seed `seed + i`), the first from random weights, each later one from
    the pass before; then write its judge.json. Returns `out`. A finished pass is reused when the
    training is restarted."""
    out = Path(out)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    previous = None
    for i, (epochs, lr) in enumerate(passes):
        folder = out if i == len(passes) - 1 else work / f"pass{i + 1}"
        if (folder / "model.safetensors").exists() and folder != out:
            previous = folder
            continue
        rows = demonstrations(n, seed + i)
        if previous is None:
            model, tokenizer = build_judge_model([m["content"] for r in rows[:2000] for m in r["messages"]], seed)
            save_pretrained_atomic(model, tokenizer, work / "init")
            previous = work / "init"
        data = _write(rows, work / f"judge_demonstrations_{i + 1}.jsonl")
        train_sft(SFTConfig(model=str(previous), data=str(data), out=str(folder), epochs=epochs, lr=lr,
                            batch_size=batch_size, max_length=512, eval_fraction=0.02, seed=seed + i,
                            progress=progress, save_every=10**9, resume=False))
        previous = folder
    (out / "judge.json").write_text(json.dumps(JUDGE_SETTINGS) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# The embedded critic: the SFT policy taught to critique and revise in `rlhfkit critique`'s format


def critic_demonstrations(n: int, seed: int = 0) -> list[dict]:
    """`n` conversations in `rlhfkit critique`'s format, two rows each: the critique of an answer in a
    random style against a principle of the shipped constitution ("The answer flatters the user."), and
    the revision, an answer in the generator's helpful style to the same question."""
    rng = random.Random(f"critic-demos:{seed}")
    constitution = load_constitution()
    rows = []
    for p in prompts(n, seed=seed, split="train"):
        style, principle = rng.choice(STYLES), constitution.draw(rng)
        talk = [{"role": "user", "content": p["prompt"]},
                {"role": "assistant", "content": response(p["prompt"], style, rng)},
                {"role": "user", "content": f"Critique request: {principle.critique}"}]
        said = f"The answer {CRITIQUES[style]}" if style in CRITIQUES else "The answer is fine as it is."
        rows.append({"messages": talk + [{"role": "assistant", "content": said}]})
        talk = talk + [{"role": "assistant", "content": said},
                       {"role": "user", "content": f"Revision request: {principle.revision}"}]
        rows.append({"messages": talk + [{"role": "assistant", "content": response(p["prompt"], "helpful", rng)}]})
    return rows


def train_embedded_critic(out: str | Path, policy: str | Path, n: int = 3000, epochs: float = 1.0, seed: int = 0,
                          batch_size: int = 16, progress: bool = True) -> Path:
    """The critic for `rlhfkit critique --critic`: the SFT policy (`policy`, which already writes the
    task's language) given this module's chat template and fine-tuned on `critic_demonstrations`.

    What it can do is narrow: name the built-in style of an answer and rewrite it in the helpful style.
    It does not follow the principle's words when it revises (every revision is the helpful style)."""
    out = Path(out)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(policy))
    tokenizer.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(str(policy))
    save_pretrained_atomic(model, tokenizer, work / "init")
    data = _write(critic_demonstrations(n, seed), work / "critic_demonstrations.jsonl")
    return train_sft(SFTConfig(model=str(work / "init"), data=str(data), out=str(out), epochs=epochs, lr=5e-4,
                               batch_size=batch_size, max_length=512, eval_fraction=0.02, seed=seed, progress=progress,
                               save_every=10**9, resume=False))
