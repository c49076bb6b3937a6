"""Fixtures for SDK tests against the in-memory fake service."""

from __future__ import annotations

import json

import httpx
import pytest

from sdk import Client
from sdk import _constants as C
from sdk.in_process import asgi_http_client
from tests.sdk.fake_service import FakeService, build_app

GOOD_LINE = {"messages": [{"role": "user", "content": "Add 2 and 3."},
                          {"role": "assistant", "content": "5"}]}


@pytest.fixture
def fake(tmp_path) -> FakeService:
    return FakeService(root=tmp_path / "store")


@pytest.fixture
def http(fake) -> httpx.Client:
    with asgi_http_client(build_app(fake)) as tc:
        yield tc


@pytest.fixture
def client(http, monkeypatch) -> Client:
    monkeypatch.setattr(C, "INITIAL_RETRY_DELAY", 0.001)
    return Client(base_url="http://testserver", api_key="sk-test", http_client=http)


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(GOOD_LINE) for _ in range(4)) + "\n")
    return path


@pytest.fixture
def fake_url(fake):
    """The fake service behind a real uvicorn server on a free loopback port."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(fake), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake service did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)
