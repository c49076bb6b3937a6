"""Exceptions: one root, `SafetyLockError`; one subclass per HTTP status family.

Local request validation raises plain `ValueError` before any network call.
"""

from __future__ import annotations

from typing import Any

import httpx


class SafetyLockError(Exception):
    """Root of every error the SDK raises about the service."""


class APIConnectionError(SafetyLockError):
    """The service could not be reached, or the connection broke mid-request."""

    def __init__(self, message: str = "connection error", *, request: httpx.Request | None = None):
        super().__init__(message)
        self.message = message
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out."""

    def __init__(self, *, request: httpx.Request | None = None):
        super().__init__("request timed out", request=request)


class JobWaitTimeoutError(SafetyLockError, TimeoutError):
    """`jobs.wait` reached its deadline; the job goes on running."""

    def __init__(self, job_id: str, timeout: float, status: str):
        super().__init__(f"job {job_id} still {status} after {timeout:g} s")
        self.job_id, self.timeout, self.status = job_id, timeout, status


class APIStatusError(SafetyLockError):
    """The service answered with a 4xx/5xx status.

    `code`, `message` and `param` come from the error body
    (``{"error": {"type", "code", "message", "param"}}``); `request_id` from `x-request-id`.
    """

    def __init__(self, response: httpx.Response, body: Any):
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.response = response
        self.body = body
        self.status: int = response.status_code
        self.type: str | None = error.get("type")
        self.code: str | None = error.get("code")
        self.param: str | None = error.get("param")
        self.message: str = error.get("message") or (
            response.text[:500] if not error else "") or response.reason_phrase
        self.request_id: str | None = response.headers.get("x-request-id")
        detail = f" ({self.code})" if self.code else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        super().__init__(f"{self.status}{detail}: {self.message}{rid}")

    @property
    def status_code(self) -> int:
        """Alias of `status`, as in openai-python."""
        return self.status


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: missing or unknown API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (e.g. a customer key on an operator route)."""


class NotFoundError(APIStatusError):
    """404, also for another tenant's ids."""


class ConflictError(APIStatusError):
    """409: the resource is not in a state that allows this."""


class UnprocessableEntityError(APIStatusError):
    """422: the request is well-formed but its content is invalid."""


class RateLimitError(APIStatusError):
    """429."""


class InternalServerError(APIStatusError):
    """5xx."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for(response: httpx.Response) -> APIStatusError:
    """The exception that matches a failed response, with its body parsed if it is JSON."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code >= 500:
        return InternalServerError(response, body)
    return _BY_STATUS.get(response.status_code, APIStatusError)(response, body)
