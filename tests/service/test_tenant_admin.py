"""Tenant administration: keys rotated and revoked at once, tenants suspended, file quotas
and a per-tenant rate limit (embedded app in-process; the CLI against the same records)."""

from __future__ import annotations

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.errors import APIError
from service.api.main import create_app
from service.api.request_guard import admit
from service.cli import register
from service.settings import Settings, get_settings

TRAINING = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


@pytest.fixture
def api(tmp_path):
    """(client, context, operator auth, customer tenant id, customer auth)."""
    app = create_app(Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None), resume=False)
    ctx = app.state.context
    _, operator_key = ctx.records.create_tenant("ops", "operator")
    customer, customer_key = ctx.records.create_tenant("acme")
    with TestClient(app) as client:
        yield client, ctx, _auth(operator_key), customer.id, _auth(customer_key)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _upload(client, auth, data: bytes = TRAINING):
    return client.post("/v1/files", headers=auth, files={"file": ("t.jsonl", data)})


def test_rotating_keys_revokes_every_earlier_key_at_once(api) -> None:
    client, _, ops, tenant_id, old = api
    rotated = client.post(f"/v1/admin/tenants/{tenant_id}/keys/rotate", headers=ops)
    assert rotated.status_code == 200, rotated.text
    new = _auth(rotated.json()["api_key"])
    assert client.get("/v1/files", headers=old).status_code == 401
    assert client.get("/v1/files", headers=new).status_code == 200
    keys = client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=ops).json()["data"]
    assert [k["id"] for k in keys] == [rotated.json()["id"]]
    assert "api_key" not in keys[0] and keys[0]["hint"] == rotated.json()["api_key"][-4:]


def test_one_key_is_revoked_and_the_others_keep_working(api) -> None:
    client, _, ops, tenant_id, first = api
    added = client.post(f"/v1/admin/tenants/{tenant_id}/keys", headers=ops).json()
    second = _auth(added["api_key"])
    assert client.get("/v1/files", headers=first).status_code == 200
    assert client.delete(f"/v1/admin/tenants/{tenant_id}/keys/{added['id']}", headers=ops).status_code == 200
    assert client.get("/v1/files", headers=second).status_code == 401
    assert client.get("/v1/files", headers=first).status_code == 200
    again = client.delete(f"/v1/admin/tenants/{tenant_id}/keys/{added['id']}", headers=ops)
    assert again.status_code == 404 and again.json()["error"]["code"] == "key_not_found"


def test_customers_cannot_manage_keys(api) -> None:
    client, _, _, tenant_id, customer = api
    assert client.post(f"/v1/admin/tenants/{tenant_id}/keys/rotate", headers=customer).status_code == 403
    assert client.get("/v1/files", headers=customer).status_code == 200  # its key still works


