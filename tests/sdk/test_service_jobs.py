"""The SDK and CLI against the real job service running real jobs: uvicorn, a Celery
worker, Redis, SeaweedFS S3, the `test` demo model and its lock.

The first test runs with no worker, so its jobs stay queued until cancelled; the
worker starts for the second, which follows one real job from upload to report.
"""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

import sdk
from sdk import _constants as C
from sdk._base_client import FinalRequestOptions
from sdk.cli.main import app as cli_app
from tests.sdk.proxy import FaultyProxy
from tests.service.data import benign_records

pytestmark = [pytest.mark.services, pytest.mark.slow]

MODEL = "demo-test"
CAP = 4  # unfinished jobs per tenant (SAFETYLOCK_MAX_ACTIVE_JOBS_PER_TENANT)
HP = {"n_epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "lora_rank": 4, "lora_alpha": 8,
      "max_seq_length": 128}


@pytest.fixture(scope="module")
def stack(service_stack_factory, demo_lock_registry):
    stack = service_stack_factory(
        base_models={MODEL: str(demo_lock_registry.model_dir)},
        store_url=demo_lock_registry.publish_to,
        eval_limit=6, eval_max_new_tokens=12, alpha_grid=[4.0], max_active_jobs_per_tenant=CAP,
    )
    stack.start_api()
    return stack


@pytest.fixture(scope="module")
def key(stack) -> str:
    return stack.create_tenant("sdk-jobs")


@pytest.fixture
def proxy():
    p = FaultyProxy()
    yield p
    p.close()


@pytest.fixture
def client(stack, key, proxy, monkeypatch) -> sdk.Client:
    monkeypatch.setattr(C, "INITIAL_RETRY_DELAY", 0.01)
    return sdk.Client(base_url=stack.base_url, api_key=key,
                      http_client=httpx.Client(transport=proxy))


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in benign_records(24)))
    return path


def test_queued_jobs_paginate_cancel_and_survive_a_dropped_create(client, proxy, train_file):
    f = client.files.upload(train_file)
    created = [client.jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP).id
               for _ in range(3)]
    proxy.drop_once("POST", "/v1/fine_tuning/jobs")
    retried = client.jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP,
                                 suffix="retried")
    assert len(proxy.dropped) == 1
    posts = [r for r in proxy.seen if r.method == "POST" and r.url.path.endswith("/jobs")]
    assert posts[-1].headers["idempotency-key"] == posts[-2].headers["idempotency-key"]

    page = client.jobs.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    listed = [j.id for j in page]
    assert listed == [retried.id, *reversed(created)]  # newest first, no duplicate job

    for job_id in listed:
        assert client.jobs.cancel(job_id).status == "cancelled"
    with pytest.raises(sdk.ConflictError) as info:
        client.with_options(max_retries=0).jobs.cancel(retried.id)
    assert (info.value.status, info.value.code) == (409, "job_not_cancellable")
    assert {j.id for j in client.jobs.list(status="cancelled")} == set(listed)
    with pytest.raises(sdk.NotFoundError) as info:
        client.jobs.report(retried.id)
    assert info.value.code == "report_not_found"


def test_the_cap_on_unfinished_jobs_is_a_rate_limit_and_a_later_retry_passes(stack, client, train_file,
                                                                              monkeypatch):
    capped = client.with_options(api_key=stack.create_tenant("sdk-capped"), max_retries=0)
    f = capped.files.upload(train_file)
    jobs = [capped.jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP) for _ in range(CAP)]
    with pytest.raises(sdk.RateLimitError) as info:
        capped.jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP, idempotency_key="cap-key")
    err = info.value
    assert (err.status, err.type, err.code) == (429, "rate_limit_error", "too_many_active_jobs")
    assert err.response.headers["retry-after"] == "30" and f"the limit is {CAP}" in err.message
    assert err.request_id

    slept: list[float] = []  # the retry table honours the server's Retry-After (not actually waited)
    monkeypatch.setattr("sdk._base_client.time.sleep", slept.append)
    with pytest.raises(sdk.RateLimitError):
        capped.with_options(max_retries=1).jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP)
    assert slept == [30.0]
    assert {j.id for j in capped.jobs.list()} == {j.id for j in jobs}  # no refused create left a job

    capped.jobs.cancel(jobs[0].id)  # one slot frees: the same key now runs, not a replayed 429
    retried = capped.jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP, idempotency_key="cap-key")
    assert retried.id not in {j.id for j in jobs} and retried.status == "validating_files"
    for job in [*jobs[1:], retried]:
        capped.jobs.cancel(job.id)


