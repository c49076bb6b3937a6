"""Operator routes: tenants (weight release, suspension, quotas, API keys), the gate policy,
the lock registry."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import Context, Operator, checked_id
from service.api.errors import APIError, not_found
from service.pipeline.gate import POLICY_KEY, GatePolicy
from service.state.records import TenantRecord

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["customer", "operator"] = "customer"
    weights_release: bool = False


class TenantUpdate(BaseModel):
    """Only the fields sent change; `null` quotas fall back to the service defaults."""

    model_config = ConfigDict(extra="forbid")

    weights_release: bool | None = None
    suspended: bool | None = None
    max_files: int | None = Field(None, ge=0)
    max_storage_bytes: int | None = Field(None, ge=0)


@router.post("/tenants")
def create_tenant(ctx: Context, _: Operator, body: TenantCreate) -> dict:
    tenant, api_key = ctx.records.create_tenant(body.name, body.role, weights_release=body.weights_release)
    return {**tenant.model_dump(), "object": "tenant", "api_key": api_key}


@router.patch("/tenants/{tenant_id}")
def update_tenant(ctx: Context, operator: Operator, tenant_id: str, body: TenantUpdate) -> dict:
    """Grant or revoke weight release (design.md, "Security rules"), suspend or resume the
    tenant (its keys are refused with 403 meanwhile, and its running jobs fail `tenant_suspended`
    at their next stage, publishing nothing), set its quotas."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise APIError(400, "nothing_to_update", "Send at least one of: " + ", ".join(TenantUpdate.model_fields) + ".")
    for flag in ("weights_release", "suspended"):
        if flag in changes and changes[flag] is None:
            raise APIError(400, "invalid_value", f"{flag} must be true or false.", flag)
    if changes.get("suspended") and tenant_id == operator.id:
        raise APIError(400, "cannot_suspend_self", "An operator cannot suspend its own tenant.", "suspended")
    tenant = ctx.records.update_tenant(checked_id("tenant", tenant_id), **changes)
    if tenant is None:
        raise not_found("tenant", tenant_id)
    return _tenant(ctx, tenant)


@router.get("/tenants/{tenant_id}")
def retrieve_tenant(ctx: Context, _: Operator, tenant_id: str) -> dict:
    tenant = ctx.records.get_tenant(checked_id("tenant", tenant_id))
    if tenant is None:
        raise not_found("tenant", tenant_id)
    return _tenant(ctx, tenant)


def _tenant(ctx: Context, tenant: TenantRecord) -> dict:
    usage = ctx.records.usage(tenant.id)
    return {**tenant.model_dump(), "object": "tenant", "usage": usage.model_dump()}


@router.get("/tenants/{tenant_id}/keys")
def list_keys(ctx: Context, _: Operator, tenant_id: str) -> dict:
    tenant = _known(ctx, tenant_id)
    return {"object": "list", "data": [k.public() for k in ctx.records.list_keys(tenant.id)], "has_more": False}


@router.post("/tenants/{tenant_id}/keys")
def add_key(ctx: Context, _: Operator, tenant_id: str) -> dict:
    """A further key for the tenant (shown this once); its other keys keep working."""
    record, api_key = ctx.records.add_key(_known(ctx, tenant_id).id)
    return {**record.public(), "api_key": api_key}


@router.post("/tenants/{tenant_id}/keys/rotate")
def rotate_keys(ctx: Context, _: Operator, tenant_id: str) -> dict:
    """A new key for the tenant (shown this once); every earlier key stops working now."""
    record, api_key = ctx.records.rotate_keys(_known(ctx, tenant_id).id)
    return {**record.public(), "api_key": api_key}


@router.delete("/tenants/{tenant_id}/keys/{key_id}")
def revoke_key(ctx: Context, _: Operator, tenant_id: str, key_id: str) -> dict:
    """Revoke one key at once (requests with it get 401)."""
    tenant = _known(ctx, tenant_id)
    if not ctx.records.revoke_key(tenant.id, checked_id("key", key_id)):
        raise not_found("key", key_id)
    return {"id": key_id, "object": "api_key", "deleted": True}


def _known(ctx: Context, tenant_id: str) -> TenantRecord:
    tenant = ctx.records.get_tenant(checked_id("tenant", tenant_id))
    if tenant is None:
        raise not_found("tenant", tenant_id)
    return tenant


@router.get("/tenants")
def list_tenants(ctx: Context, _: Operator) -> dict:
    data = [{**t.model_dump(), "object": "tenant"} for t in ctx.records.tenants()]
    return {"object": "list", "data": data, "has_more": False}


@router.get("/gate_policy")
def get_policy(ctx: Context, _: Operator) -> dict:
    return GatePolicy.current(ctx.settings, ctx.records.kv).model_dump()


@router.put("/gate_policy")
def put_policy(ctx: Context, _: Operator, body: GatePolicy) -> dict:
    ctx.records.kv.put(POLICY_KEY, body.model_dump_json())
    return body.model_dump()


@router.get("/locks")
def list_locks(ctx: Context, _: Operator, model: str | None = None) -> dict:
    """The lock registry's versions (all bases, or one), as the operator CLI lists them."""
    from lock_registry.registry_types import RegistryError

    try:
        versions = ctx.registry.versions(model)
    except RegistryError as exc:
        raise APIError(404, "lock_not_found", str(exc), "model") from exc
    return {"object": "list", "data": [v.to_dict() for v in versions], "has_more": False}
