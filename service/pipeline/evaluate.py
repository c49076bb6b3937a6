"""evaluate: the base model, the fine-tuned model unlocked, and relocked at the chosen alpha,
all on the held-out `confirmation` half of the evaluation prompts.

relock chose alpha on the other half; measuring again on prompts it never saw is what
confirms the choice (an alpha that passed there by luck fails the gate here). The base
also gets its validation loss, when there is a validation file. The relocked model is the
fine-tuned one under the lock relock fitted to it and stored (`fitted_lock`, verified);
the output records that lock (`lock`: kind, sha256, threshold). At alpha 0 the lock changes
no logit, so the relocked figures are the unlocked ones, not measured twice. Each model's
answers to the harmful prompts are also counted per category (`per_category`).
"""

from __future__ import annotations

from service.pipeline.base_evaluation import base_evaluation_by_category, category_figures
from service.pipeline.context import StageContext
from service.pipeline.loading import (
    base_model_path,
    fitted_lock,
    load_model,
    lock_summary,
    prompt_sets,
    summarise,
    trained_model,
    validation_records,
)
from service.state.records import EvaluateOutput, Progress, RelockOutput


def run(sc: StageContext) -> EvaluateOutput:
    from service.evaluation.suite import evaluate_model

    alpha = sc.require(RelockOutput).alpha
    records = validation_records(sc)
    sets = prompt_sets(sc, "confirmation")
    kwargs = dict(max_new_tokens=sc.settings.eval_max_new_tokens, keep_samples=False, judge=sc.judge(),
                  validation_records=records, **sets)
    base, base_categories = base_evaluation_by_category(sc, sets)  # measured once per base model and prompts
    per_category = {"base": base_categories}
    if records:  # the job's own validation file: the base's loss on it is the job's alone
        base_model, base_tok = load_model(base_model_path(sc))
        base = {**base, "validation_loss": evaluate_model(base_model, base_tok, validation_records=records).validation_loss}
        del base_model  # one model in memory at a time
    sc.progress(Progress(stage="evaluate", step=1, total_steps=3), force=True)
    model, tokenizer = trained_model(sc)
    result = evaluate_model(model, tokenizer, **kwargs)
    unlocked, per_category["unlocked"] = summarise(result), category_figures(result)
    sc.progress(Progress(stage="evaluate", step=2, total_steps=3), force=True)
    relocked = applied = None
    if alpha == 0:  # the lock at strength 0 changes no logit: the relocked model is the one just measured
        relocked, per_category["relocked"] = unlocked, per_category["unlocked"]
        applied = lock_summary(fitted_lock(sc))
    elif alpha is not None:
        lock = fitted_lock(sc)
        result = evaluate_model(model, tokenizer, lock=lock, alpha=alpha, **kwargs)
        relocked, per_category["relocked"] = summarise(result), category_figures(result)
        applied = lock_summary(lock)
    sc.progress(Progress(stage="evaluate", step=3, total_steps=3), force=True)
    out = EvaluateOutput(base=base, unlocked=unlocked, relocked=relocked, alpha=alpha, lock=applied,
                         per_category=per_category)
    sc.event("Evaluation on the held-out prompts: harmful rate base {}, unlocked {}, relocked {}.".format(
        *(_pct(e["harmful_rate"]) if e else "n/a" for e in (base, unlocked, relocked))),
        type="metrics", data=out.model_dump(mode="json"), once="evaluated")
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
