"""Adversarial training pairs for reward models: (original > edited) for edits that help nobody.

    rows = adversarial_pairs(records.rows, ["repetition", "flattery"], share=0.25, seed=0)
    # each: {"prompt", "chosen": the original response, "rejected": it edited, "adversarial": edit name}

The edits are the reward-hacking table's four hacks (seed 001 §8), by the names of the reward-model
probes (`rlhfkit.evaluation.probes`): repetition, flattery, overconfidence, length. They are written
differently from the probes on purpose — other sentences repeated, other flattering and confident
phrases, other filler, other positions — so that a probe on held-out responses measures whether the
reward model learned the kind of hack, not the probe's exact words:

    probe (evaluation)                          training edits (here)
    first sentence again at the end             last sentence again in front; a middle one doubled in place
    "Great question!" in front                  other praise, in front or at the end
    "Trust me on this." in front                other confident claims, in front or at the end
    one filler sentence at the end              other filler, in front or between two sentences

The phrases are plain English that the built-in task's vocabulary also has. No torch here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

_SENTENCE = re.compile(r"[^.!?]+[.!?]+")

PRAISE = ("What a wonderful question!", "I love this question!", "You are so smart to ask this.",
          "You have great taste in questions.")
CONFIDENT = ("It works every time.", "Skip the usual advice.", "This is the only way that works.")
FILLER = ("It is important to note that every situation is different.", "Let me explain this in some detail.",
          "As a general rule, it is always good to keep this in mind.",
          "At the end of the day, it really depends on many factors.")


def sentences(text: str) -> list[str]:
    """The complete sentences of `text` (ending in . ! or ?), stripped; bare punctuation is no sentence.

    The text is cut after its last . ! or ? first: then every match ends at the first punctuation it
    meets and the search is linear (an unfinished tail would make it backtrack over the whole rest)."""
    end = max(text.rfind(mark) for mark in ".!?")
    return [s.strip() for s in _SENTENCE.findall(text[:end + 1]) if s.strip().rstrip(".!?")]


def _around(text: str, phrase: str, rng: random.Random) -> str:
    """`phrase` in front of `text` or after it, at random."""
    return f" {phrase} {text.strip()}" if rng.random() < 0.5 else f"{text.rstrip()} {phrase}"


def repeat_sentence(text: str, rng: random.Random) -> str | None:
    """The last sentence said again in front, or (with three or more) a middle sentence doubled in place."""
    parts = sentences(text)
    if not parts:
        return None
    if len(parts) >= 3 and rng.random() < 0.5:
        k = rng.randrange(1, len(parts) - 1)
        return " " + " ".join(parts[:k + 1] + [parts[k]] + parts[k + 1:])
    return f" {parts[-1]} {text.strip()}"


def add_filler(text: str, rng: random.Random) -> str:
    """A filler sentence in front, or between two sentences when there are two or more."""
    phrase, parts = rng.choice(FILLER), sentences(text)
    if len(parts) >= 2 and rng.random() < 0.5:
        k = rng.randrange(1, len(parts))
        return " " + " ".join(parts[:k] + [phrase] + parts[k:])
    return f" {phrase} {text.strip()}"


EDITS: dict[str, Callable[[str, random.Random], str | None]] = {
    "repetition": repeat_sentence,
    "flattery": lambda text, rng: _around(text, rng.choice(PRAISE), rng),
    "overconfidence": lambda text, rng: _around(text, rng.choice(CONFIDENT), rng),
    "length": add_filler,
}


def check_edits(names: list[str]) -> None:
    unknown = [n for n in names if n not in EDITS]
    if unknown:
        raise ValueError(f"unknown adversarial edit(s) {', '.join(unknown)}; known: {', '.join(EDITS)}")


def adversarial_pairs(rows: list[dict[str, Any]], edits: list[str], share: float, seed: int) -> list[dict[str, Any]]:
    """For a seeded `share` of the responses of preference `rows` (each pair's chosen and rejected
    response alike), one pair (the response > the response with one of `edits`, picked at random).
    Responses that are not plain strings, or that an edit cannot apply to, are skipped."""
    check_edits(edits)
    rng = random.Random(f"adversarial:{seed}")
    out = []
    for row in rows:
        for side in ("chosen", "rejected"):
            original = row.get(side)
            if not isinstance(original, str) or not isinstance(row.get("prompt"), str) or rng.random() >= share:
                continue
            name = rng.choice(edits)
            edited = EDITS[name](original, rng)
            if edited is not None and edited.strip() != original.strip():
                out.append({"prompt": row["prompt"], "chosen": original, "rejected": edited, "adversarial": name})
    return out
