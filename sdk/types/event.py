"""`JobEvent`: one line of a job's log, or a metrics record."""

from __future__ import annotations

from typing import Any, Literal

from sdk.types._base import BaseModel


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: float
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None
