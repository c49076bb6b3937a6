"""No job is stranded and nothing is lost when a dependency fails half-way.

- A store copy (`job.json`, `events.json`) that fails never fails or undoes the state
  change it follows; the job is marked stale and the sweeper copies it again.
- A job whose hand-over to the workers failed, or whose message was lost, is dispatched
  again by the sweeper; a job a worker holds, a recent one and a finished one are not.
- A create retried with the same Idempotency-Key after a failure half-way gives the one
  job it stored, never a second.
- An error that escapes the workflow retries the Celery task instead of acking it.

The embedded service in-process (SQLite records, a local store) with a dispatcher that
records (or refuses) hand-overs; the lock lookup of a create is stubbed (no registry).
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from lock_registry.store.errors import StoreConnectionError
from service import mirror
from service.api.main import create_app
from service.api.routes import jobs as jobs_route
from service.pipeline import workflow
from service.pipeline.context import FinalResult
from service.pipeline.lease import lease_key
from service.settings import Settings
from service.state.records import JobRecord, ModelRecord, new_id
from service.store_layout import job_key, model_key
from service.sweeper import sweep
from tests.service.helpers import placeholder_output, stand_in_stages

TRAINING = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 4


class Dispatcher:
    """Records hand-overs; refuses them while `down`."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.down = False

    def submit(self, job_id: str, model: str) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append(job_id)


@pytest.fixture
def service(tmp_path, monkeypatch):
    """(client, context, dispatcher, API key, uploaded file id)."""
    monkeypatch.setattr(jobs_route, "find_lock", lambda *a, **k: None)
    dispatcher = Dispatcher()
    settings = Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None, base_models={"tiny": "x"})
    app = create_app(settings, dispatcher=dispatcher, resume=False)
    ctx = app.state.context
    _, key = ctx.records.create_tenant("acme")
    with TestClient(app) as client:
        upload = client.post("/v1/files", headers=_auth(key), files={"file": ("t.jsonl", TRAINING)})
        assert upload.status_code == 200, upload.text
        yield client, ctx, dispatcher, key, upload.json()["id"]


def _auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def _create(client, key, file_id, **headers):
    body = {"model": "tiny", "training_file": file_id}
    return client.post("/v1/fine_tuning/jobs", headers=_auth(key, **headers), json=body)


class _BrokenStore:
    """The context's store, refusing writes of keys that end with one of `names`."""

    def __init__(self, store, names: tuple[str, ...]) -> None:
        self._store, self.names, self.down = store, names, True

    def put_bytes(self, key: str, data: bytes) -> None:
        if self.down and key.endswith(self.names):
            raise StoreConnectionError("cannot reach the S3 endpoint")
        self._store.put_bytes(key, data)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def _break_store(ctx, *names: str) -> _BrokenStore:
    broken = _BrokenStore(ctx.store, names)
    ctx.__dict__["store"] = broken  # the cached_property's slot
    return broken


# store copies ----------------------------------------------------------------------
def test_a_failed_copy_never_fails_the_state_change_and_the_sweeper_repairs_it(service) -> None:
    _, ctx, dispatcher, _, _ = service
    tenant = ctx.records.tenants()[0]
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="tiny", training_file="file-x", dispatched_at=time.time())
    ctx.records.add_job(job)
    broken = _break_store(ctx, "job.json")

    changed = ctx.records.update_job(job.id, lambda j: setattr(j, "status", "running"))

    assert changed.status == "running" and ctx.records.get_job(job.id).status == "running"
    stored = json.loads(ctx.store.get_bytes(job_key(job, "job.json")))
    assert stored["status"] == "validating_files"  # behind the record, and known to be
    assert ctx.records.kv.items(mirror.STALE) == [job.id]
    assert sweep(ctx, dispatcher).repaired == 0  # still down: stays stale
    broken.down = False
    assert sweep(ctx, dispatcher).repaired == 1
    assert json.loads(ctx.store.get_bytes(job_key(job, "job.json")))["status"] == "running"
    assert ctx.store.exists(job_key(job, "events.json")) and ctx.records.kv.items(mirror.STALE) == []


