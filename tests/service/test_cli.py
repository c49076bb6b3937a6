"""`safetylock admin create-tenant` prints a key once; the API accepts it (embedded mode)."""

from __future__ import annotations

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.api.main import create_app
from service.cli import register
from service.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def embedded_env(tmp_path, monkeypatch):
    """Embedded settings in tmp_path; the CLI's cached settings are read afresh."""
    monkeypatch.setenv("SAFETYLOCK_DATA_DIR", str(tmp_path))
    for name in ("SAFETYLOCK_BROKER_URL", "SAFETYLOCK_REDIS_URL", "SAFETYLOCK_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_create_tenant_key_authenticates(tmp_path) -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["admin", "create-tenant", "acme", "--operator"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-")
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite3*"))  # with the WAL
    assert key.encode() not in stored  # only its HMAC is stored

    client = TestClient(create_app(Settings(), resume=False))
    assert client.get("/v1/files", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    tenants = client.get("/v1/admin/tenants", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert [t["name"] for t in tenants] == ["acme"] and tenants[0]["role"] == "operator"
    assert client.get("/v1/files", headers={"Authorization": "Bearer sk-other"}).status_code == 401


def test_create_tenant_release_weights_flag() -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    for args in (["trusted", "--release-weights"], ["untrusted"]):
        result = runner.invoke(app, ["admin", "create-tenant", *args])
        assert result.exit_code == 0, result.output
    assert "weights released" in runner.invoke(app, ["admin", "create-tenant", "x", "--release-weights"]).stderr
    from service.context import ServiceContext

    tenants = {t.name: t.weights_release for t in ServiceContext(Settings()).records.tenants()}
    assert tenants == {"trusted": True, "untrusted": False, "x": True}
