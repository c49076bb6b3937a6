"""Published models: list, retrieve, download URLs (pre-signed on S3, file:// when embedded).

Whoever holds a locked model's weights can remove its lock (it is a symmetric shift), so
weights are released only to tenants an operator has cleared (`weights_release`); the
models of the others stay on the platform.
"""

from __future__ import annotations

import time

from fastapi import APIRouter

from service.api.deps import Context, Tenant, checked_id
from service.api.errors import APIError, not_found
from service.api.pagination import page_of_ids
from service.state.records import ModelRecord
from service.store_layout import model_key

router = APIRouter(prefix="/v1/models", tags=["models"])
URL_SECONDS = 3600


def _own(ctx: Context, tenant: Tenant, model_id: str) -> ModelRecord:
    record = ctx.records.get_model(tenant.id, checked_id("model", model_id))
    if record is None:
        raise not_found("model", model_id)
    return record


@router.get("")
def list_models(ctx: Context, tenant: Tenant, limit: int = 20, after: str | None = None) -> dict:
    return page_of_ids(ctx.records.model_ids(tenant.id), limit=limit, after=after,
                       fetch=lambda ids: ctx.records.get_models(tenant.id, ids), render=ModelRecord.public)


@router.get("/{model_id}")
def retrieve(ctx: Context, tenant: Tenant, model_id: str) -> dict:
    return _own(ctx, tenant, model_id).public()


@router.get("/{model_id}/download")
def download(ctx: Context, tenant: Tenant, model_id: str) -> dict:
    record = _own(ctx, tenant, model_id)  # another tenant's model stays a 404
    if not tenant.weights_release:
        raise APIError(
            403, "weights_not_released",
            f"The weights of {model_id} are not released to this tenant: whoever holds a locked model's weights "
            "can remove its safety lock, so by policy the platform serves the models of tenants it has not "
            "cleared instead of handing out their weights. An operator can grant weight release "
            f"(PATCH /v1/admin/tenants/{tenant.id} with weights_release=true).",
        )
    files = [
        {"path": path, "url": ctx.store.url_for(model_key(record.tenant, record.id, path), expires_s=URL_SECONDS)}
        for path in record.files
    ]
    return {"files": files, "expires_at": int(time.time()) + URL_SECONDS}
