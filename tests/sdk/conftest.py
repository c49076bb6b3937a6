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
