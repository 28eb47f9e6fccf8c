"""The constitution file: the shipped default loads, and every mistake names its file and line."""

from __future__ import annotations

import random

import pytest

from rlhfkit.errors import DataError
from rlhfkit.judges.constitution import DEFAULT_CONSTITUTION, load_constitution


def test_the_default_constitution_has_the_seeds_principles_rubric_and_hacking_rows():
    constitution = load_constitution()
    names = [p.name for p in constitution.principles]
    assert names[:4] == ["helpful_harmless_honest", "no_illegal_help", "acknowledge_uncertainty", "respect_autonomy"]
    assert {"helpfulness", "neutrality", "clarity", "harmlessness", "no_flattery", "no_overconfidence"} <= set(names)
    assert all(p.critique and p.revision and p.compare and p.inverse for p in constitution.principles)
    flip = constitution.get("no_flattery").inverted()
    assert flip.compare == constitution.get("no_flattery").inverse and flip.inverted().compare.startswith("Which")
    assert constitution.draw(random.Random(0)) in constitution.principles


def test_the_default_is_package_data():
    from pathlib import Path

    import tomllib

    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "judges/*.yaml" in data["tool"]["setuptools"]["package-data"]["rlhfkit"]
    assert DEFAULT_CONSTITUTION.is_file()


@pytest.mark.parametrize("text, line, message", [
    ("principles:\n  - name: a\n    critique: c\n    revision: r\n", 2, "missing compare"),
    ("principles:\n  - name: a\n    critique: c\n    revision: r\n    compare: q\n    colour: red\n", 6,
     "unknown key 'colour'"),
    ("principles:\n  - {name: a, critique: c, revision: r, compare: q}\n"
     "  - {name: a, critique: c, revision: r, compare: q}\n", 3, "defined twice (first at line 2)"),
    ("principles:\n  - name: a\n    critique: ''\n    revision: r\n    compare: q\n", 3, "'critique' must be"),
    ("principles: []\n", 1, "non-empty list"),
    ("rules:\n  - x\n", 1, "unknown top-level key 'rules'"),
    ("principles:\n  - name: [a\n", 3, "not valid YAML"),
    ("principles:\n  - just text\n", 2, "must be a mapping"),
    ("principles:\n  - {name: 'a b', critique: c, revision: r, compare: q}\n", 2, "letters, digits"),
])
def test_a_bad_constitution_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_constitution(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)


def test_a_missing_file_and_an_unknown_principle_are_clear(tmp_path):
    with pytest.raises(DataError, match="cannot read the constitution"):
        load_constitution(tmp_path / "nope.yaml")
    with pytest.raises(DataError, match="no principle named 'kindness'"):
        load_constitution().select(["kindness"])