def test_a_failed_copy_after_success_keeps_the_published_model(service, monkeypatch) -> None:
    _, ctx, _, _, _ = service
    tenant = ctx.records.tenants()[0]
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="tiny", training_file="file-x")
    ctx.records.add_job(job)
    model_id = "model-" + job.id.split("-", 1)[1]
    weights = model_key(tenant.id, model_id, "model.safetensors")

    def stage(name: str):
        def run(sc):
            if name == "publish":
                sc.ctx.store.put_bytes(weights, b"weights")
                sc.ctx.records.add_model(ModelRecord(id=model_id, tenant=tenant.id, base_model="tiny",
                                                     job_id=job.id, lock={}, files=["model.safetensors"]))
                _break_store(sc.ctx, "job.json", "events.json")  # the store goes down right after
                return FinalResult(status="succeeded", model_id=model_id)
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    assert workflow.run_job(ctx, job.id) == "succeeded"
    record = ctx.records.get_job(job.id)
    assert record.status == "succeeded" and record.fine_tuned_model == model_id
    assert ctx.store.exists(weights), "a succeeded job's weights were removed"
    assert ctx.records.get_model(tenant.id, model_id) is not None
    assert job.id in ctx.records.kv.items(mirror.STALE)


# dispatch and the sweeper ------------------------------------------------------------
def test_a_job_whose_hand_over_failed_is_stored_and_dispatched_by_the_sweeper(service) -> None:
    client, ctx, dispatcher, key, file_id = service
    dispatcher.down = True
    response = _create(client, key, file_id)
    assert response.status_code == 200, response.text
    job_id = response.json()["id"]
    assert ctx.records.get_job(job_id).dispatched_at is None and dispatcher.sent == []
    assert "retried shortly" in " ".join(e.message for e in ctx.records.events(job_id))

    assert sweep(ctx, dispatcher).redispatched == []  # the broker is still down
    dispatcher.down = False
    assert sweep(ctx, dispatcher).redispatched == [job_id]
    assert sweep(ctx, dispatcher).redispatched == []  # dispatched just now: not stranded
    assert dispatcher.sent == [job_id] and ctx.records.get_job(job_id).dispatched_at is not None


def test_the_sweeper_dispatches_only_unheld_unfinished_jobs_after_redispatch_seconds(service) -> None:
    _, ctx, dispatcher, _, _ = service
    tenant = ctx.records.tenants()[0]
    long_ago = time.time() - ctx.settings.redispatch_seconds - 1

    def add(**fields) -> str:
        job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="tiny", training_file="file-x", **fields)
        ctx.records.add_job(job)
        return job.id

    lost = add(status="queued", dispatched_at=long_ago)
    held = add(status="running", dispatched_at=long_ago)
    ctx.records.kv.acquire(lease_key(held), "another-worker", 60)
    add(status="queued", dispatched_at=time.time())  # waits in the queue
    add(status="failed", dispatched_at=long_ago)
    add(status="cancelled", dispatched_at=None)

    assert sweep(ctx, dispatcher).redispatched == [lost]
    assert dispatcher.sent == [lost]
    assert "handing it to the workers again" in " ".join(e.message for e in ctx.records.events(lost))


def test_retried_creates_with_one_key_make_one_job(service, monkeypatch) -> None:
    client, ctx, dispatcher, key, file_id = service
    dispatcher.down = True
    first = _create(client, key, file_id, **{"Idempotency-Key": "k1"})
    # the stored answer is replayed; with it lost (as after a 500), the key still finds the job
    ctx.records.kv.delete(next(k for k in _kv_keys(ctx) if k.startswith("idem:")))
    dispatcher.down = False
    second = _create(client, key, file_id, **{"Idempotency-Key": "k1"})
    third = _create(client, key, file_id, **{"Idempotency-Key": "k1"})

    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert first.json()["id"] == second.json()["id"] == third.json()["id"]
    listed = client.get("/v1/fine_tuning/jobs", headers=_auth(key)).json()["data"]
    assert [j["id"] for j in listed] == [first.json()["id"]]
    assert dispatcher.sent == [first.json()["id"]]  # the retry handed over what the first could not


