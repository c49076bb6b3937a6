"""Requests cost nothing until authenticated, bodies stop at their route's limit, and every
idempotency slot expires. The embedded app called as raw ASGI, so the test sees exactly
how much of a body the server read."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from service.api.main import create_app
from service.api.request_guard import MULTIPART_FRAMING_BYTES
from service.settings import Settings
from service.state.kv import SqliteKV

CHUNK = 16 * 1024


@pytest.fixture
def app(tmp_path):
    settings = Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None,
                        max_file_bytes=1000, max_json_body_bytes=4096)
    return create_app(settings, resume=False)


@pytest.fixture
def api_key(app) -> str:
    return app.state.context.records.create_tenant("acme")[1]


def call(app, method: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict, int]:
    """(status, JSON body, body chunks the server read) of one request."""
    pending, read, sent = list(chunks), [], []

    async def receive():
        if pending:
            read.append(pending.pop(0))
            return {"type": "http.request", "body": read[-1], "more_body": bool(pending)}
        await asyncio.sleep(3600)  # the client waits for the answer

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), len(read)


BIG = [b"x" * CHUNK] * 64  # 1 MiB


@pytest.mark.parametrize("path", ["/v1/files", "/v1/fine_tuning/jobs"])
@pytest.mark.parametrize("authorization", [None, "Bearer sk-not-a-key", "Basic abc"])
def test_no_body_is_read_before_the_caller_is_authenticated(app, path, authorization) -> None:
    headers = {"content-type": "application/json", "idempotency-key": "k"}
    if authorization:
        headers["authorization"] = authorization
    status, body, read = call(app, "POST", path, headers, BIG)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert read == 0
    assert not [k for k in _kv_keys(app) if k.startswith("idem:")]  # nothing kept for strangers


@pytest.mark.parametrize(("path", "limit"), [("/v1/files", 1000 + MULTIPART_FRAMING_BYTES),
                                             ("/v1/fine_tuning/jobs", 4096)])
def test_a_declared_length_over_the_limit_is_refused_unread(app, api_key, path, limit) -> None:
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json",
               "content-length": str(limit + 1)}
    status, body, read = call(app, "POST", path, headers, BIG)
    assert status == 413 and body["error"]["code"] == "request_too_large" and str(limit) in body["error"]["message"]
    assert read == 0


@pytest.mark.parametrize("idempotency_key", [None, "k-stream"])
@pytest.mark.parametrize(("path", "limit"), [("/v1/files", 1000 + MULTIPART_FRAMING_BYTES),
                                             ("/v1/fine_tuning/jobs", 4096)])
def test_a_streamed_body_is_cut_off_at_the_limit(app, api_key, path, limit, idempotency_key) -> None:
    headers = {"authorization": f"Bearer {api_key}", "content-type": "multipart/form-data; boundary=b"
               if path == "/v1/files" else "application/json"}
    if idempotency_key:
        headers["idempotency-key"] = idempotency_key
    head = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n\r\n'
            if path == "/v1/files" else b"")
    chunks = [head + BIG[0][len(head):], *BIG[1:]]  # a well-formed start, then more than the limit
    status, body, read = call(app, "POST", path, headers, chunks)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert read == limit // CHUNK + 1  # stopped at the first chunk past the limit


def test_every_idempotency_slot_expires(app, api_key) -> None:
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json", "idempotency-key": "k1"}
    status, _, _ = call(app, "POST", "/v1/fine_tuning/jobs", headers, [b'{"model": "unknown", "training_file": "x"}'])
    assert status in (400, 404)
    kv = app.state.context.records.kv
    expiries = kv._db.execute("SELECT expires FROM kv WHERE k LIKE 'idem:%'").fetchall()
    assert len(expiries) == 1 and expiries[0][0] is not None
    assert 23 * 3600 < expiries[0][0] - time.time() <= 24 * 3600


def test_a_slot_with_a_time_to_live_frees_itself(tmp_path) -> None:
    kv = SqliteKV(tmp_path / "kv.sqlite3")
    assert kv.put_if_absent("idem:pending", "1", ttl=0.05)
    assert not kv.put_if_absent("idem:pending", "2", ttl=0.05)
    time.sleep(0.1)
    assert kv.get("idem:pending") is None and kv.put_if_absent("idem:pending", "3")


def _kv_keys(app) -> list[str]:
    return [row[0] for row in app.state.context.records.kv._db.execute("SELECT k FROM kv").fetchall()]
