"""``builtin:assistant``: moved into a package; the code is split into modules in the next commit."""

from rlhfkit.tasks.assistant.content import *  # noqa: F403
from rlhfkit.tasks.assistant.content import __all__  # noqa: F401
