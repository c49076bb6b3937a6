"""`client.files`: upload, list, retrieve and delete training files (`/v1/files`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sdk._base_client import FinalRequestOptions
from sdk.pagination import AsyncCursorPage, SyncCursorPage
from sdk.resources._checks import check_limit, require_id
from sdk.types.file import FileDeleted, FileObject
from sdk.validation import ValidationReport, validate_training_file

if TYPE_CHECKING:
    from sdk.client import AsyncClient, Client


class InvalidTrainingFileError(ValueError):
    """The file failed local validation, so it was not uploaded; `report` has every error."""

    def __init__(self, report: ValidationReport):
        super().__init__(f"training file is invalid, not uploaded: {report.summary()}")
        self.report = report


def _upload_options(file: str | os.PathLike[str], purpose: str,
                    validate: bool) -> FinalRequestOptions:
    path = Path(file)
    if purpose != "fine-tune":
        raise ValueError(f"purpose must be 'fine-tune', got {purpose!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if validate:
        report = validate_training_file(path)
        if not report.ok:
            raise InvalidTrainingFileError(report)
    return FinalRequestOptions(
        "POST", "/v1/files", upload=("file", path, "application/jsonl", {"purpose": purpose}))


def _deleted(body: object, file_id: str) -> FileDeleted:
    if isinstance(body, dict):
        return FileDeleted.model_validate({"id": file_id, "deleted": True, **body})
    return FileDeleted(id=file_id, deleted=True)


class Files:
    def __init__(self, client: Client):
        self._client = client

    def upload(self, file: str | os.PathLike[str], *, purpose: Literal["fine-tune"] = "fine-tune",
               validate: bool = True) -> FileObject:
        """Upload a JSONL chat file; it is validated locally first unless `validate=False`."""
        return self._client._request(_upload_options(file, purpose, validate), FileObject)

    def list(self, *, limit: int | None = None,
             after: str | None = None) -> SyncCursorPage[FileObject]:
        """Your files, newest first; iterating the page walks all of them."""
        params = {"limit": check_limit(limit), "after": after}
        body = self._client._request(FinalRequestOptions("GET", "/v1/files", params=params))
        return SyncCursorPage(body, FileObject, lambda cursor: self.list(limit=limit, after=cursor))

    def retrieve(self, file_id: str) -> FileObject:
        path = f"/v1/files/{require_id('file_id', file_id)}"
        return self._client._request(FinalRequestOptions("GET", path), FileObject)

    def delete(self, file_id: str) -> FileDeleted:
        path = f"/v1/files/{require_id('file_id', file_id)}"
        return _deleted(self._client._request(FinalRequestOptions("DELETE", path)), file_id)


class AsyncFiles:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def upload(self, file: str | os.PathLike[str], *,
                     purpose: Literal["fine-tune"] = "fine-tune",
                     validate: bool = True) -> FileObject:
        return await self._client._request(_upload_options(file, purpose, validate), FileObject)

    async def list(self, *, limit: int | None = None,
                   after: str | None = None) -> AsyncCursorPage[FileObject]:
        params = {"limit": check_limit(limit), "after": after}
        body = await self._client._request(FinalRequestOptions("GET", "/v1/files", params=params))
        return AsyncCursorPage(body, FileObject,
                               lambda cursor: self.list(limit=limit, after=cursor))

    async def retrieve(self, file_id: str) -> FileObject:
        path = f"/v1/files/{require_id('file_id', file_id)}"
        return await self._client._request(FinalRequestOptions("GET", path), FileObject)

    async def delete(self, file_id: str) -> FileDeleted:
        path = f"/v1/files/{require_id('file_id', file_id)}"
        return _deleted(await self._client._request(FinalRequestOptions("DELETE", path)), file_id)
