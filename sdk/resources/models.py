"""`client.models`: published fine-tuned models (`/v1/models`) and their download."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from sdk._base_client import FinalRequestOptions
from sdk.errors import SafetyLockError, error_for
from sdk.pagination import AsyncCursorPage, SyncCursorPage
from sdk.resources._checks import check_limit, require_id
from sdk.types.model import DownloadFile, Model, ModelDownload

if TYPE_CHECKING:
    from sdk.client import AsyncClient, Client


def _target(dest: Path, item: DownloadFile) -> Path:
    """Where one file goes; a path that would leave `dest` is refused."""
    rel = PurePosixPath(item.path)
    if rel.is_absolute() or not rel.parts or ".." in rel.parts:
        raise SafetyLockError(f"refusing download path {item.path!r}: not inside the destination")
    return dest.joinpath(*rel.parts)


def _local_source(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(url2pathname(unquote(parsed.path)))


def _finish(part: Path, target: Path, item: DownloadFile, digest: hashlib._Hash) -> None:
    if item.sha256 and digest.hexdigest() != item.sha256:
        part.unlink(missing_ok=True)
        raise SafetyLockError(f"{item.path}: sha256 mismatch, download discarded")
    os.replace(part, target)


class Models:
    def __init__(self, client: Client):
        self._client = client

    def list(self, *, limit: int | None = None, after: str | None = None) -> SyncCursorPage[Model]:
        """Your published models; iterating the page walks all of them."""
        params = {"limit": check_limit(limit), "after": after}
        body = self._client._request(FinalRequestOptions("GET", "/v1/models", params=params))
        return SyncCursorPage(body, Model, lambda cursor: self.list(limit=limit, after=cursor))

    def retrieve(self, model_id: str) -> Model:
        path = f"/v1/models/{require_id('model_id', model_id)}"
        return self._client._request(FinalRequestOptions("GET", path), Model)

    def download_urls(self, model_id: str) -> ModelDownload:
        """The model's files with short-lived URLs (pre-signed, or `file://` when embedded)."""
        path = f"/v1/models/{require_id('model_id', model_id)}/download"
        return self._client._request(FinalRequestOptions("GET", path), ModelDownload)

    def download(self, model_id: str, dest: str | os.PathLike[str]) -> Path:
        """Download every file of the model into directory `dest`; returns `dest`.

        Each file is written beside its target and moved into place once complete
        (and its sha256 checked when the service gives one). A tenant whose weights the
        operator has not released gets `PermissionDeniedError` (`weights_not_released`).
        """
        listing = self.download_urls(model_id)
        root = Path(dest)
        for item in listing.files:
            target = _target(root, item)
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            digest = hashlib.sha256()
            if (source := _local_source(item.url)) is not None:
                with source.open("rb") as src, part.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            else:
                with self._client._http.stream("GET", item.url, timeout=self._client.timeout,
                                               headers=self._client._auth_for(item.url)) as resp:
                    if not resp.is_success:
                        resp.read()
                        raise error_for(resp)
                    with part.open("wb") as out:
                        for chunk in resp.iter_bytes():
                            digest.update(chunk)
                            out.write(chunk)
            _finish(part, target, item, digest)
        return root


class AsyncModels:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def list(self, *, limit: int | None = None,
                   after: str | None = None) -> AsyncCursorPage[Model]:
        params = {"limit": check_limit(limit), "after": after}
        body = await self._client._request(FinalRequestOptions("GET", "/v1/models", params=params))
        return AsyncCursorPage(body, Model, lambda cursor: self.list(limit=limit, after=cursor))

    async def retrieve(self, model_id: str) -> Model:
        path = f"/v1/models/{require_id('model_id', model_id)}"
        return await self._client._request(FinalRequestOptions("GET", path), Model)

    async def download_urls(self, model_id: str) -> ModelDownload:
        path = f"/v1/models/{require_id('model_id', model_id)}/download"
        return await self._client._request(FinalRequestOptions("GET", path), ModelDownload)

    async def download(self, model_id: str, dest: str | os.PathLike[str]) -> Path:
        listing = await self.download_urls(model_id)
        root = Path(dest)
        for item in listing.files:
            target = _target(root, item)
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            digest = hashlib.sha256()
            if (source := _local_source(item.url)) is not None:
                with source.open("rb") as src, part.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            else:
                async with self._client._http.stream(
                        "GET", item.url, timeout=self._client.timeout,
                        headers=self._client._auth_for(item.url)) as resp:
                    if not resp.is_success:
                        await resp.aread()
                        raise error_for(resp)
                    with part.open("wb") as out:
                        async for chunk in resp.aiter_bytes():
                            digest.update(chunk)
                            out.write(chunk)
            _finish(part, target, item, digest)
        return root

