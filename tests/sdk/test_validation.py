"""Training-file validation: every rule, named by line and field."""

from __future__ import annotations

import json

import pytest

from sdk.validation import (
    MAX_LINE_BYTES,
    validate_training_bytes,
    validate_training_file,
)

GOOD = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "2+2?"},
                     {"role": "assistant", "content": "4"}]}


def _line(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


@pytest.mark.parametrize(
    ("line", "field", "code"),
    [
        (b"{not json}\n", "", "invalid_json"),
        (b'{"messages": ' + b"[" * 1200 + b"]" * 1200 + b"}\n", "", "invalid_json"),  # too deep
        (b'{"messages": ' + b"1" * 4400 + b"}\n", "", "invalid_json"),  # int too long to convert
        (b"\xff\xfe{}\n", "", "invalid_utf8"),
        (_line([1, 2]), "", "not_an_object"),
        (_line({"prompt": "x"}), "messages", "missing_messages"),
        (_line({"messages": "hi"}), "messages", "messages_not_list"),
        (_line({"messages": []}), "messages", "empty_messages"),
        (_line({"messages": ["hi", {"role": "assistant", "content": "a"}]}),
         "messages[0]", "message_not_object"),
        (_line({"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]}),
         "messages[0].role", "missing_role"),
        (_line({"messages": [{"role": "tool", "content": "q"},
                             {"role": "assistant", "content": "a"}]}),
         "messages[0].role", "invalid_role"),
        (_line({"messages": [{"role": "user", "content": "q"},
                             {"role": "system", "content": "s"},
                             {"role": "assistant", "content": "a"}]}),
         "messages[1].role", "misplaced_system"),
        (_line({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}),
         "messages[0].content", "missing_content"),
        (_line({"messages": [{"role": "user", "content": 3},
                             {"role": "assistant", "content": "a"}]}),
         "messages[0].content", "content_not_string"),
        (_line({"messages": [{"role": "user", "content": "q"},
                             {"role": "assistant", "content": "  "}]}),
         "messages[1].content", "empty_content"),
        (_line({"messages": [{"role": "user", "content": "q"}]}),
         "messages", "no_assistant_message"),
    ],
)
def test_each_rule_names_line_field_and_code(tmp_path, line, field, code):
    path = tmp_path / "train.jsonl"
    path.write_bytes(_line(GOOD) + line + _line(GOOD))
    report = validate_training_file(path)
    assert not report.ok
    assert [(e.line, e.field, e.code) for e in report.errors] == [(2, field, code)]
    assert str(report.errors[0]).startswith(f"line 2{', ' + field if field else ''}: ")
    assert report.num_examples == 3


def test_valid_file_counts_examples_and_skips_blank_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _line(GOOD) + b"\n   \n" + _line(GOOD))
    report = validate_training_file(path)
    assert report.ok, report.errors
    assert (report.num_examples, report.num_lines) == (2, 4)
    assert report.to_dict()["ok"] is True


def test_several_errors_in_one_line_are_all_reported():
    report = validate_training_bytes(_line({"messages": [{"role": "bot", "content": ""}]}))
    assert [e.code for e in report.errors] == ["invalid_role", "empty_content",
                                               "no_assistant_message"]
    assert "and 2 more" in report.summary()


def test_limits(tmp_path):
    assert validate_training_bytes(b"").errors[0].code == "too_few_examples"
    assert validate_training_bytes(_line(GOOD) * 3, max_examples=2).errors[0].code == (
        "too_many_examples")
    big = _line({"messages": [{"role": "user", "content": "x" * MAX_LINE_BYTES},
                              {"role": "assistant", "content": "a"}]})
    assert validate_training_bytes(big).errors[0].code == "line_too_long"
    path = tmp_path / "big.jsonl"
    path.write_bytes(_line(GOOD) * 10)
    report = validate_training_file(path, max_bytes=100)
    assert [(e.line, e.code) for e in report.errors] == [(0, "file_too_large")]


def test_error_list_is_capped_but_counted():
    report = validate_training_bytes(b"nope\n" * 80)
    assert (len(report.errors), report.num_errors) == (50, 80)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        validate_training_file(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(("line", "phrase"), [
    (b'{"messages": ' + b"[" * 1200 + b"]" * 1200 + b"}\n", "nested too deeply"),
    (b'{"messages": ' + b"1" * 4400 + b"}\n", "4300 digits"),
])
def test_json_that_python_cannot_hold_is_a_named_error_not_a_crash(line, phrase):
    report = validate_training_bytes(_line(GOOD) + line)
    assert [(e.line, e.code) for e in report.errors] == [(2, "invalid_json")]
    assert phrase in report.errors[0].message
