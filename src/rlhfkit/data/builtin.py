"""`builtin:NAME` data sources: records of every format generated from a built-in task.

    builtin:assistant                         the embedded default task (rlhfkit.tasks.assistant)
    builtin:assistant?noise=0.25&bias=length  preference labels from a noisy / biased simulated annotator
    builtin:assistant?n=500                   how many records to generate

Demonstrations mix the task's response styles as raw internet text would; preference and ranking
labels come from the task's simulated annotators (noise-free by default), so every stage can be
run and checked without any file.
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qsl

from rlhfkit.errors import DataError
from rlhfkit.tasks import BUILTIN_TASKS, load_task

DEFAULT_SIZES = {"demonstrations": 3000, "prompts": 200, "preferences": 2000, "rankings": 500}
OPTIONS = {"n": int, "noise": float, "bias": str, "k": int, "seed": int}


def parse_source(source: str) -> tuple[str, dict[str, Any]]:
    name, _, query = source.removeprefix("builtin:").partition("?")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in OPTIONS:
            raise DataError(f"unknown option {key!r} in {source!r}; known: {', '.join(OPTIONS)}")
        try:
            options[key] = OPTIONS[key](value)
        except ValueError:
            raise DataError(f"option {key}={value!r} in {source!r} is not a {OPTIONS[key].__name__}") from None
    return name, options


def builtin_records(source: str, kind: str, split: str = "train", n: int | None = None, seed: int = 0) -> list[dict]:
    name, options = parse_source(source)
    if f"builtin:{name}" not in BUILTIN_TASKS:
        available = ", ".join(sorted(BUILTIN_TASKS))
        raise DataError(f"unknown built-in task {name!r} in {source!r}; available: {available}")
    task = load_task(f"builtin:{name}")

    n = options.get("n", n or DEFAULT_SIZES[kind])
    seed = options.get("seed", seed) + (0 if split == "train" else 7919)
    if kind == "demonstrations":
        return [{"prompt": r["prompt"], "completion": r["completion"]}
                for r in task.demonstrations(n, seed=seed, split=split)]
    if kind == "prompts":
        return [{"prompt": r["prompt"]} for r in task.prompts(n, seed=seed, split=split)]
    rng = random.Random(seed)
    annotator = task.SimulatedAnnotator(
        name="sim-0", noise=options.get("noise", 0.0), bias=options.get("bias"), seed=seed)
    prompts = [r["prompt"] for r in task.prompts(n, seed=seed, split=split)]
    rows = []
    for prompt in prompts:
        if kind == "preferences":
            styles = rng.sample(task.STYLES, 2)
            a, b = (task.response(prompt, s, rng) for s in styles)
            judgment = annotator.compare(prompt, a, b)
            if judgment.choice is None:  # a tie teaches nothing
                continue
            chosen, rejected = (a, b) if judgment.choice == 0 else (b, a)
            side = {"a": "chosen" if judgment.choice == 0 else "rejected",
                    "b": "rejected" if judgment.choice == 0 else "chosen", "tie": "tie"}
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "annotator": annotator.name,
                         "rationale": judgment.rationale,
                         "criteria": {c: side.get(w, w) for c, w in judgment.criteria.items()}})
        elif kind == "rankings":
            k = options.get("k", 4)
            responses = [task.response(prompt, s, rng) for s in rng.sample(task.STYLES, k)]
            judgment = annotator.rank(prompt, responses)
            rows.append({"prompt": prompt, "responses": responses, "ranking": list(judgment.ranking)})
        else:
            raise DataError(f"built-in task {name!r} has no {kind!r} records")
    return rows
