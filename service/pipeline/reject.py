"""reject: the report stays under `jobs/`, nothing goes under `models/`; the job fails."""

from __future__ import annotations

import time

from service.pipeline.context import FinalResult, StageContext
from service.pipeline.report import build_report
from service.state.records import ErrorInfo, GateOutput
from service.store_layout import dumps


def run(sc: StageContext) -> FinalResult:
    started = time.monotonic()
    gate = sc.output(GateOutput)
    reasons = (gate.reasons if gate else None) or ["the gate did not pass the model"]
    report = build_report(sc, "rejected", reasons)
    report["stage_seconds"]["reject"] = round(time.monotonic() - started, 3)
    sc.ctx.store.put_bytes(sc.key("report.json"), dumps(report))
    message = "The safety gate rejected the fine-tuned model: " + "; ".join(reasons) + "."
    return FinalResult(status="failed", error=ErrorInfo(code="gate_rejected", message=message))