def test_a_create_that_failed_after_storing_the_job_is_found_by_its_retry(service, monkeypatch) -> None:
    client, ctx, _, key, file_id = service
    real_add_event, calls = ctx.records.add_event, []

    def add_event_failing_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("Redis went away")
        return real_add_event(*args, **kwargs)

    monkeypatch.setattr(ctx.records, "add_event", add_event_failing_once)
    client_500 = TestClient(client.app, raise_server_exceptions=False)
    failed = _create(client_500, key, file_id, **{"Idempotency-Key": "k2"})
    assert failed.status_code == 500
    retried = _create(client, key, file_id, **{"Idempotency-Key": "k2"})
    assert retried.status_code == 200, retried.text
    jobs = ctx.records.list_jobs(ctx.records.tenants()[0].id)
    assert [j.id for j in jobs] == [retried.json()["id"]]
    assert "Created fine-tuning job" in " ".join(e.message for e in ctx.records.events(jobs[0].id))


def test_a_key_reused_for_another_job_is_refused_even_after_its_answer_was_lost(service) -> None:
    client, ctx, _, key, file_id = service
    assert _create(client, key, file_id, **{"Idempotency-Key": "k3"}).status_code == 200
    ctx.records.kv.delete(next(k for k in _kv_keys(ctx) if k.startswith("idem:")))
    other = client.post("/v1/fine_tuning/jobs", headers=_auth(key, **{"Idempotency-Key": "k3"}),
                        json={"model": "tiny", "training_file": file_id, "suffix": "other"})
    assert other.status_code == 400 and other.json()["error"]["code"] == "idempotency_key_reused"


def _kv_keys(ctx) -> list[str]:
    return [row[0] for row in ctx.records.kv._db.execute("SELECT k FROM kv").fetchall()]


# the Celery task -------------------------------------------------------------------
def test_an_error_escaping_the_workflow_retries_the_task(monkeypatch, tmp_path) -> None:
    from celery.exceptions import Retry

    monkeypatch.setenv("SAFETYLOCK_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SAFETYLOCK_DATA_DIR", str(tmp_path))
    from service.settings import get_settings

    get_settings.cache_clear()
    try:
        from service.worker import tasks

        def crash(ctx, job_id):
            raise StoreConnectionError("cannot reach the S3 endpoint")

        retries: list[dict] = []

        def retry(**kwargs):  # Celery's retry republishes the message; here it is recorded
            retries.append(kwargs)
            return Retry(when=kwargs["countdown"])

        monkeypatch.setattr(workflow, "run_job", crash)
        monkeypatch.setattr(tasks.run_job_task, "retry", retry)
        tasks.run_job_task.push_request(retries=2)
        try:
            with pytest.raises(Retry):
                tasks.run_job_task.run("ftjob-" + "0" * 24)
        finally:
            tasks.run_job_task.pop_request()
        assert len(retries) == 1 and retries[0]["countdown"] == 20  # 5 s doubled per retry so far
        assert isinstance(retries[0]["exc"], StoreConnectionError)
    finally:
        get_settings.cache_clear()


def test_an_outage_during_a_stage_is_waited_out_without_using_up_deliveries(service, monkeypatch) -> None:
    _, ctx, _, _, _ = service
    tenant = ctx.records.tenants()[0]
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model="tiny", training_file="file-x")
    ctx.records.add_job(job)
    outage = {"on": True}

    def stage(name: str):
        def run(sc):
            if name == "publish" and outage["on"]:
                raise StoreConnectionError("cannot reach the S3 endpoint")
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    for _ in range(ctx.settings.max_deliveries + 2):  # more retries than deliveries allowed
        with pytest.raises(workflow.DependencyDown):
            workflow.run_job(ctx, job.id)
    assert ctx.records.get_job(job.id).deliveries == 0 and not ctx.records.get_job(job.id).terminal
    outage["on"] = False
    assert workflow.run_job(ctx, job.id) == "succeeded"
