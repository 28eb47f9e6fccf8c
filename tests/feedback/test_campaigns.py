"""Campaign creation: reading responses files (both forms), errors with file:line, task layout.

    pytest tests/feedback/test_campaigns.py
"""

import json

import pytest

from rlhfkit.errors import DataError
from rlhfkit.feedback.campaigns import read_gold, read_responses, task_slices


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_read_sample_output_and_responses_lists(tmp_path):
    path = write(tmp_path / "s.jsonl", [
        {"prompt": "p1", "completion": "x", "model": "runs/sft", "index": 0},
        {"prompt": "p2", "completion": "only one", "model": "runs/sft", "index": 0},
        {"prompt": "p1", "completion": "y", "model": "runs/sft", "index": 1},
        {"prompt": "p1", "completion": "x", "model": "runs/sft", "index": 2},  # duplicate text: dropped
        {"prompt": "p1", "completion": "  ", "model": "runs/sft", "index": 3},  # blank sample: left out
        {"prompt": "p3", "responses": ["a", "b", "c"], "models": ["m1", "m2", "m3"]},
    ])
    blank = []
    groups = read_responses(path, skipped=blank)
    assert blank == [f"{path}:5"]
    assert [g.prompt for g in groups] == ["p1", "p3"]  # p2 has a single response: nothing to compare
    assert groups[0].responses == [("x", "runs/sft", 0), ("y", "runs/sft", 1)]
    assert [m for _, m, _ in groups[1].responses] == ["m1", "m2", "m3"]


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "p"}', "expected a 'completion'"),
    ('{"prompt": "", "completion": "x"}', "'prompt' must be a non-empty string"),
    ('{"prompt": "p", "completion": 3}', "'completion' must be a non-empty string"),
    ('{"prompt": "p", "responses": ["a", " "]}', "'responses\\[1\\]' must be a non-empty string"),
    ('{"prompt": "p", "responses": "ab"}', "'responses' must be a non-empty list"),
    ('{"prompt": "p", "completion": "x", "index": "0"}', "'index' must be an integer"),
    ("[1, 2]", "expected a JSON object"),
    ('{"prompt": "p", "completion": ', "not valid JSON"),
])
def test_responses_errors_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "bad.jsonl", [{"prompt": "ok", "completion": "fine"}, line])
    with pytest.raises(DataError, match=message) as err:
        read_responses(path)
    assert err.value.path == str(path) and err.value.line == 2


def test_nothing_to_compare(tmp_path):
    path = write(tmp_path / "one.jsonl", [{"prompt": "p", "completion": "x"}])
    with pytest.raises(DataError, match="--num-samples 2"):
        read_responses(path)


def test_gold_file(tmp_path):
    path = write(tmp_path / "g.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"},
                                        {"prompt": "p", "chosen": "same", "rejected": "same"}])
    with pytest.raises(DataError, match="identical") as err:
        read_gold(path)
    assert err.value.line == 2


def test_task_slices():
    assert task_slices(3, 2) == [[0, 1], [0, 2], [1, 2]]
    assert task_slices(4, 4) == [[0, 1, 2, 3]]
    assert task_slices(5, 2)[-1] == [3, 4] and len(task_slices(5, 2)) == 10
    assert task_slices(7, 3) == [[0, 1, 2], [3, 4, 5, 6]]  # a lone last response joins the chunk before
    assert task_slices(8, 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_create_campaign_counts(store, make_campaign):
    counts = make_campaign(store, n_prompts=3, k=3, gold=[("gp", "good", "bad")])
    assert counts == {"prompts": 4, "responses": 9, "tasks": 3, "gold": 1}
    from rlhfkit.errors import ConfigError

    with pytest.raises(ConfigError, match="already exists"):
        make_campaign(store)
