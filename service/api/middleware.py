"""The middleware stack: request ids on every response, the request guard (`request_guard`),
and idempotent POSTs (`Idempotency-Key`). All pure ASGI: no per-request task group, and
every Redis call runs in the thread pool, never on the event loop."""

from __future__ import annotations

import hashlib
import json
import secrets

from anyio import to_thread
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.api.request_guard import RequestGuard
from service.state.kv import KV

PENDING_TTL_SECONDS = 600
"""A slot whose request never finished (the API process died) frees itself after this."""
DONE_TTL_SECONDS = 24 * 3600
"""How long a stored answer is replayed for its key."""


class RequestIdMiddleware:
    """`x-request-id` on every response: the caller's, or a new one (also in request state)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = Headers(scope=scope).get("x-request-id") or "req_" + secrets.token_hex(12)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class IdempotencyMiddleware:
    """Store (tenant, key) -> response of a POST and replay it for a repeated key.

    Only for authenticated callers (the request guard ran first), so keys are per tenant
    and the fingerprinted body is within the route's size limit. A key reused with a
    different request is refused; a key whose first request is still running is a 409.
    Server errors and 429s are not stored (the request did nothing), so a retry runs again.
    Every slot expires: a pending one after `PENDING_TTL_SECONDS` (its request crashed), a
    stored answer after `DONE_TTL_SECONDS`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        key = headers.get("idempotency-key") if headers else None
        tenant = scope.get("state", {}).get("tenant")
        if scope["type"] != "http" or scope["method"] != "POST" or not key or tenant is None:
            await self.app(scope, receive, send)
            return
        if len(key) > 255:
            await error_response(400, "invalid_idempotency_key", "Idempotency-Key is longer than 255 characters.")(
                scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except ClientDisconnect:  # nobody to answer, nothing done
            return
        except HTTPException as exc:  # over the route's size limit (the request guard's counter)
            if exc.status_code != 413:
                raise
            limit = scope.get(MAX_BODY_SIZE_SCOPE_KEY)
            message = f"The request body is larger than the limit of {limit} bytes."
            await error_response(413, "request_too_large", message)(scope, receive, send)
            return
        kv: KV = scope["app"].state.context.records.kv
        fingerprint = _fingerprint(scope["path"], headers.get("content-type", ""), body)
        slot = f"idem:{tenant.id}:{hashlib.sha256(key.encode()).hexdigest()}"
        pending = json.dumps({"state": "pending", "fingerprint": fingerprint})
        if not await to_thread.run_sync(lambda: kv.put_if_absent(slot, pending, ttl=PENDING_TTL_SECONDS)):
            stored = json.loads(await to_thread.run_sync(kv.get, slot) or "{}")
            await _answer_repeat(stored, fingerprint)(scope, receive, send)
            return
        sent: list[Message] = []

        async def capture(message: Message) -> None:
            sent.append(message)

        try:
            await self.app(scope, _replaying(body, receive), capture)
        except BaseException:
            await to_thread.run_sync(kv.delete, slot)
            raise
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        if status >= 500 or status == 429:
            await to_thread.run_sync(kv.delete, slot)
        else:
            content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
            done = {"state": "done", "fingerprint": fingerprint, "status": status, "body": content.decode()}
            await to_thread.run_sync(lambda: kv.put(slot, json.dumps(done), ttl=DONE_TTL_SECONDS))
        for message in sent:
            await send(message)


def _answer_repeat(stored: dict, fingerprint: str) -> Response:
    """The answer to a key seen before: refused if the request differs or still runs, else replayed."""
    if stored.get("fingerprint") != fingerprint:
        return error_response(400, "idempotency_key_reused", "This Idempotency-Key was used for a different request.")
    if stored.get("state") == "pending":
        return error_response(409, "idempotency_key_in_use", "A request with this Idempotency-Key is still in progress.")
    replay = Response(stored["body"], status_code=stored["status"], media_type="application/json")
    replay.headers["idempotent-replayed"] = "true"
    return replay


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the real channel (disconnects)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _fingerprint(path: str, content_type: str, body: bytes) -> str:
    """The request's identity; a multipart body's random boundary does not count."""
    _, _, boundary = content_type.partition("boundary=")
    if boundary:
        body = body.replace(boundary.strip('"').encode(), b"")
    return hashlib.sha256(path.encode() + b"\0" + body).hexdigest()


def install(app: FastAPI) -> None:
    """Outermost first: request ids on every answer, then authentication and body limits
    before any body is read, then idempotency (for authenticated callers only)."""
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestGuard)
    app.add_middleware(RequestIdMiddleware)  # added last = outermost