def test_a_suspended_tenant_is_refused_until_resumed(api) -> None:
    client, ctx, ops, tenant_id, customer = api
    suspended = client.patch(f"/v1/admin/tenants/{tenant_id}", headers=ops, json={"suspended": True})
    assert suspended.status_code == 200 and suspended.json()["suspended"] is True
    refused = _upload(client, customer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "tenant_suspended"
    assert ctx.records.list_files(tenant_id) == []
    client.patch(f"/v1/admin/tenants/{tenant_id}", headers=ops, json={"suspended": False})
    assert _upload(client, customer).status_code == 200


def test_an_operator_cannot_suspend_its_own_tenant(api) -> None:
    client, ctx, ops, _, _ = api
    own = next(t.id for t in ctx.records.tenants() if t.role == "operator")
    response = client.patch(f"/v1/admin/tenants/{own}", headers=ops, json={"suspended": True})
    assert response.status_code == 400 and response.json()["error"]["code"] == "cannot_suspend_self"


def test_an_empty_update_is_refused(api) -> None:
    client, _, ops, tenant_id, _ = api
    response = client.patch(f"/v1/admin/tenants/{tenant_id}", headers=ops, json={})
    assert response.status_code == 400 and response.json()["error"]["code"] == "nothing_to_update"


def test_the_file_quota_refuses_an_upload_and_stores_nothing(api) -> None:
    client, ctx, ops, tenant_id, customer = api
    client.patch(f"/v1/admin/tenants/{tenant_id}", headers=ops, json={"max_files": 2})
    first = _upload(client, customer).json()
    assert _upload(client, customer).status_code == 200
    refused = _upload(client, customer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "quota_exceeded"
    assert "2 files" in refused.json()["error"]["message"]
    assert len(ctx.records.list_files(tenant_id)) == 2 and len(ctx.store.list(f"files/{tenant_id}/")) == 2
    usage = client.get(f"/v1/admin/tenants/{tenant_id}", headers=ops).json()["usage"]
    assert usage == {"files": 2, "bytes": 2 * len(TRAINING)}
    client.delete(f"/v1/files/{first['id']}", headers=customer)
    assert _upload(client, customer).status_code == 200  # deleting freed its place


def test_the_storage_quota_counts_bytes(api) -> None:
    client, _, ops, tenant_id, customer = api
    client.patch(f"/v1/admin/tenants/{tenant_id}", headers=ops, json={"max_storage_bytes": len(TRAINING) * 3})
    assert _upload(client, customer, TRAINING * 2).status_code == 200
    refused = _upload(client, customer, TRAINING * 2)
    assert refused.status_code == 403 and "bytes" in refused.json()["error"]["message"]
    assert _upload(client, customer, TRAINING).status_code == 200  # exactly at the quota


def test_a_failed_store_write_gives_the_quota_back(api, monkeypatch) -> None:
    client, ctx, _, tenant_id, customer = api

    def down(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(ctx.store, "put_bytes", down)
    assert TestClient(client.app, raise_server_exceptions=False).post(
        "/v1/files", headers=customer, files={"file": ("t.jsonl", TRAINING)}).status_code == 500
    assert ctx.records.usage(tenant_id).files == 0


def test_the_rate_limit_is_per_tenant_and_per_minute(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None,
                              rate_limit_per_minute=3), resume=False)
    ctx = app.state.context
    (_, a), (_, b) = ctx.records.create_tenant("a"), ctx.records.create_tenant("b")
    minute = 1_000_000 * 60.0
    for _ in range(3):
        admit(ctx, f"Bearer {a}", now=minute + 10)
    with pytest.raises(APIError) as refused:
        admit(ctx, f"Bearer {a}", now=minute + 10.5)
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "50"}
    admit(ctx, f"Bearer {b}", now=minute + 11)  # another tenant is not held back
    admit(ctx, f"Bearer {a}", now=minute + 60)  # the next minute starts afresh


def test_the_rate_limit_answers_429_with_retry_after(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None,
                              rate_limit_per_minute=2), resume=False)
    _, key = app.state.context.records.create_tenant("a")
    with TestClient(app) as client:
        codes = [client.get("/v1/files", headers=_auth(key)) for _ in range(5)]
    refused = [r for r in codes if r.status_code == 429]
    assert refused, [r.status_code for r in codes]  # 2 a minute: even across a minute's edge
    assert refused[0].json()["error"]["code"] == "rate_limited" and 0 < int(refused[0].headers["retry-after"]) <= 60


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETYLOCK_DATA_DIR", str(tmp_path))
    for name in ("SAFETYLOCK_BROKER_URL", "SAFETYLOCK_REDIS_URL", "SAFETYLOCK_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    app = typer.Typer()
    register(app)
    yield lambda *args: CliRunner().invoke(app, ["admin", *args])
    get_settings.cache_clear()


def test_the_admin_cli_rotates_and_suspends(cli) -> None:
    created = cli("create-tenant", "acme")
    old_key = created.stdout.strip().splitlines()[-1]
    records = create_app(Settings(), resume=False).state.context.records
    tenant = records.tenant_for_key(old_key)
    rotated = cli("rotate-key", tenant.id)
    assert rotated.exit_code == 0, rotated.output
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert records.tenant_for_key(old_key) is None and records.tenant_for_key(new_key).id == tenant.id
    assert cli("suspend", tenant.id).exit_code == 0 and records.get_tenant(tenant.id).suspended
    assert cli("suspend", tenant.id, "--resume").exit_code == 0 and not records.get_tenant(tenant.id).suspended
    missing = cli("revoke-key", tenant.id, "key-" + "0" * 24)
    assert missing.exit_code == 1 and "has no key" in missing.output
    assert cli("rotate-key", "tenant-" + "0" * 24).exit_code == 1
