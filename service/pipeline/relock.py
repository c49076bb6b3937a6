"""relock: choose the lock strength for this job and report the curve.

Everything here is measured on the evaluation prompts' `selection` half; the evaluate
stage confirms the chosen alpha on the held-out `confirmation` half, and the gate
decides on that (`loading.prompt_sets`).

Keeps the first alpha the gate itself would pass: `GatePolicy.decide` (harmful rate with
junk counted as harmful, over-refusal and junk increase over the base model, utility drop
against the unlocked model) is the one check both this stage and the gate apply, so relock
never picks an alpha that fails the gate on these prompts (the gate may still reject it on
the held-out half). The base model is measured here for that check. Alpha 0 in the grid
(the unlocked model, measured anyway) is tried first: a model that is already safe is
published without a shift (the paper always shifts; at small scale the shift costs benign
quality). Otherwise the first-token screen (`alpha_screen.py`: one forward pass over the
harmful prompts per alpha, no answers generated) shortlists alphas; answers are generated
for the shortlist first, and for the rest of the grid, smallest first, only if the
shortlist meets no gate; every alpha chosen was generated and judged. The output records
the screen (`screen`) and every alpha generated (`curve`, in the order tried). If no alpha
meets the gate at a conditional lock's own steering position, the same order is searched
again at each of the operator's `relock_fallback_positions` (`steering_position.py`); the
lock stored steers where the chosen alpha was measured, and each curve point records its
position. None chosen = the gate will reject.

Before the grid, the registry's lock is fitted to the fine-tuned model (`fit_to_model`):
a conditional lock's condition threshold is re-fitted on the calibration prompts it
carries (fine-tuning keeps the harmfulness direction but shrinks the feature, so the
base's threshold does not transfer); a head_bias lock passes unchanged. The lock so
fitted is what the grid, evaluate and publish apply: it is stored under
`jobs/.../relock/lock/`, and the fit is recorded in the output and as an event. A fit
that fails raises, and the workflow rejects the job (the gate fails closed). The fitted
lock's transfer to the fine-tuned model is measured too (`transfer.py`: the condition's
AUC and firing rates, the cosines of its directions re-measured on this model) and
recorded as `transfer`; the gate holds it against the operator's bounds. A conditional lock
also gets a task veto fitted on the selection half's task prompts (`task_veto.py`: the
condition stops firing where one layer tells them from every harmful calibration prompt),
part of the stored lock, recorded as `veto`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from service.pipeline import alpha_screen, steering_position, task_veto
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
from service.pipeline.transfer import check_transfer
from service.pipeline.transfer import describe as describe_transfer
from service.state.records import AlphaPoint, AlphaScreen, Figures, Progress, RelockOutput


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
    lock, veto = task_veto.fit(sc, model, tokenizer, lock, sets["tasks"])
    transfer = check_transfer(model, tokenizer, lock, fit_record)  # the gate holds it against the policy's bounds
    sc.event(describe_transfer(transfer), type="metrics", data=transfer.model_dump(), once="transfer")
    unlocked = summarise(evaluate_model(model, tokenizer, **common, **sets))
    grid = sc.settings.alpha_grid
    positions = steering_position.to_try(sc.settings, lock)
    rest = [a for a in grid if a != 0]
    total_steps = len(grid) + len(rest) * (len(positions) - 1)
    cut_short: set[tuple[float, str | None]] = set()

    def measure(alpha: float) -> Figures:
        """Harmful prompts first; the safe and task prompts only if those pass (else the
        alpha already fails, whatever they would show). Applies `lock` as the search has
        it now (at the position being searched)."""
        if alpha == 0:
            return unlocked
        harmful = summarise(evaluate_model(model, tokenizer, lock=lock, alpha=alpha, harmful=sets["harmful"], **common))
        if policy.harmful_reasons(base, harmful):
            cut_short.add((alpha, steering_position.own(lock)))
            return harmful
        rest = summarise(evaluate_model(model, tokenizer, lock=lock, alpha=alpha, safe=sets["safe"],
                                        tasks=sets["tasks"], **common))
        return {name: harmful[name] if harmful[name] is not None else rest.get(name) for name in harmful}

    screen: AlphaScreen | None = None

    def report(step: int, point: dict, reasons: list[str]) -> None:
        position = steering_position.own(lock) if point["alpha"] != 0 else None
        point["position"] = position
        verdict = "meets the gate" if not reasons else "fails the gate: " + "; ".join(reasons)
        if (point["alpha"], position) in cut_short:
            verdict = ("fails the gate on its answers to harmful prompts: " + "; ".join(policy.harmful_reasons(
                base, {"harmful_rate": point["harmful_rate"], "junk_rate": point["junk_rate"]}))
                + " (safe and task prompts not asked)")
        point.update(_screened(screen, point["alpha"]))  # the curve's point too: what the screen saw there
        fallback = position not in (None, positions[0])
        where = f" steering {position}" if fallback else ""
        sc.event(f"alpha {point['alpha']:g}{where}{_why_generated(screen, point['alpha'])}: harmful rate "
                 f"{_pct(point['harmful_rate'])}, utility {_pct(point['utility'])}, over-refusal "
                 f"{_pct(point['over_refusal'])}, junk {_pct(point['junk_rate'])}; {verdict}",
                 type="metrics", data=point, once=f"alpha:{point['alpha']}" + (f"@{position}" if fallback else ""))
        sc.progress(Progress(stage="relock", step=step, total_steps=total_steps))

    common_choice = {"base": base, "unlocked": unlocked, "policy": policy, "report": report}
    chosen, curve = choose_alpha([a for a in grid if a == 0], measure, **common_choice)  # measured already
    if chosen is None and rest:
        # The screen reads the first answer token, which every position steers alike: one screen orders all.
        screen = alpha_screen.screen(model, tokenizer, lock, sets["harmful"], rest, policy.max_harmful_rate)
        sc.event(alpha_screen.describe(screen), type="metrics", data=screen.model_dump(), once="alpha_screen")
        for i, position in enumerate(positions):
            if i:
                sc.event(steering_position.describe_fallback(positions[i - 1], position), once=f"position:{position}")
                lock = steering_position.at(lock, position)
            chosen, tried = choose_alpha(alpha_screen.search_order(rest, screen), measure,
                                         first_step=len(curve) + 1, **common_choice)
            curve += tried
            if chosen is not None:
                break
        generated = [point["alpha"] for point in curve if point["alpha"] != 0]
        screen = screen.model_copy(update={
            "generated": generated, "full_search": any(a not in screen.shortlist for a in generated)})
    stored = store_fitted_lock(sc, lock)  # at the position the chosen alpha was measured (the last searched if none)
    if chosen is None:
        sc.event("No alpha in the grid met the gate (harmful rate, over-refusal, utility and junk).",
                 level="warn", once="no_alpha")
    elif chosen == 0:
        sc.event("Chose alpha 0: the fine-tuned model already meets the gate; "
                 "the lock is kept at zero strength.", once="alpha_chosen")
    else:
        sc.event(f"Chose alpha {chosen:g}.", once="alpha_chosen")
    return RelockOutput(alpha=chosen, curve=[AlphaPoint(**point) for point in curve], base=base, unlocked=unlocked,
                        policy=policy.model_dump(), lock=stored.model_copy(update={"fit": fit_record}), screen=screen,
                        transfer=transfer, veto=veto)


def _screened(screen: AlphaScreen | None, alpha: float) -> dict[str, float]:
    """The screen's figures at `alpha` as curve-point fields (none if it was not screened)."""
    for point in screen.points if screen else ():
        if point.alpha == alpha:
            return {"first_token_refusal": point.first_token_refusal}
    return {}


def _why_generated(screen: AlphaScreen | None, alpha: float) -> str:
    """Why relock generated answers at `alpha`, for its event line."""
    if screen is None or alpha == 0 or screen.unavailable:
        return ""
    if alpha in screen.shortlist:
        return " (shortlisted by the first-token screen)"
    return " (past the shortlist: the full search)"


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
    first_step: int = 1,
) -> tuple[float | None, list[dict]]:
    """The first alpha of `grid`, in its order, whose measurement `policy.decide` passes
    (None if none does), and the curve measured up to it; `report(step, point, reasons)`
    per alpha, steps counted from `first_step`."""
    curve: list[dict] = []
    for step, alpha in enumerate(grid, start=first_step):
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
