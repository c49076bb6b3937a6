"""`GET /v1/fine_tuning/jobs/{id}/report.html`: the safety report as a page, scoped to the
tenant like the JSON report, with a Content-Security-Policy that allows nothing but its
own style; and the SDK's `jobs.report_html` and the CLI's `jobs report --html` that fetch
it. The embedded service in-process; the job record and its report.json are written
directly, as reject would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import sdk
from sdk.in_process import asgi_http_client
from service.reports.html import CONTENT_SECURITY_POLICY
from service.state.records import JobRecord, new_id
from service.store_layout import job_key

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reports" / "demo_toxic.json"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_job(ctx, tenant_id: str, *, with_report: bool = True) -> str:
    job = JobRecord(id=new_id("ftjob"), tenant=tenant_id, model="demo-chat", training_file="file-x",
                    status="failed", stage="reject")
    ctx.records.add_job(job)
    if with_report:
        report = {**json.loads(FIXTURE.read_text()), "job_id": job.id}
        ctx.store.put_bytes(job_key(job, "report.json"), json.dumps(report).encode())
    return job.id


@pytest.fixture
def tenants(embedded_api):
    client, ctx = embedded_api
    owner, owner_key = ctx.records.create_tenant("acme")
    _, other_key = ctx.records.create_tenant("other")
    return client, ctx, owner, owner_key, other_key


def test_the_owner_gets_the_page_with_a_strict_policy(tenants) -> None:
    client, ctx, owner, key, _ = tenants
    job_id = add_job(ctx, owner.id)
    response = client.get(f"/v1/fine_tuning/jobs/{job_id}/report.html", headers=_auth(key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'" and "script-src" not in directives
    assert directives["style-src"] == "'unsafe-inline'" and directives["img-src"] == "data:"
    assert response.headers["x-content-type-options"] == "nosniff"
    page = response.text
    assert page.startswith("<!doctype html>") and job_id in page
    assert page.count("<svg") == 2 and "<script" not in page
    json_report = client.get(f"/v1/fine_tuning/jobs/{job_id}/report", headers=_auth(key)).json()
    assert json_report["job_id"] == job_id  # the same stored report behind both


@pytest.mark.parametrize(("who", "with_report", "status", "code"), [
    ("other", True, 404, "job_not_found"),  # another tenant's job: 404, never 403
    ("owner", False, 404, "report_not_found"),
    ("nobody", True, 401, "invalid_api_key"),
])
def test_refusals_are_those_of_the_json_report(tenants, who, with_report, status, code) -> None:
    client, ctx, owner, owner_key, other_key = tenants
    job_id = add_job(ctx, owner.id, with_report=with_report)
    key = {"owner": owner_key, "other": other_key, "nobody": "sk-nobody"}[who]
    for path in ("report", "report.html"):
        response = client.get(f"/v1/fine_tuning/jobs/{job_id}/{path}", headers=_auth(key))
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path


def test_the_sdk_and_the_cli_fetch_the_page(tenants, tmp_path, monkeypatch) -> None:
    from sdk.cli import jobs as cli_jobs
    from sdk.cli.main import app

    client, ctx, owner, key, _ = tenants
    job_id = add_job(ctx, owner.id)
    with asgi_http_client(client.app) as http:
        customer = sdk.Client(base_url="http://embedded", api_key=key, http_client=http)
        page = customer.jobs.report_html(job_id)
        assert page.count("<svg") == 2 and job_id in page
        with pytest.raises(sdk.NotFoundError) as info:
            customer.jobs.report_html(add_job(ctx, owner.id, with_report=False))
        assert info.value.code == "report_not_found"
        with pytest.raises(ValueError):
            customer.jobs.report_html("")

        monkeypatch.setattr(cli_jobs, "client", lambda: customer)
        out = tmp_path / "report.html"
        result = CliRunner().invoke(app, ["jobs", "report", job_id, "--html", str(out)])
        assert result.exit_code == 0, (result.output, result.exception)
        assert "decision: rejected" in result.output
        assert out.read_text(encoding="utf-8") == page
