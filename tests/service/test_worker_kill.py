"""kill -9 of the worker during training: a new worker resumes the job, which ends once.

Short lease and visibility timeout so the lost message comes back within seconds.
"""

from __future__ import annotations

import signal

import pytest

from tests.service.data import benign_records
from tests.service.helpers import (
    all_events,
    create_job,
    event_messages,
    train_steps,
    upload_records,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _finish_on_a_new_worker(stack, client, job_id: str) -> tuple[dict, list[dict], list[str]]:
    """Start a fresh worker, wait for the job to end gated (published or rejected by the
    gate, nothing else), and return it with its events and their messages."""
    stack.start_worker()
    job = wait_terminal(client, job_id, timeout=300)
    events = all_events(client, job_id)
    assert job["status"] in ("succeeded", "failed"), job
    if job["status"] == "failed":
        assert job["error"]["code"] == "gate_rejected", (job["error"], events[-6:])
    return job, events, [e["message"] for e in events]


KILL_TOTAL = 96  # training steps of the kill test: 6 epochs of 16 examples, about 20 s


def test_killed_worker_is_replaced_and_job_completes_once(service_stack_factory, demo_lock_registry) -> None:
    stack = service_stack_factory(
        base_models={"demo-test": str(demo_lock_registry.model_dir)},
        store_url=demo_lock_registry.publish_to,
        eval_limit=8, eval_max_new_tokens=8, alpha_grid=[1.0],
        lease_seconds=3, visibility_timeout=6, checkpoint_steps=2,
    )
    stack.start_api()
    first = stack.start_worker()
    with stack.client(stack.create_tenant("kill-test")) as client:
        file_id = upload_records(client, benign_records(16))
        hp = {"n_epochs": KILL_TOTAL // 16, "batch_size": 1, "lora_rank": 4, "lora_alpha": 8, "max_seq_length": 64}
        job = create_job(client, model="demo-test", training_file=file_id, hyperparameters=hp)
        wait_for(client, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 3, 180, "training to start")
        wait_for(client, job["id"], lambda j: any(m.startswith("Checkpoint at step") for m in
                                                  event_messages(client, j["id"])), 60, "a stored checkpoint")
        first.kill(signal.SIGKILL)
        killed_at = max(train_steps(all_events(client, job["id"])))
        assert first.process.returncode == -signal.SIGKILL
        # The kill must land mid-training for this test to mean anything (with 16 steps it
        # once landed after the last step: the resumed worker had no training left).
        assert killed_at < KILL_TOTAL - 10, f"training reached step {killed_at} of {KILL_TOTAL} before the kill"
        job, events, messages = _finish_on_a_new_worker(stack, client, job["id"])
        assert any(m.startswith("Resuming the job after a lost worker (delivery 2)") for m in messages), messages
        assert any(m == "Stage validate already done; skipping it." for m in messages), messages
        resumed = [m for m in messages if m.startswith("Resuming training from the checkpoint at step")]
        assert len(resumed) == 1, messages
        assert 2 <= int(resumed[0].rsplit(" ", 1)[1].rstrip(".")) <= killed_at
        steps = train_steps(events)
        assert steps == list(range(1, max(steps) + 1)) and max(steps) == KILL_TOTAL  # each step once, none lost
        assert len(messages) == len(set(messages)), "duplicate events"
        assert messages.count("Stage train started.") == 1 and messages.count("Stage train finished") == 0
        assert sum(m.startswith("Stage train finished") for m in messages) == 1
        assert sum(m.startswith("Job ") for m in messages) == 1  # one terminal event

        ctx = stack.context()
        record = ctx.records.get_job(job["id"])
        assert record.deliveries == 2
        stage_keys = ctx.store.list(f"jobs/{record.tenant}/{job['id']}/stages/")
        names = [k.rsplit("/", 1)[1] for k in stage_keys]
        assert names == sorted(set(names)) == sorted(f"{s}.json" for s in
                                                    ("validate", "resolve_lock", "train", "relock", "evaluate", "gate"))
        models = client.get("/v1/models").json()["data"]
        published = [m for m in models if m["job_id"] == job["id"]]
        assert len(published) == (1 if job["status"] == "succeeded" else 0)


TOTAL = 320  # training steps of the SIGTERM test: 20 epochs of 16 examples


def test_sigterm_hands_the_job_back_at_the_next_step(service_stack_factory, demo_lock_registry) -> None:
    """Warm shutdown does not wait for the job: training stops after its current step with
    a checkpoint of that step, the message is requeued, and the next worker resumes from
    it at once (no lease or visibility timeout to wait out; not counted as a lost worker)."""
    stack = service_stack_factory(
        base_models={"demo-test": str(demo_lock_registry.model_dir)},
        store_url=demo_lock_registry.publish_to,
        eval_limit=8, eval_max_new_tokens=8, alpha_grid=[1.0],
        lease_seconds=60, visibility_timeout=3600, checkpoint_steps=1000,  # no periodic checkpoint
    )
    stack.start_api()
    first = stack.start_worker()
    with stack.client(stack.create_tenant("sigterm-test")) as client:
        file_id = upload_records(client, benign_records(16))
        hp = {"n_epochs": TOTAL // 16, "batch_size": 1, "lora_rank": 4, "lora_alpha": 8, "max_seq_length": 64}
        job = create_job(client, model="demo-test", training_file=file_id, hyperparameters=hp)
        wait_for(client, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 3, 180, "training to start")
        first.kill(signal.SIGTERM)  # waits for the worker to exit
        assert first.process.returncode == 0, first.tail()
        events = all_events(client, job["id"])
        stopped_at = max(train_steps(events))
        assert stopped_at < TOTAL - 10, "the worker did not stop training at its next step"
        handed = [e["message"] for e in events if e["message"].startswith("The worker is shutting down")]
        expected = (f"The worker is shutting down: job handed back during training at step {stopped_at}; "
                    "another worker resumes it.")
        assert handed == [expected], handed
        assert client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "running"

        job, events, messages = _finish_on_a_new_worker(stack, client, job["id"])
        assert f"Checkpoint at step {stopped_at} saved." in messages, messages
        assert f"Resuming training from the checkpoint at step {stopped_at}." in messages, messages
        assert not any(m.startswith("Resuming the job after a lost worker") for m in messages), messages
        steps = train_steps(events)
        assert steps == list(range(1, TOTAL + 1))  # each step once, none lost, none repeated
        assert sum(m.startswith("Stage train finished") for m in messages) == 1
        assert sum(m.startswith("Job ") for m in messages) == 1
        assert stack.context().records.get_job(job["id"]).deliveries == 1
