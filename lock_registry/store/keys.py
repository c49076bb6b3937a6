"""Validation of object keys and prefixes (the same rules on every backend)."""

from __future__ import annotations

from .errors import InvalidKeyError


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise :class:`InvalidKeyError`."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"object key must be a non-empty string, got {key!r}")
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKeyError(f"object key {key!r} must not start or end with '/'")
    if "\\" in key or "\x00" in key:
        raise InvalidKeyError(f"object key {key!r} must not contain '\\' or NUL")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKeyError(f"object key {key!r} has an empty, '.' or '..' segment")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is ``""`` or a valid key, optionally ending with ``/``."""
    if prefix == "":
        return prefix
    check_key(prefix.removesuffix("/"))
    return prefix


def join(prefix: str, relative: str) -> str:
    """``prefix`` and a relative path joined with exactly one ``/``."""
    return check_key(f"{prefix.rstrip('/')}/{relative}" if prefix else relative)
