"""Reading and validating the data formats that connect rlhfkit's stages (no torch here).

Formats (the same columns as TRL's datasets, see ../shared/DESIGN.md):
    demonstrations  {"prompt", "completion"}  or  {"messages": [{"role", "content"}, ...]}
    preferences     {"prompt", "chosen", "rejected"} (+ optional "margin", "label_confidence", "annotator",
                    "rationale", "criteria")
    rankings        {"prompt", "responses": [...], "ranking": [best, ..., worst]}
    prompts         {"prompt"}
Text fields are either plain strings ("standard") or lists of chat messages ("conversational").

Sources: a `.jsonl` / `.json` file, a folder written by `datasets.Dataset.save_to_disk`, a
`datasets.Dataset` or list of dicts passed from Python, or `builtin:assistant` (the embedded task).

Every record is checked before any training starts; the first problem is raised as a `DataError`
naming the file and line (or the dataset row), never as a traceback from inside torch.
Token-length checks (a prompt leaving no room for a response) happen in `rlhfkit.data.tokenization`,
which needs the tokenizer, with the same file:line locations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlhfkit.data.builtin import builtin_records
from rlhfkit.errors import DataError

Kind = Literal["demonstrations", "preferences", "rankings", "prompts"]
ROLES = ("system", "user", "assistant", "tool")
BUILTIN_PREFIX = "builtin:"


@dataclass
class Records:
    """Validated rows plus where each came from, for error messages later on."""

    rows: list[dict[str, Any]]
    where: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def location(self, index: int) -> str:
        return self.where[index] if index < len(self.where) else f"{self.source}: row {index + 1}"

    def subset(self, indices: Iterable[int]) -> Records:
        indices = list(indices)
        return Records([self.rows[i] for i in indices], [self.location(i) for i in indices], self.source)


# ---------------------------------------------------------------------------------------------
# reading raw rows


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a broken line is an error naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", str(path))
    if path.is_dir():
        raise DataError("is a folder; expected a .jsonl file or a folder saved by datasets", str(path))
    out = []
    with path.open(encoding="utf-8") as fh:
        if path.suffix == ".json":
            text = fh.read()
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON: {exc.msg}", str(path), exc.lineno) from None
            if not isinstance(data, list):
                raise DataError("a .json file must hold a list of records; use .jsonl for one record per line", str(path))
            return [(i + 1, row) for i, row in enumerate(data)]
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON ({exc.msg} at column {exc.colno})", str(path), lineno) from None
            out.append((lineno, obj))
    if not out:
        raise DataError("the file is empty: expected one JSON record per line", str(path))
    return out


def _raw_rows(source: Any, kind: Kind, split: str, builtin_size: int | None, seed: int) -> tuple[list, list[str], str]:
    if isinstance(source, (str, Path)) and str(source).startswith(BUILTIN_PREFIX):
        rows = builtin_records(str(source), kind, split=split, n=builtin_size, seed=seed)
        return rows, [f"{source}[{split}] row {i + 1}" for i in range(len(rows))], str(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir() and any((path / f).exists() for f in ("state.json", "dataset_dict.json")):
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"has splits {list(ds)}, not {split!r}", str(path))
                ds = ds[split]
            rows = list(ds)
            return rows, [f"{path} row {i + 1}" for i in range(len(rows))], str(path)
        pairs = read_jsonl(path)
        return [r for _, r in pairs], [f"{path}:{n}" for n, _ in pairs], str(path)
    # a datasets.Dataset, or any iterable of dicts
    rows = list(source)
    name = type(source).__name__
    return rows, [f"{name} row {i + 1}" for i in range(len(rows))], name


def load_records(
    source: Any,
    kind: Kind,
    *,
    split: str = "train",
    builtin_size: int | None = None,
    seed: int = 0,
) -> Records:
    """Read and validate every record of `source` as `kind`; raise `DataError` at the first problem."""
    rows, where, name = _raw_rows(source, kind, split, builtin_size, seed)
    if not rows:
        raise DataError(f"no {kind} records found", name)
    check = VALIDATORS[kind]
    for row, loc in zip(rows, where):
        try:
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            check(row)
        except ValueError as exc:
            path, _, line = loc.rpartition(":")
            if path and line.isdigit():
                raise DataError(str(exc), path, int(line)) from None
            raise DataError(f"{loc}: {exc}") from None
    return Records(rows, where, name)


def _first_row(source: Any) -> dict[str, Any] | None:
    """The first record of a file, `datasets` folder or list, without reading the rest (None if unknown)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_file():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError:
                            return None  # the validator names the line
                        return row[0] if isinstance(row, list) and row else row if isinstance(row, dict) else None
            return None
        if path.is_dir():
            rows, _, _ = _raw_rows(path, "prompts", "train", None, 0)
            return rows[0] if rows else None
        return None
    for row in source:
        return row
    return None


