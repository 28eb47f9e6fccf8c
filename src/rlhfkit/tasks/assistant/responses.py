"""Generators of ``builtin:assistant``: prompts, responses in six styles, demonstrations, a tokenizer corpus.

* ``prompts(n, seed, split)``: ``{"prompt", "topic"}`` records; train and eval never share a phrasing.
* ``response(prompt, style, rng)`` writes a completion in one of six ``STYLES``:
  ``helpful`` (2-3 facts, plain), ``padded`` (the same facts wrapped in filler and repeated),
  ``flattering`` ("Great question!" plus 1-2 facts), ``rant`` (loaded, political language and at most
  one fact), ``off_topic`` (a good answer to a different question) and ``unsafe`` (harmful advice).
* ``demonstrations(n, seed, split)``: SFT records whose styles are mixed as ``DEFAULT_STYLE_WEIGHTS``,
  roughly what scraped internet answers look like.
* ``corpus(seed)``: prompt + completion texts covering every phrasing and style, to train a tokenizer.

Everything is seeded: the same arguments give the same text, byte for byte. Styles by mean gold
total (``rubric.score``; tested in ``tests/test_assistant_task.py``): helpful > padded > flattering >
off_topic > rant > unsafe, and helpful beats every other style on at least 95% of prompts. Padded
keeps helpful's facts and loses on clarity only; flattering loses on clarity and carries fewer facts;
off_topic is clean but useless; rant loses neutrality and most facts; unsafe loses harmlessness,
which the total weighs twice.
"""

from __future__ import annotations

import math
import random

from rlhfkit.tasks.assistant.content import (
    FILLER_SENTENCES,
    FLATTERY_CLOSERS,
    FLATTERY_COMPLIMENTS,
    FLATTERY_OPENERS,
    HELPFUL_OPENERS,
    N_EVAL_QUESTIONS,
    PADDED_SUMMARY,
    RANT_CLOSERS,
    RANT_TEMPLATES,
    TOPICS,
    UNSAFE_CLOSERS,
    UNSAFE_OPENERS,
    Fact,
    Topic,
    format_prompt,
    lower_first,
    split_words,
    topic_index,
)

#: The six styles ``response`` writes, described in the module docstring.
STYLES: tuple[str, ...] = ("helpful", "padded", "flattering", "rant", "off_topic", "unsafe")
#: Style mix of ``demonstrations``, roughly what scraped internet answers look like.
DEFAULT_STYLE_WEIGHTS: dict[str, float] = {
    "helpful": 0.35,
    "padded": 0.15,
    "flattering": 0.15,
    "rant": 0.12,
    "off_topic": 0.10,
    "unsafe": 0.13,
}


def _split_questions(topic: Topic, split: str) -> tuple[str, ...]:
    if split == "train":
        return topic.questions[:-N_EVAL_QUESTIONS]
    if split == "eval":
        return topic.questions[-N_EVAL_QUESTIONS:]
    raise ValueError(f"split must be 'train' or 'eval', got {split!r}")


def prompts(n: int, seed: int = 0, split: str = "train") -> list[dict[str, str]]:
    """``n`` prompts ``{"prompt", "topic"}``; every pass over the topics visits each once, in a seeded order.

    Train and eval prompts never share a phrasing (the last two phrasings of each topic are eval-only).
    """
    _split_questions(TOPICS[0], split)  # validate the split even when n == 0
    rng = random.Random(f"prompts:{seed}:{split}")
    out: list[dict[str, str]] = []
    while len(out) < n:
        order = list(TOPICS)
        rng.shuffle(order)
        for t in order:
            if len(out) >= n:
                break
            q = rng.choice(_split_questions(t, split))
            out.append({"prompt": format_prompt(q), "topic": t.name})
    return out


def _helpful_body(topic: Topic, rng: random.Random, k: int, min_words: int = 0) -> list[Fact]:
    """``k`` distinct facts in random order, more while they total fewer than ``min_words`` words."""
    order = rng.sample(list(topic.facts), k=len(topic.facts))
    k = min(k, len(order))
    while k < len(order) and sum(len(split_words(f.text)) for f in order[:k]) < min_words:
        k += 1
    return order[:k]


def _helpful(topic: Topic, rng: random.Random) -> list[str]:
    """An optional plain opener and 2-3 facts (more if they are short)."""
    opener = rng.choice(HELPFUL_OPENERS)
    facts = _helpful_body(topic, rng, rng.choice((2, 3, 3)), min_words=15)
    return [opener] + [f.text for f in facts]


def _padded(topic: Topic, rng: random.Random) -> list[str]:
    """Helpful's facts between three filler sentences, the first fact repeated as a summary."""
    facts = _helpful_body(topic, rng, rng.choice((2, 3)), min_words=15)
    fillers = rng.sample(list(FILLER_SENTENCES), k=3)
    parts = [fillers[0], fillers[1], facts[0].text, fillers[2]] + [f.text for f in facts[1:]]
    parts.append(f"{PADDED_SUMMARY} {lower_first(facts[0].text)}")
    return parts


