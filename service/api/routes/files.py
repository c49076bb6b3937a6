"""Training and validation files: upload (checked like the SDK checks), list, retrieve, delete."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from sdk.validation import validate_training_bytes
from service.api.deps import Context, Tenant, checked_id
from service.api.errors import APIError, not_found
from service.api.pagination import page_of_ids
from service.state.records import FileRecord, new_id
from service.state.repo import QuotaExceeded
from service.store_layout import file_key

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post("")
def upload(
    ctx: Context,
    tenant: Tenant,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()] = "fine-tune",
) -> dict:
    if purpose != "fine-tune":
        raise APIError(400, "invalid_purpose", f"purpose must be 'fine-tune', got {purpose!r}.", "purpose")
    limit = ctx.settings.max_file_bytes
    data = file.file.read(limit + 1)  # a plain def: validation and the store run in a worker thread
    if len(data) > limit:
        raise APIError(413, "file_too_large", f"The file is larger than the limit of {limit} bytes.", "file")
    name = (file.filename or "upload.jsonl").replace("/", "_").replace("\\", "_")[:255]
    report = validate_training_bytes(data, name=name, max_bytes=limit, max_examples=ctx.settings.max_examples)
    if not report.ok:
        details = "; ".join(str(e) for e in report.errors[:5])
        more = f" (and {report.num_errors - 5} more)" if report.num_errors > 5 else ""
        raise APIError(400, "invalid_file", f"{name}: {details}{more}", "file")
    record = FileRecord(
        id=new_id("file"), tenant=tenant.id, bytes=len(data), filename=name,
        num_examples=report.num_examples, sha256=hashlib.sha256(data).hexdigest(),
    )
    _reserve(ctx, tenant, len(data))
    try:
        ctx.store.put_bytes(file_key(record.tenant, record.id), data)
        ctx.records.add_file(record)
    except BaseException:
        ctx.records.release_file(tenant.id, len(data))
        raise
    return record.public()


def _reserve(ctx: Context, tenant: Tenant, size: int) -> None:
    max_files = ctx.settings.max_files_per_tenant if tenant.max_files is None else tenant.max_files
    max_bytes = ctx.settings.max_storage_bytes_per_tenant if tenant.max_storage_bytes is None else tenant.max_storage_bytes
    try:
        ctx.records.reserve_file(tenant.id, size, max_files, max_bytes)
    except QuotaExceeded as exc:
        quota = f"{exc.limit} files" if exc.what == "files" else f"{exc.limit} bytes of files"
        raise APIError(
            403, "quota_exceeded",
            f"This tenant stores {exc.used} {'files' if exc.what == 'files' else 'bytes'}; the quota is {quota}. "
            "Delete files you no longer need, or ask the operators for a larger quota.",
            "file",
        ) from exc


@router.get("")
def list_files(ctx: Context, tenant: Tenant, limit: int = 20, after: str | None = None) -> dict:
    return page_of_ids(ctx.records.file_ids(tenant.id), limit=limit, after=after,
                       fetch=lambda ids: ctx.records.get_files(tenant.id, ids), render=FileRecord.public)


def _own(ctx: Context, tenant: Tenant, file_id: str) -> FileRecord:
    record = ctx.records.get_file(tenant.id, checked_id("file", file_id))
    if record is None:
        raise not_found("file", file_id)
    return record


@router.get("/{file_id}")
def retrieve(ctx: Context, tenant: Tenant, file_id: str) -> dict:
    return _own(ctx, tenant, file_id).public()


@router.delete("/{file_id}")
def delete(ctx: Context, tenant: Tenant, file_id: str) -> dict:
    record = _own(ctx, tenant, file_id)
    ctx.store.delete(file_key(record.tenant, record.id))
    ctx.records.delete_file(record)
    ctx.records.release_file(tenant.id, record.bytes)
    return {"id": record.id, "object": "file", "deleted": True}
