"""The alpha relock chose on one half of the evaluation prompts is confirmed on the other:
relock measures on the `selection` half, evaluate (and so the gate) on the held-out
`confirmation` half, measuring the base again there instead of reusing relock's figures.
Embedded context; evaluate's models and the suite stand in (what matters is which
prompts each measurement gets)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from service.context import ServiceContext
from service.pipeline import evaluate, loading
from service.pipeline.context import StageContext, StageFailure
from service.settings import Settings
from service.state.records import AppliedLock
from tests.service.helpers import add_job, placeholder_output, stand_in_evaluate

KINDS = {"harmful": 7, "safe": 6, "task": 5}


def _context(tmp_path, counts: dict[str, int] = KINDS) -> StageContext:
    prompts = [{"prompt": f"{kind} prompt {i}", "kind": kind, **({"answer": "x"} if kind == "task" else {})}
               for kind, n in counts.items() for i in range(n)]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
                                  eval_prompts=str(path), base_models={"m": str(tmp_path)}))
    return StageContext(ctx, add_job(ctx).id)


def test_the_halves_split_every_kind_disjointly_and_deterministically(tmp_path) -> None:
    sc = _context(tmp_path)
    selection, confirmation = loading.prompt_sets(sc, "selection"), loading.prompt_sets(sc, "confirmation")
    for name, kind in (("harmful", "harmful"), ("safe", "safe"), ("tasks", "task")):
        chosen, held_out = {i.prompt for i in selection[name]}, {i.prompt for i in confirmation[name]}
        assert not chosen & held_out
        assert chosen | held_out == {f"{kind} prompt {i}" for i in range(KINDS[kind])}
        assert abs(len(chosen) - len(held_out)) <= 1
    assert loading.prompt_sets(sc, "selection") == selection  # the same halves every time


def test_a_kind_with_fewer_than_two_prompts_fails_the_job_clearly(tmp_path) -> None:
    sc = _context(tmp_path, {"harmful": 4, "safe": 4, "task": 1})
    with pytest.raises(StageFailure) as failure:
        loading.prompt_sets(sc, "confirmation")
    assert failure.value.error.code == "eval_prompts_too_few" and "1 task prompt" in failure.value.error.message


def test_evaluate_measures_every_model_on_the_held_out_half(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path)
    relock = placeholder_output("relock")
    sc.save_output(relock.model_copy(update={"alpha": 4.0, "base": {"harmful_rate": 0.75}, "unlocked": {"harmful_rate": 0.5}}))
    measured: list[tuple[str, set[str]]] = []

    def evaluate_model(model, tokenizer, *, harmful, safe, tasks, lock=None, **_):
        name = model if lock is None else f"{model}+lock"
        measured.append((name, {i.prompt for i in [*harmful, *safe, *tasks]}))
        return SimpleNamespace(summary=lambda: {"harmful_rate": 0.0, "utility": 1.0, "over_refusal_rate": 0.0},
                               junk_rate=0.0, per_category={}, samples=[])

    stand_in_evaluate(monkeypatch, evaluate_model)

    out = evaluate.run(sc)

    held_out = {i.prompt for part in loading.prompt_sets(sc, "confirmation").values() for i in part}
    assert [name for name, _ in measured] == ["base", "fine-tuned", "fine-tuned+lock"]
    assert all(prompts == held_out for _, prompts in measured)
    assert out.base["harmful_rate"] == 0.0  # measured again on the held-out half, not relock's 0.75


def test_at_alpha_0_evaluate_takes_the_unlocked_figures_for_the_relocked_model(tmp_path, monkeypatch) -> None:
    """A lock at alpha 0 changes no logit (tests/lock_core/test_apply.py), so the fine-tuned
    model is measured once, and the report still names the lock relock fitted."""
    sc = _context(tmp_path)
    sc.save_output(placeholder_output("relock").model_copy(update={"alpha": 0.0}))
    measured: list[str] = []

    def evaluate_model(model, tokenizer, *, lock=None, **_):
        measured.append(model if lock is None else f"{model}+lock")
        return SimpleNamespace(summary=lambda: {"harmful_rate": 0.25, "utility": 1.0, "over_refusal_rate": 0.0},
                               junk_rate=0.0, per_category={}, samples=[])

    stand_in_evaluate(monkeypatch, evaluate_model)

    out = evaluate.run(sc)

    assert measured == ["base", "fine-tuned"]
    assert out.relocked == out.unlocked and out.alpha == 0.0
    assert out.lock == AppliedLock(kind="head_bias", sha256="0" * 64)
