"""Faults against the real stack (redis-server, SeaweedFS S3, uvicorn, a Celery worker).

Each test runs one real job of the tiny `test` demo model and breaks a dependency under
it: Redis shut down and started again mid-training (AOF on, fsync always), SeaweedFS
stopped while the job publishes and started again on the same ports and data, and the
API's Celery send dropped (its broker is a dead port). Every job must end in exactly one
terminal state, the one it would have had without the fault (the gate's own decision on
the figures its report shows), with nothing half-published, and while a dependency is
down the API answers 503 `service_unavailable` with `Retry-After`.
(kill -9 of the worker mid-training: tests/service/test_worker_kill.py.)

The restartable Redis and SeaweedFS are private to each test: the session's shared
servers (tests/fixtures/) are never stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from tests.fixtures.seaweedfs import (
    ACCESS_KEY,
    MASTER_TOML,
    SECRET_KEY,
    SeaweedS3,
    free_ports,
    server_command,
    weed_binary,
)
from tests.fixtures.services import Proc, free_port, spawn, wait_ready
from tests.service.data import benign_records
from tests.service.helpers import (
    OPEN_GATE,
    TERMINAL,
    all_events,
    assert_decision_matches_measurements,
    create_job,
    train_steps,
    upload_records,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

JOB_SETTINGS = {"eval_limit": 8, "eval_max_new_tokens": 8, "alpha_grid": [1.0]}
SWEEPER = {"sweep_seconds": 1, "redispatch_seconds": 4, "lease_seconds": 3}
"""A stranded job is found within seconds, not the production defaults' minutes."""
SHORT_HP = {"n_epochs": 1, "batch_size": 4, "lora_rank": 4, "lora_alpha": 8, "max_seq_length": 64}
LONG_STEPS = 64  # training steps of the Redis test: 4 epochs of 16 examples, batch 1
LONG_HP = {"n_epochs": LONG_STEPS // 16, "batch_size": 1, "lora_rank": 4, "lora_alpha": 8, "max_seq_length": 64}
DOWN_SECONDS = 8.0  # how long a stopped dependency stays down (at least)


# --- restartable dependencies ------------------------------------------------------------
@dataclass
class RestartableRedis:
    """A private redis-server with AOF on (fsync always), restarted on its port and dir."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    starts: int = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.starts += 1
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--databases", "16"]
        self.proc = spawn(args, dict(os.environ), self.root / f"redis-{self.starts}.log")
        client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        wait_ready(lambda: client.ping() and client.config_get("append*")["appendfsync"] == "always",
              "redis-server", self.proc.process, self.proc.log)

    def shutdown(self) -> None:
        """A clean stop (SIGTERM: redis fsyncs the AOF and exits 0)."""
        assert self.proc is not None
        self.proc.kill(signal.SIGTERM)
        assert self.proc.process.returncode == 0, self.proc.tail()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "redis")
    server.root.mkdir()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass
class RestartableSeaweed:
    """A private SeaweedFS (master, volume, filer, S3) stopped and started again on the
    same ports and data directory, so what it stored before the stop is there after."""

    root: Path
    ports: list[int] = field(default_factory=list)
    process: subprocess.Popen | None = None
    starts: int = 0

    @property
    def server(self) -> SeaweedS3:
        return SeaweedS3(f"http://127.0.0.1:{self.ports[6]}", ACCESS_KEY, SECRET_KEY)

    def start(self) -> None:
        weed = weed_binary()
        config = self.root / "s3.json"
        if not config.exists():
            identity = {"name": "safetylock-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}
            config.write_text(json.dumps({"identities": [identity]}))
            (self.root / "master.toml").write_text(MASTER_TOML)
            (self.root / "data").mkdir()
        first = not self.ports
        for _attempt in range(3 if first else 1):  # a port picked as free can be taken before weed binds it
            if first:
                self.ports = free_ports(10)
            self.starts += 1
            log = self.root / f"weed-{self.starts}.log"
            with log.open("wb") as handle:
                self.process = subprocess.Popen(
                    server_command(weed, self.root / "data", config, self.ports), stdout=handle,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root, start_new_session=True,
                )
            try:
                wait_ready(self._ready, "SeaweedFS", self.process, log)
                return
            except RuntimeError:
                self.stop()
                if not first:
                    raise
        raise RuntimeError(f"SeaweedFS did not start: {log.read_text(errors='replace')[-2000:]}")

    def _ready(self) -> bool:
        """A write round-trips (after a restart too: the volume has re-registered)."""
        from botocore.exceptions import ClientError

        client = self.server.client()
        try:
            client.create_bucket(Bucket="readiness-probe")
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
        return client.get_object(Bucket="readiness-probe", Key="probe")["Body"].read() == b"ok"

    def stop(self) -> None:
        """Stop at once (SIGKILL of the whole group): an outage, not a drain."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def private_seaweed(tmp_path: Path) -> Iterator[RestartableSeaweed]:
    weed = RestartableSeaweed(tmp_path / "seaweed")
    weed.root.mkdir()
    try:
        weed.start()
        yield weed
    finally:
        weed.stop()


@pytest.fixture
def make_stack(service_stack_factory):
    """`service_stack_factory`, whose stacks stop when the test ends (before the private
    servers they use: list this fixture after them)."""
    made = []

    def make(**settings: object):
        stack = service_stack_factory(**settings)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.stop()


# --- helpers -----------------------------------------------------------------------------
def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, f"{what}: expected 503 while a dependency is down, got {response.status_code}: {response.text}"
    assert response.json()["error"]["code"] == "service_unavailable", response.text
    assert int(response.headers["Retry-After"]) > 0, dict(response.headers)


def terminal_messages(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("Job ") and m.split(" ", 1)[1].rstrip(".") in TERMINAL]


def assert_ended_once(client: httpx.Client, job: dict) -> list[str]:
    """One terminal event; the status stays as it is a while later (no second ending)."""
    messages = [e["message"] for e in all_events(client, job["id"])]
    assert terminal_messages(messages) == [f"Job {job['status']}."], messages
    time.sleep(3)
    again = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert (again["status"], again["error"], again["fine_tuned_model"]) == (
        job["status"], job["error"], job["fine_tuned_model"]), (job, again)
    assert terminal_messages([e["message"] for e in all_events(client, job["id"])]) == [f"Job {job['status']}."]
    return messages


def assert_gate_decided(client: httpx.Client, job: dict, messages: list[str]) -> dict:
    """The job ended as the gate decides on its measured figures: published, or rejected by
    the gate (not by a crash: the fault must not change the outcome)."""
    assert job["status"] == "succeeded" or (job["status"] == "failed" and job["error"]["code"] == "gate_rejected"), (
        f"the fault changed the job's outcome: {job['status']} {job['error']}; last events: {messages[-8:]}")
    response = client.get(f"/v1/fine_tuning/jobs/{job['id']}/report")
    assert response.status_code == 200, f"no report after the fault: {response.text}"
    report = response.json()
    assert report.get("policy") and not report.get("crashed_stage"), (
        f"the gate's decision came from a crash during the fault, not from measurements: {report.get('reasons')}")
    assert_decision_matches_measurements(report, job)
    return report


def assert_published_whole(store, tenant: str, job: dict) -> None:
    """Succeeded: models/{tenant}/{model}/ holds manifest.json and exactly the files it
    lists, each with its sha256. Failed: nothing under models/ for the tenant."""
    prefix = f"models/{tenant}/"
    keys = sorted(store.list(prefix))
    if job["status"] != "succeeded":
        assert keys == [], f"a {job['status']} job left files under models/: {keys}"
        return
    model = job["fine_tuned_model"]
    assert model and all(k.startswith(f"{prefix}{model}/") for k in keys), keys
    manifest = json.loads(store.get_bytes(f"{prefix}{model}/manifest.json"))
    assert manifest["id"] == model and manifest["job_id"] == job["id"]
    assert sorted(k[len(f"{prefix}{model}/"):] for k in keys) == sorted([*manifest["files"], "manifest.json"])
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256(store.get_bytes(f"{prefix}{model}/{rel}")).hexdigest() == digest, rel


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if last := check():
                return last
        except Exception as exc:  # noqa: BLE001 - not yet
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def store_copy_matches_record(ctx, job_id: str) -> bool:
    """The store's job.json says what the record says (the sweeper repaired a stale copy)."""
    record = ctx.records.get_job(job_id)
    copy = json.loads(ctx.store.get_bytes(f"jobs/{record.tenant}/{job_id}/job.json"))
    return copy["status"] == record.status and copy["stage"] == record.stage


# --- 1. Redis restarted ------------------------------------------------------------------
def fresh_get(stack, api_key: str, path: str) -> httpx.Response:
    """One request on a connection of its own (a fault elsewhere cannot reset it)."""
    with stack.client(api_key) as client:
        return client.get(path)


def test_api_answers_503_while_redis_is_down(aof_redis, make_stack) -> None:
    """Redis shut down: every request answers 503 service_unavailable + Retry-After, on a
    fresh connection and on a kept-alive one alike (a client reusing its connection must
    get the 503 too, not a reset); started again, the records are all there."""
    stack = make_stack()
    stack.env["SAFETYLOCK_BROKER_URL"] = aof_redis.url(1)
    stack.start_api()
    api_key = stack.create_tenant("redis-down")
    paths = ["/v1/fine_tuning/jobs", "/v1/files", "/v1/models", "/healthz"]
    with stack.client(api_key) as client:
        file_id = upload_records(client, benign_records(4))
        assert client.get("/v1/fine_tuning/jobs").status_code == 200

        aof_redis.shutdown()
        for path in [*paths, f"/v1/files/{file_id}"]:
            assert_unavailable(fresh_get(stack, api_key, path), f"GET {path} (fresh connection)")
        kept_alive: list[str] = []
        for path in paths * 2:  # one connection, request after request
            try:
                response = client.get(path)
                kept_alive.append(f"{path}: {response.status_code} Retry-After={response.headers.get('Retry-After')}")
            except httpx.TransportError as exc:
                kept_alive.append(f"{path}: {type(exc).__name__} {exc}")
        aof_redis.start()

    with stack.client(api_key) as client:  # the records survived the restart: the tenant's key, its file
        assert client.get(f"/v1/files/{file_id}").json()["id"] == file_id
        assert [f["id"] for f in client.get("/v1/files").json()["data"]] == [file_id]
    unhandled = stack.procs[0].log.read_text(errors="replace").count("Exception in ASGI application")
    assert all(re.fullmatch(r".*: 503 Retry-After=[1-9][0-9]*", line) for line in kept_alive) and unhandled == 0, (
        "while Redis was down the API's 503 was an unhandled exception: it logged 'Exception in ASGI application' "
        f"{unhandled} times and closed the connection after each 503 (the request guard's Redis error reaches "
        f"uvicorn), so requests on a kept-alive connection got: {kept_alive}")


def test_redis_restart_mid_training(demo_lock_registry, aof_redis, make_stack) -> None:
    """Redis (records and broker) shut down cleanly mid-training and started again on its
    port and AOF: 503 + Retry-After meanwhile; the records survive; the job, resumed by the
    sweeper, trains every step and ends once, as the gate decides on its figures."""
    stack = make_stack(
        base_models={"demo-test": str(demo_lock_registry.model_dir)}, store_url=demo_lock_registry.publish_to,
        checkpoint_steps=4, **JOB_SETTINGS, **SWEEPER,
    )
    stack.env["SAFETYLOCK_BROKER_URL"] = aof_redis.url(1)  # records and broker on the restartable Redis
    stack.start_api()
    stack.start_worker()
    api_key = stack.create_tenant("redis-fault")
    with stack.client(api_key) as client:
        file_id = upload_records(client, benign_records(16))
        job = create_job(client, model="demo-test", training_file=file_id, hyperparameters=LONG_HP)
        tenant = stack.context().records.get_job(job["id"]).tenant
        wait_for(client, job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 4, 240, "training to start")

        aof_redis.shutdown()
        down_at = time.monotonic()
        for path in ("/v1/fine_tuning/jobs", f"/v1/fine_tuning/jobs/{job['id']}", f"/v1/files/{file_id}"):
            assert_unavailable(fresh_get(stack, api_key, path), f"GET {path}")
        time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
        aof_redis.start()

    with stack.client(api_key) as client:  # a new connection: the old one may have been closed
        # The records survived the restart: the tenant's key, its file, its job.
        assert client.get(f"/v1/files/{file_id}").status_code == 200
        running = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        steps_before = train_steps(all_events(client, job["id"]))
        assert running["status"] not in TERMINAL, f"the job ended while Redis was down: {running}"
        assert max(steps_before) < LONG_STEPS, f"training had finished ({max(steps_before)} steps) before the fault"

        job = wait_terminal(client, job["id"], timeout=300)
        messages = assert_ended_once(client, job)
        assert_gate_decided(client, job, messages)
        steps = train_steps(all_events(client, job["id"]))
        # training reached its last step; a step's progress event written while Redis was down
        # is lost (events are not retried), so at most the steps of the outage may lack one
        missing = sorted(set(range(1, LONG_STEPS + 1)) - set(steps))
        assert max(steps) == LONG_STEPS and len(missing) <= 2, (missing, steps)
        assert [j["id"] for j in client.get("/v1/fine_tuning/jobs").json()["data"]] == [job["id"]]
        ctx = stack.context()
        assert ctx.records.get_job(job["id"]).tenant == tenant
        assert_published_whole(ctx.store, tenant, job)


# --- 2. SeaweedFS stopped during publish -------------------------------------------------
def _copy_lock_registry(source_url: str, source: SeaweedS3, target: SeaweedS3) -> str:
    """The production demo lock, copied from the session's registry into a new bucket of
    `target`; the S3 store URL of that bucket's service prefix."""
    bucket, prefix = source_url.removeprefix("s3://").split("/", 1)
    src, dst = source.client(), target.client()
    new_bucket = target.make_bucket("faults")
    pages = src.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/locks/")
    keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert keys, f"no lock registry under {source_url}"
    for key in keys:
        dst.put_object(Bucket=new_bucket, Key=key, Body=src.get_object(Bucket=bucket, Key=key)["Body"].read())
    return f"s3://{new_bucket}/{prefix}"


def test_seaweedfs_stopped_during_publish(demo_lock_registry, seaweedfs, private_seaweed, make_stack) -> None:
    """SeaweedFS killed as the job enters publish, started again (same ports, same data)
    some seconds later. The gate is open, so without the fault the job is published: with
    it, too, once, whole (manifest.json and every file it lists); an upload meanwhile is 503."""
    store_url = _copy_lock_registry(demo_lock_registry.publish_to, seaweedfs, private_seaweed.server)
    stack = make_stack(
        base_models={"demo-test": str(demo_lock_registry.model_dir)}, store_url=store_url,
        **JOB_SETTINGS, **SWEEPER, **OPEN_GATE,  # an open gate: without the fault the job is published
    )
    stack.env.update(private_seaweed.server.env())
    stack.start_api()
    stack.start_worker()
    ctx = stack.context()
    with stack.client(stack.create_tenant("s3-fault")) as client:
        file_id = upload_records(client, benign_records(16))
        job = create_job(client, model="demo-test", training_file=file_id, hyperparameters=SHORT_HP)
        tenant = ctx.records.get_job(job["id"]).tenant

        seen = wait_until(lambda: (r := ctx.records.get_job(job["id"])) and (
            r.stage in ("publish", "reject") or r.terminal) and r, 300, "the final stage", interval=0.05)
        assert seen.stage == "publish" and not seen.terminal, f"the fault missed publish: {seen.status} at {seen.stage}"
        private_seaweed.stop()
        down_at = time.monotonic()

        started = time.monotonic()
        content = "".join(json.dumps(r) + "\n" for r in benign_records(2)).encode()
        response = client.post("/v1/files", files={"file": ("more.jsonl", content, "application/jsonl")},
                               data={"purpose": "fine-tune"})
        upload_seconds = time.monotonic() - started
        assert_unavailable(response, "an upload")
        assert upload_seconds < 25, f"the upload took {upload_seconds:.1f} s to answer 503"
        time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
        private_seaweed.start()
        outage = time.monotonic() - down_at

        job = wait_terminal(client, job["id"], timeout=300)
        messages = assert_ended_once(client, job)
        assert_published_whole(ctx.store, tenant, job)  # nothing half-published, whatever the outcome
        deliveries = ctx.records.get_job(job["id"]).deliveries
        assert job["status"] == "succeeded", (
            f"an open gate publishes this job without the fault, but after a {outage:.0f} s store outage during "
            f"publish it ended {job['status']} {job['error']} after {deliveries} deliveries: every retry of the task "
            "while the store was down (and every sweeper redispatch of the job while it waited for that retry, "
            f"lease released) counted as a lost worker against SAFETYLOCK_MAX_DELIVERIES; events: {messages[-9:]}")
        assert_gate_decided(client, job, messages)
        assert client.get(f"/v1/models/{job['fine_tuned_model']}").json()["job_id"] == job["id"]
        wait_until(lambda: store_copy_matches_record(ctx, job["id"]), 30, "the store's job.json to be repaired")
        assert len(client.get("/v1/files").json()["data"]) == 1  # the refused upload stored nothing


# --- 3. The Celery send dropped ----------------------------------------------------------
def test_dropped_send_is_handed_over_by_the_sweeper(demo_lock_registry, make_stack) -> None:
    """The API cannot reach its broker (a dead port) but can reach the records: a create is
    200 and stored, the worker's sweeper hands the job over, and it ends once. Three POSTs
    with one Idempotency-Key make one job; the key with another body is refused."""
    stack = make_stack(
        base_models={"demo-test": str(demo_lock_registry.model_dir)}, store_url=demo_lock_registry.publish_to,
        **JOB_SETTINGS, **SWEEPER,
    )
    live = stack.env["SAFETYLOCK_BROKER_URL"]
    # The API: records on the live Redis, Celery sends to a dead port.
    stack.env.update({"SAFETYLOCK_REDIS_URL": live, "SAFETYLOCK_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    stack.start_api()
    stack.env["SAFETYLOCK_BROKER_URL"] = live  # the worker: the live broker
    stack.start_worker()
    with stack.client(stack.create_tenant("send-fault")) as client:
        file_id = upload_records(client, benign_records(16))
        body = {"model": "demo-test", "training_file": file_id, "hyperparameters": SHORT_HP}
        headers = {"Idempotency-Key": "fault-suite-1"}
        created = [client.post("/v1/fine_tuning/jobs", json=body, headers=headers) for _ in range(3)]
        assert [r.status_code for r in created] == [200] * 3, [r.text for r in created]
        ids = {r.json()["id"] for r in created}
        assert len(ids) == 1, ids
        job_id = ids.pop()
        assert stack.context().records.get_job(job_id) is not None  # stored, whatever became of the send
        other = client.post("/v1/fine_tuning/jobs", json={**body, "suffix": "x"}, headers=headers)
        assert other.status_code == 400 and other.json()["error"]["code"] == "idempotency_key_reused", other.text
        assert [j["id"] for j in client.get("/v1/fine_tuning/jobs").json()["data"]] == [job_id]

        job = wait_terminal(client, job_id, timeout=300)
        messages = assert_ended_once(client, job)
        assert "Handing the job to the workers failed; it is retried shortly." in messages, messages
        assert "No worker had the job; handing it to the workers again." in messages, messages
        assert messages.count(f"Created fine-tuning job {job_id} on demo-test.") == 1, messages
        assert sum(m == "Stage train started." for m in messages) == 1, messages
        assert_gate_decided(client, job, messages)
        assert stack.context().records.get_job(job_id).deliveries == 1
        assert [j["id"] for j in client.get("/v1/fine_tuning/jobs").json()["data"]] == [job_id]
