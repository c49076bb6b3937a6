"""Typed FastAPI dependencies: the service context, the caller's tenant, operator role.

They are `async def`: each only reads request state, and FastAPI runs a plain `def`
dependency in the thread pool, a hop per dependency per request under load."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from service.api.errors import APIError, not_found
from service.context import ServiceContext
from service.dispatch import Dispatcher
from service.state.records import TenantRecord

_ID = re.compile(r"^(file|ftjob|model|tenant|key)-[0-9a-f]{24}$")
_PREFIX = {"file": "file-", "job": "ftjob-", "model": "model-", "tenant": "tenant-", "key": "key-"}


async def get_context(request: Request) -> ServiceContext:
    return request.app.state.context


Context = Annotated[ServiceContext, Depends(get_context)]


async def get_dispatcher(request: Request) -> Dispatcher:
    return request.app.state.dispatcher


Dispatch = Annotated[Dispatcher, Depends(get_dispatcher)]


async def get_tenant(request: Request) -> TenantRecord:
    """The caller's tenant, authenticated by `RequestGuard` before the body was read."""
    return request.state.tenant


Tenant = Annotated[TenantRecord, Depends(get_tenant)]


async def get_operator(tenant: Tenant) -> TenantRecord:
    if tenant.role != "operator":
        raise APIError(403, "operator_only", "This route needs an operator API key.")
    return tenant


Operator = Annotated[TenantRecord, Depends(get_operator)]


def checked_id(kind: str, ident: str, param: str | None = None) -> str:
    """Refuse malformed ids (path-like, wrong prefix) exactly like unknown ones."""
    if not _ID.match(ident) or not ident.startswith(_PREFIX[kind]):
        raise not_found(kind, ident, param)
    return ident
