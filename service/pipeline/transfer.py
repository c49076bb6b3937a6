"""The transfer check: does the lock taken from the base still read the fine-tuned model?

SafetyLock rests on fine-tuned models keeping the base's safety directions. relock checks
that on each job's model, on the labelled calibration prompts a conditional lock carries
(held out when the lock was taken, so never fitted on):
- the condition's AUC (harmful vs benign, along the lock's condition direction) and its
  firing rates at the threshold relock fitted (the fit's own figures, `fit_to_model`);
- the direction cosines: the lock's condition direction and each steered head's direction
  against the same direction re-measured on the fine-tuned model the way it was taken from
  the base (mean over harmful minus mean over benign prompts, at the last prompt token;
  lock_registry's `direction_transfer`).
The gate rejects a job whose figures fall outside the operator's bounds
(`GatePolicy.transfer_reasons`, reason code `lock_not_transferred`). A head_bias lock (the
paper's) has no condition and carries none of the contrastive pairs its directions were
taken from, so nothing can be re-measured: its check records only that (notes), and the
gate checks nothing for it. A lock that does not transfer rejects the job, or sends it to
the operator's opt-in fallback repair (repair.py: retraining with safety data mixed in; no
lock is taken from the fine-tuned model).
"""

from __future__ import annotations

from typing import Any

from service.state.records import TransferCheck

MEASURED_KINDS = ("conditional",)  # kinds that carry labelled prompts to re-measure on


def check_transfer(model: Any, tokenizer: Any, lock: Any, fit: dict | None) -> TransferCheck:
    """The transfer figures of `lock` (already fitted to `model`; `fit`: relock's record of
    the threshold fit) on `model`."""
    kind = lock.manifest.kind
    if kind not in MEASURED_KINDS:
        note = (f"a {kind} lock has no condition, and carries none of the contrastive pairs its head directions "
                "were taken from (only their fingerprint), so its transfer cannot be re-measured on the fine-tuned "
                "model: not checked")
        return TransferCheck(notes=[note])
    from lock_registry.kinds.conditional.fit import direction_transfer

    directions = direction_transfer(model, tokenizer, lock)
    heads = directions.head_cosines
    fit = fit or {}
    return TransferCheck(
        num_calibration=fit.get("num_calibration"),
        condition_auc=fit.get("auc"),
        condition_true_positive_rate=fit.get("true_positive_rate"),
        condition_false_positive_rate=fit.get("false_positive_rate"),
        condition_cosine=directions.condition_cosine,
        head_cosines=heads,
        head_cosine_mean=sum(heads) / len(heads) if heads else None,
    )


def describe(check: TransferCheck) -> str:
    """The check as one event line."""
    if check.condition_auc is None and check.head_cosine_mean is None:
        return "Transfer check: " + "; ".join(check.notes) + "."
    heads = check.head_cosines or []
    return (f"Transfer check on the lock's {check.num_calibration} calibration prompts: on the fine-tuned model the "
            f"condition's AUC is {_num(check.condition_auc)}, it fires on {_pct(check.condition_true_positive_rate)} "
            f"of harmful and {_pct(check.condition_false_positive_rate)} of benign prompts; cosine with the "
            f"re-measured directions: condition {_num(check.condition_cosine)}, steered heads mean "
            f"{_num(check.head_cosine_mean)} (lowest {_num(min(heads) if heads else None)}).")


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"
