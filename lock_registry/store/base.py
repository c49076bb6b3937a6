"""The object store interface shared by the local-directory and S3 backends.

Keys are ``/``-separated relative paths (design.md "Object store layout"). Both backends
give the same behaviour: whole-object writes are atomic (a reader sees the old object or
the new one, never a part), ``put_if_absent`` and ``put_if_match`` are atomic
conditional writes, and ``list`` returns every key under a prefix, sorted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from .keys import check_prefix, join


class ObjectStore(ABC):
    """Bytes under string keys, with atomic conditional writes."""

    url: str
    """The store's URL (``file:///...`` or ``s3://bucket/prefix``)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key``, replacing any object there."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> None:
        """Write ``data`` only if ``key`` is free; else raise ``ObjectExistsError``."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, token: str) -> None:
        """Replace ``key`` only if it still has ``token`` (from :meth:`get_with_token`);
        else (changed or deleted meanwhile) raise ``PreconditionFailedError``."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; ``ObjectNotFoundError`` if there is none."""

    @abstractmethod
    def get_with_token(self, key: str) -> tuple[bytes, str]:
        """The object's bytes and a change token for :meth:`put_if_match`."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with ``prefix``, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def upload_file(self, path: str | Path, key: str) -> None:
        """Store a local file under ``key`` (atomically replaced)."""

    @abstractmethod
    def download_file(self, key: str, path: str | Path) -> None:
        """Write the object to a local file; ``ObjectNotFoundError`` if missing."""

    @abstractmethod
    def url_for(self, key: str, expires_s: int = 3600) -> str:
        """A URL a client can GET: pre-signed HTTP for S3, ``file://`` for local."""

    def upload_dir(self, local_dir: str | Path, prefix: str) -> list[str]:
        """Upload every file below ``local_dir`` under ``prefix``; returns the keys."""
        root = Path(local_dir)
        if not root.is_dir():
            raise NotADirectoryError(f"{root} is not a directory")
        keys = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = join(prefix, path.relative_to(root).as_posix())
            self.upload_file(path, key)
            keys.append(key)
        return keys

    def download_dir(self, prefix: str, local_dir: str | Path) -> list[Path]:
        """Download every key under ``prefix/`` into ``local_dir``; returns the paths."""
        base = check_prefix(prefix).rstrip("/") + "/" if prefix else ""
        out = Path(local_dir)
        paths = []
        for key in self.list(base):
            path = out.joinpath(*key[len(base) :].split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.download_file(key, path)
            paths.append(path)
        return paths

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; returns how many."""
        keys = self.list(check_prefix(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
