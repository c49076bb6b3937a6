"""An API process remembers the lock lookup of a create for SAFETYLOCK_LOCK_LOOKUP_SECONDS:
a second create within that time does not ask the registry, with 0 every create does;
a refusal is never remembered, and neither is a lookup past its time or in another
registry. The embedded service in-process, its registry's `resolve` counted."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from service.api import lock_lookup
from service.api.main import create_app
from service.settings import Settings
from service.state.records import PinnedLock
from tests.registry.lockdirs import make_lock_dir

BASE = "tiny"
TRAINING = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 4


class Dispatcher:
    def submit(self, job_id: str, model: str) -> None:
        pass


@pytest.fixture
def service(tmp_path, monkeypatch):
    """`service(seconds)` starts one with that lookup time: (create, posting one job and
    returning the response; the context; the references its registry was asked to resolve)."""
    with ExitStack() as clients:
        yield lambda seconds: _service(tmp_path, monkeypatch, seconds, clients)


def _service(tmp_path, monkeypatch, seconds: float, clients: ExitStack):
    settings = Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None,
                        base_models={BASE: "x"}, lock_lookup_seconds=seconds)
    app = create_app(settings, dispatcher=Dispatcher(), resume=False)
    ctx = app.state.context
    _, key = ctx.records.create_tenant("acme")
    asked: list[str] = []
    resolve = ctx.registry.resolve

    def counted(reference, **kwargs):
        asked.append(str(reference))
        return resolve(reference, **kwargs)

    monkeypatch.setattr(ctx.registry, "resolve", counted)
    client = clients.enter_context(TestClient(app, headers={"Authorization": f"Bearer {key}"}))
    file_id = client.post("/v1/files", files={"file": ("t.jsonl", TRAINING)}).json()["id"]

    def create(**body):
        return client.post("/v1/fine_tuning/jobs", json={"model": BASE, "training_file": file_id, **body})

    return create, ctx, asked


def _publish(ctx, tmp_path, seed: int = 0):
    info = ctx.registry.publish(make_lock_dir(tmp_path / f"lock-{seed}", base_id=BASE, seed=seed),
                                base_model=BASE, actor="tests")
    ctx.registry.promote(f"{BASE}@v{info.version}", "production", actor="tests")
    return info


def test_a_second_create_within_the_time_does_not_ask_the_registry(service, tmp_path) -> None:
    create, ctx, asked = service(10)
    _publish(ctx, tmp_path)
    first, second = create(), create()
    assert first.status_code == second.status_code == 200, second.text
    assert asked == [f"{BASE}@production"]
    assert ctx.records.get_job(first.json()["id"]).lock == ctx.records.get_job(second.json()["id"]).lock
    assert create(lock_version=1).status_code == 200 and asked == [f"{BASE}@production", f"{BASE}@v1"]


def test_with_zero_seconds_every_create_asks_the_registry(service, tmp_path) -> None:
    create, ctx, asked = service(0)
    _publish(ctx, tmp_path)
    assert create().status_code == create().status_code == 200
    assert asked == [f"{BASE}@production"] * 2


def test_a_refusal_is_not_remembered(service, tmp_path) -> None:
    create, ctx, asked = service(10)
    refused = create()
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "lock_not_found"
    _publish(ctx, tmp_path)
    assert create().status_code == 200 and len(asked) == 2


def test_a_lookup_is_asked_again_once_its_time_is_up(service, tmp_path, monkeypatch) -> None:
    create, ctx, asked = service(10)
    _publish(ctx, tmp_path)
    clock = [1000.0]
    monkeypatch.setattr(lock_lookup, "monotonic", lambda: clock[0])
    assert create().json()["lock"]["version"] == 1
    _publish(ctx, tmp_path, seed=1)  # production -> v2
    clock[0] += 9.9
    assert create().json()["lock"]["version"] == 1 and len(asked) == 1  # still remembered
    clock[0] += 0.2
    assert create().json()["lock"]["version"] == 2 and len(asked) == 2


@pytest.mark.parametrize("seconds", [10, 0])
def test_each_registry_has_its_own_memory(tmp_path, seconds) -> None:
    class Registry:
        def __init__(self, version: int) -> None:
            self.version, self.asked = version, 0

        def resolve(self, reference):
            self.asked += 1
            return type("Entry", (), {"version": self.version, "sha256": f"{self.version}" * 64})

    one, two = Registry(1), Registry(2)
    for registry in (one, two, one, two):
        found = lock_lookup.find_lock(registry, BASE, None, ttl=seconds)
        assert found == PinnedLock(base_model=BASE, version=registry.version, sha256=f"{registry.version}" * 64)
    assert one.asked == two.asked == (1 if seconds else 2)
