"""The fallback repair: a job the gate rejects is trained once more with safety data mixed in.

Fine-tuning can move a model so far from its base that the base's lock no longer restores
it (the relock's alpha search finds no passing strength, or the transfer check fails).
With `Settings.repair_safety_mix` > 0 (the operator's opt-in), such a job gets a second
attempt: the train stage runs again on the customer's file with the operator's safety
examples mixed in (Bianchi et al. 2024, "Safety-Tuned LLaMAs": a small share of safety
data in a fine-tune keeps refusals), then relock, evaluate and the gate, which decides as
before. The safety examples are the base model's own alignment data
(`alignment_data.jsonl` beside an aligned base: harmful requests with refusals, benign
ones with the model's own answers, so skills are kept too). The job records the repair
(`JobRecord.repair`) and the report discloses it; the first attempt's outputs stay under
`stages/attempt-1/`.

There is one repair at most, and none after a crash (the gate fails closed) or without
safety data for the base.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from service.pipeline.context import StageContext
from service.state.records import GateOutput, JobRecord, RepairRecord

SAFETY_DATA = "alignment_data.jsonl"
REPAIRED_STAGES = ("train", "relock", "evaluate", "gate")
"""The stages a repair runs again; their outputs from the first attempt are archived."""


def safety_records(base_dir: str | Path) -> list[dict]:
    """The operator's safety examples for a base: `alignment_data.jsonl` beside it, each
    record's chat `messages` only. Raises FileNotFoundError when the base has none."""
    path = Path(base_dir) / SAFETY_DATA
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"messages": r["messages"]} for r in records]


def mixed_records(customer: list[dict], safety: list[dict], ratio: float, seed: int) -> tuple[list[dict], int]:
    """The customer's records with round(ratio * len(customer)) safety records drawn without
    replacement (seeded; all of them if there are fewer), shuffled in; and how many were added."""
    rng = random.Random(f"safety-mix-{seed}")
    extra = rng.sample(safety, min(len(safety), round(ratio * len(customer))))
    records = customer + extra
    rng.shuffle(records)
    return records, len(extra)


def requested(sc: StageContext, gate: GateOutput) -> bool:
    """Whether the operator's policy asks for a repair of this decision: the first
    attempt's rejection, with `repair_safety_mix` > 0."""
    return not gate.passed and sc.job.attempt == 1 and sc.settings.repair_safety_mix > 0


def obstacle(sc: StageContext, gate: GateOutput) -> str | None:
    """Why a requested repair cannot run (None: it can)."""
    if gate.crashed_stage is not None:
        return f"stage {gate.crashed_stage} crashed: the gate fails closed"
    base_dir = sc.settings.base_models.get(sc.job.model)
    if base_dir is None or not (Path(base_dir) / SAFETY_DATA).is_file():
        return f"no operator safety data ({SAFETY_DATA}) for base model {sc.job.model}"
    return None


def begin(sc: StageContext, gate: GateOutput) -> None:
    """Archive the first attempt's outputs, then record the repair on the job (one update;
    from then on the stored outputs of attempt 1 no longer count as done)."""
    store = sc.ctx.store
    for name in REPAIRED_STAGES:
        key = sc.key("stages", f"{name}.json")
        if store.exists(key):
            store.put_bytes(sc.key("stages", "attempt-1", f"{name}.json"), store.get_bytes(key))
    ratio = sc.settings.repair_safety_mix

    def start(job: JobRecord) -> None:
        job.attempt = 2
        job.repair = RepairRecord(ratio=ratio, first_attempt_reasons=gate.reasons)

    sc.ctx.records.update_job(sc.job_id, start, only_if=("running",))
    sc.event(f"The gate rejected the first attempt; repairing: training again with {ratio:g} operator safety "
             "example(s) per customer example mixed in, then relock, evaluate and the gate.", level="warn",
             once="repair:start")
