"""The package's shape: imports point one way (the layers of rlhfkit/__init__.py), no function is
longer than 100 lines, the torch-free parts stay torch-free, and each command accepts only what it reads."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlhfkit.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src" / "rlhfkit"

# what each part of the package may import at module level (besides itself and third-party code)
BELOW = {
    "base": set(),  # rlhfkit, rlhfkit.errors, rlhfkit.config
    "tasks": {"base"},
    "math": {"base"},
    "data": {"base", "tasks", "math"},
    "feedback": {"base", "tasks", "data", "math"},  # math: only its torch-free modules (selection), see TORCH_FREE
    "models": {"base", "tasks", "math", "data"},
    "judges": {"base", "tasks", "math", "data", "models", "trainers", "evaluation"},
    "trainers": {"base", "tasks", "math", "data", "models", "judges", "evaluation"},
    "evaluation": {"base", "tasks", "math", "data", "models", "judges", "trainers"},
    "pipelines": {"base", "tasks", "math", "data", "models", "judges", "trainers", "evaluation", "feedback"},
    "control": {"base", "math", "feedback", "pipelines"},  # gymnasium agents; feeds the store, reuses report helpers
    "cli": {"base"},  # every command module is imported by name when it is called (importlib)
}

# imports inside a function, of rlhfkit or torch: only optional heavy parts, each with its reason
LAZY = {
    ("rlhfkit.feedback.commands", "rlhfkit.evaluation.responses"): "campaign --model samples a checkpoint: torch "
                                                                   "only when asked",
    ("rlhfkit.feedback.commands", "rlhfkit.feedback.app"): "fastapi and the templates only for serve",
    ("rlhfkit.pipelines.loop", "rlhfkit.feedback.app"): "fastapi and the templates only for loop --collector web",
    ("rlhfkit.feedback.commands", "rlhfkit.models.reward_model"): "campaign --select scores the pool with a "
                                                                  "reward model: torch only when asked",
    ("rlhfkit.feedback.commands", "rlhfkit.feedback.simulate"): "httpx only for annotate",
    ("rlhfkit.feedback.commands", "rlhfkit.tasks.assistant"): "the simulated panel only for annotate",
    ("rlhfkit.judges.ai", "rlhfkit.judges.http"): "an AI judge behind a URL: httpx only when asked",
    ("rlhfkit.judges.ai", "rlhfkit.judges.local"): "an AI judge on a local model: torch only when asked",
    ("rlhfkit.control.loop", "rlhfkit.control.annotate"): "the feedback store and frame rendering only for "
                                                          "control --annotator web",
}

# modules that must import without torch (the feedback app runs on machines with no torch)
TORCH_FREE = ["rlhfkit", "rlhfkit.cli", "rlhfkit.config", "rlhfkit.errors", "rlhfkit.math.stats", "rlhfkit.math.selection",
              "rlhfkit.data.records", "rlhfkit.data.builtin", "rlhfkit.tasks", "rlhfkit.tasks.assistant",
              "rlhfkit.feedback", "rlhfkit.feedback.commands", "rlhfkit.feedback.service",
              "rlhfkit.feedback.export", "rlhfkit.feedback.app", "rlhfkit.judges.constitution", "rlhfkit.judges.ai",
              "rlhfkit.judges.http"]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "config"):
        return "base"
    return "cli" if parts[1] in ("cli", "__main__") else parts[1]


def sources() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py")) if "migrations" not in p.parts]


def imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def test_module_level_imports_point_down_the_layers():
    wrong = []
    for path in sources():
        name = module_name(path)
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for target in imports(ast.Module(body=top, type_ignores=[])):
            if not target.startswith("rlhfkit"):
                continue
            source_part, target_part = part_of(name), part_of(target)
            if target_part != source_part and target_part not in BELOW[source_part]:
                wrong.append(f"{name} ({source_part}) imports {target} ({target_part})")
    assert not wrong, "\n".join(wrong)


def test_imports_inside_functions_are_the_listed_optional_parts():
    unlisted = []
    for path in sources():
        name = module_name(path)
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for target in imports(fn):
                    if target.split(".")[0] in ("rlhfkit", "torch") and (name, target) not in LAZY:
                        unlisted.append(f"{name}.{fn.name} imports {target}")
    assert not unlisted, "\n".join(unlisted)


def test_the_layer_test_catches_an_upward_import(tmp_path):
    """The rule itself: math importing a trainer is refused, a trainer importing math is not."""
    assert "trainers" not in BELOW["math"] and "math" in BELOW["trainers"]
    assert part_of("rlhfkit.trainers.ppo") == "trainers" and part_of("rlhfkit.config") == "base"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_free_modules_import_no_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import {module} pulls in {out.stdout.strip()}"


def test_no_function_is_longer_than_100_lines():
    long = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 100:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)


def command_configs():
    for name, (module_name_, config_name, _, _) in COMMANDS.items():
        module = importlib.import_module(module_name_)
        yield name, module, getattr(module, config_name)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_setting_of_a_command_is_read(name):
    """A flag that does nothing is a bug: each field of a command's config is read (`.field`) by the
    command's module, or, for the settings every trainer shares, by the shared loop."""
    module_name_, config_name, _, _ = COMMANDS[name]
    module = importlib.import_module(module_name_)
    cls = getattr(module, config_name)
    text = Path(module.__file__).read_text()
    if any(base.__name__ == "TrainConfig" for base in cls.__mro__):
        text += (SRC / "trainers" / "loop.py").read_text()
    unread = [f.name for f in dataclasses.fields(cls) if not re.search(rf"\.{f.name}\b", text)]
    assert not unread, f"rlhfkit {name} accepts settings it never reads: {unread}"


