"""``file://`` backend: objects are files below a root directory.

Writes go to a hidden temporary file in the target directory and are then renamed
(``os.replace``) or hard-linked (``os.link``, which fails if the name is taken) into
place, so a reader never sees a partial object and ``put_if_absent`` is atomic.
``put_if_match`` holds an exclusive ``flock`` on the object's directory while it
compares and replaces; the change token is the content's sha256. These guarantees hold
between processes on one host (a local or block-device file system, not NFS).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import ObjectStore
from .errors import ObjectExistsError, ObjectNotFoundError, PreconditionFailedError
from .keys import check_key, check_prefix

TEMP_PREFIX = ".tmp-"


class LocalStore(ObjectStore):
    """Objects as files below ``root`` (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _temp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"

    def _write_temp(self, path: Path, data: bytes) -> Path:
        temp = self._temp_beside(path)
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temp

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        os.replace(self._write_temp(path, data), path)

    def put_if_absent(self, key: str, data: bytes) -> None:
        path = self._path(key)
        temp = self._write_temp(path, data)
        try:
            os.link(temp, path)
        except FileExistsError:
            raise ObjectExistsError(f"{self.url}/{key} already exists") from None
        finally:
            temp.unlink()

    def put_if_match(self, key: str, data: bytes, token: str) -> None:
        path = self._path(key)
        changed = PreconditionFailedError(
            f"{self.url}/{key} changed or was deleted since it was read"
        )
        if not path.is_file():
            raise changed
        with self._dir_lock(path.parent):
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != token:
                raise changed
            os.replace(self._write_temp(path, data), path)

    @contextmanager
    def _dir_lock(self, directory: Path) -> Iterator[None]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from None

    def get_with_token(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        # walk only the deepest directory that the prefix fully names
        start = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if not start.is_dir():
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        # empty directories are left in place: pruning them would race with writers
        try:
            self._path(key).unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            pass

    def upload_file(self, path: str | Path, key: str) -> None:
        target = self._path(key)
        temp = self._temp_beside(target)
        shutil.copyfile(path, temp)
        os.replace(temp, target)

    def download_file(self, key: str, path: str | Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}")
        shutil.copyfile(source, path)

    def url_for(self, key: str, expires_s: int = 3600) -> str:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}")
        return path.as_uri()
