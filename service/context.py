"""Everything a request or a worker needs, built once from `Settings`.

The API process builds this too, so it must stay light: the object store and the
registry read JSON and bytes; torch is only imported by the pipeline stages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from service.mirror import copy_job
from service.settings import Settings
from service.state.kv import open_kv
from service.state.records import JobRecord
from service.state.repo import Records


@dataclass
class ServiceContext:
    settings: Settings
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when this worker shuts down: a running job stops at its next training step and
    is handed back to the queue (workflow `HandedBack`), resumable by another worker."""

    @cached_property
    def store(self) -> Any:
        from lock_registry.store import open_store

        return open_store(self.settings.resolved_store_url, endpoint_url=self.settings.s3_endpoint_url)

    @cached_property
    def registry(self) -> Any:
        from lock_registry.registry import LockRegistry

        return LockRegistry(self.store)

    @cached_property
    def records(self) -> Records:
        kv = open_kv(self.settings.resolved_redis_url, self.settings.data_dir / "state.sqlite3")
        return Records(kv, self.settings.api_key_pepper, on_job_change=self._mirror_job)

    def _mirror_job(self, job: JobRecord) -> None:
        """Keep `jobs/{tenant}/{job}/job.json` equal to the record (best effort: `service.mirror`)."""
        copy_job(self, job)
