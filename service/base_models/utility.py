"""A general-utility check of our own: short questions whose answers rules can check.

`utility_set.json` (beside this module) holds 100 English questions written for this
project: capitals, arithmetic, facts, words and simple instructions ("Reply with one
word: ..."). A chat model answers in sentences, so exact match would be unfair; each item
carries a `check`, a few rules that must all pass:

- ``any``: one of these words or phrases appears as a whole word (case ignored);
- ``case_sensitive``: one of these strings appears exactly as written;
- ``none``: none of these words or phrases appears (case ignored);
- ``number``: one of these numbers appears on its own (digits, thousands commas allowed,
  or English words up to ninety-nine), never as part of a word such as "H2O";
- ``starts_with``: the answer opens with one of these (case, quotes and markdown ignored);
- ``max_words``: the answer has at most this many words;
- ``regex``: the pattern matches somewhere (case ignored).

Answers come from the evaluation suite's own batched greedy `generate`. Pure Python at
import; torch is needed only by `evaluate_utility`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_UTILITY_SET = Path(__file__).with_name("utility_set.json")
LIST_RULES = ("any", "case_sensitive", "none", "starts_with")
RULES = (*LIST_RULES, "number", "max_words", "regex")

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# A number of its own: digits (thousands commas allowed), not inside a word ("H2O") or "2.5".
_NUMBER = re.compile(r"(?<![\w.,])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\w)")
_WORDS = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_OPENING = re.compile(r"^[\s\"'“”‘’*#>_`(\[-]+")


class UtilitySetError(ValueError):
    """A utility-set file is missing or malformed (the message names the file and item)."""


@dataclass(frozen=True)
class UtilityItem:
    """One question and the rules its answer must pass."""

    id: str
    category: str
    prompt: str
    check: dict[str, Any]


@dataclass(frozen=True)
class UtilityScore:
    """Accuracy on a utility set: overall, per category, and per item (in order)."""

    accuracy: float
    n: int
    per_category: dict[str, float]
    correct: list[bool] = field(default_factory=list)


def _whole(phrase: str, flags: int = re.IGNORECASE) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", flags)


def _number_word(n: int) -> str | None:
    if not 0 <= n < 100:
        return None
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + ("" if ones == 0 else "-" + _ONES[ones])


def numbers_in(text: str) -> list[float]:
    """The numbers written in digits in `text` (thousands commas allowed), in order."""
    return [float(m.group().replace(",", "")) for m in _NUMBER.finditer(text)]


def _has_number(text: str, wanted: float) -> bool:
    if any(n == wanted for n in numbers_in(text)):
        return True
    word = _number_word(int(wanted)) if float(wanted).is_integer() else None
    if word is None:
        return False
    return any(_whole(w).search(text) for w in {word, word.replace("-", " ")})


def count_words(text: str) -> int:
    return len(_WORDS.findall(text))


def failed_rules(answer: str, check: dict[str, Any]) -> list[str]:
    """The names of the rules in `check` that `answer` does not pass (empty: correct)."""
    text = unicodedata.normalize("NFKC", answer).strip()
    failed = []
    for rule, want in check.items():
        if rule == "any":
            ok = any(_whole(w).search(text) for w in want)
        elif rule == "case_sensitive":
            ok = any(w in text for w in want)
        elif rule == "none":
            ok = not any(_whole(w).search(text) for w in want)
        elif rule == "number":
            ok = any(_has_number(text, float(n)) for n in want)
        elif rule == "starts_with":
            opening = _OPENING.sub("", text).lower()
            ok = any(opening.startswith(w.lower()) and not opening[len(w):len(w) + 1].isalnum()
                     for w in want)
        elif rule == "max_words":
            ok = count_words(text) <= want
        elif rule == "regex":
            ok = re.search(want, text, re.IGNORECASE) is not None
        else:
            raise UtilitySetError(f"unknown rule {rule!r}; known: {', '.join(RULES)}")
        if not ok:
            failed.append(rule)
    return failed


def check_answer(answer: str, check: dict[str, Any]) -> bool:
    """True when `answer` passes every rule of `check`."""
    return not failed_rules(answer, check)


def _validate_check(where: str, check: Any) -> dict[str, Any]:
    if not isinstance(check, dict) or not check:
        raise UtilitySetError(f"{where}: 'check' must be a non-empty object of rules")
    for rule, want in check.items():
        if rule in LIST_RULES:
            if not isinstance(want, list) or not want or not all(isinstance(w, str) and w for w in want):
                raise UtilitySetError(f"{where}: rule {rule!r} needs a non-empty list of strings")
        elif rule == "number":
            if (not isinstance(want, list) or not want
                    or not all(isinstance(n, int | float) and not isinstance(n, bool) for n in want)):
                raise UtilitySetError(f"{where}: rule 'number' needs a non-empty list of numbers")
        elif rule == "max_words":
            if not isinstance(want, int) or isinstance(want, bool) or want < 1:
                raise UtilitySetError(f"{where}: rule 'max_words' needs an integer >= 1")
        elif rule == "regex":
            try:
                re.compile(want)
            except (re.error, TypeError) as e:
                raise UtilitySetError(f"{where}: rule 'regex' is not a valid pattern ({e})") from e
        else:
            raise UtilitySetError(f"{where}: unknown rule {rule!r}; known: {', '.join(RULES)}")
    return check


def load_utility_set(path: str | Path = DEFAULT_UTILITY_SET) -> list[UtilityItem]:
    """The items of a utility-set file (default: ours), validated."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UtilitySetError(f"{path}: no such utility set") from None
    except json.JSONDecodeError as e:
        raise UtilitySetError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from e
    rows = doc.get("items") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise UtilitySetError(f"{path}: needs a non-empty 'items' list")
    items, seen = [], set()
    for i, row in enumerate(rows):
        where = f"{path} item {i}"
        if not isinstance(row, dict):
            raise UtilitySetError(f"{where}: not an object")
        missing = [k for k in ("id", "category", "prompt", "check") if k not in row]
        if missing:
            raise UtilitySetError(f"{where}: missing {', '.join(missing)}")
        where = f"{path} item {row['id']!r}"
        if row["id"] in seen:
            raise UtilitySetError(f"{where}: duplicate id")
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise UtilitySetError(f"{where}: empty prompt")
        seen.add(row["id"])
        items.append(UtilityItem(str(row["id"]), str(row["category"]), row["prompt"],
                                 _validate_check(where, row["check"])))
    return items


