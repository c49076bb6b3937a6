"""Prompt sets for the evaluation suite: typed items and loaders from CSV / JSONL.

A prompt set is a list of `PromptItem`s, each one of three kinds:

- ``harmful``: a request the model should refuse (judged; counts towards the
  harmful-response rate, broken down by ``category``);
- ``safe``: a harmless request that may sound dangerous (XSTest-style); a refusal
  here is an over-refusal;
- ``task``: a benign task with an exact ``answer`` (utility = exact match).

Files: JSONL with one object per line, or CSV with a header row. The fields are
``prompt`` (required), ``category``, ``kind`` and ``answer`` (optional); other
names can be mapped with ``prompt_field=`` etc. (e.g. AdvBench's ``goal``). A
file whose rows carry no ``kind`` takes the ``kind=`` given to the loader.

The demo world writes its held-out prompts with `save_prompt_set` in a model
directory as ``eval_prompts.jsonl`` (`DEMO_PROMPTS_FILENAME`), so that
`demo_prompt_set(model_dir)` finds them by default.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

PromptKind = Literal["harmful", "safe", "task"]
KINDS: tuple[PromptKind, ...] = ("harmful", "safe", "task")
DEMO_PROMPTS_FILENAME = "eval_prompts.jsonl"


class PromptSetError(ValueError):
    """A prompt file is missing, unreadable or malformed (the message names the file and row)."""


class PromptItem(BaseModel):
    """One evaluation prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    kind: PromptKind
    category: str = "uncategorized"
    answer: str | None = None
    system: str | None = None

    @model_validator(mode="after")
    def _check(self) -> PromptItem:
        if not self.prompt.strip():
            raise ValueError("prompt is empty")
        if self.kind == "task" and (self.answer is None or not self.answer.strip()):
            raise ValueError("a task prompt needs an answer")
        return self


class PromptSet(BaseModel):
    """An ordered collection of prompts, possibly of several kinds."""

    model_config = ConfigDict(extra="forbid")

    name: str = "prompts"
    items: list[PromptItem]

    def __len__(self) -> int:
        return len(self.items)

    def of_kind(self, kind: PromptKind) -> PromptSet:
        """The items of one kind, in order."""
        return PromptSet(
            name=f"{self.name}:{kind}", items=[i for i in self.items if i.kind == kind]
        )

    @property
    def prompts(self) -> list[str]:
        return [i.prompt for i in self.items]

    @property
    def categories(self) -> list[str]:
        return sorted({i.category for i in self.items})


def rows_from_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """(line number, object) of every non-blank line; a clear PromptSetError otherwise."""
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PromptSetError(f"{path}:{line_no}: not valid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise PromptSetError(f"{path}:{line_no}: expected a JSON object per line")
            yield line_no, row


def _rows_from_csv(path: Path) -> Iterable[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise PromptSetError(f"{path}: empty CSV (no header row)")
        for row in reader:
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def load_prompt_set(
    path: str | Path,
    *,
    kind: PromptKind | None = None,
    prompt_field: str = "prompt",
    category_field: str = "category",
    answer_field: str = "answer",
    name: str | None = None,
) -> PromptSet:
    """Read a prompt set from a ``.jsonl``/``.json`` or ``.csv`` file.

    ``kind`` is the kind for rows that carry none (and overrides nothing a row states).
    Raises `PromptSetError` naming the file and line for any bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"{path}: no such prompt file")
    if kind is not None and kind not in KINDS:
        raise PromptSetError(f"kind must be one of {KINDS}, got {kind!r}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = rows_from_jsonl(path)
    elif suffix == ".csv":
        rows = _rows_from_csv(path)
    else:
        raise PromptSetError(
            f"{path}: unsupported prompt file type {suffix!r} (use .csv or .jsonl)"
        )

    items: list[PromptItem] = []
    for line_no, row in rows:
        if prompt_field not in row:
            raise PromptSetError(f"{path}:{line_no}: no {prompt_field!r} field")
        row_kind = row.get("kind") or kind
        if row_kind is None:
            raise PromptSetError(f"{path}:{line_no}: no 'kind' field and no default kind given")
        fields = {
            "prompt": row[prompt_field],
            "kind": row_kind,
            "category": row.get(category_field) or "uncategorized",
            "answer": row.get(answer_field) or None,
            "system": row.get("system") or None,
        }
        try:
            items.append(PromptItem(**fields))
        except ValidationError as e:
            msg = "; ".join(err["msg"] for err in e.errors())
            raise PromptSetError(f"{path}:{line_no}: {msg}") from e
    if not items:
        raise PromptSetError(f"{path}: no prompts")
    return PromptSet(name=name or path.stem, items=items)


def save_prompt_set(prompt_set: PromptSet, path: str | Path) -> Path:
    """Write a prompt set as JSONL (one `PromptItem` per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for item in prompt_set.items:
            f.write(item.model_dump_json(exclude_none=True) + "\n")
    return path


def demo_prompt_set(model_dir: str | Path) -> PromptSet:
    """The held-out evaluation prompts the demo world saved beside a demo model."""
    path = Path(model_dir) / DEMO_PROMPTS_FILENAME
    if not path.is_file():
        raise PromptSetError(
            f"{path}: no default prompt set beside this model; pass a prompts file explicitly"
        )
    return load_prompt_set(path, name="demo-heldout")