def _flattering(topic: Topic, rng: random.Random) -> list[str]:
    """A flattering opener (sometimes a compliment too), 1-2 facts and a flattering closer."""
    opens = [rng.choice(FLATTERY_OPENERS)]
    if rng.random() < 0.5:
        opens.append(rng.choice(FLATTERY_COMPLIMENTS))
    facts = _helpful_body(topic, rng, rng.choice((1, 2)))
    return opens + [f.text for f in facts] + [rng.choice(FLATTERY_CLOSERS)]


def _rant(topic: Topic, rng: random.Random) -> list[str]:
    """2-3 loaded sentences about the topic's subject, half the time one fact among them, a closer."""
    templates = rng.sample(list(RANT_TEMPLATES), k=rng.choice((2, 3)))
    rants = [r.format(subject=topic.subject) for r in templates]
    if rng.random() < 0.5:
        rants.insert(rng.randrange(1, len(rants) + 1), rng.choice(topic.facts).text)
    return rants + [rng.choice(RANT_CLOSERS)]


def _off_topic(topic: Topic, rng: random.Random) -> list[str]:
    """A good answer (2-3 facts) for a different, random topic."""
    other = rng.choice([t for t in TOPICS if t is not topic])
    return [f.text for f in _helpful_body(other, rng, rng.choice((2, 3)), min_words=15)]


def _unsafe(topic: Topic, rng: random.Random) -> list[str]:
    """One of the topic's unsafe tips, usually after a real fact, between a bold opener and closer."""
    with_fact = rng.random() < 0.6
    parts = [rng.choice(UNSAFE_OPENERS if with_fact else UNSAFE_OPENERS[2:])]
    if with_fact:
        parts.append(rng.choice(topic.facts).text)
    return parts + [rng.choice(topic.unsafe_tips), rng.choice(UNSAFE_CLOSERS)]


#: The sentences of each style; empty strings are dropped when they are joined.
_STYLE_WRITERS = {
    "helpful": _helpful,
    "padded": _padded,
    "flattering": _flattering,
    "rant": _rant,
    "off_topic": _off_topic,
    "unsafe": _unsafe,
}
assert tuple(_STYLE_WRITERS) == STYLES


def response(prompt: str, style: str, rng: random.Random) -> str:
    """A completion (leading space, no trailing newline) for ``prompt`` in ``style``.

    An unrecognised prompt gets a seeded random topic.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")
    i = topic_index(prompt)
    topic = TOPICS[i] if i is not None else rng.choice(TOPICS)
    return " " + " ".join(p for p in _STYLE_WRITERS[style](topic, rng) if p)


def _allocate(n: int, weights: dict[str, float]) -> list[str]:
    """Largest-remainder allocation of ``n`` items to styles in proportion to ``weights``."""
    items = [(s, float(w)) for s, w in weights.items() if w > 0]
    for s, _ in items:
        if s not in STYLES:
            raise ValueError(f"unknown style {s!r}")
    total = sum(w for _, w in items)
    if total <= 0:
        raise ValueError("style_weights must have a positive entry")
    exact = [(s, n * w / total) for s, w in items]
    counts = {s: math.floor(x) for s, x in exact}
    left = n - sum(counts.values())
    for s, _x in sorted(exact, key=lambda sx: sx[1] - math.floor(sx[1]), reverse=True)[:left]:
        counts[s] += 1
    return [s for s, _ in items for _ in range(counts[s])]


def demonstrations(
    n: int, seed: int = 0, split: str = "train", style_weights: dict[str, float] | None = None
) -> list[dict[str, str]]:
    """``n`` examples ``{"prompt", "completion", "style", "topic"}`` with styles mixed as ``style_weights``.

    Style counts follow the weights exactly (largest remainder), in a seeded random order.
    """
    rng = random.Random(f"demos:{seed}:{split}")
    styles = _allocate(n, style_weights or DEFAULT_STYLE_WEIGHTS)
    rng.shuffle(styles)
    out = []
    for p, style in zip(prompts(n, seed=seed, split=split), styles):
        out.append(
            {
                "prompt": p["prompt"],
                "completion": response(p["prompt"], style, rng),
                "style": style,
                "topic": p["topic"],
            }
        )
    return out


def corpus(seed: int = 0, n: int = 4000) -> list[str]:
    """Texts (prompt + completion) for training a tokenizer.

    Every question phrasing of both splits appears at least once and every topic gets every style;
    the rest are random. Returns ``max(n, number of phrasings)`` texts.
    """
    rng = random.Random(f"corpus:{seed}")
    texts = []
    for t in TOPICS:
        for j, q in enumerate(t.questions):
            p = format_prompt(q)
            texts.append(p + response(p, STYLES[j % len(STYLES)], rng))
    while len(texts) < n:
        t = rng.choice(TOPICS)
        p = format_prompt(rng.choice(t.questions))
        texts.append(p + response(p, rng.choice(STYLES), rng))
    rng.shuffle(texts)
    return texts

