"""Records on a KV: tenants and hashed API keys, files, jobs (conditional updates), events, models.

Every lookup that takes a tenant returns None for another tenant's id, so the API can
answer 404 without telling whether the id exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from service.state.kv import KV
from service.state.records import (
    ApiKeyRecord,
    EventRecord,
    FileRecord,
    JobRecord,
    ModelRecord,
    TenantRecord,
    Usage,
    new_id,
)

R = TypeVar("R", FileRecord, JobRecord, ModelRecord)
CAP_LEASE_SECONDS = 10.0
"""How long one create may hold its tenant's job-creation lease (it counts and adds)."""


class JobConflict(Exception):
    """A conditional job update whose precondition no longer holds."""


class QuotaExceeded(Exception):
    """A tenant's stored files or bytes would pass its quota."""

    def __init__(self, what: str, used: int, limit: int, adding: int = 1) -> None:
        super().__init__(f"{what}: {used} used + {adding} > quota {limit}")
        self.what, self.used, self.limit, self.adding = what, used, limit, adding


class TooManyActiveJobs(Exception):
    """The tenant already has its cap of unfinished jobs."""

    def __init__(self, active: int, limit: int) -> None:
        super().__init__(f"{active} unfinished jobs, limit {limit}")
        self.active, self.limit = active, limit


