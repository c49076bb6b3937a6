"""A backend that cannot be reached (the object store, Redis) is answered 503 with
Retry-After, never 500, and the failed request changes nothing (embedded app, in-process;
the store and the records backend are made to fail as an unreachable server does)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from lock_registry.store.errors import StoreConnectionError
from service.api.main import create_app
from service.settings import Settings

TRAINING = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.fixture
def api(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None), resume=False)
    _, key = app.state.context.records.create_tenant("acme")
    with TestClient(app) as client:  # an exception that escapes the app fails the test
        yield client, app.state.context, {"Authorization": f"Bearer {key}"}


def _assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["retry-after"]) > 0


def test_an_upload_while_the_store_is_down_is_503_and_stores_nothing(api, monkeypatch) -> None:
    client, ctx, auth = api

    def down(*_a, **_k):
        raise StoreConnectionError("cannot reach the S3 endpoint of s3://bucket")

    monkeypatch.setattr(ctx.store, "put_bytes", down)
    _assert_unavailable(client.post("/v1/files", headers=auth, files={"file": ("t.jsonl", TRAINING)}))
    assert client.get("/v1/files", headers=auth).json()["data"] == []


@pytest.mark.parametrize("where", ["authentication", "route"])
def test_requests_while_redis_is_down_are_503(api, monkeypatch, where) -> None:
    client, ctx, auth = api

    def down(*_a, **_k):
        raise RedisConnectionError("Error 111 connecting to 10.0.0.7:6379. Connection refused.")

    # the key lookup reads with `get`; listing the jobs reads the tenant's list with `items`
    monkeypatch.setattr(ctx.records.kv, "get" if where == "authentication" else "items", down)
    response = client.get("/v1/fine_tuning/jobs", headers=auth)
    _assert_unavailable(response)
    assert "10.0.0.7" not in response.text
