"""A job's lease: the heartbeat outlives a failed renewal, and a worker whose lease was
taken over publishes nothing (embedded service, stand-in stages)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from service.context import ServiceContext
from service.pipeline import workflow
from service.pipeline.lease import JobLease, lease_key
from service.settings import Settings
from service.state.kv import SqliteKV
from tests.service.helpers import add_job, placeholder_output, stand_in_stages


class FlakyKV(SqliteKV):
    """Fails the first `failures` renewals, as a Redis restart would."""

    def __init__(self, path, failures: int) -> None:
        super().__init__(path)
        self.failures, self.calls = failures, 0

    def acquire(self, key: str, owner: str, ttl: float) -> bool:
        self.calls += 1
        if 1 < self.calls <= 1 + self.failures:  # the first call is the initial acquire
            raise ConnectionError("Redis is restarting")
        return super().acquire(key, owner, ttl)


def test_the_heartbeat_keeps_renewing_after_a_failed_renewal(tmp_path) -> None:
    kv = FlakyKV(tmp_path / "kv.sqlite3", failures=2)
    lease = JobLease(kv, "ftjob-1", ttl=0.3)
    assert lease.acquire()
    with lease:
        deadline = time.monotonic() + 5
        while kv.calls < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kv.calls >= 6, "the heartbeat stopped after a failed renewal"
        assert kv.get(lease_key("ftjob-1")) == lease.owner
    assert kv.get(lease_key("ftjob-1")) is None  # released on exit


def test_a_worker_whose_lease_was_taken_over_publishes_nothing(tmp_path, monkeypatch) -> None:
    ctx = ServiceContext(Settings(data_dir=tmp_path, broker_url=None, redis_url=None, store_url=None))
    job = add_job(ctx)
    finals: list[str] = []

    def stage(name: str):
        def run(sc):
            if name == "gate":  # the lease lapsed meanwhile and another worker took the job
                sc.ctx.records.kv.put(lease_key(job.id), "another-worker")
            if name in ("publish", "reject"):
                finals.append(name)
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert workflow.run_job(ctx, job.id) == "running"  # left to the worker that holds it
    assert finals == []
    assert ctx.records.get_job(job.id).fine_tuned_model is None
    assert ctx.records.kv.get(lease_key(job.id)) == "another-worker"  # not released by the loser
