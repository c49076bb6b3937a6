"""Where the service keeps things in the object store, and how it writes JSON there.

`files/{tenant}/{file}`: an uploaded training file.
`jobs/{tenant}/{job}/`: `job.json` (the record's mirror), `events.json`, `stages/*.json`,
the trained artifacts and `report.json`.
`models/{tenant}/{model}/`: a published model, `manifest.json` last.
"""

from __future__ import annotations

import json
from typing import Any

from service.state.records import JobRecord


def file_key(tenant: str, file_id: str) -> str:
    return f"files/{tenant}/{file_id}"


def job_key(job: JobRecord, *parts: str) -> str:
    return "/".join(("jobs", job.tenant, job.id, *parts))


def model_key(tenant: str, model_id: str, *parts: str) -> str:
    return "/".join(("models", tenant, model_id, *parts))


def dumps(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()
