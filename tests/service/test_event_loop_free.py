"""A slow store or records backend never blocks the API's event loop: while an upload is
inside its store write, and while an event stream waits on the records, other requests
are answered. The handlers are held inside the slow call until /healthz has answered; a
handler that ran on the event loop would keep /healthz from ever answering."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from service.api.main import create_app
from service.settings import Settings
from tests.service.helpers import add_job_and_key

TRAINING = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None), resume=False)


class Hold:
    """Blocks the wrapped call (in whatever thread runs it) until released or 5 s passed."""

    def __init__(self) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        self.released_in_time = None

    def __call__(self) -> None:
        self.entered.set()
        self.released_in_time = self.released.wait(5)


async def _healthz_while_held(app, hold: Hold, request) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        task = asyncio.create_task(request(client))
        for _ in range(500):
            if hold.entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert hold.entered.is_set(), "the handler never reached the slow call"
        health = await asyncio.wait_for(client.get("/healthz"), 5)
        assert health.status_code == 200
        hold.released.set()
        response = await task
        assert response.status_code == 200, response.text
    assert hold.released_in_time, "/healthz was answered only after the slow call gave up"


def test_an_upload_in_a_slow_store_write_leaves_the_loop_free(app) -> None:
    ctx = app.state.context
    _, key = ctx.records.create_tenant("acme")
    hold, put_bytes = Hold(), ctx.store.put_bytes

    def slow_put(k, data):
        hold()
        put_bytes(k, data)

    ctx.store.put_bytes = slow_put

    async def upload(client):
        return await client.post("/v1/files", headers={"Authorization": f"Bearer {key}"},
                                 files={"file": ("t.jsonl", TRAINING)})

    asyncio.run(_healthz_while_held(app, hold, upload))


def test_an_event_stream_waiting_on_the_records_leaves_the_loop_free(app) -> None:
    ctx = app.state.context
    job, key = add_job_and_key(ctx, status="cancelled")
    hold, events = Hold(), ctx.records.events

    def slow_events(job_id):
        hold()
        return events(job_id)

    ctx.records.events = slow_events

    async def stream(client):
        return await client.get(f"/v1/fine_tuning/jobs/{job.id}/events", params={"stream": "true"},
                                headers={"Authorization": f"Bearer {key}"})

    asyncio.run(_healthz_while_held(app, hold, stream))


def test_an_idempotent_post_waiting_on_redis_leaves_the_loop_free(app) -> None:
    ctx = app.state.context
    _, key = ctx.records.create_tenant("acme")
    hold, put_if_absent = Hold(), ctx.records.kv.put_if_absent

    def slow_put_if_absent(k, value, ttl=None):
        if k.startswith("idem:"):
            hold()
        return put_if_absent(k, value, ttl=ttl)

    ctx.records.kv.put_if_absent = slow_put_if_absent

    async def upload(client):
        return await client.post("/v1/files", files={"file": ("t.jsonl", TRAINING)},
                                 headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "k1"})

    asyncio.run(_healthz_while_held(app, hold, upload))
