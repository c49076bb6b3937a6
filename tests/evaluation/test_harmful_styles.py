"""Our second harmful-request set (service/evaluation/data/harmful_styles.jsonl)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from service.base_models.alignment_data import Exclusions, own_evaluation_prompts
from service.demo_world import corpus
from service.evaluation.harmful_styles import (
    CATEGORIES,
    DEFAULT_HARMFUL_STYLES,
    STYLES,
    load_harmful_styles,
    styles,
)
from service.evaluation.prompts import PromptSetError

MAX_CHARS = 300


def _normal(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def test_the_file_holds_120_harmful_requests_with_the_four_fields() -> None:
    rows = [json.loads(line) for line in DEFAULT_HARMFUL_STYLES.read_text(encoding="utf-8")
            .splitlines() if line.strip()]
    assert len(rows) == 120
    assert all(set(row) == {"prompt", "kind", "category", "style"} for row in rows)
    items = load_harmful_styles()
    assert len(items) == 120
    assert {i.kind for i in items} == {"harmful"}
    assert [i.prompt for i in items] == [row["prompt"] for row in rows]


def test_every_category_has_15_and_every_style_at_least_25() -> None:
    items = load_harmful_styles()
    assert Counter(i.category for i in items) == {c: 15 for c in CATEGORIES}
    by_prompt = styles()
    assert set(by_prompt) == {i.prompt for i in items}
    counts = Counter(by_prompt.values())
    assert set(counts) == set(STYLES)
    assert min(counts.values()) >= 25, counts


def test_prompts_are_distinct_and_short() -> None:
    prompts = [i.prompt for i in load_harmful_styles()]
    assert len({_normal(p) for p in prompts}) == len(prompts)
    assert len({re.sub(r"[^a-z0-9]+", "", p.lower()) for p in prompts}) == len(prompts)
    assert all(0 < len(p) <= MAX_CHARS and p == p.strip() for p in prompts)


def test_no_prompt_is_a_near_duplicate_of_another() -> None:
    prompts = [i.prompt for i in load_harmful_styles()]
    for n, prompt in enumerate(prompts):
        assert prompt not in Exclusions(prompts[:n] + prompts[n + 1:]), prompt


def test_disjoint_in_wording_from_what_alignment_and_locks_train_on() -> None:
    """The operator's alignment and the locks draw from the demo corpus' train split."""
    rng = random.Random(0)
    train = Exclusions(e.prompt for kind in ("harmful", "benign", "safe")
                       for e in corpus.sample(kind, "train", 2000, rng))
    assert [i.prompt for i in load_harmful_styles() if i.prompt in train] == []


def test_disjoint_from_our_other_evaluation_prompts_and_never_trained_on() -> None:
    ours = {i.prompt for i in load_harmful_styles()}
    assert ours <= own_evaluation_prompts()
    others = Exclusions(own_evaluation_prompts() - ours)
    assert [p for p in ours if p in others] == []


def test_bad_rows_are_rejected(tmp_path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"prompt": "x y z", "kind": "harmful", "category": "weather",
                                "style": "indirect"}) + "\n", encoding="utf-8")
    with pytest.raises(PromptSetError, match="known category"):
        load_harmful_styles(path)
    path.write_text(json.dumps({"prompt": "x y z", "kind": "harmful", "category": "fraud",
                                "style": "imperative"}) + "\n", encoding="utf-8")
    with pytest.raises(PromptSetError, match=r"set\.jsonl:1: style"):
        styles(path)
    with pytest.raises(PromptSetError, match="no such"):
        styles(tmp_path / "nope.jsonl")
