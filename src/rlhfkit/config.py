"""Command configs: one dataclass per command, turned into `--flags` and read from YAML.

Each command's settings are a plain `@dataclass` whose fields carry a docstring on the line below
them (the cleanrl convention). `parse_config` builds an argparse parser from the dataclass — the
field docstrings become `--help` — and resolves values in this order, later wins:

    dataclass defaults  <  YAML file given by --config  <  flags on the command line

Field `batch_size` is spelled `--batch-size`; booleans get `--flag` / `--no-flag`. A YAML key that
is not a field, or a value of the wrong type, is an error that names the file and the key.

Leaves out on purpose: nested config inheritance, environment-variable overrides, reflection-based
object construction from YAML.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from rlhfkit.errors import ConfigError

C = TypeVar("C")


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under each field of a dataclass, keyed by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for `X`, `X | None`, `Optional[X]`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return str, True
    return annotation, False


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert a YAML or CLI value to the field's type."""
    inner, optional = _base_type(annotation)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and optional):
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required")
    origin = typing.get_origin(inner)
    if origin is typing.Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (list, tuple):
        (item_type,) = typing.get_args(inner)[:1] or (str,)
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        return [_convert(v, item_type, where) for v in items]
    if inner is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if inner in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = inner(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {'an integer' if inner is int else 'a number'}, got {value!r}") from None
        if inner is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if inner is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
        return str(value)
    if inner is dict or typing.get_origin(inner) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value at the top level")
    return data


def build_parser(cls: type, prog: str, description: str | None = None) -> argparse.ArgumentParser:
    docs = field_docs(cls)
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or (inspect.getdoc(cls) or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", metavar="YAML", help="YAML file of settings; flags given here override it")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        )
        inner, _ = _base_type(hints[f.name])
        help_text = docs.get(f.name, "")
        if inner is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=f"{help_text} (default: {default})")
        else:
            metavar = f.name.upper()
            if typing.get_origin(inner) is typing.Literal:
                metavar = "{" + ",".join(map(str, typing.get_args(inner))) + "}"
            parser.add_argument(flag, dest=f.name, default=argparse.SUPPRESS, metavar=metavar,
                                help=f"{help_text} (default: {default})")
    return parser


def parse_config(cls: type[C], argv: list[str] | None, prog: str) -> C:
    """Build a `cls` from defaults, an optional `--config` YAML file and command-line flags."""
    parser = build_parser(cls, prog)
    known, unknown = parser.parse_known_args(argv)
    if unknown:
        raise ConfigError(unknown_flag_message(cls, prog, unknown))
    args = vars(known)
    yaml_path = args.pop("config", None)
    values: dict[str, Any] = {}
    if yaml_path:
        values.update({k: (v, f"{yaml_path}: key {k!r}") for k, v in load_yaml(yaml_path).items()})
    values.update({k: (v, "--" + k.replace("_", "-")) for k, v in args.items()})
    return make_config(cls, values)


def unknown_flag_message(cls: type, prog: str, unknown: list[str]) -> str:
    """What to tell someone who gave flags `cls` has no setting for (a flag another command reads, a typo)."""
    flags = [a for a in unknown if a.startswith("--")] or unknown
    names = ["--" + f.name.replace("_", "-") for f in dataclasses.fields(cls)]
    hints = getattr(cls, "FLAG_HINTS", {})  # flags other commands spell differently: the setting meant here
    parts = []
    for flag in flags:
        name = flag.split("=")[0]
        close = [hints[name]] if name in hints else difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        parts.append(flag + (f" (did you mean {close[0]}?)" if close else ""))
    return (f"{prog} does not read {', '.join(parts)}; `{prog} --help` lists the settings it reads")


def make_config(cls: type[C], values: dict[str, Any]) -> C:
    """`cls(**values)` with type checks. Values may be `(value, where)` pairs for error messages."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, item in values.items():
        value, where = item if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str) else (item, key)
        norm = key.replace("-", "_")
        if norm not in names:
            close = difflib.get_close_matches(norm, sorted(names), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: {cls.__name__} has no setting {key!r}{hint}")
        kwargs[norm] = _convert(value, hints[norm], where)
    config = cls(**kwargs)
    check = getattr(config, "validate", None)
    if callable(check):
        check()
    return config


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
