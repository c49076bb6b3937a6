"""A small Server-Sent Events reader: yields the `data` of each event."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator


class SSEDecoder:
    """Feed lines in; each blank line completes an event whose data lines are joined."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if not line:
            data, self._data = self._data, []
            return "\n".join(data) if data else None
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        return None

    def flush(self) -> str | None:
        return self.feed("")


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    decoder = SSEDecoder()
    for line in lines:
        if (data := decoder.feed(line)) is not None:
            yield data
    if (data := decoder.flush()) is not None:
        yield data


async def aiter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    decoder = SSEDecoder()
    async for line in lines:
        if (data := decoder.feed(line)) is not None:
            yield data
    if (data := decoder.flush()) is not None:
        yield data
