import json

import pytest

from lock_registry.errors import LockFormatError
from lock_registry.pairs import format_pairs, load_pairs, pairs_fingerprint


def test_load_refusal_pairs_format(tmp_path, pairs):
    records = [
        {
            "question": p.question,
            "answer_matching_behavior": p.safe,
            "answer_not_matching_behavior": p.unsafe,
        }
        for p in pairs
    ]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(records))
    assert load_pairs(path) == pairs
    assert load_pairs(path, limit=3) == pairs[:3]
    assert pairs_fingerprint(load_pairs(path)) == pairs_fingerprint(pairs)
    assert pairs_fingerprint(pairs[:3]) != pairs_fingerprint(pairs)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"question": "q", "answer_matching_behavior": "a"}]', r"\[0\]: 'answer_not_matching"),
        ('[{"question": " ", "answer_matching_behavior": "a", "answer_not_matching_behavior": "b"}]',
         r"\[0\]: 'question'"),
    ],
)  # fmt: skip
def test_bad_pairs_files_are_named(tmp_path, content, message):
    path = tmp_path / "pairs.json"
    path.write_text(content)
    with pytest.raises(LockFormatError, match=message):
        load_pairs(path)
    with pytest.raises(LockFormatError, match="no such pairs file"):
        load_pairs(tmp_path / "missing.json")


def test_format_pairs_uses_the_chat_template_and_stays_inside_the_answer(tokenizer, pairs):
    texts, labels, groups = format_pairs(tokenizer, pairs[:2])
    assert labels == [1, 0, 1, 0] and groups == [0, 0, 1, 1]
    assert texts[0].startswith("<s><|user|> " + pairs[0].question)
    assert texts[0].endswith(pairs[0].safe) and texts[1].endswith(pairs[0].unsafe)