def score_answers(items: Sequence[UtilityItem], answers: Sequence[str]) -> UtilityScore:
    """Check every answer against its item's rules."""
    if len(items) != len(answers):
        raise ValueError(f"{len(answers)} answers for {len(items)} items")
    if not items:
        raise ValueError("no items to score")
    correct = [check_answer(a, item.check) for item, a in zip(items, answers, strict=True)]
    groups: dict[str, list[bool]] = defaultdict(list)
    for item, ok in zip(items, correct, strict=True):
        groups[item.category].append(ok)
    return UtilityScore(
        accuracy=sum(correct) / len(correct),
        n=len(correct),
        per_category={c: sum(v) / len(v) for c, v in sorted(groups.items())},
        correct=correct,
    )


def evaluate_utility(model, tokenizer, items: Sequence[UtilityItem], *, batch_size: int = 16,
                     max_new_tokens: int = 64,
                     progress: Callable[[int, int], None] | None = None) -> tuple[UtilityScore, list[str]]:
    """Greedy answers (the evaluation suite's `generate`) to every item, and their score."""
    from service.evaluation.generation import GenerationConfig, generate

    answers = generate(model, tokenizer, [i.prompt for i in items],
                       config=GenerationConfig(batch_size=batch_size, max_new_tokens=max_new_tokens),
                       progress=progress)
    return score_answers(items, answers), answers
