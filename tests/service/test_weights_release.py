"""Weight release: a tenant downloads its models' weights only once an operator allows it.

The embedded service in-process (SQLite records, a local store); the model record and
its one file are written directly, as publish would.
"""

from __future__ import annotations

import pytest

from service.state.records import ModelRecord, new_id
from service.store_layout import model_key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _publish(ctx, tenant_id: str) -> str:
    model = ModelRecord(id=new_id("model"), tenant=tenant_id, base_model="demo-test", job_id=new_id("ftjob"),
                        lock={"base_model": "demo-test", "version": 1, "alpha": 4.0, "baked": True},
                        files=["config.json"])
    ctx.store.put_bytes(model_key(tenant_id, model.id, "config.json"), b"{}")
    ctx.records.add_model(model)
    return model.id


def test_untrusted_tenant_is_served_not_given_weights_until_an_operator_allows_it(embedded_api) -> None:
    client, ctx = embedded_api
    _, operator = ctx.records.create_tenant("ops", "operator")
    tenant, key = ctx.records.create_tenant("acme")
    assert tenant.weights_release is False  # the default: untrusted
    model_id = _publish(ctx, tenant.id)

    assert client.get(f"/v1/models/{model_id}", headers=_auth(key)).status_code == 200
    refused = client.get(f"/v1/models/{model_id}/download", headers=_auth(key))
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("permission_error", "weights_not_released")
    assert "remove its safety lock" in error["message"] and f"/v1/admin/tenants/{tenant.id}" in error["message"]

    granted = client.patch(f"/v1/admin/tenants/{tenant.id}", json={"weights_release": True}, headers=_auth(operator))
    assert granted.status_code == 200 and granted.json()["weights_release"] is True
    download = client.get(f"/v1/models/{model_id}/download", headers=_auth(key))
    assert download.status_code == 200, download.text
    assert [f["path"] for f in download.json()["files"]] == ["config.json"]
    assert download.json()["files"][0]["url"].startswith("file://")

    revoked = client.patch(f"/v1/admin/tenants/{tenant.id}", json={"weights_release": False}, headers=_auth(operator))
    assert revoked.json()["weights_release"] is False
    assert client.get(f"/v1/models/{model_id}/download", headers=_auth(key)).status_code == 403


def test_another_tenants_model_is_a_404_even_for_a_releasing_tenant(embedded_api) -> None:
    client, ctx = embedded_api
    owner, _ = ctx.records.create_tenant("owner", weights_release=True)
    _, other = ctx.records.create_tenant("other", weights_release=True)
    response = client.get(f"/v1/models/{_publish(ctx, owner.id)}/download", headers=_auth(other))
    assert (response.status_code, response.json()["error"]["code"]) == (404, "model_not_found")


@pytest.mark.parametrize(("who", "path", "body", "status", "code"), [
    ("customer", "/v1/admin/tenants/{tenant}", {"weights_release": True}, 403, "operator_only"),
    ("operator", "/v1/admin/tenants/tenant-0123456789abcdef01234567", {"weights_release": True}, 404, "tenant_not_found"),
    ("operator", "/v1/admin/tenants/..%2Fapikey", {"weights_release": True}, 404, "not_found"),
    ("operator", "/v1/admin/tenants/tenant-x", {"weights_release": True}, 404, "tenant_not_found"),
    ("operator", "/v1/admin/tenants/{tenant}", {"weights_release": "yes please"}, 400, "invalid_value"),
    ("operator", "/v1/admin/tenants/{tenant}", {"role": "operator"}, 400, "invalid_value"),
])
def test_weight_release_route_refuses_bad_requests(embedded_api, who, path, body, status, code) -> None:
    client, ctx = embedded_api
    _, operator = ctx.records.create_tenant("ops", "operator")
    tenant, customer = ctx.records.create_tenant("acme")
    key = operator if who == "operator" else customer
    response = client.patch(path.format(tenant=tenant.id), json=body, headers=_auth(key))
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert ctx.records.get_tenant(tenant.id) == tenant  # unchanged


def test_operator_creates_a_releasing_tenant(embedded_api) -> None:
    client, ctx = embedded_api
    _, operator = ctx.records.create_tenant("ops", "operator")
    made = client.post("/v1/admin/tenants", json={"name": "trusted", "weights_release": True}, headers=_auth(operator))
    assert made.status_code == 200, made.text
    assert made.json()["weights_release"] is True and made.json()["api_key"].startswith("sk-")
    listed = {t["name"]: t["weights_release"] for t in client.get("/v1/admin/tenants", headers=_auth(operator)).json()["data"]}
    assert listed == {"ops": False, "trusted": True}
