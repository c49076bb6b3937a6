"""Cursor pagination: `limit` (1-100) and `after` (the last id seen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from service.api.errors import APIError

T = TypeVar("T")


def page(items: Sequence[T], *, limit: int, after: str | None, render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """One page of `items` (already in list order) after the item whose id is `after`."""
    start = _start([i.id for i in items], limit, after)  # type: ignore[attr-defined]
    return _page([render(i) for i in items[start : start + limit]], has_more=start + limit < len(items))


def page_of_ids(
    ids: Sequence[str],
    *,
    limit: int,
    after: str | None,
    fetch: Callable[[list[str]], Sequence[T]],
    render: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    """One page of the list `ids` after `after`, reading only that page's records with
    `fetch` (which leaves out an id whose record has just been deleted)."""
    start = _start(ids, limit, after)
    chunk = [render(i) for i in fetch(list(ids[start : start + limit]))]
    return _page(chunk, has_more=start + limit < len(ids))


def _start(ids: Sequence[str], limit: int, after: str | None) -> int:
    if not 1 <= limit <= 100:
        raise APIError(400, "invalid_limit", "limit must be between 1 and 100.", "limit")
    if after is None:
        return 0
    try:
        return list(ids).index(after) + 1
    except ValueError:
        raise APIError(400, "invalid_cursor", f"after={after!r} is not an id in this list.", "after") from None


def _page(chunk: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": chunk,
        "has_more": has_more,
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
    }
