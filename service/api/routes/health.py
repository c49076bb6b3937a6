"""Liveness: the records backend answers."""

from fastapi import APIRouter

from service.api.deps import Context

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(ctx: Context) -> dict:
    ctx.records.kv.get("healthz")
    return {"status": "ok", "mode": "embedded" if ctx.settings.embedded else "cluster"}
