"""Training-file checks shared by customers (before upload) and the service (on upload).

A training file is JSONL in chat format, one example per line:
``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}``.
Pure Python (no third-party imports), so the service imports this very module and
both sides report the same per-line errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROLES = ("system", "user", "assistant")
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest accepted file (256 MiB)."""
MAX_LINE_BYTES = 1024 * 1024
"""Largest accepted line (1 MiB): one example."""
MAX_EXAMPLES = 100_000
"""Most examples in one file."""
MIN_EXAMPLES = 1
"""Fewest examples in one file."""
MAX_ERRORS = 50
"""Errors kept in a report; counting goes on past it (`ValidationReport.num_errors`)."""


@dataclass(frozen=True)
class LineError:
    """One problem in a training file.

    `line` is 1-based (0 for whole-file problems such as the size); `field` is a
    path inside the line's JSON object such as ``messages[2].content`` (empty when
    the line as a whole is wrong); `code` is stable and machine-readable.
    """

    line: int
    field: str
    code: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        if self.field:
            where += f", {self.field}"
        return f"{where}: {self.message}"


@dataclass
class ValidationReport:
    """What `validate_training_file` found: examples counted and errors by line."""

    path: str
    num_lines: int = 0
    num_examples: int = 0
    num_bytes: int = 0
    errors: list[LineError] = field(default_factory=list)
    num_errors: int = 0

    @property
    def ok(self) -> bool:
        return self.num_errors == 0

    def add(self, line: int, field_: str, code: str, message: str) -> None:
        self.num_errors += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(LineError(line, field_, code, message))

    def summary(self) -> str:
        """One line for an error message: the first error and how many there are."""
        if self.ok:
            return f"{self.path}: {self.num_examples} examples, no errors"
        more = f" (and {self.num_errors - 1} more)" if self.num_errors > 1 else ""
        return f"{self.path}: {self.errors[0]}{more}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def validate_training_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_examples: int = MAX_EXAMPLES,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    """Check a JSONL chat training file line by line, without loading it whole.

    Raises `FileNotFoundError` if `path` does not exist; every problem with the
    content is reported in the returned `ValidationReport`, never raised.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training file not found: {p}")
    size = p.stat().st_size
    if size > max_bytes:
        report = ValidationReport(path=str(p), num_bytes=size)
        report.add(0, "", "file_too_large", f"file is {size} bytes; the limit is {max_bytes}")
        return report
    with p.open("rb") as fh:
        return validate_training_lines(
            fh, name=str(p), max_bytes=max_bytes, max_examples=max_examples,
            min_examples=min_examples,
        )


def validate_training_bytes(
    data: bytes,
    *,
    name: str = "<upload>",
    max_bytes: int = MAX_FILE_BYTES,
    max_examples: int = MAX_EXAMPLES,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    """Same checks as `validate_training_file`, on content already in memory."""
    return validate_training_lines(
        data.splitlines(keepends=True), name=name, max_bytes=max_bytes,
        max_examples=max_examples, min_examples=min_examples,
    )


def validate_training_lines(
    lines: Iterable[bytes],
    *,
    name: str,
    max_bytes: int = MAX_FILE_BYTES,
    max_examples: int = MAX_EXAMPLES,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    """Check raw JSONL lines (bytes, with or without line endings). Blank lines are skipped."""
    report = ValidationReport(path=name)
    for number, raw in enumerate(lines, start=1):
        report.num_lines = number
        report.num_bytes += len(raw)
        if report.num_bytes > max_bytes:
            report.add(0, "", "file_too_large", f"file exceeds the limit of {max_bytes} bytes")
            break
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is harmless
        if not raw.strip():
            continue
        if report.num_examples >= max_examples:
            report.add(number, "", "too_many_examples",
                       f"more than {max_examples} examples; split the file")
            break
        report.num_examples += 1
        if len(raw) > MAX_LINE_BYTES:
            report.add(number, "", "line_too_long",
                       f"line is {len(raw)} bytes; the limit is {MAX_LINE_BYTES}")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.add(number, "", "invalid_utf8", f"not valid UTF-8 at byte {exc.start}")
            continue
        for field_, code, message in check_example_text(text):
            report.add(number, field_, code, message)
    if report.num_examples < min_examples and report.num_errors == 0:
        report.add(0, "", "too_few_examples",
                   f"{report.num_examples} examples; at least {min_examples} required")
    return report


def check_example_text(text: str) -> list[tuple[str, str, str]]:
    """Problems in one line's text as (field, code, message); empty when it is valid."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return [("", "invalid_json", f"not valid JSON: {exc.msg} at column {exc.colno}")]
    except RecursionError:
        return [("", "invalid_json", "not valid JSON here: nested too deeply")]
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        return [("", "invalid_json", f"not valid JSON here: {exc}")]
    return check_example(obj)


def check_example(obj: object) -> list[tuple[str, str, str]]:
    """Problems in one decoded example as (field, code, message); empty when it is valid."""
    if not isinstance(obj, dict):
        return [("", "not_an_object", f"each line must be a JSON object, got {_kind(obj)}")]
    if "messages" not in obj:
        return [("messages", "missing_messages", "missing required key 'messages'")]
    messages = obj["messages"]
    if not isinstance(messages, list):
        return [("messages", "messages_not_list", f"must be a list, got {_kind(messages)}")]
    if not messages:
        return [("messages", "empty_messages", "must contain at least one message")]
    problems: list[tuple[str, str, str]] = []
    has_assistant = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append((where, "message_not_object",
                             f"each message must be an object, got {_kind(message)}"))
            continue
        role = message.get("role")
        if role is None:
            problems.append((f"{where}.role", "missing_role", "missing required key 'role'"))
        elif role not in ROLES:
            problems.append((f"{where}.role", "invalid_role",
                             f"role {role!r} is not one of {', '.join(ROLES)}"))
        elif role == "system" and i != 0:
            problems.append((f"{where}.role", "misplaced_system",
                             "a system message may only be the first message"))
        has_assistant = has_assistant or role == "assistant"
        if "content" not in message:
            problems.append((f"{where}.content", "missing_content",
                             "missing required key 'content'"))
            continue
        content = message["content"]
        if not isinstance(content, str):
            problems.append((f"{where}.content", "content_not_string",
                             f"must be a string, got {_kind(content)}"))
        elif not content.strip():
            problems.append((f"{where}.content", "empty_content", "must not be empty"))
    if not has_assistant:
        problems.append(("messages", "no_assistant_message",
                         "needs at least one message with role 'assistant' to learn from"))
    return problems


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            int: "number", float: "number"}.get(type(value), type(value).__name__)
