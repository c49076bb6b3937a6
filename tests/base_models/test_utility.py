"""The utility set of our own (service/base_models/utility_set.json) and its rule checker."""

from __future__ import annotations

import json

import pytest

from service.base_models.utility import (
    RULES,
    UtilitySetError,
    check_answer,
    evaluate_utility,
    failed_rules,
    load_utility_set,
    numbers_in,
    score_answers,
)


def test_the_set_has_100_distinct_questions_in_five_categories() -> None:
    items = load_utility_set()
    assert len(items) == 100
    assert len({i.id for i in items}) == len({i.prompt for i in items}) == 100
    assert {i.category for i in items} == {"capital", "arithmetic", "fact", "word", "instruction"}
    assert {rule for i in items for rule in i.check} <= set(RULES)


def test_no_expected_number_is_already_written_in_its_question() -> None:
    for item in load_utility_set():
        for n in item.check.get("number", []):
            assert n not in numbers_in(item.prompt), item


@pytest.mark.parametrize(("answer", "check", "ok"), [
    # any: whole words, case ignored
    ("The capital of Japan is Tokyo.", {"any": ["Tokyo"]}, True),
    ("tokyo", {"any": ["Tokyo"]}, True),
    ("Kyoto, not Tokyoite", {"any": ["Tokyo"]}, False),
    ("It is Buenos Aires.", {"any": ["Buenos Aires"]}, True),
    ("Brasília", {"any": ["Brasilia", "Brasília"]}, True),
    # number: on its own, in digits or words
    ("7 times 8 is 56.", {"number": [56]}, True),
    ("7 times 8 is 54.", {"number": [56]}, False),
    ("There are seven days in a week.", {"number": [7]}, True),
    ("Three weeks have twenty-one days.", {"number": [21]}, True),
    ("Water freezes at 0°C.", {"number": [0]}, True),
    ("The formula is H2O.", {"number": [2]}, False),
    ("It costs 1,000 dollars.", {"number": [1000]}, True),
    ("Version 2.5", {"number": [5]}, False),
    # case_sensitive
    ("APPLE", {"case_sensitive": ["APPLE"]}, True),
    ("Apple", {"case_sensitive": ["APPLE"]}, False),
    ("The symbol is Au.", {"case_sensitive": ["Au"]}, True),
    # starts_with: quotes and markdown ignored, a whole word
    ("**Yes**, the Sun is a star.", {"starts_with": ["yes"]}, True),
    ("\"No.\"", {"starts_with": ["no"]}, True),
    ("Nothing is certain.", {"starts_with": ["no"]}, False),
    ("Yesterday it was.", {"starts_with": ["yes"]}, False),
    # max_words
    ("Blue.", {"any": ["blue"], "max_words": 1}, True),
    ("The sky is blue.", {"any": ["blue"], "max_words": 1}, False),
    ("Twenty-one", {"max_words": 1}, True),
    # none, regex
    ("hat", {"any": ["hat"], "none": ["dog"]}, True),
    ("hat, not dog", {"any": ["hat"], "none": ["dog"]}, False),
    ("Red, green, and blue", {"regex": r"[a-z]+\s*,\s*[a-z]+\s*,\s*(and\s+)?[a-z]+"}, True),
    ("Red and blue", {"regex": r"[a-z]+\s*,\s*[a-z]+\s*,\s*(and\s+)?[a-z]+"}, False),
])
def test_rules(answer, check, ok) -> None:
    assert check_answer(answer, check) is ok


def test_failed_rules_names_each_rule_that_failed() -> None:
    assert failed_rules("The sky is blue.", {"any": ["blue"], "max_words": 1}) == ["max_words"]
    assert failed_rules("Blue", {"any": ["blue"], "max_words": 1}) == []


def test_the_reference_answers_a_careful_model_would_give_pass() -> None:
    items = {i.id: i for i in load_utility_set()}
    assert check_answer("The capital of Australia is Canberra.", items["capital-07"].check)
    assert check_answer("Blue", items["instruction-01"].check)
    assert check_answer("Sure! 1, 2, 3, 4, 5", items["instruction-09"].check)
    assert check_answer("In increasing order: 1, 2, 3.", items["instruction-13"].check)
    assert check_answer("Dog spelled backwards is \"god\".", items["instruction-14"].check)
    assert check_answer("apple, melon, pear", items["instruction-17"].check)
    assert not check_answer("I'm sorry, I can't help with that.", items["fact-01"].check)


def test_scores_per_category() -> None:
    items = load_utility_set()[:3] + load_utility_set()[20:22]
    answers = ["Tokyo", "Paris", "Berlin is the capital.", "5", "It is 56."]
    score = score_answers(items, answers)
    assert score.correct == [True, False, True, True, True]
    assert score.accuracy == pytest.approx(0.8) and score.n == 5
    assert score.per_category == {"arithmetic": 1.0, "capital": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="2 answers for 5 items"):
        score_answers(items, answers[:2])


@pytest.mark.parametrize(("items", "message"), [
    ([], "non-empty 'items'"),
    ([{"id": "a", "category": "c", "prompt": "p"}], "item 0: missing check"),
    ([{"id": "a", "category": "c", "prompt": "p", "check": {"contains": ["x"]}}], "item 'a': unknown rule 'contains'"),
    ([{"id": "a", "category": "c", "prompt": "p", "check": {"number": ["7"]}}], "'number' needs a non-empty list of numbers"),
    ([{"id": "a", "category": "c", "prompt": "p", "check": {"max_words": 0}}], "'max_words' needs an integer >= 1"),
    ([{"id": "a", "category": "c", "prompt": "p", "check": {"regex": "("}}], "'regex' is not a valid pattern"),
    ([{"id": "a", "category": "c", "prompt": " ", "check": {"any": ["x"]}}], "item 'a': empty prompt"),
    ([{"id": "a", "category": "c", "prompt": "p", "check": {"any": ["x"]}}] * 2, "item 'a': duplicate id"),
])
def test_a_malformed_set_is_refused_naming_the_item(tmp_path, items, message) -> None:
    path = tmp_path / "set.json"
    path.write_text(json.dumps({"items": items}))
    with pytest.raises(UtilitySetError, match=message):
        load_utility_set(path)


def test_a_missing_or_broken_file_is_named(tmp_path) -> None:
    with pytest.raises(UtilitySetError, match="no such utility set"):
        load_utility_set(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UtilitySetError, match="bad.json: not valid JSON"):
        load_utility_set(tmp_path / "bad.json")


def test_evaluate_utility_generates_and_scores(tiny_llama, char_tokenizer) -> None:
    items = load_utility_set()[:4]
    score, answers = evaluate_utility(tiny_llama, char_tokenizer, items, batch_size=2, max_new_tokens=4)
    assert len(answers) == 4 and score.n == 4 and score.correct == [check_answer(a, i.check)
                                                                    for a, i in zip(answers, items)]
