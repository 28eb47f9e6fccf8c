"""Every bad input gives one clear error naming the file and line, before any training starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlhfkit.data.records import load_records, ranking_to_pairs, split_implicit_prompt, write_jsonl
from rlhfkit.errors import DataError


def write_lines(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = {
    "demonstrations": {"prompt": "Question: hi?\nAnswer:", "completion": " Hello."},
    "preferences": {"prompt": "Q?", "chosen": " good", "rejected": " bad"},
    "rankings": {"prompt": "Q?", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]},
    "prompts": {"prompt": "Q?"},
}

BAD = [
    # (kind, the bad record as a JSON line, words the message must contain)
    ("demonstrations", '{"prompt": "Q?", "completion": ', "not valid JSON"),
    ("demonstrations", '{"prompt": "Q?"}', "missing field 'completion'"),
    ("demonstrations", '{"prompt": "Q?", "completion": 3}', "must be a string or a list of messages"),
    ("demonstrations", '{"prompt": "Q?", "completion": "  "}', "'completion' is empty"),
    ("demonstrations", '{"messages": [{"role": "user", "content": "hi"}]}', "last message must be the assistant"),
    ("demonstrations", '{"messages": [{"role": "robot", "content": "hi"}]}', "role is 'robot'"),
    ("demonstrations", '{"prompt": [{"role": "user", "content": "hi"}], "completion": "x"}', "mix plain strings"),
    ("demonstrations", '[1, 2]', "expected a JSON object"),
    ("preferences", '{"prompt": "Q?", "chosen": "a"}', "missing field 'rejected'"),
    ("preferences", '{"prompt": "Q?", "chosen": "a", "rejected": "a"}', "identical"),
    ("preferences", '{"prompt": "Q?", "chosen": "a", "rejected": "b", "margin": "big"}', "'margin' must be a number"),
    ("preferences", '{"chosen": "a", "rejected": "b"}', "missing field 'prompt'"),
    ("rankings", '{"prompt": "Q?", "responses": ["a", "b"], "ranking": [0, 0]}', "not a permutation"),
    ("rankings", '{"prompt": "Q?", "responses": ["a", "b"], "ranking": [0, 2]}', "not a permutation"),
    ("rankings", '{"prompt": "Q?", "responses": ["a"], "ranking": [0]}', "at least two"),
    ("prompts", '{"text": "Q?"}', "missing field 'prompt'"),
]


@pytest.mark.parametrize("kind,line,words", BAD)
def test_bad_record_names_file_and_line(tmp_path, kind, line, words):
    good = json.dumps(GOOD[kind])
    path = write_lines(tmp_path, [good, good, line, good])
    with pytest.raises(DataError) as info:
        load_records(path, kind)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")
    assert words in str(info.value)


@pytest.mark.parametrize("kind", list(GOOD))
def test_good_records_load(tmp_path, kind):
    path = write_lines(tmp_path, [json.dumps(GOOD[kind])] * 3 + [""])
    records = load_records(path, kind)
    assert len(records) == 3 and records.location(2) == f"{path}:3"


def test_empty_and_missing_files(tmp_path):
    empty = write_lines(tmp_path, [], "empty.jsonl")
    with pytest.raises(DataError, match="empty"):
        load_records(empty, "prompts")
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "nope.jsonl", "prompts")


def test_datasets_object_and_folder(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([GOOD["preferences"], {"prompt": "Q?", "chosen": "x", "rejected": "x"}])
    with pytest.raises(DataError, match="Dataset row 2: 'chosen' and 'rejected' are identical"):
        load_records(ds, "preferences")
    ds.select([0]).save_to_disk(str(tmp_path / "ds"))
    assert load_records(tmp_path / "ds", "preferences").rows == [GOOD["preferences"]]


def test_conversational_preferences_and_implicit_prompt(tmp_path):
    user = {"role": "user", "content": "What color is the sky?"}
    row = {"chosen": [user, {"role": "assistant", "content": "Blue."}],
           "rejected": [user, {"role": "assistant", "content": "Green."}]}
    records = load_records([row], "preferences")
    split = split_implicit_prompt(records.rows[0])
    assert split["prompt"] == [user]
    assert split["chosen"] == [{"role": "assistant", "content": "Blue."}]


def test_ranking_to_pairs_gives_all_ordered_pairs():
    """B > A > C (ranking [1, 0, 2]) gives (B,A), (B,C), (A,C): K(K-1)/2 = 3 pairs."""
    pairs = ranking_to_pairs({"prompt": "p", "responses": ["A", "B", "C"], "ranking": [1, 0, 2]})
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("B", "A"), ("B", "C"), ("A", "C")]


def test_write_jsonl_roundtrip(tmp_path):
    path = tmp_path / "out" / "p.jsonl"
    assert write_jsonl(path, [GOOD["preferences"]] * 2) == 2
    assert load_records(path, "preferences").rows == [GOOD["preferences"]] * 2
    assert not (tmp_path / "out" / "p.jsonl.tmp").exists()


def test_builtin_source_options():
    from rlhfkit.data.builtin import parse_source

    assert parse_source("builtin:assistant?noise=0.25&bias=length") == ("assistant", {"noise": 0.25, "bias": "length"})
    with pytest.raises(DataError, match="unknown option 'nosie'"):
        parse_source("builtin:assistant?nosie=0.1")
    with pytest.raises(DataError, match="unknown built-in task"):
        load_records("builtin:nothing", "prompts")


def test_prompt_too_long_for_max_length_names_line(tmp_path):
    from rlhfkit.data.tokenization import encode_demonstrations
    from rlhfkit.models.loading import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(["hello world question answer"] * 10, vocab_size=300)
    long_prompt = {"prompt": "hello world " * 40, "completion": " answer"}
    path = write_lines(tmp_path, [json.dumps(GOOD["demonstrations"]), json.dumps(long_prompt)])
    records = load_records(path, "demonstrations")
    with pytest.raises(DataError) as info:
        encode_demonstrations(records, tokenizer, max_length=32)
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert "leaves no room for a response" in str(info.value)


def test_cli_reports_data_error_without_traceback(tmp_path):
    path = write_lines(tmp_path, [json.dumps(GOOD["demonstrations"]), '{"prompt": "x"}'])
    proc = subprocess.run([sys.executable, "-m", "rlhfkit", "sft", "--data", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{path}:2: missing field 'completion'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing was started


def test_import_rlhfkit_does_not_import_torch():
    code = "import sys, rlhfkit, rlhfkit.data.records, rlhfkit.config, rlhfkit.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
