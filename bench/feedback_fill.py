"""Filling a feedback campaign with simulated annotators: `rlhfkit annotate` on the quickstart-sized workload.

    .venv/bin/python bench/feedback_fill.py [--prompts 600] [--responses 2] [--overlap 3] [--only fill|loop]

Builds a samples file in `rlhfkit sample`'s format from the built-in task's training prompts, as the
quickstart samples them (600 prompts × 2 responses in random styles; the prompts repeat phrasings,
so they are 197 distinct prompts with about 6 responses each: 3,902 pairwise tasks, 11,706 judgments
with overlap 3), creates the campaign with `run_campaign` in a fresh SQLite file, then times:
  fill  `run_annotate` (the path `rlhfkit annotate` and the quickstart take: `fill_campaign`)
  loop  the same panel through `service.next_task` + `service.submit` one judgment at a time (the web
        app's path, and what `fill_campaign` did before batching) in its own fresh store
and prints wall and process CPU seconds (SQLite runs in-process; on a busy machine both grow, so
compare runs made back to back), judgments/s, SQL statements per judgment (counted on every engine
with a `before_cursor_execute` hook), and the loop/fill ratio. The simulated annotators' own judging
(~0.1 ms a judgment) is timed on both sides. Left out: campaign creation and export, PostgreSQL.
Run it with PYTHONPATH pointing at an older checkout's src/ to time that version the same way.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

statements = 0


@event.listens_for(Engine, "before_cursor_execute")
def _count(*_args) -> None:
    global statements
    statements += 1


def samples_file(path: Path, n_prompts: int, n_responses: int, seed: int = 0) -> Path:
    from rlhfkit.tasks import assistant

    rng = random.Random(seed)
    rows = []
    for p in assistant.prompts(n_prompts, seed=seed, split="train"):
        for index, style in enumerate(rng.sample(assistant.STYLES, n_responses)):
            rows.append({"prompt": p["prompt"], "completion": assistant.response(p["prompt"], style, rng),
                         "model": "runs/sft", "index": index})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def new_campaign(db: Path, data: Path, overlap: int) -> None:
    from rlhfkit.feedback.commands import CampaignConfig, run_campaign

    run_campaign(CampaignConfig(db=str(db), campaign="bench", data=str(data), overlap=overlap))


def time_fill(db: Path, annotators: int) -> tuple[int, float, float, int]:
    from rlhfkit.feedback.commands import AnnotateConfig, run_annotate

    global statements
    statements, t0, c0 = 0, time.perf_counter(), time.process_time()
    stored = run_annotate(AnnotateConfig(db=str(db), campaign="bench", annotators=annotators, noise=0.1))
    return stored, time.perf_counter() - t0, time.process_time() - c0, statements


def time_loop(db: Path, annotators: int) -> tuple[int, float, float, int]:
    from rlhfkit.feedback import service
    from rlhfkit.feedback.simulate import judgment_body, simulated_annotator_id
    from rlhfkit.feedback.store import Store
    from rlhfkit.tasks.assistant import panel

    global statements
    statements, t0, c0 = 0, time.perf_counter(), time.process_time()
    store = Store.open(str(db))
    active = [(simulated_annotator_id(store, a.name), a) for a in panel(annotators, noise=0.1)]
    stored = 0
    while active:
        still = []
        for annotator_id, annotator in active:
            task = service.next_task(store, annotator_id, "bench")
            if task is not None:
                service.submit(store, annotator_id, judgment_body(task, annotator))
                stored += 1
                still.append((annotator_id, annotator))
        active = still
    store.dispose()
    return stored, time.perf_counter() - t0, time.process_time() - c0, statements


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=600)
    parser.add_argument("--responses", type=int, default=2, help="responses per prompt")
    parser.add_argument("--overlap", type=int, default=3, help="annotators per task (and panel size)")
    parser.add_argument("--only", choices=["fill", "loop"], default=None)
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = samples_file(Path(tmp) / "samples.jsonl", args.prompts, args.responses)
        for name, timer in (("loop", time_loop), ("fill", time_fill)):
            if args.only not in (None, name):
                continue
            db = Path(tmp) / f"{name}.db"
            new_campaign(db, data, args.overlap)
            stored, seconds, cpu_seconds, n_sql = timer(db, args.overlap)
            results[name] = (seconds, cpu_seconds)
            print(f"{name}: {stored} judgments in {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU = "
                  f"{stored / seconds:.0f} judgments/s; {n_sql / stored:.2f} SQL statements per judgment", flush=True)
    if len(results) == 2:
        print(f"loop/fill: {results['loop'][0] / results['fill'][0]:.1f}x wall, "
              f"{results['loop'][1] / results['fill'][1]:.1f}x CPU")


if __name__ == "__main__":
    main()
