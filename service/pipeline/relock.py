"""relock: choose the lock strength for this job and report the curve.

Everything here is measured on the evaluation prompts' `selection` half; the evaluate
stage confirms the chosen alpha on the held-out `confirmation` half, and the gate
decides on that (`loading.prompt_sets`).

Tries each alpha of the grid, smallest first, and keeps the first one the gate itself
would pass: `GatePolicy.decide` (harmful rate with junk counted as harmful, over-refusal
and junk increase over the base model, utility drop against the unlocked model) is the one check both this
stage and the gate apply, so relock never picks an alpha that fails the gate on these
prompts (the gate may still reject it on the held-out half). The base model is measured
here for that check. Alpha 0
in the grid means a model that is already safe is published without a shift (the paper
always shifts; at small scale the shift costs benign quality). None chosen = the gate
will reject.

Before the grid, the registry's lock is fitted to the fine-tuned model (`fit_to_model`):
a conditional lock's condition threshold is re-fitted on the calibration prompts it
carries (fine-tuning keeps the harmfulness direction but shrinks the feature, so the
base's threshold does not transfer); a head_bias lock passes unchanged. The lock so
fitted is what the grid, evaluate and publish apply: it is stored under
`jobs/.../relock/lock/`, and the fit is recorded in the output and as an event. A fit
that fails raises, and the workflow rejects the job (the gate fails closed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from service.pipeline.base_evaluation import base_evaluation
from service.pipeline.context import StageContext
from service.pipeline.gate import GatePolicy, policy_for
from service.pipeline.loading import (
    job_lock,
    prompt_sets,
    store_fitted_lock,
    summarise,
    trained_model,
)
from service.state.records import AlphaPoint, Figures, Progress, RelockOutput


def run(sc: StageContext) -> RelockOutput:
    from lock_registry.apply import check_fits
    from lock_registry.fit import fit_to_model
    from service.evaluation.suite import evaluate_model

    policy = policy_for(sc)
    registry_lock = job_lock(sc)
    sets = prompt_sets(sc, "selection")
    judge = sc.judge()
    sc.event(f"Judging evaluation answers with {judge.name}.", once="judge")
    common = {"max_new_tokens": sc.settings.eval_max_new_tokens, "keep_samples": False, "judge": judge}
    base = base_evaluation(sc, sets)  # loads the base (then lets it go) only if not stored
    model, tokenizer = trained_model(sc)
    check_fits(model, registry_lock)  # a lock of another geometry is refused, naming the mismatch
    lock, fit = fit_to_model(model, tokenizer, registry_lock)
    fit_record = _record_fit(sc, registry_lock, fit)
    stored = store_fitted_lock(sc, lock)
    unlocked = summarise(evaluate_model(model, tokenizer, **common, **sets))
    grid = sc.settings.alpha_grid
    cut_short: set[float] = set()

    def measure(alpha: float) -> Figures:
        """Harmful prompts first; the safe and task prompts only if those pass (else the
        alpha already fails, whatever they would show)."""
        if alpha == 0:
            return unlocked
        harmful = summarise(evaluate_model(model, tokenizer, lock=lock, alpha=alpha, harmful=sets["harmful"], **common))
        if policy.harmful_reasons(base, harmful):
            cut_short.add(alpha)
            return harmful
        rest = summarise(evaluate_model(model, tokenizer, lock=lock, alpha=alpha, safe=sets["safe"],
                                        tasks=sets["tasks"], **common))
        return {name: harmful[name] if harmful[name] is not None else rest.get(name) for name in harmful}

    def report(step: int, point: dict, reasons: list[str]) -> None:
        verdict = "meets the gate" if not reasons else "fails the gate: " + "; ".join(reasons)
        if point["alpha"] in cut_short:
            verdict = ("fails the gate on its answers to harmful prompts: " + "; ".join(policy.harmful_reasons(
                base, {"harmful_rate": point["harmful_rate"], "junk_rate": point["junk_rate"]}))
                + " (safe and task prompts not asked)")
        sc.event(f"alpha {point['alpha']:g}: harmful rate {_pct(point['harmful_rate'])}, utility {_pct(point['utility'])}, "
                 f"over-refusal {_pct(point['over_refusal'])}, junk {_pct(point['junk_rate'])}; {verdict}",
                 type="metrics", data=point, once=f"alpha:{point['alpha']}")
        sc.progress(Progress(stage="relock", step=step, total_steps=len(grid)))

    chosen, curve = choose_alpha(grid, measure, base=base, unlocked=unlocked, policy=policy, report=report)
    if chosen is None:
        sc.event("No alpha in the grid met the gate (harmful rate, over-refusal, utility and junk).",
                 level="warn", once="no_alpha")
    elif chosen == 0:
        sc.event("Chose alpha 0: the fine-tuned model already meets the gate; "
                 "the lock is kept at zero strength.", once="alpha_chosen")
    else:
        sc.event(f"Chose alpha {chosen:g}.", once="alpha_chosen")
    return RelockOutput(alpha=chosen, curve=[AlphaPoint(**point) for point in curve], base=base, unlocked=unlocked,
                        policy=policy.model_dump(), lock=stored.model_copy(update={"fit": fit_record}))


def _record_fit(sc: StageContext, lock: Any, fit: Any) -> dict | None:
    """The threshold fit as relock's output records it (None for kinds that need none), also an event."""
    if fit is None:
        return None
    fields = lock.kind_fields  # the kind's typed manifest fields (a conditional lock's here)
    record = {"previous_threshold": float(fields.threshold), **asdict(fit),
              "num_calibration": int(fields.num_calibration)}
    sc.event(f"Fitted the {lock.manifest.kind} lock to the fine-tuned model: condition threshold "
             f"{record['threshold']:.4f} (the lock's {record['previous_threshold']:.4f}); on its "
             f"{record['num_calibration']} calibration prompts AUC {fit.auc:.3f}, fires on "
             f"{_pct(fit.true_positive_rate)} of harmful and {_pct(fit.false_positive_rate)} of benign ones.",
             type="metrics", data=record, once="lock_fit")
    return record


def choose_alpha(
    grid: Sequence[float],
    measure: Callable[[float], Figures],
    *,
    base: Figures,
    unlocked: Figures,
    policy: GatePolicy,
    report: Callable[[int, dict, list[str]], None] | None = None,
) -> tuple[float | None, list[dict]]:
    """The smallest alpha of `grid` whose measurement `policy.decide` passes (None if
    none does), and the curve measured up to it; `report(step, point, reasons)` per alpha."""
    curve: list[dict] = []
    for step, alpha in enumerate(grid, start=1):
        result = measure(alpha)
        passed, reasons = policy.decide(base, unlocked, result)
        point = {"alpha": alpha, "harmful_rate": result["harmful_rate"], "utility": result["utility"],
                 "over_refusal": result["over_refusal_rate"], "junk_rate": result["junk_rate"]}
        curve.append(point)
        if report is not None:
            report(step, point, reasons)
        if passed:
            return alpha, curve
    return None, curve


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
