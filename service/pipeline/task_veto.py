"""relock's task veto: keep the fitted conditional lock off the evaluation's task prompts.

Fitted on the selection half's task prompts (lock_registry's `veto.py`: a second reading
that keeps every harmful calibration prompt fired), so the evaluate stage and the gate
measure its effect on the held-out confirmation half. Operators turn it off with the
`task_veto` setting; locks without a condition get none.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from service.pipeline.context import StageContext
from service.state.records import TaskVeto

VETOED_KINDS = ("conditional",)


def fit(sc: StageContext, model: Any, tokenizer: Any, lock: Any, tasks: list[Any]) -> tuple[Any, TaskVeto | None]:
    """(`lock` with the veto where one helps, the record), or (`lock`, None) when not fitted."""
    if not sc.settings.task_veto or lock.manifest.kind not in VETOED_KINDS:
        return lock, None
    from lock_registry.kinds.conditional.veto import fit_task_veto

    vetoed, found = fit_task_veto(model, tokenizer, lock, [item.prompt for item in tasks])
    record = TaskVeto(**asdict(found))
    sc.event(describe(record), type="metrics", data=record.model_dump(), once="task_veto")
    return vetoed, record


def describe(veto: TaskVeto) -> str:
    """The veto as one event line."""
    counted = (f"the fitted condition fires on {veto.tasks_fired} of {veto.num_tasks} task prompts "
               "(selection half)")
    if veto.layer is None:
        return f"Task veto: none added ({veto.reason}); {counted}."
    return (f"Task veto at layer {veto.layer} (threshold {veto.threshold:.4f}, gap {veto.gap:+.4f}): {counted}, "
            f"{veto.tasks_fired_after} with the veto; all {veto.num_harmful} harmful calibration prompts stay fired.")
