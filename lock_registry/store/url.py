"""``open_store(url)``: the store named by a URL, or by ``SAFETYLOCK_STORE_URL``."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import ObjectStore
from .local import LocalStore

STORE_URL_ENV = "SAFETYLOCK_STORE_URL"
ENDPOINT_ENV = ("SAFETYLOCK_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")


def default_store_url() -> str:
    """``$SAFETYLOCK_STORE_URL``, else ``$SAFETYLOCK_DATA_DIR/store`` (``~/.safetylock``):
    the same default as the embedded service, so locks published there are found."""
    url = os.environ.get(STORE_URL_ENV, "").strip()
    if url:
        return url
    data_dir = os.environ.get("SAFETYLOCK_DATA_DIR", "").strip() or "~/.safetylock"
    return (Path(data_dir).expanduser().resolve() / "store").as_uri()


def default_endpoint_url() -> str | None:
    """``$SAFETYLOCK_S3_ENDPOINT_URL``, else ``$AWS_ENDPOINT_URL``, else boto3's default."""
    for name in ENDPOINT_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def open_store(url: str | None = None, *, endpoint_url: str | None = None) -> ObjectStore:
    """Open ``file:///dir`` (or a plain path) or ``s3://bucket[/prefix]``.

    ``url`` defaults to :func:`default_store_url`; ``endpoint_url`` (S3 only) to
    :func:`default_endpoint_url`.
    """
    url = url or default_store_url()
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from .s3 import S3Store

        return S3Store(
            parsed.netloc, parsed.path, endpoint_url=endpoint_url or default_endpoint_url()
        )
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(
                f"store URL {url!r}: a file:// URL needs an absolute path (file:///dir)"
            )
        return LocalStore(unquote(parsed.path))
    if parsed.scheme == "":
        return LocalStore(url)
    raise ValueError(
        f"store URL {url!r}: unsupported scheme {parsed.scheme!r} (use file:// or s3://)"
    )
