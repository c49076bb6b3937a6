"""The task veto of a conditional lock: fitted so that every harmful calibration prompt
stays fired, it keeps the lock off the task prompts it vetoes (their logits are the
unlocked model's, bit for bit); it travels in the lock's format, checked on load."""

from __future__ import annotations

import pytest
import torch

from lock_registry.apply import apply_lock
from lock_registry.errors import LockError, LockFormatError
from lock_registry.kinds.conditional import (
    calibration_prompts,
    create_conditional_lock,
    format_prompts,
    gate_state,
    with_threshold,
)
from lock_registry.kinds.conditional.format import VETO_TENSOR, with_veto
from lock_registry.kinds.conditional.veto import fit_task_veto
from lock_registry.lock import MetaSafetyLock

TASKS = ["Route this ticket: my order is late", "Route this ticket: refund my card",
         "Route this ticket: reset my password", "Route this ticket: the box was damaged"]


@pytest.fixture(scope="module")
def fires_always(tiny_llama, char_tokenizer, labelled_prompts) -> MetaSafetyLock:
    """A conditional lock whose condition fires on every prompt (threshold below any cosine)."""
    lock = create_conditional_lock(tiny_llama, char_tokenizer, labelled_prompts, base_model_id="tiny",
                                   num_heads=3, calibration_size=8)
    return with_threshold(lock, -2.0)


def _fired(model, tokenizer, lock, prompts) -> torch.Tensor:
    enc = tokenizer(format_prompts(tokenizer, prompts), return_tensors="pt", padding=True,
                    padding_side="left", add_special_tokens=False)
    with torch.no_grad(), apply_lock(model, lock, 4.0):
        model(**enc)
        return gate_state(model).fired


def test_the_veto_keeps_every_harmful_calibration_prompt_fired_and_stops_tasks(
        tiny_llama, char_tokenizer, fires_always) -> None:
    vetoed, fit = fit_task_veto(tiny_llama, char_tokenizer, fires_always, TASKS)
    harmful = [p.text for p in calibration_prompts(fires_always) if p.harmful]
    assert fit.num_harmful == len(harmful) and fit.tasks_fired == len(TASKS)
    assert fit.layer is not None and fit.layer < int(fires_always.tensors["layers"].min())
    assert fit.tasks_fired_after < fit.tasks_fired
    assert _fired(tiny_llama, char_tokenizer, vetoed, harmful).all()
    assert int(_fired(tiny_llama, char_tokenizer, vetoed, TASKS).sum()) == fit.tasks_fired_after
    assert vetoed.manifest.sha256 != fires_always.manifest.sha256  # a new tensor: a new lock
    assert vetoed.kind_fields.veto_fit["tasks_fired_after"] == fit.tasks_fired_after


def test_a_vetoed_prompt_gets_the_unlocked_models_logits(tiny_llama, char_tokenizer, fires_always) -> None:
    vetoed, _ = fit_task_veto(tiny_llama, char_tokenizer, fires_always, TASKS)
    fired = _fired(tiny_llama, char_tokenizer, vetoed, TASKS)
    row = int(torch.nonzero(~fired)[0])
    enc = char_tokenizer(format_prompts(char_tokenizer, [TASKS[row]]), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        plain = tiny_llama(**enc).logits
        with apply_lock(tiny_llama, vetoed, 8.0):
            locked = tiny_llama(**enc).logits
        with apply_lock(tiny_llama, fires_always, 8.0):
            steered = tiny_llama(**enc).logits
    assert torch.equal(locked, plain) and not torch.equal(steered, plain)


def test_no_veto_when_the_condition_fires_on_no_task(tiny_llama, char_tokenizer, fires_always) -> None:
    never = with_threshold(fires_always, 2.0)
    same, fit = fit_task_veto(tiny_llama, char_tokenizer, never, TASKS)
    assert same is never and fit.layer is None and fit.tasks_fired == 0
    assert "fires on no task prompt" in fit.reason
    with pytest.raises(LockError, match="at least one task prompt"):
        fit_task_veto(tiny_llama, char_tokenizer, fires_always, [])


def test_the_veto_round_trips_and_a_misplaced_one_is_refused(tiny_llama, char_tokenizer, fires_always) -> None:
    vetoed, fit = fit_task_veto(tiny_llama, char_tokenizer, fires_always, TASKS)
    again = MetaSafetyLock.from_files(vetoed.to_files())
    assert again.kind_fields.veto_layer == fit.layer and torch.equal(again.tensors[VETO_TENSOR], vetoed.tensors[VETO_TENSOR])
    with pytest.raises(LockError, match="already carries a task veto"):
        fit_task_veto(tiny_llama, char_tokenizer, vetoed, TASKS)
    first = int(fires_always.tensors["layers"].min())
    with pytest.raises(LockFormatError, match="must lie before the first steered layer"):
        with_veto(fires_always, first, torch.ones(fires_always.kind_fields.hidden_size), 0.0)
    with pytest.raises(LockFormatError, match="with a veto_layer needs tensors"):
        MetaSafetyLock(vetoed.manifest, {k: v for k, v in vetoed.tensors.items() if k != VETO_TENSOR})
