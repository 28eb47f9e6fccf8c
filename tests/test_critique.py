"""`rlhfkit critique` on a tiny random chat model: the files it writes are the ones sft and dpo read."""

from __future__ import annotations

import json

from judge_helpers import random_llama_chat

from rlhfkit.cli import main
from rlhfkit.data.records import load_records
from rlhfkit.judges.constitution import load_constitution


def test_critique_writes_demonstrations_and_revision_over_original_pairs(tmp_path):
    model = random_llama_chat(tmp_path / "chat")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"How do I cook rice, take {i}?"}) + "\n" for i in range(5)))
    out = tmp_path / "cai"
    assert main(["critique", "--model", str(model), "--data", str(prompts), "--rounds", "2", "--out", str(out),
                 "--max-new-tokens", "8", "--principles", "harmlessness,no_flattery"]) == 0
    demos = load_records(str(out / "demonstrations.jsonl"), "demonstrations")
    assert len(demos) == 5
    names = {"harmlessness", "no_flattery"}
    assert all(len(r["principles"]) == 2 and set(r["principles"]) <= names for r in demos.rows)
    pairs = load_records(str(out / "preferences.jsonl"), "preferences")
    assert 1 <= len(pairs) <= 5
    for row in pairs.rows:
        assert row["chosen"] != row["rejected"] and row["rationale"].count("\n") == 1
        assert row["annotator"].startswith("critique:")
    assert load_constitution().get("harmlessness").critique  # the requests came from the constitution
