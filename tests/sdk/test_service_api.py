"""The SDK against the real job service (uvicorn + Redis + SeaweedFS S3): files, every
error class the service answers with, retries and idempotency on uploads.

Jobs need a base model and its lock: test_service_jobs.py.
"""

from __future__ import annotations

import json

import httpx
import pytest

import sdk
from sdk import _constants as C
from sdk._base_client import FinalRequestOptions
from tests.sdk.proxy import FaultyProxy

pytestmark = pytest.mark.services

MAX_BYTES = 4000
LINE = {"messages": [{"role": "user", "content": "What is 2 plus 2?"},
                     {"role": "assistant", "content": "2 plus 2 is 4."}]}


@pytest.fixture(scope="module")
def stack(service_stack_factory):
    stack = service_stack_factory(max_file_bytes=str(MAX_BYTES))
    stack.start_api()
    return stack


@pytest.fixture(scope="module")
def key(stack) -> str:
    return stack.create_tenant("sdk-files")


@pytest.fixture
def proxy():
    p = FaultyProxy()
    yield p
    p.close()


@pytest.fixture
def client(stack, key, proxy, monkeypatch) -> sdk.Client:
    monkeypatch.setattr(C, "INITIAL_RETRY_DELAY", 0.01)
    return sdk.Client(base_url=stack.base_url, api_key=key,
                      http_client=httpx.Client(transport=proxy))


def _write(path, n: int):
    path.write_text("".join(json.dumps(LINE) + "\n" for _ in range(n)))
    return path


def test_files_every_method_and_pagination(client, tmp_path):
    uploaded = [client.files.upload(_write(tmp_path / f"t{i}.jsonl", i + 1)) for i in range(3)]
    assert [f.num_examples for f in uploaded] == [1, 2, 3]
    page = client.files.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    listed = [f.id for f in page]
    assert set(listed) >= {f.id for f in uploaded} and len(listed) == len(set(listed))
    assert client.files.retrieve(uploaded[0].id) == uploaded[0]
    assert client.files.delete(uploaded[0].id).deleted
    with pytest.raises(sdk.NotFoundError) as info:
        client.files.retrieve(uploaded[0].id)
    assert (info.value.code, info.value.request_id is not None) == ("file_not_found", True)


def test_error_classes_from_real_responses(client, stack, tmp_path):
    with pytest.raises(sdk.AuthenticationError) as info:
        client.with_options(api_key="sk-nobody").files.list()
    assert (info.value.status, info.value.code) == (401, "invalid_api_key")
    with pytest.raises(sdk.PermissionDeniedError) as info:
        client._request(FinalRequestOptions("GET", "/v1/admin/tenants"))
    assert (info.value.status, info.value.code) == (403, "operator_only")
    with pytest.raises(sdk.NotFoundError) as info:
        client.jobs.retrieve("ftjob-" + "0" * 24)
    assert (info.value.status, info.value.code) == (404, "job_not_found")
    f = client.files.upload(_write(tmp_path / "ok.jsonl", 2))
    with pytest.raises(sdk.BadRequestError) as info:
        client.jobs.create(model="no-such-model", training_file=f.id)
    assert (info.value.status, info.value.code, info.value.param) == (
        400, "model_not_found", "model")
    big = tmp_path / "big.jsonl"
    _write(big, 60)
    with pytest.raises(sdk.APIStatusError) as info:
        client.files.upload(big)
    assert (info.value.status, info.value.code, info.value.param) == (413, "file_too_large", "file")
    assert info.value.request_id and info.value.request_id.startswith("req_")


def test_unprocessable_entity_from_the_service(client, tmp_path):
    """Well-formed but unusable: the validation file is the training file (422, before any
    model lookup, so no base model is needed here)."""
    f = client.files.upload(_write(tmp_path / "same.jsonl", 2))
    with pytest.raises(sdk.UnprocessableEntityError) as info:
        client.with_options(max_retries=0).jobs.create(model="no-such-model", training_file=f.id,
                                                      validation_file=f.id)
    err = info.value
    assert (err.status, err.code, err.param) == (422, "validation_file_is_training_file", "validation_file")
    assert "memorisation" in err.message and err.request_id


def test_internal_server_error_from_the_service(service_stack_factory, tmp_path, monkeypatch):
    """A deployment whose bucket does not exist: the upload fails inside the service (500)."""
    monkeypatch.setattr(C, "INITIAL_RETRY_DELAY", 0.01)
    broken = service_stack_factory(store_url="s3://no-such-bucket-for-safetylock/platform")
    broken.start_api()
    api_key = broken.create_tenant("sdk-broken")
    c = sdk.Client(base_url=broken.base_url, api_key=api_key, max_retries=1)
    with pytest.raises(sdk.InternalServerError) as info:
        c.files.upload(_write(tmp_path / "lost.jsonl", 1))
    assert (info.value.status, info.value.code) == (500, "internal_error")
    assert c.files.list().data == []  # nothing recorded for the failed upload


def test_timeout_is_an_api_timeout_error(key):
    """A server that accepts the connection and never answers."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host, port = silent.getsockname()
        c = sdk.Client(base_url=f"http://{host}:{port}", api_key=key, timeout=0.3, max_retries=0)
        with pytest.raises(sdk.APITimeoutError):
            c.files.list()


def test_service_rejects_what_local_validation_would(client, tmp_path):
    """Skip the local check: the service answers with the same per-line message."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n")
    local = sdk.validate_training_file(bad)
    with pytest.raises(sdk.BadRequestError) as info:
        client.files.upload(bad, validate=False)
    assert info.value.code == "invalid_file"
    assert str(local.errors[0]) in info.value.message


def test_dropped_upload_response_is_retried_without_a_duplicate(client, proxy, tmp_path):
    before = {f.id for f in client.files.list(limit=100)}
    proxy.drop_once("POST", "/v1/files")
    proxy.scripted.append(httpx.Response(503, json={"error": {"code": "overloaded",
                                                             "message": "busy"}}))
    f = client.files.upload(_write(tmp_path / "once.jsonl", 3))
    after = {x.id for x in client.files.list(limit=100)}
    assert after - before == {f.id}
    posts = [r for r in proxy.seen if r.method == "POST"]
    assert len(posts) == 3 and len(proxy.dropped) == 1
    assert len({r.headers["idempotency-key"] for r in posts}) == 1
    bodies = {b for r, b in zip(proxy.seen, proxy.bodies, strict=True) if r.method == "POST"}
    assert len(bodies) == 1  # byte-identical retries


def test_connection_refused_is_an_api_connection_error(key, monkeypatch):
    monkeypatch.setattr(C, "INITIAL_RETRY_DELAY", 0.01)
    from tests.fixtures.services import free_port

    c = sdk.Client(base_url=f"http://127.0.0.1:{free_port()}", api_key=key, max_retries=1)
    with pytest.raises(sdk.APIConnectionError):
        c.files.list()
