"""Requests cost nothing until authenticated, and no body outgrows its route's limit.

A pure ASGI middleware that runs before anything reads a body:
- a request under `/v1/` without a valid API key is answered 401 before its body is read,
  a suspended tenant's 403, and one past the tenant's requests per minute 429 with
  Retry-After; the tenant found rides in the request state, so the routes do not look
  the key up again;
- a body whose `Content-Length` exceeds the route's limit is answered 413 before it is
  read, and a body sent without one (chunked) is counted as it streams and cut off at the
  limit (Starlette's `RequestBodyLimitResponder`, with a limit per route): uploads may
  carry `max_file_bytes` plus the multipart framing, everything else `max_json_body_bytes`.
"""

from __future__ import annotations

import logging
import math
import time

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitResponder
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import UNAVAILABLE, APIError, error_response, unavailable_response
from service.context import ServiceContext
from service.state.records import TenantRecord

log = logging.getLogger(__name__)

MULTIPART_FRAMING_BYTES = 64 * 1024
"""Room for the multipart boundaries, headers and the `purpose` field around an upload."""
UPLOAD_PATH = "/v1/files"
RATE_WINDOW_SECONDS = 60


def authenticate(ctx: ServiceContext, authorization: str | None) -> TenantRecord:
    """The tenant of `Authorization: Bearer <key>`, or APIError 401."""
    if not authorization:
        raise APIError(401, "missing_api_key", "Send your API key as 'Authorization: Bearer <key>'.")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise APIError(401, "invalid_authorization", "The Authorization header must be 'Bearer <key>'.")
    tenant = ctx.records.tenant_for_key(key.strip())
    if tenant is None:
        raise APIError(401, "invalid_api_key", "The API key is not valid.")
    return tenant


def admit(ctx: ServiceContext, authorization: str | None, now: float | None = None) -> TenantRecord:
    """`authenticate`, then refuse a suspended tenant (403) and one over its rate (429)."""
    tenant = authenticate(ctx, authorization)
    if tenant.suspended:
        raise APIError(403, "tenant_suspended", "This tenant is suspended; contact the platform's operators.")
    now = time.time() if now is None else now
    window = int(now // RATE_WINDOW_SECONDS)
    count = ctx.records.kv.incr(f"rate:{tenant.id}:{window}", ttl=2 * RATE_WINDOW_SECONDS)
    if count > ctx.settings.rate_limit_per_minute:
        retry_after = math.ceil((window + 1) * RATE_WINDOW_SECONDS - now)
        raise APIError(
            429, "rate_limited",
            f"More than {ctx.settings.rate_limit_per_minute} requests this minute; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
    return tenant


def body_limit(ctx: ServiceContext, method: str, path: str) -> int:
    if method == "POST" and path.rstrip("/") == UPLOAD_PATH:
        return ctx.settings.max_file_bytes + MULTIPART_FRAMING_BYTES
    return ctx.settings.max_json_body_bytes


class RequestGuard:
    """Authenticate `/v1/` requests, then limit their bodies (ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        ctx: ServiceContext = scope["app"].state.context
        headers = Headers(scope=scope)
        try:
            tenant = await to_thread.run_sync(admit, ctx, headers.get("authorization"))
        except APIError as exc:
            await error_response(exc.status, exc.code, exc.message, headers=exc.headers)(scope, receive, send)
            return
        except UNAVAILABLE as exc:  # answered here: past this middleware it would be an unhandled error
            log.warning("dependency down while authenticating %s: %s", scope["path"], exc)
            await unavailable_response()(scope, receive, send)
            return
        scope.setdefault("state", {})["tenant"] = tenant
        limit = body_limit(ctx, scope["method"], scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before reading, with the typed body
            message = f"The request body is larger than the limit of {limit} bytes."
            await error_response(413, "request_too_large", message)(scope, receive, send)
            return
        await RequestBodyLimitResponder(self.app, limit)(scope, receive, send)
