"""Published models: list, retrieve, download URLs (pre-signed on S3, file:// when embedded)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from service.api.deps import Context, Tenant, checked_id
from service.api.errors import not_found
from service.api.pagination import page
from service.context import model_key
from service.state.records import ModelRecord

router = APIRouter(prefix="/v1/models", tags=["models"])
URL_SECONDS = 3600


def _own(ctx: Context, tenant: Tenant, model_id: str) -> ModelRecord:
    record = ctx.records.get_model(tenant.id, checked_id("model", model_id))
    if record is None:
        raise not_found("model", model_id)
    return record


@router.get("")
def list_models(ctx: Context, tenant: Tenant, limit: int = 20, after: str | None = None) -> dict:
    return page(ctx.records.list_models(tenant.id), limit=limit, after=after, render=ModelRecord.public)


@router.get("/{model_id}")
def retrieve(ctx: Context, tenant: Tenant, model_id: str) -> dict:
    return _own(ctx, tenant, model_id).public()


@router.get("/{model_id}/download")
def download(ctx: Context, tenant: Tenant, model_id: str) -> dict:
    record = _own(ctx, tenant, model_id)
    files = [
        {"path": path, "url": ctx.store.url_for(model_key(record.tenant, record.id, path), expires_s=URL_SECONDS)}
        for path in record.files
    ]
    return {"files": files, "expires_at": int(time.time()) + URL_SECONDS}
