"""HTTP plumbing shared by `Client` and `AsyncClient`: auth, retries, errors, parsing."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pydantic

from sdk import _constants as C
from sdk.errors import (
    APIConnectionError,
    APITimeoutError,
    SafetyLockError,
    error_for,
)

log = logging.getLogger("safetylock")
T = TypeVar("T", bound=pydantic.BaseModel)
VERSION = "0.1.0"


@dataclass
class FinalRequestOptions:
    """One logical API call; the same options (and idempotency key) serve every retry."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    upload: tuple[str, Path, str, dict[str, str]] | None = None
    """(form field, path, content type, other form fields) for a multipart upload."""
    idempotency_key: str | None = None
    max_retries: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method.upper() == "POST" and self.idempotency_key is None:
            self.idempotency_key = f"safetylock-retry-{uuid.uuid4()}"
        if self.upload is not None:
            # One multipart boundary for every try: a retry must send the same bytes, or the
            # service would see a different request under the same idempotency key.
            self.headers.setdefault(
                "Content-Type", f"multipart/form-data; boundary={uuid.uuid4().hex}")


class BaseClient:
    """Configuration and the pieces of one request that do not depend on sync or async."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float,
        max_retries: int,
        default_headers: Mapping[str, str] | None,
    ):
        if not api_key:
            raise SafetyLockError(
                "no API key: pass api_key=... or set SAFETYLOCK_API_KEY")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self._default_headers = dict(default_headers or {})

    def _headers(self, opts: FinalRequestOptions, retries_taken: int) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"safetylock-python/{VERSION}",
            **self._default_headers,
            **opts.headers,
        }
        if opts.idempotency_key:
            headers["Idempotency-Key"] = opts.idempotency_key
        if retries_taken:
            headers["x-safetylock-retry-count"] = str(retries_taken)
        return headers

    def _auth_for(self, url: str) -> dict[str, str]:
        """Our key goes only to our own service, never to a pre-signed storage URL."""
        same = httpx.URL(url).netloc == self.base_url.netloc
        return {"Authorization": f"Bearer {self.api_key}"} if same else {}

    def _url(self, path: str) -> httpx.URL:
        return self.base_url.join(path.lstrip("/"))

    def _request_kwargs(self, opts: FinalRequestOptions, retries_taken: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "method": opts.method,
            "url": self._url(opts.path),
            "headers": self._headers(opts, retries_taken),
            "timeout": self.timeout,
        }
        if opts.params:
            kwargs["params"] = {k: v for k, v in opts.params.items() if v is not None}
        if opts.json is not None:
            kwargs["json"] = opts.json
        return kwargs

    def _max_retries(self, opts: FinalRequestOptions) -> int:
        return self.max_retries if opts.max_retries is None else opts.max_retries

    @staticmethod
    def _should_retry(response: httpx.Response) -> bool:
        return response.status_code in C.RETRY_STATUSES or response.status_code >= 500

    @staticmethod
    def _retry_delay(retries_taken: int, response: httpx.Response | None) -> float:
        """Seconds before the next try: the server's Retry-After if sane, else backoff."""
        if response is not None:
            after = _parse_retry_after(response.headers)
            if after is not None and 0 <= after <= C.MAX_RETRY_AFTER:
                return after
        delay = min(C.INITIAL_RETRY_DELAY * 2.0**retries_taken, C.MAX_RETRY_DELAY)
        return delay * (1 - 0.25 * random.random())

    @staticmethod
    def _parse(response: httpx.Response, cast: type[T] | None) -> Any:
        if not response.is_success:
            raise error_for(response)
        try:
            if cast is None:
                return response.json() if response.content else None
            return cast.model_validate(response.json())
        except (ValueError, pydantic.ValidationError) as exc:
            raise SafetyLockError(
                f"unexpected response to {response.request.method} {response.request.url.path}: "
                f"{exc}") from exc


def _parse_retry_after(headers: httpx.Headers) -> float | None:
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else parsed.timestamp() - time.time()


class SyncAPIClient(BaseClient):
    """Sends requests through an `httpx.Client`, retrying per the table in `_constants`."""

    def __init__(self, *, http_client: httpx.Client | None, **kwargs: Any):
        super().__init__(**kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(follow_redirects=True)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def request(self, opts: FinalRequestOptions, cast: type[T] | None = None) -> Any:
        return self._parse(self._send(opts), cast)

    def _send(self, opts: FinalRequestOptions, *, stream: bool = False) -> httpx.Response:
        retries_taken = 0
        while True:
            kwargs = self._request_kwargs(opts, retries_taken)
            handle = None
            try:
                if opts.upload:
                    name, path, ctype, data = opts.upload
                    handle = path.open("rb")
                    kwargs.update(files={name: (path.name, handle, ctype)}, data=data)
                request = self._http.build_request(**kwargs)
                response = self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                error: APIConnectionError = APITimeoutError(request=exc.request)
                response = None
            except httpx.TransportError as exc:
                error = APIConnectionError(f"connection error: {exc}", request=exc.request)
                response = None
            finally:
                if handle:
                    handle.close()
            if response is not None and (response.is_success or not self._should_retry(response)):
                return response
            if retries_taken >= self._max_retries(opts):
                if response is None:
                    raise error
                if stream:
                    response.read()
                return response
            delay = self._retry_delay(retries_taken, response)
            log.info("retrying %s %s in %.2fs (%s)", opts.method, opts.path, delay,
                     response.status_code if response is not None else "connection error")
            if response is not None:
                response.close()
            time.sleep(delay)
            retries_taken += 1


class AsyncAPIClient(BaseClient):
    """The same as `SyncAPIClient` on an `httpx.AsyncClient`."""

    def __init__(self, *, http_client: httpx.AsyncClient | None, **kwargs: Any):
        super().__init__(**kwargs)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(follow_redirects=True)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def request(self, opts: FinalRequestOptions, cast: type[T] | None = None) -> Any:
        return self._parse(await self._send(opts), cast)

    async def _send(self, opts: FinalRequestOptions, *, stream: bool = False) -> httpx.Response:
        retries_taken = 0
        while True:
            kwargs = self._request_kwargs(opts, retries_taken)
            handle = None
            try:
                if opts.upload:
                    name, path, ctype, data = opts.upload
                    handle = path.open("rb")
                    kwargs.update(files={name: (path.name, handle, ctype)}, data=data)
                request = self._http.build_request(**kwargs)
                response = await self._http.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                error: APIConnectionError = APITimeoutError(request=exc.request)
                response = None
            except httpx.TransportError as exc:
                error = APIConnectionError(f"connection error: {exc}", request=exc.request)
                response = None
            finally:
                if handle:
                    handle.close()
            if response is not None and (response.is_success or not self._should_retry(response)):
                return response
            if retries_taken >= self._max_retries(opts):
                if response is None:
                    raise error
                if stream:
                    await response.aread()
                return response
            delay = self._retry_delay(retries_taken, response)
            log.info("retrying %s %s in %.2fs (%s)", opts.method, opts.path, delay,
                     response.status_code if response is not None else "connection error")
            if response is not None:
                await response.aclose()
            await asyncio.sleep(delay)
            retries_taken += 1