def test_a_real_job_from_upload_to_report(stack, client, key, train_file, tmp_path,
                                          monkeypatch, capsys):
    """The operator opens the gate wide, so this job is published and the model routes
    (listing, pre-signed S3 download) are exercised; the gate itself is tested elsewhere."""
    operator = client.with_options(api_key=stack.create_tenant("sdk-ops", "operator"))
    current = operator._request(FinalRequestOptions("GET", "/v1/admin/gate_policy"))
    wide_open = dict.fromkeys(current, 1.0)  # every threshold at its loosest
    operator._request(FinalRequestOptions("PUT", "/v1/admin/gate_policy", json=wide_open))
    stack.start_worker()
    f = client.files.upload(train_file)
    job = client.jobs.create(model=MODEL, training_file=f.id, hyperparameters=HP, suffix="real")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # stderr counts as a terminal: show the bar
    done = client.jobs.wait(job.id, timeout=600, poll_interval=0.5)
    shown = capsys.readouterr().err
    assert job.id in shown and done.status in shown, shown
    assert (done.status, done.stage) == ("succeeded", "publish"), done

    events = list(client.jobs.events(job.id, limit=5))
    assert len(events) > 5 and len({e.id for e in events}) == len(events)
    assert any(e.type == "metrics" for e in events)
    streamed = list(client.jobs.stream_events(job.id))
    assert [e.id for e in streamed] == [e.id for e in events]

    report = client.jobs.report(job.id)
    assert report.job_id == job.id and report.base and report.unlocked and report.alpha_curve
    assert {"train", "relock", "evaluate", "gate"} <= set(report.stage_seconds)
    assert report.decision == "published" and not report.reasons
    assert report.policy == wide_open and report.relocked and report.alpha == 4.0
    model = client.models.retrieve(done.fine_tuned_model)
    assert model.job_id == job.id and model.lock.alpha == report.alpha
    assert model.id in [m.id for m in client.models.list()]
    with pytest.raises(sdk.PermissionDeniedError) as info:  # an untrusted tenant is served, not given weights
        client.models.download(model.id, tmp_path / "refused")
    assert (info.value.status, info.value.code) == (403, "weights_not_released")
    assert "operator" in info.value.message and not (tmp_path / "refused").exists()
    tenant_id = next(t["id"] for t in operator._request(FinalRequestOptions("GET", "/v1/admin/tenants"))["data"]
                     if t["name"] == "sdk-jobs")
    granted = operator._request(FinalRequestOptions("PATCH", f"/v1/admin/tenants/{tenant_id}",
                                                    json={"weights_release": True}))
    assert granted["weights_release"] is True
    urls = client.models.download_urls(model.id)
    assert all(u.url.startswith("http") for u in urls.files)  # pre-signed S3 URLs
    dest = client.models.download(model.id, tmp_path / "model")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == (
        sorted(u.path for u in urls.files))
    assert (dest / "config.json").is_file() and not list(dest.rglob("*.part"))

    monkeypatch.setenv("SAFETYLOCK_BASE_URL", stack.base_url)
    monkeypatch.setenv("SAFETYLOCK_API_KEY", key)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(cli_app, list(args))
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    assert job.id in cli("jobs", "list", "--status", done.status)
    assert json.loads(cli("jobs", "show", job.id, "--json"))["status"] == done.status
    assert f"decision: {report.decision}" in cli("jobs", "report", job.id)
    assert "Created fine-tuning job" in cli("jobs", "events", job.id)
    assert f.id in cli("files", "list")
    assert done.fine_tuned_model in cli("models", "list")
