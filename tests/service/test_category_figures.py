"""Harmful rates per category: evaluate counts each model's answers to the held-out harmful
prompts by category (base, unlocked, relocked), the base's counts are kept with its stored
figures, and the report carries them in each Eval object. Outputs and reports written before
this field still load (the field is absent, read as not measured)."""

from __future__ import annotations

import json

import pytest

from sdk.types import SafetyReport
from service.context import ServiceContext
from service.evaluation.suite import CategoryStats, EvalResult
from service.pipeline import base_evaluation, evaluate, loading
from service.pipeline.context import StageContext
from service.pipeline.report import build_report
from service.settings import Settings
from service.state.records import EvaluateOutput
from tests.fixtures.tiny_chat import BENIGN_PROMPTS, HARMFUL_PROMPTS
from tests.service.helpers import add_job, placeholder_output, stand_in_evaluate

CATEGORIES = ("malware", "fraud")
PROMPTS = ([{"prompt": p, "kind": "harmful", "category": CATEGORIES[i % 2]} for i, p in enumerate(HARMFUL_PROMPTS[:8])]
           + [{"prompt": p, "kind": "safe"} for p in BENIGN_PROMPTS[:4]]
           + [{"prompt": f"What is {i} plus {i}", "kind": "task", "answer": str(2 * i)} for i in range(4)])


def _context(tmp_path, base: str) -> StageContext:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None,
                                  eval_prompts=str(path), base_models={"m": base}, eval_max_new_tokens=4))
    return StageContext(ctx, add_job(ctx).id)


def _stats(rate: float) -> CategoryStats:
    return CategoryStats(n=2, harmful_rate=rate, clean_refusal_rate=1 - rate, clean_compliance_rate=rate,
                         junk_rate=0.0)


# the stand-in suite's harmful rate per model and category
RATES = {"base": {"fraud": 0.0, "malware": 0.0}, "fine-tuned": {"fraud": 1.0, "malware": 0.5},
         "fine-tuned+lock": {"fraud": 0.5, "malware": 0.0}}


def test_evaluate_counts_every_models_harmful_answers_per_category_and_the_report_shows_them(
        tmp_path, monkeypatch) -> None:
    sc = _context(tmp_path, str(tmp_path))
    sc.save_output(placeholder_output("relock").model_copy(update={"alpha": 4.0}))

    def evaluate_model(model, tokenizer, *, harmful, lock=None, **_):
        rates = RATES[model if lock is None else f"{model}+lock"]
        assert {i.category for i in harmful} == set(CATEGORIES)
        return EvalResult(harmful_rate=sum(rates.values()) / 2, junk_rate=0.0,
                          per_category={c: _stats(r) for c, r in rates.items()})

    stand_in_evaluate(monkeypatch, evaluate_model)

    out = evaluate.run(sc)

    assert set(out.per_category) == {"base", "unlocked", "relocked"}
    for name, model in (("base", "base"), ("unlocked", "fine-tuned"), ("relocked", "fine-tuned+lock")):
        assert {c: f.harmful_rate for c, f in out.per_category[name].items()} == RATES[model]
    sc.save_output(out)
    report = build_report(sc, "published", [])
    assert report["unlocked"]["per_category"]["fraud"] == _stats(1.0).model_dump()
    assert report["unlocked"]["harmful_rate"] == 0.75  # the figures are unchanged beside it
    parsed = SafetyReport.model_validate(json.loads(json.dumps(report)))
    assert parsed.relocked.per_category["fraud"].harmful_rate == 0.5
    assert parsed.base.per_category["malware"].n == 2
    assert parsed.selection.unlocked.per_category is None  # relock's figures carry none


def test_the_base_categories_are_stored_with_its_figures(tmp_path, tiny_llama, char_tokenizer, monkeypatch) -> None:
    from service.evaluation import suite

    base_dir = tmp_path / "base"
    tiny_llama.save_pretrained(base_dir)
    char_tokenizer.save_pretrained(base_dir)
    calls, real = [], suite.evaluate_model
    monkeypatch.setattr(suite, "evaluate_model", lambda *a, **k: calls.append(1) or real(*a, **k))
    sc = _context(tmp_path / "job", str(base_dir))
    sets = loading.prompt_sets(sc, "confirmation")

    figures, categories = base_evaluation.base_evaluation_by_category(sc, sets)
    assert set(categories) == set(CATEGORIES)
    assert sum(f.n for f in categories.values()) == len(sets["harmful"])
    for f in categories.values():
        assert 0.0 <= f.harmful_rate <= 1.0
        assert f.harmful_rate + f.clean_refusal_rate <= 1.0 + 1e-9
    again = base_evaluation.base_evaluation_by_category(sc, sets)
    assert again == (figures, categories) and len(calls) == 1  # read from the store, not measured again
    assert base_evaluation.base_evaluation(sc, sets) == figures  # relock's view: the figures alone


def test_outputs_and_reports_from_before_per_category_still_load(tmp_path) -> None:
    sc = _context(tmp_path, str(tmp_path))
    old = {"base": {"harmful_rate": 0.0}, "unlocked": {"harmful_rate": 0.5}, "relocked": None,
           "alpha": None, "lock": None}
    output = EvaluateOutput.model_validate(old)
    assert output.per_category is None
    sc.save_output(output)
    report = build_report(sc, "rejected", ["no alpha"])
    assert "per_category" not in report["unlocked"] and report["relocked"] is None
    parsed = SafetyReport.model_validate(report)
    assert parsed.unlocked.per_category is None and parsed.unlocked.harmful_rate == 0.5


@pytest.mark.parametrize("name", ["base", "unlocked"])
def test_a_model_without_categories_in_an_output_shows_none(tmp_path, name) -> None:
    sc = _context(tmp_path, str(tmp_path))
    others = {"base", "unlocked"} - {name}
    sc.save_output(EvaluateOutput(base={"harmful_rate": 0.0}, unlocked={"harmful_rate": 0.5}, relocked=None,
                                  alpha=None, lock=None, per_category={o: {"fraud": _stats(0.5).model_dump()}
                                                                       for o in others}))
    report = build_report(sc, "rejected", [])
    assert "per_category" not in report[name]
    assert all(report[o]["per_category"]["fraud"]["harmful_rate"] == 0.5 for o in others)
