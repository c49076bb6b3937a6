"""The lock is resolved once, by the API's create, and pinned in the job with its sha256:
the worker uses that version after the `production` alias moves, fails the job with
`lock_changed` when the registry holds another lock under it, and resolves the lock of a
record stored without a pin itself. The embedded service in-process (a local store and
registry, SQLite) with a dispatcher that records hand-overs; stages other than the ones
under test stand in."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from service.api.main import create_app
from service.pipeline import loading, resolve_lock, workflow
from service.pipeline.context import StageContext, StageFailure
from service.settings import Settings
from service.state.records import JobRecord, PinnedLock, ResolveLockOutput, new_id
from tests.registry.lockdirs import make_lock_dir
from tests.service.helpers import placeholder_output, stand_in_stages

BASE = "tiny"
TRAINING = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 4


class Dispatcher:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def submit(self, job_id: str, model: str) -> None:
        self.sent.append(job_id)


@pytest.fixture
def service(tmp_path):
    """(client with an API key, context, a function publishing the next lock version and
    optionally promoting it to `production`)."""
    settings = Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None,
                        base_models={BASE: "x"}, lock_lookup_seconds=0)
    app = create_app(settings, dispatcher=Dispatcher(), resume=False)
    ctx = app.state.context
    _, key = ctx.records.create_tenant("acme")

    def publish(seed: int, promote: bool = True):
        info = ctx.registry.publish(make_lock_dir(tmp_path / f"lock-{seed}", base_id=BASE, seed=seed),
                                    base_model=BASE, actor="tests")
        if promote:
            ctx.registry.promote(f"{BASE}@v{info.version}", "production", actor="tests")
        return info

    with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
        upload = client.post("/v1/files", files={"file": ("t.jsonl", TRAINING)})
        assert upload.status_code == 200, upload.text
        client.file_id = upload.json()["id"]
        yield client, ctx, publish


def _create(client, **body) -> dict:
    response = client.post("/v1/fine_tuning/jobs", json={"model": BASE, "training_file": client.file_id, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _replace_version(ctx, version: int, by: int) -> None:
    """What the registry holds under `version` becomes version `by`'s lock, consistently
    (claim, manifest and tensors), as if the version had been overwritten in the store."""
    info = ctx.registry.resolve(f"{BASE}@v{version}")
    source, target = (ctx.registry._prefix(info.base_key, n) for n in (by, version))
    for key in ctx.store.list(source):
        ctx.store.put_bytes(target + key[len(source):], ctx.store.get_bytes(key))


def _run(ctx, job_id: str, monkeypatch) -> tuple[str, list[str]]:
    """Run the job with the real resolve_lock and stand-ins for the other stages; relock's
    loads the pinned lock as relock does. Returns the final status, the stages that ran and
    the sha256 of each lock relock loaded (`loaded:SHA`)."""
    ran: list[str] = []
    loaded: list[str] = []

    def stage(name: str):
        def run(sc):
            ran.append(name)
            if name == "resolve_lock":
                return resolve_lock.run(sc)
            if name == "relock":
                loaded.append(loading.job_lock(sc).manifest.sha256)
            return placeholder_output(name)
        return SimpleNamespace(run=run)

    stand_in_stages(monkeypatch, stage)
    status = workflow.run_job(ctx, job_id)
    return status, ran + [f"loaded:{sha}" for sha in loaded]


def test_create_pins_the_production_lock_with_its_sha256(service) -> None:
    client, ctx, publish = service
    v1 = publish(seed=0)
    job = _create(client)
    assert job["lock"] == {"base_model": BASE, "version": 1}  # the public shape: no sha256
    assert ctx.records.get_job(job["id"]).lock == PinnedLock(base_model=BASE, version=1, sha256=v1.sha256)
    publish(seed=1, promote=False)
    assert ctx.records.get_job(_create(client, lock_version=2)["id"]).lock.version == 2  # the version asked for


def test_the_worker_uses_the_pinned_lock_after_the_alias_moves(service, monkeypatch) -> None:
    client, ctx, publish = service
    v1 = publish(seed=0)
    job = _create(client)
    v2 = publish(seed=1)  # production -> v2 before the worker starts
    assert _create(client)["lock"]["version"] == 2  # a new job gets the new version

    status, ran = _run(ctx, job["id"], monkeypatch)

    assert status == "succeeded" and f"loaded:{v1.sha256}" in ran and v1.sha256 != v2.sha256
    sc = StageContext(ctx, job["id"])
    assert sc.require(ResolveLockOutput) == ResolveLockOutput(base_model=BASE, version=1, sha256=v1.sha256)
    assert f"Using lock {BASE} v1." in [e.message for e in ctx.records.events(job["id"])]


def test_a_lock_replaced_under_the_pinned_version_fails_the_job_closed(service, monkeypatch) -> None:
    client, ctx, publish = service
    publish(seed=0)
    job = _create(client)
    publish(seed=1, promote=False)
    _replace_version(ctx, 1, by=2)

    status, ran = _run(ctx, job["id"], monkeypatch)

    record = ctx.records.get_job(job["id"])
    assert status == "failed" and record.error.code == "lock_changed"
    assert f"{BASE} v1" in record.error.message and "no longer the one this job was created with" in record.error.message
    assert "train" not in ran, "the lock is checked before any training is spent"
    assert "relock" not in ran and "publish" not in ran
    assert ctx.store.list(f"models/{record.tenant}/") == []


def test_relock_refuses_a_lock_replaced_after_resolve_lock(service, monkeypatch) -> None:
    """resolve_lock passed; the version is overwritten before relock loads it."""
    client, ctx, publish = service
    publish(seed=0)
    job = _create(client)
    publish(seed=1, promote=False)
    sc = StageContext(ctx, job["id"])
    sc.save_output(resolve_lock.run(sc))
    _replace_version(ctx, 1, by=2)
    with pytest.raises(StageFailure) as failure:
        loading.job_lock(sc)
    assert failure.value.error.code == "lock_changed"

    status, ran = _run(ctx, job["id"], monkeypatch)

    record = ctx.records.get_job(job["id"])
    assert status == "failed" and record.error.code == "lock_changed"  # not published, not a gate rejection
    assert "publish" not in ran and "reject" not in ran


@pytest.mark.parametrize("stored", [None, {"base_model": BASE, "version": 1}], ids=["no-lock", "lock-without-sha256"])
def test_a_record_stored_without_a_pin_is_resolved_by_the_worker(service, monkeypatch, stored) -> None:
    client, ctx, publish = service
    publish(seed=0)
    v2 = publish(seed=1)
    tenant = ctx.records.tenants()[0]
    job = JobRecord(id=new_id("ftjob"), tenant=tenant.id, model=BASE, training_file=client.file_id, lock=stored)
    ctx.records.add_job(job)

    status, ran = _run(ctx, job.id, monkeypatch)

    assert status == "succeeded" and f"loaded:{v2.sha256}" in ran
    assert ctx.records.get_job(job.id).lock == PinnedLock(base_model=BASE, version=2, sha256=v2.sha256)
    assert f"Using lock {BASE} v2." in [e.message for e in ctx.records.events(job.id)]


def test_a_pinned_version_gone_from_the_registry_fails_as_lock_not_found(service, monkeypatch) -> None:
    client, ctx, publish = service
    publish(seed=0)
    job = _create(client)
    ctx.records.update_job(job["id"], lambda j: setattr(j, "lock", PinnedLock(base_model=BASE, version=7, sha256="0" * 64)))

    status, _ = _run(ctx, job["id"], monkeypatch)

    record = ctx.records.get_job(job["id"])
    assert status == "failed" and record.error.code == "lock_not_found" and "v7" in record.error.message
