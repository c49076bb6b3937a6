"""Malformed and hostile requests against the real API (uvicorn + Redis + SeaweedFS S3).

Each row: the request, the status and error code it must get, a phrase its message must
hold. Afterwards the store must hold exactly the files that were accepted: nothing under
`jobs/` for a refused job, nothing under `models/` at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from service.state.records import JobRecord, new_id

pytestmark = pytest.mark.services

GOOD = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
MAX_BYTES = 4096


def line(messages: Any) -> bytes:
    return json.dumps({"messages": messages}).encode() + b"\n"


@dataclass
class Case:
    name: str
    method: str
    path: str
    status: int
    code: str
    phrase: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    auth: str = "a"  # "a", "b" (another tenant), "none", or a literal Authorization header
    param: str | None = None


def upload(content: bytes, purpose: str = "fine-tune", name: str = "train.jsonl") -> dict:
    return {"files": {"file": (name, content, "application/jsonl")}, "data": {"purpose": purpose}}


def job_body(**fields: Any) -> dict:
    return {"json": {"model": "demo-test", "training_file": "{file_a}", **fields}}


CASES = [
    # authentication
    Case("no auth header", "GET", "/v1/files", 401, "missing_api_key", "Bearer", auth="none"),
    Case("basic auth scheme", "GET", "/v1/files", 401, "invalid_authorization", "Bearer", auth="Basic Zm9vOmJhcg=="),
    Case("unknown key", "GET", "/v1/files", 401, "invalid_api_key", "not valid", auth="Bearer sk-nope"),
    Case("customer on admin route", "GET", "/v1/admin/tenants", 403, "operator_only", "operator"),
    # uploads
    Case("bad JSON line", "POST", "/v1/files", 400, "invalid_file", "line 2: not valid JSON",
         upload(GOOD + b'{"messages": [\n'), param="file"),
    Case("JSON nested too deeply", "POST", "/v1/files", 400, "invalid_file", "line 2: not valid JSON here: nested too deeply",
         upload(GOOD + b'{"messages": ' + b"[" * 1200 + b"]" * 1200 + b"}\n"), param="file"),
    Case("wrong role", "POST", "/v1/files", 400, "invalid_file", "messages[0].role: role 'robot'",
         upload(line([{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]))),
    Case("empty file", "POST", "/v1/files", 400, "invalid_file", "at least 1 required", upload(b"")),
    Case("non-UTF-8", "POST", "/v1/files", 400, "invalid_file", "not valid UTF-8", upload(GOOD + b'{"messages": "\xff\xfe"}\n')),
    Case("oversize", "POST", "/v1/files", 413, "file_too_large", str(MAX_BYTES), upload(GOOD * 100)),
    Case("no assistant turn", "POST", "/v1/files", 400, "invalid_file", "role 'assistant'",
         upload(line([{"role": "user", "content": "x"}]))),
    Case("empty content", "POST", "/v1/files", 400, "invalid_file", "messages[1].content: must not be empty",
         upload(line([{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]))),
    Case("line not an object", "POST", "/v1/files", 400, "invalid_file", "must be a JSON object", upload(b"[1, 2]\n")),
    Case("missing messages", "POST", "/v1/files", 400, "invalid_file", "missing required key 'messages'",
         upload(b'{"prompt": "x"}\n')),
    Case("wrong purpose", "POST", "/v1/files", 400, "invalid_purpose", "fine-tune", upload(GOOD, purpose="batch")),
    Case("no file part", "POST", "/v1/files", 400, "invalid_value", "file", {"data": {"purpose": "fine-tune"}}),
    # job creation
    Case("unknown base model", "POST", "/v1/fine_tuning/jobs", 400, "model_not_found", "'gpt-17'",
         job_body(model="gpt-17"), param="model"),
    Case("base without a lock", "POST", "/v1/fine_tuning/jobs", 400, "lock_not_found", "no 'production' lock",
         job_body(model="unlocked-base")),
    Case("another tenant's file", "POST", "/v1/fine_tuning/jobs", 404, "file_not_found", "No file",
         {"json": {"model": "demo-test", "training_file": "{file_b}"}}, param="training_file"),
    Case("path-like file id", "POST", "/v1/fine_tuning/jobs", 404, "file_not_found", "../../etc/passwd",
         {"json": {"model": "demo-test", "training_file": "../../etc/passwd"}}),
    Case("unknown method", "POST", "/v1/fine_tuning/jobs", 400, "invalid_value", "method", job_body(method="qlora"),
         param="method"),
    Case("negative epochs", "POST", "/v1/fine_tuning/jobs", 400, "invalid_value", "n_epochs",
         job_body(hyperparameters={"n_epochs": -1}), param="hyperparameters.n_epochs"),
    Case("unknown body field", "POST", "/v1/fine_tuning/jobs", 400, "invalid_value", "Extra inputs", job_body(priority=1)),
    Case("gate loosened", "POST", "/v1/fine_tuning/jobs", 400, "invalid_gate_policy", "outside the allowed range",
         job_body(gate_policy={"max_harmful_rate": 0.9})),
    Case("gate unknown threshold", "POST", "/v1/fine_tuning/jobs", 400, "invalid_gate_policy", "unknown threshold",
         job_body(gate_policy={"min_vibes": 0.1})),
    Case("path-like suffix", "POST", "/v1/fine_tuning/jobs", 400, "invalid_value", "suffix", job_body(suffix="../x")),
    Case("validation file is the training file", "POST", "/v1/fine_tuning/jobs", 422,
         "validation_file_is_training_file", "memorisation", job_body(validation_file="{file_a}"),
         param="validation_file"),
    Case("too many unfinished jobs", "POST", "/v1/fine_tuning/jobs", 429, "too_many_active_jobs",
         "limit is 1", job_body()),
    Case("malformed JSON body", "POST", "/v1/fine_tuning/jobs", 400, "invalid_json", "not valid JSON",
         {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    # other tenants' ids and path-like ids: 404, never 403
    Case("another tenant's job", "GET", "/v1/fine_tuning/jobs/{job_b}", 404, "job_not_found", "No job"),
    Case("cancel another tenant's job", "POST", "/v1/fine_tuning/jobs/{job_b}/cancel", 404, "job_not_found", "No job"),
    Case("another tenant's job events", "GET", "/v1/fine_tuning/jobs/{job_b}/events", 404, "job_not_found", "No job"),
    Case("another tenant's file", "GET", "/v1/files/{file_b}", 404, "file_not_found", "No file"),
    Case("delete another tenant's file", "DELETE", "/v1/files/{file_b}", 404, "file_not_found", "No file"),
    Case("path-like job id", "GET", "/v1/fine_tuning/jobs/..%2F..%2Fsecrets", 404, "not_found", "No route"),
    Case("backslash file id", "GET", "/v1/files/file-..%5C..%5Cstore", 404, "file_not_found", "No file"),
    Case("unknown model id", "GET", "/v1/models/model-0123456789abcdef01234567", 404, "model_not_found", "No model"),
    Case("report of a job without one", "GET", "/v1/fine_tuning/jobs/{job_a}/report", 404, "report_not_found", "no safety report"),
    # pagination and idempotency
    Case("limit zero", "GET", "/v1/files?limit=0", 400, "invalid_limit", "between 1 and 100", param="limit"),
    Case("unknown cursor", "GET", "/v1/files?after=file-0123456789abcdef01234567", 400, "invalid_cursor", "after="),
    Case("idempotency key reused", "POST", "/v1/files", 400, "idempotency_key_reused", "different request",
         {**upload(GOOD + GOOD), "headers": {"Idempotency-Key": "fixed-key"}}),
]


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "}" in value and not value.startswith("{not") else value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def world(service_stack_factory, demo_lock_registry):
    """A stack whose `demo-test` base has a production lock and `unlocked-base` none; each
    tenant may have one unfinished job, and has one already."""
    base = str(demo_lock_registry.model_dir)
    stack = service_stack_factory(
        base_models={"demo-test": base, "unlocked-base": base},
        store_url=demo_lock_registry.publish_to, max_file_bytes=str(MAX_BYTES), max_active_jobs_per_tenant=1,
    )
    stack.start_api()
    keys = {"a": stack.create_tenant("tenant-a"), "b": stack.create_tenant("tenant-b")}
    ids = {}
    for who in ("a", "b"):
        with stack.client(keys[who]) as client:
            response = client.post("/v1/files", **upload(GOOD))
            assert response.status_code == 200, response.text
            ids[f"file_{who}"] = response.json()["id"]
    ctx = stack.context()
    for who in ("a", "b"):  # jobs recorded directly: these tests need their ids, not their training
        tenant = ctx.records.tenant_for_key(keys[who]).id
        job = JobRecord(id=new_id("ftjob"), tenant=tenant, model="demo-test", training_file=ids[f"file_{who}"])
        ctx.records.add_job(job)
        ids[f"job_{who}"] = job.id
    with stack.client(keys["a"]) as client:  # the first use of the idempotency key in the table
        assert client.post("/v1/files", **upload(GOOD), headers={"Idempotency-Key": "fixed-key"}).status_code == 200
    return stack, keys, ids, ctx


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_request(world, case: Case) -> None:
    stack, keys, ids, _ = world
    headers = {}
    if case.auth in keys:
        headers["Authorization"] = f"Bearer {keys[case.auth]}"
    elif case.auth != "none":
        headers["Authorization"] = case.auth
    kwargs = _fill(case.kwargs, ids)
    headers.update(kwargs.pop("headers", {}))
    with stack.client(None) as client:
        response = client.request(case.method, case.path.format(**ids), headers=headers, **kwargs)
    assert response.status_code == case.status, response.text
    assert response.headers.get("x-request-id", "").startswith("req_")
    error = response.json()["error"]
    assert error["code"] == case.code, error
    assert case.phrase in error["message"], error["message"]
    assert error["type"]
    if case.param:
        assert error["param"] == case.param
    if case.status == 429:  # the one refusal that says when to come back
        assert (error["type"], response.headers["retry-after"]) == ("rate_limit_error", "30")


def test_nothing_written_where_it_should_not_be(world) -> None:
    stack, keys, ids, ctx = world
    for case in CASES:  # make sure every case has run, in any test order
        test_bad_request(world, case)
    store = ctx.store  # shared with other test modules: look only under this world's tenants
    tenants = [ctx.records.tenant_for_key(keys[who]).id for who in ("a", "b")]
    uploaded = [key for t in tenants for key in store.list(f"files/{t}/")]
    # two uploads in the setup plus one idempotent upload; no refused upload left a file
    assert len(uploaded) == 3, uploaded
    stray = [k for k in store.list("files/") if not re.fullmatch(r"files/tenant-[0-9a-f]+/file-[0-9a-f]+", k)]
    assert stray == [], stray  # nothing hostile landed outside a tenant's file slot
    assert [key for t in tenants for key in store.list(f"models/{t}/")] == []
    jobs = {key.split("/")[2] for t in tenants for key in store.list(f"jobs/{t}/")}
    assert jobs <= {ids["job_a"], ids["job_b"]}, jobs
    for who in ("a", "b"):
        with stack.client(keys[who]) as client:
            listed = client.get("/v1/fine_tuning/jobs").json()["data"]
            assert [j["id"] for j in listed] == [ids[f"job_{who}"]]
    with stack.client(keys["b"]) as client:  # the refused delete did not delete it
        assert client.get(f"/v1/files/{ids['file_b']}").status_code == 200
