"""The middleware stack: request ids on every response, the request guard (`request_guard`),
and idempotent POSTs (`Idempotency-Key`)."""

from __future__ import annotations

import hashlib
import json
import secrets

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.responses import Response

from service.api.errors import error_response
from service.api.request_guard import RequestGuard

PENDING_TTL_SECONDS = 600
"""A slot whose request never finished (the API process died) frees itself after this."""
DONE_TTL_SECONDS = 24 * 3600
"""How long a stored answer is replayed for its key."""


class RequestIdMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request_id = request.headers.get("x-request-id") or "req_" + secrets.token_hex(12)
        request.state.request_id = request_id
        response = await call_next(request)
        response.headers["x-request-id"] = request_id
        return response


class IdempotencyMiddleware(BaseHTTPMiddleware):
    """Store (tenant, key) -> response of a POST and replay it for a repeated key.

    Only for authenticated callers (the request guard ran first), so keys are per tenant
    and the fingerprinted body is within the route's size limit. A key reused with a
    different request is refused; a key whose first request is still running is a 409.
    Server errors and 429s are not stored (the request did nothing), so a retry runs again.
    Every slot expires: a pending one after `PENDING_TTL_SECONDS` (its request crashed), a
    stored answer after `DONE_TTL_SECONDS`.
    """

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        key = request.headers.get("idempotency-key")
        tenant = getattr(request.state, "tenant", None)
        if request.method != "POST" or not key or tenant is None:
            return await call_next(request)
        if len(key) > 255:
            return error_response(400, "invalid_idempotency_key", "Idempotency-Key is longer than 255 characters.")
        records = request.app.state.context.records
        try:
            body = await request.body()
        except HTTPException as exc:  # over the route's size limit (the request guard's counter)
            if exc.status_code != 413:
                raise
            limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
            return error_response(413, "request_too_large", f"The request body is larger than the limit of {limit} bytes.")
        fingerprint = _fingerprint(request.url.path, request.headers.get("content-type", ""), body)
        slot = f"idem:{tenant.id}:{hashlib.sha256(key.encode()).hexdigest()}"
        pending = json.dumps({"state": "pending", "fingerprint": fingerprint})
        if not records.kv.put_if_absent(slot, pending, ttl=PENDING_TTL_SECONDS):
            stored = json.loads(records.kv.get(slot) or "{}")
            if stored.get("fingerprint") != fingerprint:
                return error_response(400, "idempotency_key_reused", "This Idempotency-Key was used for a different request.")
            if stored.get("state") == "pending":
                return error_response(409, "idempotency_key_in_use", "A request with this Idempotency-Key is still in progress.")
            replay = Response(stored["body"], status_code=stored["status"], media_type="application/json")
            replay.headers["idempotent-replayed"] = "true"
            return replay
        try:
            response = await call_next(request)
        except BaseException:
            records.kv.delete(slot)
            raise
        if response.status_code >= 500 or response.status_code == 429:
            records.kv.delete(slot)
            return response
        chunks = [chunk async for chunk in response.body_iterator]
        content = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
        done = {"state": "done", "fingerprint": fingerprint, "status": response.status_code, "body": content.decode()}
        records.kv.put(slot, json.dumps(done), ttl=DONE_TTL_SECONDS)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(content, status_code=response.status_code, headers=headers, media_type=response.media_type)


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
