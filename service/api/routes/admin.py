"""Operator routes: tenants (and their weight release), the gate policy, the lock registry."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import Context, Operator, checked_id
from service.api.errors import APIError, not_found
from service.pipeline.gate import POLICY_KEY, GatePolicy

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["customer", "operator"] = "customer"
    weights_release: bool = False


class TenantUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights_release: bool


@router.post("/tenants")
def create_tenant(ctx: Context, _: Operator, body: TenantCreate) -> dict:
    tenant, api_key = ctx.records.create_tenant(body.name, body.role, weights_release=body.weights_release)
    return {**tenant.model_dump(), "object": "tenant", "api_key": api_key}


@router.patch("/tenants/{tenant_id}")
def update_tenant(ctx: Context, _: Operator, tenant_id: str, body: TenantUpdate) -> dict:
    """Grant or revoke the release of a tenant's model weights (design.md, "Security rules")."""
    tenant = ctx.records.set_weights_release(checked_id("tenant", tenant_id), body.weights_release)
    if tenant is None:
        raise not_found("tenant", tenant_id)
    return {**tenant.model_dump(), "object": "tenant"}


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
