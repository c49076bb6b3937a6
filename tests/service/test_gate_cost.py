"""The gate measures nothing twice: the base model's evaluation is kept per base model,
prompts and judge, and relock asks an alpha's safe and task prompts only when its answers
to harmful prompts pass. Embedded context on the tiny chat model; in the relock test the
models and the suite stand in (what matters is what is asked)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from service.context import ServiceContext
from service.pipeline import base_evaluation, loading, relock
from service.pipeline.context import StageContext
from service.settings import Settings
from tests.fixtures.tiny_chat import BENIGN_PROMPTS, HARMFUL_PROMPTS
from tests.service.helpers import add_job, placeholder_output

HEAD_BIAS = SimpleNamespace(manifest=SimpleNamespace(kind="head_bias"))  # a lock kind with no first-token curve
PROMPTS = ([{"prompt": p, "kind": "harmful"} for p in HARMFUL_PROMPTS[:4]]
           + [{"prompt": p, "kind": "safe"} for p in BENIGN_PROMPTS[:4]]
           + [{"prompt": f"What is {i} plus {i}", "kind": "task", "answer": str(2 * i)} for i in range(4)])


@pytest.fixture
def base_dir(tmp_path_factory, tiny_llama, char_tokenizer):
    folder = tmp_path_factory.mktemp("base")
    tiny_llama.save_pretrained(folder)
    char_tokenizer.save_pretrained(folder)
    return folder


def _context(tmp_path, base: str, **settings) -> StageContext:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
                                  eval_prompts=str(path), base_models={"m": base},
                                  **{"eval_max_new_tokens": 4, **settings}))
    return StageContext(ctx, add_job(ctx).id)


def _counting(monkeypatch) -> list[int]:
    from service.evaluation import suite

    calls, real = [], suite.evaluate_model

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(suite, "evaluate_model", counted)
    return calls


def test_the_base_is_measured_once_per_base_prompts_and_judge(tmp_path, base_dir, monkeypatch) -> None:
    calls = _counting(monkeypatch)
    sc = _context(tmp_path, str(base_dir))
    selection = loading.prompt_sets(sc, "selection")
    first = base_evaluation.base_evaluation(sc, selection)
    again = _context(tmp_path / "next-job", str(base_dir))  # another job, another service dir
    again.ctx.__dict__["store"] = sc.ctx.store  # ... sharing the platform's store
    assert base_evaluation.base_evaluation(again, selection) == first
    assert len(calls) == 1
    base_evaluation.base_evaluation(sc, loading.prompt_sets(sc, "confirmation"))  # other prompts
    assert len(calls) == 2
    other_length = _context(tmp_path / "judge", str(base_dir), eval_max_new_tokens=5)
    other_length.ctx.__dict__["store"] = sc.ctx.store
    base_evaluation.base_evaluation(other_length, selection)  # other answer length
    assert len(calls) == 3


def test_a_changed_base_is_measured_again(tmp_path, base_dir, tiny_llama, monkeypatch) -> None:
    import torch

    sc = _context(tmp_path, str(base_dir))
    selection = loading.prompt_sets(sc, "selection")
    key = base_evaluation.cache_key(sc, selection)
    with torch.no_grad():
        changed = type(tiny_llama)(tiny_llama.config)
        changed.load_state_dict(tiny_llama.state_dict())
        next(changed.parameters()).add_(1.0)
    changed.save_pretrained(base_dir)
    assert base_evaluation.cache_key(sc, selection) != key


def test_a_base_without_a_fingerprint_is_measured_every_time(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, "someorg/some-hub-model")
    assert base_evaluation.cache_key(sc, loading.prompt_sets(sc, "selection")) is None


def test_relock_asks_safe_and_task_prompts_only_of_an_alpha_whose_harmful_answers_pass(tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path), alpha_grid=[0.0, 2.0, 4.0])
    harmful_rate = {None: 0.5, 2.0: 0.5, 4.0: 0.0}  # unlocked, then per alpha
    asked: list[tuple[float | None, tuple[str, ...]]] = []

    def evaluate_model(model, tokenizer, *, harmful=None, safe=None, tasks=None, alpha=None, **_):
        asked.append((alpha, tuple(name for name, s in (("harmful", harmful), ("safe", safe), ("tasks", tasks)) if s)))
        return SimpleNamespace(junk_rate=0.0 if harmful else None, summary=lambda: {
            "harmful_rate": harmful_rate[alpha] if harmful else None,
            "over_refusal_rate": 0.0 if safe else None, "utility": 1.0 if tasks else None})

    base = {"harmful_rate": 0.0, "junk_rate": 0.0, "over_refusal_rate": 0.0, "utility": 1.0}
    monkeypatch.setattr("service.evaluation.suite.evaluate_model", evaluate_model)
    monkeypatch.setattr(relock, "base_evaluation", lambda sc, sets: base)
    monkeypatch.setattr(relock, "job_lock", lambda sc: HEAD_BIAS)  # no first-token screen: the full search
    monkeypatch.setattr(relock, "trained_model", lambda sc: ("fine-tuned", None))
    monkeypatch.setattr(relock, "store_fitted_lock", lambda sc, lock: placeholder_output("relock").lock)
    monkeypatch.setattr("lock_registry.apply.check_fits", lambda model, lock: None)
    monkeypatch.setattr("lock_registry.fit.fit_to_model", lambda model, tokenizer, lock: (lock, None))

    out = relock.run(sc)

    assert out.alpha == 4.0
    assert asked == [(None, ("harmful", "safe", "tasks")), (2.0, ("harmful",)),
                     (4.0, ("harmful",)), (4.0, ("safe", "tasks"))]
    curve = {p.alpha: p for p in out.curve}
    assert curve[2.0].utility is None and curve[4.0].utility == 1.0
    messages = [e.message for e in sc.ctx.records.events(sc.job_id)]
    assert any(m.startswith("alpha 2:") and "(safe and task prompts not asked)" in m for m in messages)
    assert "head_bias lock records no refusal and compliance first tokens" in out.screen.unavailable
    assert out.screen.generated == [2.0, 4.0] and out.screen.full_search