class Records:
    """All service records; `on_job_change` mirrors each job write (to the object store)."""

    def __init__(self, kv: KV, pepper: str, on_job_change: Callable[[JobRecord], None] | None = None) -> None:
        self.kv = kv
        self._pepper = pepper.encode()
        self._on_job_change = on_job_change

    # tenants ------------------------------------------------------------------------
    def hash_key(self, api_key: str) -> str:
        return hmac.new(self._pepper, api_key.encode(), hashlib.sha256).hexdigest()

    def derived_id(self, prefix: str, seed: str) -> str:
        """The id `seed` always maps to: unguessable without the pepper, like `new_id`."""
        return f"{prefix}-{self.hash_key('id:' + seed)[:24]}"

    def create_tenant(
        self, name: str, role: str = "customer", *, weights_release: bool = False
    ) -> tuple[TenantRecord, str]:
        """A new tenant and its API key; only the key's HMAC is stored, the key is shown once."""
        tenant = TenantRecord(id=new_id("tenant"), name=name, role=role, weights_release=weights_release)
        self.kv.put(f"tenant:{tenant.id}", tenant.model_dump_json())
        _, api_key = self.add_key(tenant.id)
        self.kv.append("tenants", tenant.id)
        return tenant, api_key

    # API keys (several per tenant, so a key can be rotated without downtime) ----------
    def add_key(self, tenant_id: str) -> tuple[ApiKeyRecord, str]:
        """A new key for the tenant: (its record, the key, shown this once)."""
        api_key = "sk-" + secrets.token_urlsafe(32)
        record = ApiKeyRecord(id=new_id("key"), tenant=tenant_id, hint=api_key[-4:])
        digest = self.hash_key(api_key)
        self.kv.put(f"apikeymeta:{record.id}", record.model_dump_json())
        self.kv.append(f"apikeys:{tenant_id}", f"{record.id}:{digest}")
        self.kv.put(f"apikey:{digest}", tenant_id)  # last: the key works once its bookkeeping exists
        return record, api_key

    def list_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        keys = []
        for entry in self.kv.items(f"apikeys:{tenant_id}"):
            raw = self.kv.get(f"apikeymeta:{entry.split(':', 1)[0]}")
            if raw:
                keys.append(ApiKeyRecord.model_validate_json(raw))
        return keys

    def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        """Revoke one key of the tenant at once; False if it has no such key."""
        for entry in self.kv.items(f"apikeys:{tenant_id}"):
            entry_id, _, digest = entry.partition(":")
            if entry_id == key_id:
                self.kv.delete(f"apikey:{digest}")  # first: the key stops working
                self.kv.remove(f"apikeys:{tenant_id}", entry)
                self.kv.delete(f"apikeymeta:{key_id}")
                return True
        return False

    def rotate_keys(self, tenant_id: str) -> tuple[ApiKeyRecord, str]:
        """A new key for the tenant, and every earlier key revoked."""
        earlier = self.list_keys(tenant_id)
        record, api_key = self.add_key(tenant_id)
        for key in earlier:
            self.revoke_key(tenant_id, key.id)
        return record, api_key

    def tenant_for_key(self, api_key: str) -> TenantRecord | None:
        tenant_id = self.kv.get(f"apikey:{self.hash_key(api_key)}")
        return self.get_tenant(tenant_id) if tenant_id else None

    def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        raw = self.kv.get(f"tenant:{tenant_id}")
        return TenantRecord.model_validate_json(raw) if raw else None

    def update_tenant(self, tenant_id: str, **changes: Any) -> TenantRecord | None:
        """Change a tenant's settings (weight release, suspension, quotas) by compare-and-set;
        None for an unknown tenant."""
        while True:
            raw = self.kv.get(f"tenant:{tenant_id}")
            if raw is None:
                return None
            current = TenantRecord.model_validate_json(raw)
            tenant = TenantRecord.model_validate({**current.model_dump(), **changes})
            if self.kv.compare_and_set(f"tenant:{tenant_id}", raw, tenant.model_dump_json()):
                return tenant

    def tenants(self) -> list[TenantRecord]:
        return [t for i in self.kv.items("tenants") if (t := self.get_tenant(i))]

    # usage and quotas ---------------------------------------------------------------
    def usage(self, tenant_id: str) -> Usage:
        raw = self.kv.get(f"usage:{tenant_id}")
        return Usage.model_validate_json(raw) if raw else Usage()

    def reserve_file(self, tenant_id: str, size: int, max_files: int, max_bytes: int) -> Usage:
        """Count one more file of `size` bytes against the quotas, atomically; QuotaExceeded
        (and nothing counted) if it does not fit."""
        while True:
            raw = self.kv.get(f"usage:{tenant_id}")
            usage = Usage.model_validate_json(raw) if raw else Usage()
            if usage.files + 1 > max_files:
                raise QuotaExceeded("files", usage.files, max_files)
            if usage.bytes + size > max_bytes:
                raise QuotaExceeded("storage_bytes", usage.bytes, max_bytes, size)
            after = Usage(files=usage.files + 1, bytes=usage.bytes + size)
            if self.kv.compare_and_set(f"usage:{tenant_id}", raw, after.model_dump_json()):
                return after

    def release_file(self, tenant_id: str, size: int) -> None:
        """Give back what `reserve_file` counted (the file was deleted or never stored)."""
        while True:
            raw = self.kv.get(f"usage:{tenant_id}")
            usage = Usage.model_validate_json(raw) if raw else Usage()
            after = Usage(files=max(0, usage.files - 1), bytes=max(0, usage.bytes - size))
            if self.kv.compare_and_set(f"usage:{tenant_id}", raw, after.model_dump_json()):
                return

    # files --------------------------------------------------------------------------
    def add_file(self, record: FileRecord) -> None:
        self.kv.put(f"file:{record.id}", record.model_dump_json())
        self.kv.append(f"files:{record.tenant}", record.id)

    def get_file(self, tenant: str, file_id: str) -> FileRecord | None:
        raw = self.kv.get(f"file:{file_id}")
        record = FileRecord.model_validate_json(raw) if raw else None
        return record if record and record.tenant == tenant else None

    def file_ids(self, tenant: str) -> list[str]:
        """The tenant's file ids, newest first."""
        return self.kv.items(f"files:{tenant}")[::-1]

    def get_files(self, tenant: str, ids: list[str]) -> list[FileRecord]:
        """The tenant's files among `ids`, in their order, read in one round trip."""
        return _owned(FileRecord, tenant, self.kv.get_many([f"file:{i}" for i in ids]))

    def list_files(self, tenant: str) -> list[FileRecord]:
        return self.get_files(tenant, self.file_ids(tenant))

    def delete_file(self, record: FileRecord) -> None:
        self.kv.remove(f"files:{record.tenant}", record.id)
        self.kv.delete(f"file:{record.id}")

    # jobs ---------------------------------------------------------------------------
    def add_job(self, record: JobRecord) -> None:
        self._insert_job(record)
        self._mirror(record)

    def _insert_job(self, record: JobRecord) -> None:
        if not self.kv.put_if_absent(f"job:{record.id}", record.model_dump_json()):
            raise JobConflict(f"job {record.id} already exists")
        self.kv.append(f"jobs:{record.tenant}", record.id)
        self.kv.append(f"activejobs:{record.tenant}", record.id)

    def add_job_within_cap(self, record: JobRecord, max_active: int) -> None:
        """Add the job unless its tenant has `max_active` unfinished jobs (TooManyActiveJobs).

        Counted and added under a per-tenant lease, so concurrent creates cannot both
        slip under the cap; the store copy is written after the lease is given back.
        """
        lease, deadline = f"jobcreate:{record.tenant}", time.monotonic() + CAP_LEASE_SECONDS
        while not self.kv.acquire(lease, record.id, CAP_LEASE_SECONDS):
            if time.monotonic() > deadline:
                raise RuntimeError(f"tenant {record.tenant}: job creation lease still held after {CAP_LEASE_SECONDS} s")
            time.sleep(0.002)
        try:
            active = len(self._active_job_ids(record.tenant))
            if active >= max_active:
                raise TooManyActiveJobs(active, max_active)
            self._insert_job(record)
        finally:
            self.kv.release(lease, record.id)
        self._mirror(record)

    def get_job(self, job_id: str) -> JobRecord | None:
        raw = self.kv.get(f"job:{job_id}")
        return JobRecord.model_validate_json(raw) if raw else None

    def get_job_for(self, tenant: str, job_id: str) -> JobRecord | None:
        record = self.get_job(job_id)
        return record if record and record.tenant == tenant else None

    def job_ids(self, tenant: str) -> list[str]:
        """The tenant's job ids, newest first."""
        return self.kv.items(f"jobs:{tenant}")[::-1]

    def get_jobs(self, tenant: str, ids: list[str]) -> list[JobRecord]:
        """The tenant's jobs among `ids`, in their order, read in one round trip."""
        return _owned(JobRecord, tenant, self.kv.get_many([f"job:{i}" for i in ids]))

    def list_jobs(self, tenant: str) -> list[JobRecord]:
        return self.get_jobs(tenant, self.job_ids(tenant))

    def _active_job_ids(self, tenant: str) -> list[str]:
        """The tenant's unfinished jobs, from its index of them (`activejobs:`), so the cap
        costs O(cap) and not O(all jobs). Finished jobs are pruned from the index here; a
        tenant whose jobs predate the index has it built once from its full job list.
        Called under the tenant's job-creation lease."""
        index = f"activejobs:{tenant}"
        if self.kv.get(f"activejobs-built:{tenant}") is None:
            for job_id in self.kv.items(index):
                self.kv.remove(index, job_id)
            for job in self.list_jobs(tenant)[::-1]:
                if not job.terminal:
                    self.kv.append(index, job.id)
            self.kv.put(f"activejobs-built:{tenant}", "1")
        ids = self.kv.items(index)
        active = {j.id for j in self.get_jobs(tenant, ids) if not j.terminal}
        for job_id in ids:
            if job_id not in active:
                self.kv.remove(index, job_id)
        return [i for i in ids if i in active]

    def update_job(
        self,
        job_id: str,
        change: Callable[[JobRecord], None],
        *,
        only_if: Iterable[str] | None = None,
    ) -> JobRecord:
        """Apply `change` atomically; raise JobConflict if the status is not in `only_if`."""
        allowed = set(only_if) if only_if is not None else None
        while True:
            raw = self.kv.get(f"job:{job_id}")
            if raw is None:
                raise JobConflict(f"job {job_id} does not exist")
            record = JobRecord.model_validate_json(raw)
            if allowed is not None and record.status not in allowed:
                raise JobConflict(f"job {job_id} is {record.status}, not {sorted(allowed)}")
            change(record)
            if self.kv.compare_and_set(f"job:{job_id}", raw, record.model_dump_json()):
                self._mirror(record)
                return record

    def _mirror(self, record: JobRecord) -> None:
        if self._on_job_change is not None:
            self._on_job_change(record)

    # events -------------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        type: str = "message",
        data: dict[str, Any] | None = None,
        once: str | None = None,
    ) -> EventRecord | None:
        """Append an event; with `once`, an event of that key is written at most once per job."""
        if once is not None and not self.kv.put_if_absent(f"eventonce:{job_id}:{once}", "1"):
            return None
        seq = self.kv.incr(f"eventseq:{job_id}")
        event = EventRecord(id=f"ftevent-{job_id.split('-', 1)[-1]}-{seq:06d}", level=level, message=message, type=type, data=data)
        self.kv.append(f"events:{job_id}", event.model_dump_json())
        return event

    def events(self, job_id: str) -> list[EventRecord]:
        return [EventRecord.model_validate_json(r) for r in self.kv.items(f"events:{job_id}")]

    # models -------------------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> None:
        if self.kv.put_if_absent(f"model:{record.id}", record.model_dump_json()):
            self.kv.append(f"models:{record.tenant}", record.id)

    def get_model(self, tenant: str, model_id: str) -> ModelRecord | None:
        raw = self.kv.get(f"model:{model_id}")
        record = ModelRecord.model_validate_json(raw) if raw else None
        return record if record and record.tenant == tenant else None

    def model_ids(self, tenant: str) -> list[str]:
        """The tenant's model ids, newest first."""
        return self.kv.items(f"models:{tenant}")[::-1]

    def get_models(self, tenant: str, ids: list[str]) -> list[ModelRecord]:
        """The tenant's models among `ids`, in their order, read in one round trip."""
        return _owned(ModelRecord, tenant, self.kv.get_many([f"model:{i}" for i in ids]))

    def list_models(self, tenant: str) -> list[ModelRecord]:
        return self.get_models(tenant, self.model_ids(tenant))


def _owned(model: type[R], tenant: str, raws: list[str | None]) -> list[R]:
    """The records among `raws` that exist and belong to `tenant`."""
    records = (model.model_validate_json(raw) for raw in raws if raw)
    return [r for r in records if r.tenant == tenant]
