"""A running job's lease: a KV key with an expiry, renewed by a heartbeat thread.

Two workers never run one job at once: the lease is taken before the job runs, and a
worker that dies stops renewing it, so it lapses and a redelivered task may take it.
A renewal that fails (Redis unreachable for a moment) is tried again at the next beat
instead of ending the heartbeat. Before anything is published the worker `confirm`s that
it still holds the lease: one that lost it (another worker took the job) publishes nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Self

from service.state.kv import KV

log = logging.getLogger(__name__)


def lease_key(job_id: str) -> str:
    return f"lease:{job_id}"


class LeaseLost(Exception):
    """Another worker holds the job's lease now: this one must leave the job alone."""


class JobLease:
    """`acquire` once, then use as a context manager: it beats while the job runs."""

    def __init__(self, kv: KV, job_id: str, ttl: float) -> None:
        self.kv, self.job_id, self.key, self.ttl = kv, job_id, lease_key(job_id), ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{job_id}")

    def acquire(self) -> bool:
        return self.kv.acquire(self.key, self.owner, self.ttl)

    def confirm(self) -> None:
        """Renew the lease now; raise LeaseLost if another worker holds it."""
        if not self.kv.acquire(self.key, self.owner, self.ttl):
            raise LeaseLost(f"job {self.job_id}: another worker holds its lease")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        try:
            self.kv.release(self.key, self.owner)
        except Exception:  # it lapses by itself after ttl
            log.warning("job %s: could not release the lease; it lapses in %s s", self.job_id, self.ttl, exc_info=True)

    def _beat(self) -> None:
        while not self._stopped.wait(self.ttl / 3):
            try:
                if not self.kv.acquire(self.key, self.owner, self.ttl):
                    log.error("job %s: lost the lease to another worker", self.job_id)
            except Exception:  # Redis unreachable: try again at the next beat, the lease lasts ttl
                log.warning("job %s: lease renewal failed; retrying", self.job_id, exc_info=True)
