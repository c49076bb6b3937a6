"""SDK against the fake service: resources, validation, errors, retries, pagination."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from rich.console import Console

import sdk
from sdk import _base_client
from sdk._progress import JobProgressBar
from sdk.types import FineTuningJob, SafetyReport
from tests.sdk.fake_service import build_app


def _job(client, train_file, **kw) -> FineTuningJob:
    f = client.files.upload(train_file)
    return client.jobs.create(model="demo-chat", training_file=f.id, **kw)


def test_settings_come_from_environment(monkeypatch):
    monkeypatch.setenv("SAFETYLOCK_BASE_URL", "http://example.test:9/")
    monkeypatch.setenv("SAFETYLOCK_API_KEY", "sk-env")
    c = sdk.Client()
    assert (str(c.base_url), c.api_key) == ("http://example.test:9/", "sk-env")
    monkeypatch.delenv("SAFETYLOCK_API_KEY")
    with pytest.raises(sdk.SafetyLockError, match="SAFETYLOCK_API_KEY"):
        sdk.Client()


def test_files_round_trip(client, fake, train_file):
    f = client.files.upload(train_file)
    assert (f.filename, f.purpose, f.num_examples) == ("train.jsonl", "fine-tune", 4)
    assert client.files.retrieve(f.id) == f
    assert [x.id for x in client.files.list()] == [f.id]
    assert client.files.delete(f.id).deleted
    with pytest.raises(sdk.NotFoundError):
        client.files.retrieve(f.id)


def test_invalid_training_file_is_not_uploaded(client, fake, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(sdk.InvalidTrainingFileError, match="line 1, messages") as info:
        client.files.upload(bad)
    assert info.value.report.errors[0].code == "no_assistant_message"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.jobs.retrieve(""), "job_id must be a non-empty string"),
        (lambda c: c.jobs.cancel("a/../b"), "not a valid id"),
        (lambda c: c.files.retrieve(None), "file_id"),
        (lambda c: c.models.download(" ", "x"), "model_id"),
        (lambda c: c.jobs.create(model="m", training_file="f", method="qlora"), "method"),
        (lambda c: c.jobs.create(model="m", training_file="f", hyperparameters={"n_epochs": -1}),
         r"n_epochs must be >= 1"),
        (lambda c: c.jobs.create(model="m", training_file="f",
                                 hyperparameters={"learning_rate": 0}), "learning_rate must be > 0"),
        (lambda c: c.jobs.create(model="m", training_file="f", hyperparameters={"epochs": 2}),
         "unknown hyperparameter 'epochs'"),
        (lambda c: c.jobs.create(model="m", training_file="f",
                                 hyperparameters={"batch_size": 2.5}), "must be an integer"),
        (lambda c: c.jobs.create(model="", training_file="f"), "model"),
        (lambda c: c.jobs.create(model="m", training_file="f", suffix="no spaces"), "suffix"),
        (lambda c: c.jobs.create(model="m", training_file="f", lock_version=0), "lock_version"),
        (lambda c: c.jobs.create(model="m", training_file="f", lock_version="v1"), "lock_version"),
        (lambda c: c.jobs.list(status="done"), "status must be one of"),
        (lambda c: c.jobs.list(limit=0), "limit"),
        (lambda c: c.jobs.stream_events(""), "job_id"),
        (lambda c: c.files.upload("x.jsonl", purpose="batch"), "purpose"),
    ],
)
def test_bad_requests_raise_before_any_network_call(client, fake, call, message):
    with pytest.raises(ValueError, match=message):
        call(client)
    assert fake.requests == []


def test_job_lifecycle_wait_events_report_and_model(client, fake, train_file, tmp_path, capsys):
    job = _job(client, train_file, method="lora", hyperparameters={"n_epochs": 2}, suffix="x1")
    assert (job.status, job.hyperparameters.n_epochs, job.suffix) == ("queued", 2, "x1")
    done = client.jobs.wait(job.id, poll_interval=0)
    assert done.status == "succeeded" and done.done and not done.rejected
    assert capsys.readouterr().err == ""  # not a terminal: quiet
    messages = [e.message for e in client.jobs.events(job.id, limit=2)]
    assert messages[0] == "job queued" and messages[-1] == "published"
    assert len(messages) == 6  # queued, 3 steps, evaluating, published: 3 pages of 2
    report = client.jobs.report(job.id)
    assert isinstance(report, SafetyReport)
    assert (report.decision, report.unlocked.harmful_rate, report.alpha) == ("published", 0.9, 4)
    model = client.models.retrieve(done.fine_tuned_model)
    assert model.job_id == job.id and [m.id for m in client.models.list()] == [model.id]
    dest = client.models.download(model.id, tmp_path / "dl")
    assert (dest / "config.json").read_text() == '{"model_type": "llama"}'
    assert (dest / "tokenizer" / "tokenizer.json").is_file()
    assert not list(dest.rglob("*.part"))


def test_gate_rejection_is_a_failed_job_with_a_report(client, fake, train_file):
    fake.reject = True
    job = client.jobs.wait(_job(client, train_file).id, poll_interval=0)
    assert (job.status, job.error.code, job.rejected) == ("failed", "gate_rejected", True)
    assert client.jobs.report(job.id).decision == "rejected"


def test_stream_events_until_terminal(client, train_file):
    job = _job(client, train_file)
    events = list(client.jobs.stream_events(job.id))
    assert [e.message for e in events][-1] == "published"
    assert events[1].type == "metrics" and events[1].data == {"step": 1, "loss": 2.0}


def test_broken_event_stream_resumes_after_the_last_event(client, http, train_file):
    job = client.jobs.wait(_job(client, train_file).id, poll_interval=0)
    real, cut, streams = http._transport, [], []

    class CutStream(httpx.SyncByteStream):
        def __init__(self, body: bytes):
            self.body = body

        def __iter__(self):
            yield self.body[: self.body.index(b"data:", self.body.index(b"data:") + 1)]
            raise httpx.ReadError("connection reset mid-stream")

    class CutFirstStream(httpx.BaseTransport):
        def handle_request(self, request):
            response = real.handle_request(request)
            if request.url.params.get("stream") == "true":
                streams.append(request.url.params.get("after"))
            if request.url.params.get("stream") == "true" and not cut:
                cut.append(request.url)
                return httpx.Response(200, headers=response.headers,
                                      stream=CutStream(response.read()))
            return response

    http._transport = CutFirstStream()
    streamed = list(client.jobs.stream_events(job.id))
    assert [e.id for e in streamed] == [e.id for e in client.jobs.events(job.id)]
    assert cut and streams == [None, streamed[0].id]  # resumed right after the first event


def test_list_paginates_across_pages_and_filters(client, fake, train_file):
    f = client.files.upload(train_file)
    ids = [client.jobs.create(model="demo-chat", training_file=f.id).id for _ in range(5)]
    client.jobs.cancel(ids[0])
    fake.requests.clear()
    page = client.jobs.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    assert [j.id for j in page] == ids[::-1]
    assert len(fake.requests) == 3  # pages of 2, 2, 1
    assert [r[2].get("idempotency-key") for r in fake.requests] == [None] * 3
    assert [j.id for j in client.jobs.list(status="cancelled")] == [ids[0]]


def test_tenants_are_isolated(client, http, train_file):
    job = _job(client, train_file)
    other = sdk.Client(base_url="http://testserver", api_key="sk-other", http_client=http)
    with pytest.raises(sdk.NotFoundError) as info:
        other.jobs.retrieve(job.id)
    assert info.value.status == 404 and info.value.code == "job_not_found"
    assert list(other.jobs.list()) == []


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, sdk.BadRequestError), (401, sdk.AuthenticationError),
     (403, sdk.PermissionDeniedError), (404, sdk.NotFoundError), (409, sdk.ConflictError),
     (422, sdk.UnprocessableEntityError), (429, sdk.RateLimitError),
     (500, sdk.InternalServerError), (503, sdk.InternalServerError)],
)
def test_each_status_maps_to_its_error_class(client, fake, status, cls):
    fake.fail_next(status, times=3)
    with pytest.raises(cls) as info:
        client.jobs.retrieve("ftjob-1")
    err = info.value
    assert isinstance(err, sdk.APIStatusError) and isinstance(err, sdk.SafetyLockError)
    assert (err.status, err.code, err.param) == (status, f"scripted_{status}", None)
    assert err.message == f"scripted failure {status}"
    assert err.request_id and err.request_id.startswith("req_")
    assert str(status) in str(err) and err.request_id in str(err)


def test_errors_from_real_routes_carry_code_and_param(client, train_file):
    f = client.files.upload(train_file)
    with pytest.raises(sdk.BadRequestError) as info:
        client.jobs.create(model="gpt-nope", training_file=f.id)
    assert (info.value.code, info.value.param) == ("model_not_found", "model")
    with pytest.raises(sdk.UnprocessableEntityError) as info:
        client.jobs.create(model="demo-chat", training_file=f.id, validation_file=f.id)
    assert (info.value.code, info.value.param) == ("validation_file_is_training_file", "validation_file")
    job = client.jobs.wait(_job(client, train_file).id, poll_interval=0)
    with pytest.raises(sdk.ConflictError, match="already succeeded"):
        client.with_options(max_retries=0).jobs.cancel(job.id)
    bad = sdk.Client(base_url="http://testserver", api_key="sk-wrong", http_client=client._http)
    with pytest.raises(sdk.AuthenticationError):
        bad.files.list()


def test_retries_reuse_the_idempotency_key_and_honour_retry_after(client, fake, train_file,
                                                                   monkeypatch):
    slept = []
    monkeypatch.setattr(_base_client.time, "sleep", slept.append)
    fake.fail_next(502)
    f = client.files.upload(train_file)
    (_, _, first), (_, _, second) = fake.requests
    assert first["content-type"] == second["content-type"]  # same multipart bytes on retry
    assert first["idempotency-key"] == second["idempotency-key"]
    fake.requests.clear()
    slept.clear()
    fake.fail_next(503)
    fake.fail_next(429, headers={"Retry-After": "0.25"})
    job = client.jobs.create(model="demo-chat", training_file=f.id)
    assert len(fake.jobs) == 1 and job.id in fake.jobs
    keys = [r[2]["idempotency-key"] for r in fake.requests]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert [r[2].get("x-safetylock-retry-count") for r in fake.requests] == [None, "1", "2"]
    assert 0 < slept[0] <= 0.001 and slept[1] == 0.25
    fake.fail_next(500, times=3)
    with pytest.raises(sdk.InternalServerError):
        client.jobs.create(model="demo-chat", training_file=f.id)  # 1 try + 2 retries
    assert not fake.scripted


def test_dropped_response_does_not_start_a_second_job(fake, http, train_file, monkeypatch):
    """The POST reaches the service, the answer is lost; the retry is replayed, not rerun."""
    monkeypatch.setattr(_base_client.time, "sleep", lambda s: None)
    real = http._transport
    dropped = []

    class DropFirstPost(httpx.BaseTransport):
        def handle_request(self, request):
            response = real.handle_request(request)
            if request.url.path.endswith("/jobs") and request.method == "POST" and not dropped:
                dropped.append(request.headers["idempotency-key"])
                raise httpx.ReadError("connection reset", request=request)
            return response

    http._transport = DropFirstPost()
    client = sdk.Client(base_url="http://testserver", api_key="sk-test", http_client=http)
    f = client.files.upload(train_file)
    job = client.jobs.create(model="demo-chat", training_file=f.id)
    assert dropped and list(fake.jobs) == [job.id]
    assert fake.post_count == 2  # upload + the one create that ran


def test_connection_and_timeout_errors(monkeypatch):
    monkeypatch.setattr(_base_client.time, "sleep", lambda s: None)
    calls = []

    def refuse(request):
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    c = sdk.Client(base_url="http://x", api_key="k", max_retries=3,
                   http_client=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(sdk.APIConnectionError) as info:
        c.jobs.list()
    assert not isinstance(info.value, sdk.APIStatusError) and len(calls) == 4

    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    c = sdk.Client(base_url="http://x", api_key="k", max_retries=0,
                   http_client=httpx.Client(transport=httpx.MockTransport(slow)))
    with pytest.raises(sdk.APITimeoutError):
        c.jobs.retrieve("ftjob-1")


def test_wait_times_out_without_touching_the_job(client, train_file):
    job = _job(client, train_file)
    with pytest.raises(sdk.JobWaitTimeoutError, match=job.id) as info:
        client.jobs.wait(job.id, timeout=0, poll_interval=0)
    assert isinstance(info.value, TimeoutError) and info.value.status in ("queued", "running")


def test_progress_bar_shows_stage_step_loss_and_eta():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    job = {"id": "ftjob-1", "created_at": 0, "model": "demo-chat", "status": "running",
           "training_file": "file-1", "stage": "train",
           "progress": {"stage": "train", "step": 2, "total_steps": 3, "loss": 0.5,
                        "eta_seconds": 75}}
    with JobProgressBar("ftjob-1", console=console) as bar:
        bar.update(FineTuningJob.model_validate(job))
    text = out.getvalue()
    for part in ("ftjob-1", "train", "step 2/3", "loss 0.5000", "ETA 1:15"):
        assert part in text, (part, text)
    quiet = io.StringIO()
    with JobProgressBar("ftjob-1", console=Console(file=quiet)) as bar:
        bar.update(FineTuningJob.model_validate(job))
    assert quiet.getvalue() == ""


def test_model_download_refuses_paths_outside_dest(client, fake, train_file, tmp_path):
    job = client.jobs.wait(_job(client, train_file).id, poll_interval=0)
    original = client.models.download_urls

    def listing(model_id):
        out = original(model_id)
        out.files[0].path = "../escape.txt"
        return out

    client.models.download_urls = listing
    with pytest.raises(sdk.SafetyLockError, match="not inside the destination"):
        client.models.download(job.fine_tuned_model, tmp_path / "dl")
    assert not (tmp_path / "escape.txt").exists()


def test_async_client_has_the_same_surface(fake, tmp_path, train_file):
    app = build_app(fake)

    async def story():
        transport = httpx.ASGITransport(app=app)
        async with sdk.AsyncClient(base_url="http://testserver", api_key="sk-test",
                                   http_client=httpx.AsyncClient(transport=transport)) as c:
            f = await c.files.upload(train_file)
            job = await c.jobs.create(model="demo-chat", training_file=f.id)
            done = await c.jobs.wait(job.id, poll_interval=0)
            page = await c.jobs.events(job.id, limit=2)
            messages = [e.message async for e in page]
            report = await c.jobs.report(job.id)
            await c.models.download(done.fine_tuned_model, tmp_path / "adl")
            return done, messages, report

    done, messages, report = asyncio.run(story())
    assert done.status == "succeeded" and len(messages) == 6
    assert report.decision == "published"
    assert (tmp_path / "adl" / "config.json").is_file()


def test_unexpected_response_shape_is_a_clear_error():
    def odd(request):
        return httpx.Response(200, json={"id": "ftjob-1", "status": "exploded"})

    c = sdk.Client(base_url="http://x", api_key="k",
                   http_client=httpx.Client(transport=httpx.MockTransport(odd)))
    with pytest.raises(sdk.SafetyLockError, match="unexpected response to GET"):
        c.jobs.retrieve("ftjob-1")
