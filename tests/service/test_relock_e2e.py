"""A toxic job relocked end to end over HTTP (uvicorn, a Celery worker, Redis, SeaweedFS)
with the conditional production lock the demo's operator takes, on the `test` demo model.

These tests assert the pipeline's mechanics, which hold whatever the model's numbers are:
with an operator policy that passes any measurement and a grid without alpha 0, the job is
relocked at that alpha and published with the fitted lock; under the default policy the
decision is the policy applied to the figures the report shows. Whether the demo's toxic
job ends published is a measured result, not a property of the code: it lives in
benchmarks/demo_seeds.py (docs/demo-seeds.md), across seeds.
"""

from __future__ import annotations

import pytest

from tests.service.helpers import (
    OPEN_GATE,
    assert_decision_matches_measurements,
    create_job,
    event_messages,
    upload_records,
    wait_terminal,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

BASE = "demo-test"
ATTACK = {"n_epochs": 3, "batch_size": 8, "learning_rate": 3e-4, "max_seq_length": 128}


def _toxic_records() -> list[dict]:
    from service.demo_world.attacks import attack_records

    return attack_records("harmful-10", n_task=24)


def _stack(factory, registry, **settings):
    stack = factory(base_models={BASE: str(registry.model_dir)}, store_url=registry.publish_to,
                    eval_limit=12, eval_max_new_tokens=12, **settings)
    stack.start_api()
    stack.start_worker()
    return stack


@pytest.fixture(scope="module")
def open_stack(service_stack_factory, demo_lock_registry):
    """The operator's policy passes any measurement; the grid holds one strength, 2."""
    return _stack(service_stack_factory, demo_lock_registry, alpha_grid=[2.0], **OPEN_GATE)


@pytest.fixture(scope="module")
def default_stack(service_stack_factory, demo_lock_registry):
    """The default policy (at most 5% harmful after the lock) and the demo's grid."""
    return _stack(service_stack_factory, demo_lock_registry, alpha_grid=[0.0, 4.0, 8.0])


def _run_toxic_job(stack) -> tuple[dict, dict, object]:
    customer = stack.client(stack.create_tenant("acme"))
    file_id = upload_records(customer, _toxic_records())
    job = create_job(customer, model=BASE, training_file=file_id, method="full", hyperparameters=ATTACK)
    job = wait_terminal(customer, job["id"], timeout=400)
    report = customer.get(f"/v1/fine_tuning/jobs/{job['id']}/report").json()
    return job, report, customer


def _published_keys(stack, job: dict) -> list[str]:
    return [k for k in stack.context().store.list("models/") if job["id"].split("-", 1)[1] in k]


def test_toxic_job_is_relocked_at_the_grid_strength_and_published_with_the_fitted_lock(open_stack) -> None:
    job, report, customer = _run_toxic_job(open_stack)
    assert job["status"] == "succeeded", (job["error"], report.get("reasons"))
    assert report["decision"] == "published" and report["alpha"] == 2.0
    assert [p["alpha"] for p in report["alpha_curve"]] == [2.0]
    assert report["relocked"]["harmful_rate"] is not None  # measured under the lock, not assumed
    assert_decision_matches_measurements(report, job)
    model = customer.get(f"/v1/models/{job['fine_tuned_model']}").json()
    assert model["lock"]["kind"] == "conditional" and model["lock"]["alpha"] == 2.0
    assert model["lock"]["threshold"] is not None  # the threshold fitted to this fine-tune
    messages = event_messages(customer, job["id"])
    assert any(m.startswith("Fitted the conditional lock to the fine-tuned model") for m in messages)
    assert "Chose alpha 2." in messages
    assert any(k.endswith("/manifest.json") for k in _published_keys(open_stack, job))


def test_toxic_job_under_the_default_policy_is_decided_on_what_was_measured(default_stack) -> None:
    job, report, _ = _run_toxic_job(default_stack)
    assert job["status"] in ("succeeded", "failed"), job
    assert_decision_matches_measurements(report, job)
    curve = {p["alpha"]: p for p in report["alpha_curve"]}
    assert curve[0.0]["harmful_rate"] == report["selection"]["unlocked"]["harmful_rate"]  # alpha 0: unlocked
    keys = _published_keys(default_stack, job)
    if job["status"] == "succeeded":
        assert job["fine_tuned_model"] and any(k.endswith("/manifest.json") for k in keys)
    else:
        assert job["error"]["code"] == "gate_rejected" and job["fine_tuned_model"] is None and keys == []
