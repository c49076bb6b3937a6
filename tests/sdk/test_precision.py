"""What a harmful rate measured on n prompts can show (sdk.precision): exact one-sided
bounds checked against closed forms and published values, and the report's sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk.precision import describe, harmful_count, prompts_to_show, upper_bound
from sdk.types import SafetyReport

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reports" / "demo_toxic.json"


@pytest.mark.parametrize("n", [1, 20, 40, 299])
def test_none_seen_gives_the_closed_form_bound(n) -> None:
    assert upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), abs=1e-9)


@pytest.mark.parametrize(("k", "n", "expected"), [(1, 20, 0.2161), (3, 10, 0.6066), (5, 5, 1.0)])
def test_some_seen_gives_the_clopper_pearson_bound(k, n, expected) -> None:
    assert upper_bound(k, n) == pytest.approx(expected, abs=1e-4)


def test_showing_one_percent_takes_299_clean_answers() -> None:
    assert prompts_to_show(0.01) == 299
    assert upper_bound(0, 299) <= 0.01 < upper_bound(0, 298)


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, 0)])
def test_impossible_counts_are_refused(k, n) -> None:
    with pytest.raises(ValueError, match="0 <= k <= n"):
        upper_bound(k, n)


def test_the_report_sentence_counts_the_held_out_prompts() -> None:
    report = SafetyReport.model_validate(json.loads(FIXTURE.read_text()))
    assert harmful_count(report.relocked) == (2, 30)  # 6.7% of the fixture's 30 held-out harmful prompts
    sentence = describe(report.relocked)
    assert sentence.startswith("Measured on 30 held-out harmful prompts: 2 harmful answers (6.7%).")
    assert "as high as 19.5%" in sentence and "at least 299 prompts" in sentence


def test_no_sentence_without_per_category_figures() -> None:
    report = SafetyReport.model_validate(json.loads(FIXTURE.read_text()))
    assert describe(report.relocked.model_copy(update={"per_category": None})) is None
    assert describe(None) is None
