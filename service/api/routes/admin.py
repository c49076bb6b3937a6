"""Operator routes: tenants and the gate policy."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service.api.deps import Context, Operator
from service.api.errors import APIError
from service.pipeline.gate import POLICY_KEY, GatePolicy

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class TenantCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["customer", "operator"] = "customer"


@router.post("/tenants")
def create_tenant(ctx: Context, _: Operator, body: TenantCreate) -> dict:
    tenant, api_key = ctx.records.create_tenant(body.name, body.role)
    return {**tenant.model_dump(), "object": "tenant", "api_key": api_key}


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
