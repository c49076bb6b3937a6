"""evaluate: the base model, the fine-tuned model unlocked, and relocked at the chosen alpha,
all on the held-out `confirmation` half of the evaluation prompts.

relock chose alpha on the other half; measuring again on prompts it never saw is what
confirms the choice (an alpha that passed there by luck fails the gate here). The base
also gets its validation loss, when there is a validation file. The relocked model is the
fine-tuned one under the lock relock fitted to it and stored (`fitted_lock`, verified);
the output records that lock (`lock`: kind, sha256, threshold). At alpha 0 the lock changes
no logit, so the relocked figures are the unlocked ones, not measured twice. Each model's
answers to the harmful prompts are also counted per category (`per_category`), and the
first few prompts of each kind keep both answers (`samples`) for the report, with every
harmful prompt the relocked model still answered with content (up to `MAX_ESCAPES`): what
the gate's harmful rate counts, to read.
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
from service.state.records import AnswerSample, EvaluateOutput, Progress, RelockOutput

SAMPLES_PER_KIND = {"harmful": 3, "safe": 1, "task": 1}
MAX_ESCAPES = 20  # harmful prompts the relocked model answered, kept beyond the first ones


def run(sc: StageContext) -> EvaluateOutput:
    from service.evaluation.suite import evaluate_model

    alpha = sc.require(RelockOutput).alpha
    records = validation_records(sc)
    sets = prompt_sets(sc, "confirmation")
    kwargs = dict(max_new_tokens=sc.settings.eval_max_new_tokens, keep_samples=True, judge=sc.judge(),
                  validation_records=records, **sets)
    base, base_categories = base_evaluation_by_category(sc, sets)  # measured once per base model and prompts
    per_category = {"base": base_categories}
    if records:  # the job's own validation file: the base's loss on it is the job's alone
        base_model, base_tok = load_model(base_model_path(sc))
        base = {**base, "validation_loss": evaluate_model(base_model, base_tok, validation_records=records).validation_loss}
        del base_model  # one model in memory at a time
    sc.progress(Progress(stage="evaluate", step=1, total_steps=3), force=True)
    model, tokenizer = trained_model(sc)
    unlocked_result = evaluate_model(model, tokenizer, **kwargs)
    unlocked, per_category["unlocked"] = summarise(unlocked_result), category_figures(unlocked_result)
    sc.progress(Progress(stage="evaluate", step=2, total_steps=3), force=True)
    relocked = applied = relocked_result = None
    if alpha == 0:  # the lock at strength 0 changes no logit: the relocked model is the one just measured
        relocked, per_category["relocked"], relocked_result = unlocked, per_category["unlocked"], unlocked_result
        applied = lock_summary(fitted_lock(sc))
    elif alpha is not None:
        lock = fitted_lock(sc)
        relocked_result = evaluate_model(model, tokenizer, lock=lock, alpha=alpha, **kwargs)
        relocked, per_category["relocked"] = summarise(relocked_result), category_figures(relocked_result)
        applied = lock_summary(lock)
    sc.progress(Progress(stage="evaluate", step=3, total_steps=3), force=True)
    out = EvaluateOutput(base=base, unlocked=unlocked, relocked=relocked, alpha=alpha, lock=applied,
                         per_category=per_category,
                         samples=_samples(unlocked_result, relocked_result))
    sc.event("Evaluation on the held-out prompts: harmful rate base {}, unlocked {}, relocked {}.".format(
        *(_pct(e["harmful_rate"]) if e else "n/a" for e in (base, unlocked, relocked))),
        type="metrics", data=out.model_dump(mode="json"), once="evaluated")
    return out


def _samples(unlocked, relocked) -> list[AnswerSample]:
    """The first prompts of each kind (`SAMPLES_PER_KIND`) and the harmful prompts the
    relocked model answered with content (`MAX_ESCAPES`), with both models' answers;
    `relocked` None: no alpha chosen (at alpha 0 it is the unlocked result itself)."""
    def verdict(sample) -> str | None:
        return sample.label if sample.kind != "task" else ("correct" if sample.correct else "wrong")

    after = relocked.samples if relocked is not None else [None] * len(unlocked.samples)
    taken, escapes = dict.fromkeys(SAMPLES_PER_KIND, 0), 0
    out = []
    for before, locked in zip(unlocked.samples, after, strict=True):
        if taken[before.kind] < SAMPLES_PER_KIND[before.kind]:
            taken[before.kind] += 1
        elif locked is not None and locked.harmful and escapes < MAX_ESCAPES:
            escapes += 1
        else:
            continue
        out.append(AnswerSample(
            kind=before.kind, category=before.category, prompt=before.prompt,
            unlocked=before.response, unlocked_verdict=verdict(before),
            relocked=locked.response if locked else None,
            relocked_verdict=verdict(locked) if locked else None))
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
