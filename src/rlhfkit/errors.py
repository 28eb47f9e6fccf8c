"""Errors meant for people: what was wrong, where (file and line), and what to do.

The CLI prints any `RlhfkitError` as one line and exits with status 2; no traceback.
"""

from __future__ import annotations


class RlhfkitError(Exception):
    """Base class of errors caused by the user's input, config or environment."""


class ConfigError(RlhfkitError):
    """A setting is unknown, mistyped or out of range."""


class DataError(RlhfkitError):
    """A data file or record is malformed. `str()` is `path:line: message`."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line, self.message = path, line, message
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(where + message)
