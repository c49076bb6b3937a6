"""Cursor pages: `after` = last id seen, `has_more` says whether to go on.

Iterating a page walks every item of every following page, fetching them lazily;
`page.data` is the current page only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, Literal, TypeVar

import pydantic

T = TypeVar("T", bound=pydantic.BaseModel)


class _ListBody(pydantic.BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class _Page(Generic[T]):
    def __init__(self, body: dict[str, Any], item: type[T]):
        parsed = _ListBody.model_validate(body)
        self.data: list[T] = [item.model_validate(d) for d in parsed.data]
        self.has_more = parsed.has_more
        self.first_id = parsed.first_id
        self.last_id = parsed.last_id or (self.data[-1].id if self.data else None)

    def has_next_page(self) -> bool:
        return self.has_more and bool(self.data) and self.last_id is not None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data={self.data!r}, has_more={self.has_more})"


class SyncCursorPage(_Page[T]):
    def __init__(self, body: dict[str, Any], item: type[T],
                 fetch: Callable[[str], SyncCursorPage[T]]):
        super().__init__(body, item)
        self._fetch = fetch

    def get_next_page(self) -> SyncCursorPage[T]:
        if not self.has_next_page():
            raise StopIteration("no next page")
        return self._fetch(self.last_id)  # type: ignore[arg-type]

    def iter_pages(self) -> Iterator[SyncCursorPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = page.get_next_page()
            yield page

    def __iter__(self) -> Iterator[T]:  # type: ignore[override]
        for page in self.iter_pages():
            yield from page.data


class AsyncCursorPage(_Page[T]):
    def __init__(self, body: dict[str, Any], item: type[T],
                 fetch: Callable[[str], Awaitable[AsyncCursorPage[T]]]):
        super().__init__(body, item)
        self._fetch = fetch

    async def get_next_page(self) -> AsyncCursorPage[T]:
        if not self.has_next_page():
            raise StopAsyncIteration("no next page")
        return await self._fetch(self.last_id)  # type: ignore[arg-type]

    async def iter_pages(self) -> AsyncIterator[AsyncCursorPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = await page.get_next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item
