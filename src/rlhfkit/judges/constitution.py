"""A constitution: the written principles AI feedback follows (`rlhfkit judge`, `rlhfkit critique`).

    constitution = load_constitution()                      # the default, shipped with rlhfkit
    constitution = load_constitution("my_principles.yaml")  # your own
    principle = constitution.draw(random.Random(0))         # one at random, as Anthropic's CAI does

The file is YAML, a mapping with one key, `principles`, a list of principles, each with `name`,
`critique` (ask a model what is wrong with a response), `revision` (ask it to rewrite the response),
`compare` (the question a judge answers about two or more responses) and an optional `inverse`
(the comparison turned around, which a judge that reads the principle must answer the other way).
The default (`constitution.yaml` beside this file) holds the seeds' four example principles, the
rubric's four criteria and one principle each against flattery and overconfident claims.

Every mistake is a `DataError` naming the file and line, raised before any judging starts.
This module imports neither torch nor anything of the built-in task.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlhfkit.errors import DataError

DEFAULT_CONSTITUTION = Path(__file__).with_name("constitution.yaml")
REQUIRED = ("name", "critique", "revision", "compare")
OPTIONAL = ("inverse",)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Principle:
    """One principle of a constitution (see the module docstring for each field)."""

    name: str
    critique: str
    revision: str
    compare: str
    inverse: str = ""

    def inverted(self) -> Principle:
        """The same principle asking the opposite question (`inverse`), for the principle-inversion check."""
        if not self.inverse:
            raise ValueError(f"principle {self.name!r} has no inverse question")
        return Principle(f"{self.name}:inverted", self.critique, self.revision, self.inverse, self.compare)


@dataclass(frozen=True)
class Constitution:
    principles: tuple[Principle, ...]
    source: str

    def get(self, name: str) -> Principle:
        for principle in self.principles:
            if principle.name == name:
                return principle
        known = ", ".join(p.name for p in self.principles)
        raise DataError(f"no principle named {name!r}; this constitution has: {known}", self.source)

    def draw(self, rng: random.Random) -> Principle:
        """One principle, uniformly at random."""
        return rng.choice(self.principles)

    def select(self, names: list[str]) -> Constitution:
        """Only the named principles (all of them when `names` is empty)."""
        if not names:
            return self
        return Constitution(tuple(self.get(n) for n in names), self.source)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _principle(node: yaml.Node, path: str, seen: dict[str, int]) -> Principle:
    if not isinstance(node, yaml.MappingNode):
        raise DataError("each principle must be a mapping with keys " + ", ".join(REQUIRED), path, _line(node))
    values: dict[str, str] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        if key not in REQUIRED + OPTIONAL:
            raise DataError(f"unknown key {key!r} in a principle; the keys are {', '.join(REQUIRED + OPTIONAL)}",
                            path, _line(key_node))
        if not isinstance(value_node, yaml.ScalarNode) or not str(value_node.value).strip():
            raise DataError(f"{key!r} must be non-empty text", path, _line(value_node))
        values[key] = " ".join(str(value_node.value).split())
    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise DataError(f"principle is missing {', '.join(missing)}", path, _line(node))
    name = values["name"]
    if not _NAME.match(name):
        raise DataError(f"principle name {name!r} must be 1-64 letters, digits, '_' or '-'", path, _line(node))
    if name in seen:
        raise DataError(f"principle {name!r} is defined twice (first at line {seen[name]})", path, _line(node))
    seen[name] = _line(node)
    return Principle(**values)


def load_constitution(path: str | Path | None = None) -> Constitution:
    """Read and check a constitution file (default: the one rlhfkit ships)."""
    path = Path(path) if path else DEFAULT_CONSTITUTION
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the constitution: {exc.strerror or exc}", where) from None
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"not valid YAML ({getattr(exc, 'problem', exc)})", where,
                        mark.line + 1 if mark else None) from None
    if not isinstance(root, yaml.MappingNode):
        raise DataError("a constitution is a mapping with one key, 'principles' (a list)", where,
                        _line(root) if root is not None else 1)
    principles_node = None
    for key_node, value_node in root.value:
        if key_node.value != "principles":
            raise DataError(f"unknown top-level key {key_node.value!r}; the only key is 'principles'", where,
                            _line(key_node))
        principles_node = value_node
    if not isinstance(principles_node, yaml.SequenceNode) or not principles_node.value:
        line = _line(principles_node) if principles_node is not None else _line(root)
        raise DataError("'principles' must be a non-empty list", where, line)
    seen: dict[str, int] = {}
    return Constitution(tuple(_principle(node, where, seen) for node in principles_node.value), where)
