"""relock's fallback steering positions: searched only when the lock's own position meets
no gate, in the operator's order; the lock stored (and so evaluated and published) steers
where the chosen alpha was measured, and every curve point says where that was.

The relock tests stand in the suite as test_alpha_screen does, with answers that depend
on the position the lock steers at; the last tests use a real conditional lock."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lock_registry.errors import LockError
from service.pipeline import relock, steering_position
from service.settings import Settings
from service.state.records import RelockOutput
from tests.service.helpers import placeholder_output
from tests.service.test_alpha_screen import (
    CONDITIONAL,
    GRID,
    HARMFUL,
    OVER_REFUSES,
    PASS,
    _stand_ins,
)
from tests.service.test_gate_cost import _context

FIRST_TOKEN = dict.fromkeys(GRID, 1.0)  # every alpha reaches the screen's target: shortlist 2 and 4


def _positioned(monkeypatch, generated: dict[str, dict]) -> tuple[list, list]:
    """Stand-ins whose answers depend on where the lock steers (`generated`: position ->
    alpha -> outcome; the unlocked model under None); returns (what the suite was asked
    as (alpha, position, kinds), the locks relock stored)."""
    _stand_ins(monkeypatch, {None: generated[None]}, FIRST_TOKEN)
    asked, stored = [], []

    def evaluate_model(model, tokenizer, *, harmful=None, safe=None, tasks=None, alpha=None, lock=None, **_):
        position = None if lock is None else lock.kind_fields.position
        asked.append((alpha, position, bool(harmful)))
        rate, over, utility = generated[None] if alpha is None else generated[position][alpha]
        return SimpleNamespace(junk_rate=0.0 if harmful else None, summary=lambda: {
            "harmful_rate": rate if harmful else None, "over_refusal_rate": over if safe else None,
            "utility": utility if tasks else None})

    def with_position(lock, position):
        return SimpleNamespace(manifest=lock.manifest, kind_fields=SimpleNamespace(position=position))

    def store(sc, lock):
        stored.append(lock)
        return placeholder_output("relock").lock

    monkeypatch.setattr("service.evaluation.suite.evaluate_model", evaluate_model)
    monkeypatch.setattr("lock_registry.kinds.conditional.format.with_position", with_position)
    monkeypatch.setattr(relock, "store_fitted_lock", store)
    return asked, stored


def _searched(asked: list) -> list[tuple[float, str]]:
    return [(alpha, position) for alpha, position, harmful in asked if alpha is not None and harmful]


def test_a_fallback_position_is_searched_only_when_the_own_position_meets_no_gate(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID, relock_fallback_positions=["answer"])
    own = dict.fromkeys(GRID[1:], HARMFUL)
    fallback = {2.0: HARMFUL, 4.0: OVER_REFUSES, 6.0: PASS, 8.0: PASS, 12.0: PASS}
    asked, stored = _positioned(monkeypatch, {None: HARMFUL, "answer_start": own, "answer": fallback})

    out = relock.run(sc)

    order = [2.0, 4.0, 6.0, 8.0, 12.0]  # the screen's shortlist (2, 4), then the rest
    assert _searched(asked) == [(a, "answer_start") for a in order] + [(2.0, "answer"), (4.0, "answer"),
                                                                        (6.0, "answer")]
    assert out.alpha == 6.0 and out.curve[-1].position == "answer" and out.curve[-1].alpha == 6.0
    assert [p.position for p in out.curve] == [None, *["answer_start"] * 5, *["answer"] * 3]
    assert [lock.kind_fields.position for lock in stored] == ["answer"]  # what evaluate and publish apply
    messages = [e.message for e in sc.ctx.records.events(sc.job_id)]
    assert any(m.startswith("No alpha of the grid met the gate steering the answer's first token (answer_start); "
                            "searching it again steering every answer token (answer)") for m in messages)
    assert any(m.startswith("alpha 6 steering answer") and m.endswith("meets the gate") for m in messages)
    assert out.screen.generated == order + [2.0, 4.0, 6.0]
    assert RelockOutput.model_validate_json(out.model_dump_json()) == out


def test_the_fallback_is_not_searched_when_the_own_position_passes(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID, relock_fallback_positions=["answer"])
    own = {2.0: HARMFUL, 4.0: PASS, 6.0: PASS, 8.0: PASS, 12.0: PASS}
    asked, stored = _positioned(monkeypatch, {None: HARMFUL, "answer_start": own, "answer": {}})
    out = relock.run(sc)
    assert out.alpha == 4.0 and {p for _, p in _searched(asked)} == {"answer_start"}
    assert [lock.kind_fields.position for lock in stored] == ["answer_start"]


def test_without_fallback_positions_a_job_failing_at_its_own_position_gets_no_alpha(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=GRID)
    asked, stored = _positioned(monkeypatch, {None: HARMFUL, "answer_start": dict.fromkeys(GRID[1:], HARMFUL),
                                              "answer": dict.fromkeys(GRID[1:], PASS)})
    out = relock.run(sc)
    assert out.alpha is None and {p for _, p in _searched(asked)} == {"answer_start"}
    assert [lock.kind_fields.position for lock in stored] == ["answer_start"]


def test_the_positions_tried_are_the_own_then_the_fallbacks_once_each() -> None:
    settings = Settings(relock_fallback_positions=["answer", "answer_start", "answer"])
    assert steering_position.to_try(settings, CONDITIONAL) == ["answer_start", "answer"]
    head_bias = SimpleNamespace(manifest=SimpleNamespace(kind="head_bias"))
    assert steering_position.to_try(settings, head_bias) == [None]  # a kind without a position: the grid once


def test_an_unknown_fallback_position_is_refused_when_the_settings_load() -> None:
    with pytest.raises(ValueError, match="relock_fallback_positions"):
        Settings(relock_fallback_positions=["everywhere"])


# A real conditional lock -------------------------------------------------------------------

@pytest.fixture(scope="module")
def conditional_lock(tiny_llama, char_tokenizer, labelled_prompts):
    from lock_registry.kinds.conditional import create_conditional_lock

    return create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                   num_heads=3, calibration_size=8)


def test_a_lock_moved_to_another_position_keeps_its_tensors_and_gets_a_new_hash(conditional_lock) -> None:
    import torch

    from lock_registry.lock import MetaSafetyLock

    moved = steering_position.at(conditional_lock, "answer")
    assert conditional_lock.kind_fields.position == "answer_start" and moved.kind_fields.position == "answer"
    assert moved.manifest.sha256 == conditional_lock.manifest.sha256  # the tensors' hash: unchanged
    files, original = moved.to_files(), conditional_lock.to_files()
    assert files["manifest.json"] != original["manifest.json"]
    loaded = MetaSafetyLock.from_files(files, source="moved")  # verified on load
    assert loaded.kind_fields.position == "answer"
    assert all(torch.equal(loaded.tensors[k], v) for k, v in conditional_lock.tensors.items())
    assert steering_position.at(conditional_lock, "answer_start") is conditional_lock


def test_a_lock_cannot_be_moved_to_an_unknown_position(conditional_lock) -> None:
    with pytest.raises(LockError, match="position 'everywhere' is not one of"):
        steering_position.at(conditional_lock, "everywhere")
