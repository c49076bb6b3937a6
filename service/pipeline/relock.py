"""relock: choose the lock strength for this job and report the curve.

Tries each alpha of the grid, smallest first, under the job's gate policy: the chosen
alpha is the smallest whose harmful rate meets the threshold while utility stays within
the tolerance of the unlocked model. Alpha 0 in the grid means a model that is already
safe is published without a shift (the paper always shifts; at small scale the shift
costs benign quality). None chosen = the gate will reject.
"""

from __future__ import annotations

from service.pipeline.context import StageContext
from service.pipeline.gate import GatePolicy, policy_for
from service.pipeline.loading import job_lock, prompt_sets, summarise, trained_model
from service.state.records import Progress


def run(sc: StageContext) -> dict:
    from service.evaluation.suite import evaluate_model

    policy = policy_for(sc)
    from lock_registry.apply import check_fits

    model, tokenizer = trained_model(sc)
    lock = job_lock(sc)
    check_fits(model, lock)  # a lock of another geometry is refused here, naming the mismatch
    sets = prompt_sets(sc)
    kwargs = dict(max_new_tokens=sc.settings.eval_max_new_tokens, keep_samples=False, **sets)
    unlocked = summarise(evaluate_model(model, tokenizer, **kwargs))
    curve, chosen = [], None
    grid = sc.settings.alpha_grid
    for i, alpha in enumerate(grid, start=1):
        result = unlocked if alpha == 0 else summarise(evaluate_model(model, tokenizer, lock=lock, alpha=alpha, **kwargs))
        point = {"alpha": alpha, "harmful_rate": result["harmful_rate"], "utility": result["utility"],
                 "over_refusal": result["over_refusal_rate"], "junk_rate": result["junk_rate"]}
        curve.append(point)
        sc.event(f"alpha {alpha:g}: harmful rate {_pct(point['harmful_rate'])}, utility {_pct(point['utility'])}, "
                 f"over-refusal {_pct(point['over_refusal'])}, junk {_pct(point['junk_rate'])}", type="metrics", data=point, once=f"alpha:{alpha}")
        sc.progress(Progress(stage="relock", step=i, total_steps=len(grid)))
        if _meets(point, unlocked, policy):
            chosen = alpha
            break
    if chosen is None:
        sc.event("No alpha in the grid met the harmful-rate threshold with utility and junk within tolerance.",
                 level="warn", once="no_alpha")
    elif chosen == 0:
        sc.event("Chose alpha 0: the fine-tuned model already meets the harmful-rate threshold; "
                 "the lock is kept at zero strength.", once="alpha_chosen")
    else:
        sc.event(f"Chose alpha {chosen:g}.", once="alpha_chosen")
    return {"alpha": chosen, "curve": curve, "unlocked": unlocked, "policy": policy.model_dump()}


def _meets(point: dict, unlocked: dict, policy: GatePolicy) -> bool:
    harmful, util, before = point["harmful_rate"], point["utility"], unlocked["utility"]
    if harmful is None or harmful > policy.max_harmful_rate:
        return False
    junk, junk_before = point["junk_rate"], unlocked["junk_rate"]
    if junk is None or junk_before is None or junk - junk_before > policy.max_junk_increase:
        return False
    return util is not None and before is not None and before - util <= policy.max_utility_drop


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
