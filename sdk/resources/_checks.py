"""Argument checks run before any request: a bad call raises ValueError and sends nothing."""

from __future__ import annotations

from typing import Any


def require_id(name: str, value: Any) -> str:
    """A path id must be a non-empty string without `/`, so it cannot escape its URL."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if "/" in value or value != value.strip():
        raise ValueError(f"{name} {value!r} is not a valid id")
    return value


def check_limit(limit: int | None) -> int | None:
    if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= 100):
        raise ValueError(f"limit must be an integer from 1 to 100, got {limit!r}")
    return limit


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> Any:
    if value is not None and value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value
