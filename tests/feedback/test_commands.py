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
    assert "no feedback store there" in capsys.readouterr().err and not (tmp_path / "f.db").exists()
    assert main(["campaign", "--db", str(tmp_path / "f.db"), "--data", str(bad.with_name("ok.jsonl"))]) == 2
    bad.with_name("ok.jsonl").write_text('{"prompt": "p", "responses": ["x", "y"]}\n')
    assert main(["campaign", "--db", str(tmp_path / "f.db"), "--data", str(bad.with_name("ok.jsonl"))]) == 0
    capsys.readouterr()
    assert main(["export", "--db", str(tmp_path / "f.db"), "--campaign", "nope"]) == 2
    assert "no campaign named 'nope'" in capsys.readouterr().err


def _inputs(tmp_path):
    """Files a careless user might pass: a good responses file, one in Latin-1, a text file as --db,
    an existing folder as --out, a response with a NUL byte."""
    (tmp_path / "ok.jsonl").write_text('{"prompt": "p", "completion": "a"}\n{"prompt": "p", "completion": "b"}\n')
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "p", "completion": "a"}\n{"prompt": "p", "completion": "caf\xe9"}\n')
    (tmp_path / "nul.jsonl").write_text('{"prompt": "p", "completion": "a"}\n{"prompt": "p", "completion": "b\\u0000"}\n')
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    (tmp_path / "notes.db").write_text("not a database, just some notes\n")
    (tmp_path / "folder").mkdir()


BAD_INPUT = [
    ("non-UTF-8 data", ["campaign", "--db", "f.db", "--data", "latin1.jsonl"], "latin1.jsonl:2: not UTF-8"),
    ("NUL in data", ["campaign", "--db", "f.db", "--data", "nul.jsonl"], "nul.jsonl:2: 'completion' contains a NUL"),
    ("missing guidelines", ["campaign", "--db", "f.db", "--data", "ok.jsonl", "--guidelines", "gone.txt"],
     "gone.txt: --guidelines: cannot read the file"),
    ("non-UTF-8 guidelines", ["campaign", "--db", "f.db", "--data", "ok.jsonl", "--guidelines", "latin1.txt"],
     "latin1.txt: --guidelines: not UTF-8"),
    ("missing gold", ["campaign", "--db", "f.db", "--data", "ok.jsonl", "--gold", "gone.jsonl"], "gone.jsonl: file not found"),
    ("non-UTF-8 rubric", ["campaign", "--db", "f.db", "--data", "ok.jsonl", "--rubric", "latin1.txt"],
     "latin1.txt: --rubric: not UTF-8"),
    ("--db not a database", ["campaign", "--db", "notes.db", "--data", "ok.jsonl"], "notes.db: file is not a database"),
    ("--db a folder", ["campaign", "--db", "folder", "--data", "ok.jsonl"], "--db 'folder' is a folder"),
    ("export from no store", ["export", "--db", "none.db", "--campaign", "c"], "--db 'none.db': no feedback store"),
    ("annotate no store", ["annotate", "--db", "none.db", "--campaign", "c"], "--db 'none.db': no feedback store"),
]


@pytest.mark.parametrize("argv, message", [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, argv, message):
    """Exit status 2, one line on stderr naming the file (and line), and no file made or left behind."""
    monkeypatch.chdir(tmp_path)
    _inputs(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_export_to_a_folder_leaves_no_temp_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _inputs(tmp_path)
    assert main(["campaign", "--db", "f.db", "--data", "ok.jsonl", "--campaign", "c"]) == 0
    assert main(["annotate", "--db", "f.db", "--campaign", "c"]) == 0
    capsys.readouterr()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["export", "--db", "f.db", "--campaign", "c", "--out", "folder"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "folder: --out is a folder" in err
    assert main(["export", "--db", "f.db", "--campaign", "c", "--out", "prefs.jsonl", "--rankings", "folder"]) == 2
    assert "folder: --rankings is a folder" in capsys.readouterr().err
    after = sorted(p.name for p in tmp_path.rglob("*"))
    assert [n for n in after if n not in before] == ["prefs.jsonl"] and not any(n.endswith(".tmp") for n in after)


def test_bad_input_on_postgresql_is_one_line(pg_url, tmp_path, capsys):
    """The same paths on a PostgreSQL store: a NUL in a response (which PostgreSQL would refuse) is
    caught at its line before anything is written; an unreachable server is one line, no password."""
    from rlhfkit.feedback import service
    from rlhfkit.feedback.store import Store

    _inputs(tmp_path)
    assert main(["campaign", "--db", pg_url, "--data", str(tmp_path / "nul.jsonl"), "--campaign", "c"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nul.jsonl:2: 'completion' contains a NUL" in err
    store = Store.open(pg_url)
    assert service.list_campaigns(store) == []
    store.dispose()
    assert main(["campaign", "--db", "postgresql://someone:secret@127.0.0.1:1/x",
                 "--data", str(tmp_path / "ok.jsonl")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot open the feedback store" in err and "secret" not in err