@pytest.mark.parametrize("flag", ["--epochs", "--grad-accum", "--eval-data", "--eval-fraction", "--eval-every",
                                  "--batch-size"])
def test_ppo_refuses_flags_it_does_not_read(flag, capsys):
    from rlhfkit.cli import main

    assert main(["ppo", flag, "3"]) == 2
    err = capsys.readouterr().err
    assert f"rlhfkit ppo does not read {flag}" in err and "--help" in err
    hint = {"--epochs": "--ppo-epochs", "--batch-size": "--minibatch-size"}.get(flag)
    if hint:
        assert f"did you mean {hint}?" in err


def test_ppo_refuses_a_yaml_key_it_does_not_read(tmp_path):
    from rlhfkit.cli import main

    config = tmp_path / "ppo.yaml"
    config.write_text("epochs: 3\n")
    assert main(["ppo", "--config", str(config)]) == 2


# the AI judges see what a person sees: none of them may reach the built-in task's gold scorer
AI_JUDGE_MODULES = ["rlhfkit.judges.ai", "rlhfkit.judges.constitution", "rlhfkit.judges.local", "rlhfkit.judges.http",
                    "rlhfkit.judges.embedded"]
GOLD = ("rlhfkit.tasks.assistant.rubric", "rlhfkit.judges.reward_spec")
GOLD_NAMES = {"gold_reward", "score", "features", "RubricScore", "assistant", "rubric"}


def test_ai_judges_import_nothing_of_the_gold_scorer():
    """Every import (module level or inside a function) of the AI-judge modules: never the rubric module,
    never the reward specs (whose `gold` is the rubric), never the names the task package re-exports from
    the rubric, nor the task package itself (`from rlhfkit.tasks import assistant` would hand over gold_reward)."""
    found = []
    for module in AI_JUDGE_MODULES:
        path = SRC.joinpath(*module.split(".")[1:]).with_suffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {a.name for a in node.names}
                if node.module.startswith(GOLD) or (node.module in ("rlhfkit.tasks", "rlhfkit.tasks.assistant")
                                                   and names & GOLD_NAMES):
                    found.append(f"{module} imports {names} from {node.module}")
            elif isinstance(node, ast.Import):
                found += [f"{module} imports {a.name}" for a in node.names
                          if a.name.startswith(GOLD) or a.name in ("rlhfkit.tasks.assistant",)]
    assert not found, "\n".join(found)


def test_the_gold_scorer_check_catches_a_gold_import():
    tree = ast.parse("from rlhfkit.tasks.assistant import gold_reward\nfrom rlhfkit.tasks import assistant\n")
    hits = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
            and ({a.name for a in n.names} & GOLD_NAMES)]
    assert len(hits) == 2
