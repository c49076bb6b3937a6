"""Typed error bodies: `{"error": {"type", "code", "message", "param"}}` for every 4xx/5xx."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY

from lock_registry.store.errors import StoreConnectionError
from service.outages import UNAVAILABLE

log = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE_SECONDS = 5

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class APIError(Exception):
    """An error the API answers with; `status` picks the HTTP status and error type."""

    def __init__(
        self, status: int, code: str, message: str, param: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param
        self.headers = headers or {}


def not_found(kind: str, ident: str, param: str | None = None) -> APIError:
    """The one answer for a missing id and for another tenant's id alike."""
    return APIError(404, f"{kind}_not_found", f"No {kind} with id {ident!r}.", param)


def error_response(
    status: int, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": _TYPES.get(status, "api_error"), "code": code, "message": message, "param": param}}
    return JSONResponse(body, status_code=status, headers=headers)


def unavailable_response() -> JSONResponse:
    """503 with Retry-After: a backend (the store, Redis) cannot be reached right now."""
    return error_response(
        503, "service_unavailable", "A backend of the service is unreachable; nothing was changed. Retry shortly.",
        headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_SECONDS)},
    )


def install(app: FastAPI) -> None:
    """Route every exception FastAPI can raise into the typed error body."""

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.param, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", f"The request body is not valid JSON: {first.get('ctx', {}).get('error', '')}.")
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        param = ".".join(loc) or None
        return error_response(400, "invalid_value", f"{param or 'request'}: {first.get('msg')}", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code, "http_error")
        message = f"No route for {request.method} {request.url.path}." if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 413 and MAX_BODY_SIZE_SCOPE_KEY in request.scope:
            message = f"The request body is larger than the limit of {request.scope[MAX_BODY_SIZE_SCOPE_KEY]} bytes."
        return error_response(exc.status_code, code, message)

    @app.exception_handler(StoreConnectionError)
    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency down on %s %s: %s", request.method, request.url.path, exc)
        return unavailable_response()

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, UNAVAILABLE):  # raised outside the routes (the request guard)
            return await _unavailable(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "The server failed to handle the request; it has been logged.")
