"""Built-in toy tasks: small procedural domains that make every RLHF stage runnable on a laptop CPU.

A task is a plain module or package. The only one so far is ``builtin:assistant``
(:mod:`rlhfkit.tasks.assistant`): everyday questions, responses in six styles, a rubric scorer that
plays the gold human judge and simulated annotators. ``BUILTIN_TASKS`` is the one registry: ``load_task``
maps a task name to its module, and ``builtin:NAME`` data sources (``rlhfkit.data.builtin``) go through it.

Left out: a plugin system or registry for third-party tasks; a task name that is not built in is an
error here, and callers that want their own data pass files instead.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BUILTIN_TASKS: dict[str, str] = {"builtin:assistant": "rlhfkit.tasks.assistant"}


def load_task(name: str) -> ModuleType:
    """Return the module that implements the built-in task ``name`` (e.g. ``"builtin:assistant"``)."""
    key = name if name.startswith("builtin:") else f"builtin:{name}"
    if key not in BUILTIN_TASKS:
        known = ", ".join(sorted(BUILTIN_TASKS))
        raise KeyError(f"unknown task {name!r}; built-in tasks: {known}")
    return importlib.import_module(BUILTIN_TASKS[key])


__all__ = ["BUILTIN_TASKS", "load_task"]
