"""Records on both backends (SQLite for embedded, a private Redis for cluster): the same
behaviour for conditional writes, leases, tenant isolation, job transitions and events."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from service.state.kv import RedisKV, SqliteKV
from service.state.records import FileRecord, JobRecord, new_id
from service.state.repo import JobConflict, Records, TooManyActiveJobs


@pytest.fixture(params=["sqlite", "redis"])
def records(request, tmp_path) -> Records:
    if request.param == "sqlite":
        kv = SqliteKV(tmp_path / "state.sqlite3")
    else:
        kv = RedisKV(request.getfixturevalue("redis_server").url, namespace=f"test-{uuid.uuid4().hex}")
    return Records(kv, pepper="test-pepper")


def test_conditional_writes_and_leases(records: Records) -> None:
    kv = records.kv
    assert kv.put_if_absent("k", "1") and not kv.put_if_absent("k", "2")
    assert not kv.compare_and_set("k", "0", "3") and kv.get("k") == "1"
    assert kv.compare_and_set("k", "1", "3") and kv.get("k") == "3"
    assert kv.compare_and_set("fresh", None, "x") and not kv.compare_and_set("fresh", None, "y")
    assert kv.acquire("lease", "a", 0.5) and not kv.acquire("lease", "b", 0.5)
    assert kv.acquire("lease", "a", 0.5)  # the owner renews
    kv.release("lease", "b")  # not the owner: nothing happens
    assert not kv.acquire("lease", "b", 0.5)
    time.sleep(0.7)
    assert kv.acquire("lease", "b", 0.5), "an expired lease is free"


def test_api_keys_are_stored_hashed_and_tenants_isolated(records: Records) -> None:
    a, key_a = records.create_tenant("a")
    b, _ = records.create_tenant("b")
    assert records.tenant_for_key(key_a).id == a.id
    assert records.tenant_for_key(key_a + "x") is None
    assert records.kv.get(f"apikey:{key_a}") is None and records.kv.get(f"apikey:{records.hash_key(key_a)}") == a.id
    f = FileRecord(id=new_id("file"), tenant=a.id, bytes=1, filename="f", num_examples=1, sha256="0")
    records.add_file(f)
    assert records.get_file(a.id, f.id) == f
    assert records.get_file(b.id, f.id) is None and records.list_files(b.id) == []


def test_job_transitions_are_conditional_and_atomic(records: Records) -> None:
    tenant, _ = records.create_tenant("a")
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="m", training_file="file-x")
    records.add_job(job)
    with pytest.raises(JobConflict):
        records.add_job(job)
    records.update_job(job.id, lambda j: setattr(j, "status", "cancelled"), only_if=("validating_files",))
    with pytest.raises(JobConflict):  # a cancelled job is never brought back
        records.update_job(job.id, lambda j: setattr(j, "status", "running"), only_if=("validating_files", "running"))

    counter = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="m", training_file="file-x")
    records.add_job(counter)

    def bump() -> None:
        for _ in range(20):
            records.update_job(counter.id, lambda j: setattr(j, "deliveries", j.deliveries + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert records.get_job(counter.id).deliveries == 80, "no lost update"


def test_events_are_ordered_and_written_once_per_key(records: Records) -> None:
    job_id = new_id("ftjob")
    assert records.add_event(job_id, "one", once="k") is not None
    assert records.add_event(job_id, "again", once="k") is None
    records.add_event(job_id, "two", level="warn")
    events = records.events(job_id)
    assert [e.message for e in events] == ["one", "two"]
    assert events[0].id < events[1].id and events[1].level == "warn"


def test_active_job_cap_holds_under_concurrent_creates(records: Records) -> None:
    tenant, _ = records.create_tenant("a")
    other, _ = records.create_tenant("b")
    done = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="m", training_file="file-x", status="succeeded")
    records.add_job(done)  # finished jobs do not count
    outcomes: list[str] = []

    def create() -> None:
        job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="m", training_file="file-x")
        try:
            records.add_job_within_cap(job, 3)
            outcomes.append("added")
        except TooManyActiveJobs as exc:
            outcomes.append(f"refused {exc.active}/{exc.limit}")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["added"] * 3 + ["refused 3/3"] * 5
    assert sum(not j.terminal for j in records.list_jobs(tenant.id)) == 3
    records.add_job_within_cap(JobRecord(id=new_id("ftjob"), tenant=other.id, model="m", training_file="f"), 1)


def test_get_many_reads_values_in_order_with_none_for_missing(records: Records) -> None:
    records.kv.put("a", "1")
    records.kv.put("b", "2")
    assert records.kv.get_many(["b", "missing", "a"]) == ["2", None, "1"]
    assert records.kv.get_many([]) == []


class CountingKV:
    """Passes every call to `kv`; records the keys each read touched."""

    def __init__(self, kv) -> None:
        self._kv, self.read = kv, []

    def get(self, key):
        self.read.append(key)
        return self._kv.get(key)

    def get_many(self, keys):
        self.read.extend(keys)
        return self._kv.get_many(keys)

    def __getattr__(self, name):
        return getattr(self._kv, name)


def _job(tenant: str, status: str = "queued") -> JobRecord:
    return JobRecord(id=new_id("ftjob"), tenant=tenant, model="m", training_file="file-x", status=status)


def test_the_active_job_cap_reads_only_the_unfinished_jobs(records: Records) -> None:
    tenant, _ = records.create_tenant("a")
    finished = [_job(tenant.id) for _ in range(30)]
    for job in finished:
        records.add_job_within_cap(job, 40)
    for job in finished:
        records.update_job(job.id, lambda j: setattr(j, "status", "succeeded"))
    records.add_job_within_cap(_job(tenant.id), 40)  # prunes the 30 finished jobs from the index
    counting = CountingKV(records.kv)
    records.kv = counting
    with pytest.raises(TooManyActiveJobs) as refused:
        records.add_job_within_cap(_job(tenant.id), 1)
    assert refused.value.active == 1
    job_reads = [k for k in counting.read if k.startswith("job:")]
    assert len(job_reads) == 1, job_reads


def test_the_active_job_index_is_built_for_jobs_stored_before_it(records: Records) -> None:
    tenant, _ = records.create_tenant("a")
    older = [_job(tenant.id), _job(tenant.id), _job(tenant.id, status="failed")]
    for job in older:
        records.add_job(job)
    for job in older:  # as stored by a version without the index
        records.kv.remove(f"activejobs:{tenant.id}", job.id)
    with pytest.raises(TooManyActiveJobs) as refused:
        records.add_job_within_cap(_job(tenant.id), 2)
    assert refused.value.active == 2
    records.add_job_within_cap(_job(tenant.id), 3)
    assert sum(not j.terminal for j in records.list_jobs(tenant.id)) == 3


def test_lists_are_newest_first_and_skip_other_tenants_records(records: Records) -> None:
    tenant, _ = records.create_tenant("a")
    other, _ = records.create_tenant("b")
    files = [FileRecord(id=new_id("file"), tenant=tenant.id, bytes=1, filename=f"{i}.jsonl", num_examples=1,
                        sha256="0" * 64) for i in range(3)]
    for f in files:
        records.add_file(f)
    foreign = FileRecord(id=new_id("file"), tenant=other.id, bytes=1, filename="x", num_examples=1, sha256="0" * 64)
    records.add_file(foreign)
    assert [f.id for f in records.list_files(tenant.id)] == [f.id for f in reversed(files)]
    assert records.get_files(tenant.id, [files[0].id, foreign.id, "file-gone"]) == [files[0]]


def test_the_store_copy_of_a_new_job_is_written_outside_the_creation_lease(records: Records) -> None:
    tenant, _ = records.create_tenant("a")
    lease_during_copy: list[str | None] = []
    copying = Records(records.kv, pepper="test-pepper",
                      on_job_change=lambda job: lease_during_copy.append(records.kv.get(f"jobcreate:{job.tenant}")))
    copying.add_job_within_cap(_job(tenant.id), 5)
    assert lease_during_copy == [None], "a slow store would hold up the tenant's other creates"
