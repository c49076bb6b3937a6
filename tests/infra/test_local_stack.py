"""infra/local: up.sh starts the cluster-mode stack, a job runs through it, down.sh leaves nothing.

The stack is the real thing: redis-server, SeaweedFS S3, uvicorn and a Celery worker,
each started by up.sh. The operator, with the settings from `stack.env`, takes a lock
from the demo model and publishes and promotes it into the stack's own S3 registry
(`safetylock lock create --publish`, `safetylock lock promote`) and creates a tenant
(`safetylock admin create-tenant`); the customer runs a job through the SDK. The job's
base model is routed to a queue of its own (SAFETYLOCK_QUEUES) that is the only one the
worker consumes, so the job finishing also shows the queue routing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from sdk import Client
from tests.infra.manifests import INFRA, tool
from tests.service.data import benign_records

pytestmark = [pytest.mark.services, pytest.mark.slow]

UP, DOWN = INFRA / "local" / "up.sh", INFRA / "local" / "down.sh"
SERVICES = ("redis", "s3", "api", "worker")
VENV = str(Path(sys.executable).parent.parent)  # the environment running the tests
HP = {
    "n_epochs": 1,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "lora_rank": 4,
    "lora_alpha": 8,
    "max_seq_length": 128,
}
JOB_SETTINGS = {
    "SAFETYLOCK_EVAL_LIMIT": "12",
    "SAFETYLOCK_EVAL_MAX_NEW_TOKENS": "16",
    "SAFETYLOCK_ALPHA_GRID": "[1.0, 4.0]",
    "SAFETYLOCK_QUEUES": json.dumps({"demo-test": "local-cpu"}),
    "TOKENIZERS_PARALLELISM": "false",
}


def read_stack_env(path: Path) -> dict[str, str]:
    """stack.env as a mapping (lines KEY='value')."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value.strip("'") for key, value in pairs}


def processes_in_groups(groups: set[int]) -> list[str]:
    """`pid cmdline` of every live process whose process group is one of `groups`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) in groups and fields[0] != "Z":
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{stat.parent.name} {cmdline}")
        except (OSError, IndexError):
            continue  # exited while we looked
    return found


def run_cli(*args: str, env: dict[str, str]) -> str:
    """Run a `safetylock` command; its stdout, or a failure showing its stderr."""
    result = subprocess.run(
        [tool("safetylock"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"safetylock {' '.join(args)}: {result.stderr[-2000:]}"
    return result.stdout


def test_local_stack_runs_a_job_and_stops_cleanly(demo_model_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "stack"
    env = {**os.environ, **JOB_SETTINGS, "VENV": VENV}
    env["SAFETYLOCK_BASE_MODELS"] = json.dumps({"demo-test": str(demo_model_dir)})
    up = subprocess.run(
        [str(UP), "--dir", str(run_dir), "--queues", "local-cpu"],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    groups = {int(p.read_text().split()[0]) for p in (run_dir / "pids").glob("*.pid")}
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        url = up.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), up.stdout
        assert len(groups) == len(SERVICES) and all(processes_in_groups({g}) for g in groups)
        assert httpx.get(f"{url}/healthz", timeout=5).json()["mode"] == "cluster"
        stack_env = read_stack_env(run_dir / "stack.env")
        assert stack_env["SAFETYLOCK_BASE_URL"] == url
        records = redis.Redis.from_url(stack_env["SAFETYLOCK_BROKER_URL"], decode_responses=True)
        assert records.config_get("appendonly") == {"appendonly": "yes"}  # a restart keeps the records

        # Operator: a lock from the base model into the stack's registry, a tenant.
        operator = {**env, **stack_env}
        lock_dir = str(tmp_path / "lock")
        pairs = str(demo_model_dir / "lock_pairs.json")
        run_cli("lock", "create", "--model", str(demo_model_dir), "--pairs", pairs, "--out", lock_dir,
                "--heads", "8", "--base-model-id", "demo-test", "--publish", env=operator)  # fmt: skip
        run_cli("lock", "promote", "demo-test@v1", env=operator)
        api_key = run_cli("admin", "create-tenant", "acme", env=operator).strip().splitlines()[-1]

        # Customer: upload, fine-tune, wait; the gate's verdict is whatever it really is.
        train = tmp_path / "train.jsonl"
        train.write_text("".join(json.dumps(r) + "\n" for r in benign_records(16)))
        with Client(base_url=url, api_key=api_key) as client:
            file = client.files.upload(train)
            job = client.jobs.create(
                model="demo-test", training_file=file.id, hyperparameters=HP, suffix="local"
            )
            job = client.jobs.wait(job.id, timeout=240, progress=False)
            report = client.jobs.report(job.id)
        assert job.status == "succeeded" or (
            job.status == "failed" and job.error.code == "gate_rejected"
        ), job
        assert {"validate", "train", "resolve_lock", "relock", "evaluate", "gate"} <= set(
            report.stage_seconds
        )
        assert report.decision == ("published" if job.status == "succeeded" else "rejected")
        assert "local-cpu" in (run_dir / "logs" / "worker.log").read_text()
    finally:
        down = subprocess.run(
            [str(DOWN), "--dir", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert down.returncode == 0, down.stdout + down.stderr
    assert [f"stopped {name}" in down.stdout for name in SERVICES] == [True] * len(SERVICES), (
        down.stdout
    )
    assert processes_in_groups(groups) == []
    assert list((run_dir / "pids").glob("*.pid")) == []


def test_down_without_a_stack_is_a_no_op(tmp_path: Path) -> None:
    down = subprocess.run(
        [str(DOWN), "--dir", str(tmp_path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert down.returncode == 0 and "nothing to stop" in down.stdout


def test_down_leaves_a_reused_pid_alone(tmp_path: Path) -> None:
    """A pid file whose pid now belongs to another process (other start time) is not ours."""
    (tmp_path / "pids").mkdir()
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (tmp_path / "pids" / "api.pid").write_text(
            f"{other.pid} 1\n"
        )  # a start time it does not have
        down = subprocess.run(
            [str(DOWN), "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert down.returncode == 0 and "api was not running" in down.stdout
        assert other.poll() is None, "down.sh killed a process it did not start"
    finally:
        other.kill()
        other.wait()


def test_up_refuses_a_second_stack_in_the_same_folder(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    ours = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        start = Path(f"/proc/{ours.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        (tmp_path / "pids" / "redis.pid").write_text(f"{ours.pid} {start}\n")
        up = subprocess.run(
            [str(UP), "--dir", str(tmp_path)],
            env={**os.environ, "VENV": VENV},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert up.returncode == 1 and "already running" in up.stderr
        assert ours.poll() is None
    finally:
        ours.kill()
        ours.wait()
