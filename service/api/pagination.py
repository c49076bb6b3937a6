"""Cursor pagination: `limit` (1-100) and `after` (the last id seen)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from service.api.errors import APIError

T = TypeVar("T")


def page(items: Sequence[T], *, limit: int, after: str | None, render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """One page of `items` (already in list order) after the item whose id is `after`."""
    if not 1 <= limit <= 100:
        raise APIError(400, "invalid_limit", "limit must be between 1 and 100.", "limit")
    start = 0
    if after is not None:
        ids = [i.id for i in items]
        if after not in ids:
            raise APIError(400, "invalid_cursor", f"after={after!r} is not an id in this list.", "after")
        start = ids.index(after) + 1
    chunk = [render(i) for i in items[start : start + limit]]
    return {
        "object": "list",
        "data": chunk,
        "has_more": start + limit < len(items),
        "first_id": chunk[0]["id"] if chunk else None,
        "last_id": chunk[-1]["id"] if chunk else None,
    }
