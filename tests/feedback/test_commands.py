"""The CLI end to end on the built-in task: campaign -> simulated annotators -> export -> preference file.

    pytest tests/feedback/test_commands.py
"""

import json
import random

import pytest

from rlhfkit.cli import main
from rlhfkit.data.records import load_records

assistant = pytest.importorskip("rlhfkit.tasks.assistant")


def samples_file(path, n_prompts=10, k=2, seed=0):
    """Responses in `rlhfkit sample`'s format, K styles per prompt, from the built-in task."""
    rng = random.Random(seed)
    rows = []
    for p in assistant.prompts(n_prompts, seed=seed, split="eval"):
        for index, style in enumerate(rng.sample(assistant.STYLES, k)):
            rows.append({"prompt": p["prompt"], "completion": assistant.response(p["prompt"], style, rng),
                         "model": "runs/sft", "index": index})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_campaign_annotate_export(tmp_path, capsys):
    db, data = str(tmp_path / "f.db"), samples_file(tmp_path / "samples.jsonl")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"prompt": "Question: is it safe?\nAnswer:", "chosen": " Yes, with care.",
                                "rejected": " GOLD rejected answer: do something unsafe."}) + "\n")
    assert main(["campaign", "--db", db, "--data", str(data), "--campaign", "demo", "--gold", str(gold),
                 "--annotators", "alice,bob"]) == 0
    out = capsys.readouterr().out
    assert "10 tasks (1 gold)" in out and "annotator alice: http://127.0.0.1:8000/login#token=" in out
    assert main(["annotate", "--db", db, "--campaign", "demo", "--annotators", "3", "--noise", "0.2"]) == 0
    assert "stored 33 judgments" in capsys.readouterr().out  # 10 tasks x 3 + the gold task x 3
    for method in ("majority", "dawid-skene", "none"):
        out_path = tmp_path / f"{method}.jsonl"
        assert main(["export", "--db", db, "--campaign", "demo", "--method", method, "--out", str(out_path),
                     "--rankings", str(tmp_path / "r.jsonl")]) == 0
        records = load_records(str(out_path), "preferences")
        assert len(records) >= 8 if method != "none" else len(records) == 30
        row = records.rows[0]
        assert set(row) >= {"prompt", "chosen", "rejected", "margin", "label_confidence", "annotator",
                            "rationale", "criteria"}
        assert 0.5 <= row["label_confidence"] <= 1.0 and set(row["criteria"]) <= set(assistant.CRITERIA)
        assert "GOLD rejected" not in out_path.read_text()  # gold tasks are for calibration, not training
    load_records(str(tmp_path / "r.jsonl"), "rankings")
    # the simulated panel mostly agrees with the gold rubric, so agreement is clearly above chance
    from rlhfkit.feedback.service import campaign_stats
    from rlhfkit.feedback.store import Store

    stats = campaign_stats(Store.open(db), "demo")
    assert stats["krippendorff_alpha"] > 0.3 and all(a["gold_accuracy"] is not None for a in stats["annotators"])


def test_kwise_campaign(tmp_path):
    db, data = str(tmp_path / "f.db"), samples_file(tmp_path / "s.jsonl", n_prompts=4, k=4)
    assert main(["campaign", "--db", db, "--data", str(data), "--campaign", "k4", "--k", "4", "--overlap", "2"]) == 0
    assert main(["annotate", "--db", db, "--campaign", "k4", "--annotators", "2"]) == 0
    assert main(["export", "--db", db, "--campaign", "k4", "--out", str(tmp_path / "p.jsonl"),
                 "--rankings", str(tmp_path / "r.jsonl")]) == 0
    assert len(load_records(str(tmp_path / "r.jsonl"), "rankings")) == 8
    assert len(load_records(str(tmp_path / "p.jsonl"), "preferences")) >= 12  # 4 prompts x 6 pairs, minus splits


def test_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "completion": "x"}\n{"prompt": "p"}\n')
    assert main(["campaign", "--db", str(tmp_path / "f.db"), "--data", str(bad)]) == 2
    assert f"{bad}:2: expected a 'completion'" in capsys.readouterr().err
    assert main(["campaign", "--db", str(tmp_path / "f.db")]) == 2
    assert "exactly one of --data" in capsys.readouterr().err
    assert main(["export", "--db", str(tmp_path / "f.db"), "--campaign", "nope"]) == 2
    assert "no campaign named 'nope'" in capsys.readouterr().err
