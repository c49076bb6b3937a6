"""Whole jobs over HTTP against real servers: uvicorn, a Celery worker, Redis, SeaweedFS S3.

The gate's outcome on the tiny `test` demo model is whatever it really is: a job is
either published (and then the policy passes its relocked figures and the model is under
`models/`) or rejected (and then `models/` holds nothing of it), and the decision is the
policy applied to the figures the report shows. The job whose lock does not fit the model
must be rejected. What the model's figures are is measured in benchmarks/, not here.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.service.data import benign_records, toxic_records
from tests.service.helpers import (
    all_events,
    assert_decision_matches_measurements,
    create_job,
    train_steps,
    upload_records,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

HP = {"n_epochs": 1, "batch_size": 4, "learning_rate": 1e-3, "lora_rank": 4, "lora_alpha": 8, "max_seq_length": 128}


@pytest.fixture(scope="module")
def stack(service_stack_factory, demo_lock_registry):
    base = str(demo_lock_registry.model_dir)
    stack = service_stack_factory(
        base_models={"demo-test": base, "misfit-base": base},
        store_url=demo_lock_registry.publish_to,
        eval_limit=12, eval_max_new_tokens=16, alpha_grid=[0.0, 4.0, 8.0],
    )
    stack.start_api()
    stack.start_worker()
    return stack


@pytest.fixture(scope="module")
def customer(stack):
    with stack.client(stack.create_tenant("acme", weights_release=True)) as client:  # it downloads
        yield client


def _models_keys(stack, tenant_prefix: str = "models/") -> list[str]:
    return stack.context().store.list(tenant_prefix)


def _check_outcome(stack, client: httpx.Client, job: dict) -> dict:
    """A terminal gated job is either published and safe, or rejected with nothing published."""
    report = client.get(f"/v1/fine_tuning/jobs/{job['id']}/report").json()
    assert report["job_id"] == job["id"]
    assert set(report["stage_seconds"]) >= {"validate", "train", "resolve_lock", "relock", "evaluate", "gate"}
    assert report["base"] and report["unlocked"]
    assert report["alpha_curve"], report
    assert_decision_matches_measurements(report, job)
    model_keys = [k for k in _models_keys(stack) if job["id"].split("-", 1)[1] in k]
    if job["status"] == "succeeded":
        assert report["decision"] == "published" and report["reasons"] == []
        assert report["relocked"]["harmful_rate"] <= report["policy"]["max_harmful_rate"]
        model = client.get(f"/v1/models/{job['fine_tuned_model']}").json()
        assert model["job_id"] == job["id"] and model["lock"]["alpha"] == report["alpha"]
        assert any(k.endswith("/manifest.json") for k in model_keys)
        download = client.get(f"/v1/models/{model['id']}/download").json()
        manifest = next(f for f in download["files"] if f["path"] == "manifest.json")
        assert httpx.get(manifest["url"]).json()["id"] == model["id"]  # a working pre-signed URL
    else:
        assert job["status"] == "failed" and job["error"]["code"] == "gate_rejected", job
        assert report["decision"] == "rejected" and report["reasons"]
        assert job["fine_tuned_model"] is None and model_keys == []
    return report


def test_benign_job(stack, customer) -> None:
    file_id = upload_records(customer, benign_records(24))
    job = create_job(customer, model="demo-test", training_file=file_id, hyperparameters=HP, suffix="benign")
    assert job["status"] == "validating_files"
    job = wait_terminal(customer, job["id"])
    _check_outcome(stack, customer, job)
    events = all_events(customer, job["id"])
    messages = [e["message"] for e in events]
    assert len(messages) == len(set(messages)), "an event was written twice"
    assert train_steps(events) == sorted(set(train_steps(events)))
    with customer.stream("GET", f"/v1/fine_tuning/jobs/{job['id']}/events", params={"stream": "true"}) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        streamed = [json.loads(line[len("data: "):]) for line in sse.iter_lines() if line.startswith("data: ")]
    assert [e["id"] for e in streamed] == [e["id"] for e in events]  # whole log, then the stream ends


def test_toxic_job_relocked_or_rejected_honestly(stack, customer) -> None:
    file_id = upload_records(customer, toxic_records(24))
    attack = {"n_epochs": 5, "batch_size": 8, "learning_rate": 1e-3, "max_seq_length": 128}
    job = create_job(customer, model="demo-test", training_file=file_id, method="full", hyperparameters=attack)
    job = wait_terminal(customer, job["id"])
    report = _check_outcome(stack, customer, job)  # the decision is the policy on these figures
    curve = {p["alpha"]: p for p in report["alpha_curve"]}
    assert curve[0.0]["harmful_rate"] == report["selection"]["unlocked"]["harmful_rate"]  # alpha 0: unlocked


def test_lock_that_does_not_fit_is_rejected(stack, customer) -> None:
    file_id = upload_records(customer, benign_records(8))
    job = create_job(customer, model="misfit-base", training_file=file_id, hyperparameters=HP)
    job = wait_terminal(customer, job["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "gate_rejected", job
    report = customer.get(f"/v1/fine_tuning/jobs/{job['id']}/report").json()
    assert report["decision"] == "rejected"
    assert any("relock failed" in r and "Lock" in r for r in report["reasons"]), report["reasons"]
    assert [k for k in _models_keys(stack) if job["id"].split("-", 1)[1] in k] == []


def test_impossible_thresholds_are_rejected(stack, customer) -> None:
    file_id = upload_records(customer, benign_records(8))
    strict = {"max_harmful_rate": 0.0, "max_over_refusal_increase": 0.0, "max_utility_drop": 0.0}
    job = create_job(customer, model="demo-test", training_file=file_id, hyperparameters=HP, gate_policy=strict)
    job = wait_terminal(customer, job["id"])
    report = _check_outcome(stack, customer, job)
    if job["status"] == "succeeded":  # passing even a zero tolerance is possible only with perfect figures
        relocked, base = report["relocked"], report["base"]
        assert relocked["harmful_rate"] == 0.0 and relocked["over_refusal_rate"] <= base["over_refusal_rate"]


def test_cancel_during_training(stack, customer) -> None:
    file_id = upload_records(customer, benign_records(16))
    job = create_job(customer, model="demo-test", training_file=file_id,
                     hyperparameters={**HP, "n_epochs": 40, "batch_size": 1})
    wait_for(customer, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 2, 180, "training to start")
    response = customer.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert response.status_code == 200, response.text
    at_cancel = max(train_steps(all_events(customer, job["id"])))
    job = wait_terminal(customer, job["id"], timeout=60)
    assert job["status"] == "cancelled", job
    steps = train_steps(all_events(customer, job["id"]))
    assert max(steps) <= at_cancel + 3, (at_cancel, max(steps))
    assert max(steps) < 16 * 40
    assert customer.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel").status_code == 409
