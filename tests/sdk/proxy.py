"""Fault injection between the SDK and a real server: an httpx transport that forwards
every request over real HTTP and can drop a response after the server handled it, or
answer with a scripted error instead of forwarding."""

from __future__ import annotations

from collections.abc import Callable

import httpx


class FaultyProxy(httpx.BaseTransport):
    def __init__(self) -> None:
        self._real = httpx.HTTPTransport()
        self.drop: Callable[[httpx.Request], bool] = lambda r: False
        self.scripted: list[httpx.Response] = []
        self.seen: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.dropped: list[httpx.Request] = []

    def drop_once(self, method: str, path_suffix: str) -> None:
        """Forward the next matching request, let the server act on it, then lose the answer."""

        def match(request: httpx.Request) -> bool:
            if request.method == method and request.url.path.endswith(path_suffix):
                self.drop = lambda r: False
                return True
            return False

        self.drop = match

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        self.bodies.append(request.read())
        if self.scripted:
            return self.scripted.pop(0)
        response = self._real.handle_request(request)
        if self.drop(request):
            response.read()
            response.close()
            self.dropped.append(request)
            raise httpx.RemoteProtocolError("server disconnected without a response",
                                            request=request)
        return response

    def close(self) -> None:
        self._real.close()