def row_kind(row: dict[str, Any]) -> Kind:
    """The format a record is written in, by its fields."""
    if "responses" in row:
        return "rankings"
    if "chosen" in row:
        return "preferences"
    if "completion" in row or "messages" in row:
        return "demonstrations"
    return "prompts"


def detect_kind(source: Any, candidates: tuple[Kind, ...]) -> Kind:
    """Which of `candidates` the records of `source` are, by the fields of its first record; the first
    candidate when it cannot tell (the validator then names what is wrong). Built-in sources hold
    rankings when they ask for K responses (`builtin:assistant?k=4`)."""
    if isinstance(source, str) and source.startswith(BUILTIN_PREFIX):
        kind: Kind = "rankings" if "k=" in source else "preferences"
        return kind if kind in candidates else candidates[0]
    row = _first_row(source)
    kind = row_kind(row) if isinstance(row, dict) else candidates[0]
    return kind if kind in candidates else candidates[0]


def train_and_held_out(data: Any, eval_data: Any, kind: Kind | tuple[Kind, ...], *, builtin_size: int,
                       eval_fraction: float, seed: int) -> tuple[Records, Records | None]:
    """Training records and held-out records, both validated before anything else happens.

    Held out, in this order: --eval-data if given; the built-in task's eval split (5% of
    `builtin_size`, at least 50); else a seeded `eval_fraction` of `data` (none below 20 records or
    with a fraction of 0). `kind` may be a tuple of accepted kinds, told apart by `detect_kind`.
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    train = load_records(data, detect_kind(data, kinds), split="train", builtin_size=builtin_size, seed=seed)
    if eval_data:
        return train, load_records(eval_data, detect_kind(eval_data, kinds), split="eval", seed=seed)
    if isinstance(data, str) and data.startswith(BUILTIN_PREFIX):
        return train, load_records(data, detect_kind(data, kinds), split="eval", builtin_size=max(50, builtin_size // 20),
                                   seed=seed)
    if eval_fraction <= 0 or len(train) < 20:
        return train, None
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(len(train) * eval_fraction))
    return train.subset(sorted(order[n_eval:])), train.subset(sorted(order[:n_eval]))


# ---------------------------------------------------------------------------------------------
# validation of one record: raise ValueError with a message for people


def _check_messages(value: Any, name: str) -> None:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name!r} must be a non-empty list of messages")
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise ValueError(f"{name}[{i}] must be an object with 'role' and 'content'")
        if msg["role"] not in ROLES:
            raise ValueError(f"{name}[{i}].role is {msg['role']!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(msg["content"], str):
            raise ValueError(f"{name}[{i}].content must be a string, got {type(msg['content']).__name__}")


def _check_text(row: dict, name: str, allow_empty: bool = False) -> str:
    """Check a text field; return 'standard' or 'conversational'."""
    if name not in row:
        raise ValueError(f"missing field {name!r} (fields present: {', '.join(sorted(row)) or 'none'})")
    value = row[name]
    if isinstance(value, str):
        if not allow_empty and not value.strip():
            raise ValueError(f"field {name!r} is empty")
        return "standard"
    if isinstance(value, list):
        _check_messages(value, name)
        return "conversational"
    raise ValueError(f"field {name!r} must be a string or a list of messages, got {type(value).__name__}")


def _check_same_format(row: dict, names: tuple[str, ...], formats: list[str]) -> None:
    if len(set(formats)) > 1:
        pairs = ", ".join(f"{n}: {f}" for n, f in zip(names, formats))
        raise ValueError(f"fields mix plain strings and message lists ({pairs}); use one format per record")


def check_demonstration(row: dict) -> None:
    if "messages" in row:
        _check_messages(row["messages"], "messages")
        if row["messages"][-1]["role"] != "assistant":
            raise ValueError("the last message must be the assistant's (the completion to learn)")
        return
    formats = [_check_text(row, "prompt", allow_empty=True), _check_text(row, "completion")]
    _check_same_format(row, ("prompt", "completion"), formats)


def check_preference(row: dict) -> None:
    names = ("prompt", "chosen", "rejected") if "prompt" in row else ("chosen", "rejected")
    formats = [_check_text(row, n, allow_empty=(n == "prompt")) for n in names]
    _check_same_format(row, names, formats)
    if "prompt" not in row and formats[0] == "standard":
        raise ValueError("missing field 'prompt' (only conversational records may leave the prompt implicit)")
    if row["chosen"] == row["rejected"]:
        raise ValueError("'chosen' and 'rejected' are identical; such a pair teaches nothing")
    margin = row.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise ValueError(f"'margin' must be a number, got {margin!r}")
    confidence = row.get("label_confidence")
    if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))
                                   or not 0.5 <= confidence <= 1):
        raise ValueError(f"'label_confidence' must be a probability in [0.5, 1] (P(chosen is better)), got {confidence!r}")
    for name in ("annotator", "rationale"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise ValueError(f"{name!r} must be a string, got {type(row[name]).__name__}")
    if row.get("criteria") is not None and not isinstance(row["criteria"], dict):
        raise ValueError("'criteria' must be an object mapping criterion to choice")


def check_ranking(row: dict) -> None:
    _check_text(row, "prompt", allow_empty=True)
    responses = row.get("responses")
    if not isinstance(responses, list) or len(responses) < 2:
        raise ValueError("'responses' must be a list of at least two responses")
    for i, response in enumerate(responses):
        if not isinstance(response, (str, list)) or (isinstance(response, str) and not response.strip()):
            raise ValueError(f"responses[{i}] must be a non-empty string or a list of messages")
    ranking = row.get("ranking")
    if not isinstance(ranking, list) or any(isinstance(r, bool) or not isinstance(r, int) for r in ranking):
        raise ValueError("'ranking' must be a list of response indices, best first")
    if sorted(ranking) != list(range(len(responses))):
        raise ValueError(
            f"'ranking' {ranking} is not a permutation of 0..{len(responses) - 1} "
            f"(each response index exactly once, best first)"
        )


def check_prompt(row: dict) -> None:
    _check_text(row, "prompt")


VALIDATORS = {
    "demonstrations": check_demonstration,
    "preferences": check_preference,
    "rankings": check_ranking,
    "prompts": check_prompt,
}


# ---------------------------------------------------------------------------------------------
# conversions between formats


def split_implicit_prompt(row: dict) -> dict:
    """TRL allows conversational pairs with the prompt left implicit: the shared message prefix."""
    if "prompt" in row:
        return row
    chosen, rejected = row["chosen"], row["rejected"]
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    return {**row, "prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]}


def ranking_to_pairs(row: dict) -> list[dict]:
    """All (better, worse) pairs of a K-wise ranking: K·(K−1)/2 of them (InstructGPT)."""
    order = row["ranking"]
    pairs = []
    for i, better in enumerate(order):
        for worse in order[i + 1:]:
            pairs.append({"prompt": row["prompt"], "chosen": row["responses"][better],
                          "rejected": row["responses"][worse]})
    return pairs


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count
