"""An `httpx.Client` that calls an ASGI app in this process, for embedded mode and tests.

    client = Client(api_key=key, http_client=asgi_http_client(app))

The app runs on an event loop in a helper thread (an anyio blocking portal); each
request is sent whole and its response read whole, so streams arrive at the end.
"""

from __future__ import annotations

from typing import Any

import anyio.from_thread
import httpx


class ASGIBridgeTransport(httpx.BaseTransport):
    """A synchronous transport in front of `httpx.ASGITransport`."""

    def __init__(self, app: Any):
        self._inner = httpx.ASGITransport(app=app)
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers,
                                      content=body)
            response = await self._inner.handle_async_request(forwarded)
            content = b"".join([chunk async for chunk in response.stream])
            return response.status_code, response.headers.raw, content

        status, headers, content = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)


def asgi_http_client(app: Any, *, timeout: float = 600.0) -> httpx.Client:
    """An `httpx.Client` whose requests go straight to `app` (a FastAPI/Starlette app)."""
    return httpx.Client(transport=ASGIBridgeTransport(app), base_url="http://embedded",
                        timeout=timeout)
