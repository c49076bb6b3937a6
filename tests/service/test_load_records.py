"""The worker reads a training file line by line exactly as upload validated it."""

from __future__ import annotations

import json

from sdk.validation import validate_training_bytes
from service.pipeline.validate import load_records


def _line(content: str) -> bytes:
    record = {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "ok"}]}
    return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def test_unicode_line_separators_inside_a_string_stay_in_their_line() -> None:
    data = b"\xef\xbb\xbf" + _line("one\u2028two") + _line("three\u2029four\x85five\x0csix") + b"\r\n"
    report = validate_training_bytes(data)
    records = load_records(data)
    assert report.ok and report.num_examples == len(records) == 2
    assert records[0]["messages"][0]["content"] == "one\u2028two"
    assert records[1]["messages"][0]["content"] == "three\u2029four\x85five\x0csix"


def test_crlf_and_blank_lines_are_read_as_validation_counts_them() -> None:
    data = _line("a").replace(b"\n", b"\r\n") + b"\n   \n" + _line("b")
    assert len(load_records(data)) == validate_training_bytes(data).num_examples == 2
