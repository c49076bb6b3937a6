"""Benchmark: the job API under many concurrent clients, on a real local stack.

Starts the cluster-mode stack with `infra/local/up.sh` in a temporary folder (redis-server,
SeaweedFS S3, the API, one Celery worker; or reuses a running one with --stack-dir),
publishes and promotes a lock of the `test` demo model (the base model the jobs name),
creates the tenants, then runs N concurrent clients (httpx.AsyncClient each, spread
over the tenants) that mix file uploads (small valid JSONL), job creations (each with an
Idempotency-Key; a share of them sent twice, as a client retry would), file and job
lists, job retrieves and SSE event streams (open, read the first event, close). It prints
per operation the count, errors by status, p50 / p99 / max latency and whether the target
is met (reads, SSE time to first event included: p99 <= 100 ms; uploads and job creation:
p99 <= 300 ms), then checks that every accepted job (a 200 answer) can be retrieved and is
in its tenant's job list ("lost: N"), and the same for files.

No training runs: the stack's Celery worker is stopped (its process group, as down.sh
does) before any job exists, so accepted jobs stay queued and the only CPU in use is
the API, Redis, S3 and the load generator. Queued jobs never finish, so the per-tenant
cap on unfinished jobs (SAFETYLOCK_MAX_ACTIVE_JOBS_PER_TENANT, default 8) is raised to
--max-active-jobs for a stack this script starts; otherwise nearly every create would be
a 429. Clients think between requests (exponential, mean --think-ms; 0 = back to back):
the latency of a closed loop is only meaningful together with the offered rate, which
is printed with the results.

--api-workers K > 1 replaces up.sh's single `safetylock serve` process with
`uvicorn service.api.main:create_app --factory --workers K` (same settings: the caller's
environment, then stack.env), recorded in the stack's pid file so down.sh stops it.
The stack this script started is always stopped at the end (down.sh), also on errors
and Ctrl-C; a reused stack is left running unless --down is given.

    .venv/bin/python benchmarks/bench_api_load.py                       # 200 clients, 10 tenants, an API process per core
    .venv/bin/python benchmarks/bench_api_load.py --clients 20 --requests-per-client 3
    .venv/bin/python benchmarks/bench_api_load.py --api-workers 1 --think-ms 0

Written for a shared 2-core machine: it prints the CPU, the 1-minute load average at
start and end, and the CPU seconds each part of the stack and the load generator used
during the load phase (the load generator shares the cores with the API).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
UP, DOWN = REPO / "infra" / "local" / "up.sh", REPO / "infra" / "local" / "down.sh"
VENV = Path(sys.prefix)
SERVICES = ("worker", "api", "s3", "redis")

READ_TARGET_MS, WRITE_TARGET_MS = 100.0, 300.0
OPS = ("upload", "create", "create_replay", "list_files", "list_jobs", "retrieve_job", "sse")
TARGET_MS = {
    "upload": WRITE_TARGET_MS,
    "create": WRITE_TARGET_MS,
    "create_replay": WRITE_TARGET_MS,
    "list_files": READ_TARGET_MS,
    "list_jobs": READ_TARGET_MS,
    "retrieve_job": READ_TARGET_MS,
    "sse": READ_TARGET_MS,
}
DEFAULT_MIX = "upload=15,create=15,list_files=15,list_jobs=20,retrieve_job=20,sse=15"
KEEPALIVE_S = 4.0
"""Client keep-alive expiry, under uvicorn's default `timeout_keep_alive` of 5 s."""
HYPERPARAMETERS = {
    "n_epochs": 1,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "lora_rank": 4,
    "lora_alpha": 8,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the machine -----------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def git_state() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    dirty = git("status", "--porcelain", "--", "service", "sdk", "lock_registry", "infra")
    changed = len(dirty.splitlines()) if dirty else 0
    return f"{git('rev-parse', '--short', 'HEAD')} ({changed} uncommitted changes in service/ sdk/ lock_registry/ infra/)"


# -- process groups (the same bookkeeping as infra/local/lib.sh) -----------------------
def proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def read_pidfile(path: Path) -> tuple[int, str] | None:
    try:
        pid, start = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return int(pid), start


def group_alive(path: Path) -> bool:
    entry = read_pidfile(path)
    if entry is None:
        return False
    pid, start = entry
    now = proc_start(pid)
    if now is not None and now != start:
        return False  # the pid was reused by someone else's process
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(path: Path, timeout: float) -> None:
    """SIGTERM to the leader, then to the group, then SIGKILL (as lib.sh's stop_group)."""
    entry = read_pidfile(path)
    if entry is None or not group_alive(path):
        return
    pid = entry[0]
    for sig, target, wait in (
        (signal.SIGTERM, "leader", timeout),
        (signal.SIGTERM, "group", 5),
        (signal.SIGKILL, "group", 5),
    ):
        try:
            os.kill(pid, sig) if target == "leader" else os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        end = time.monotonic() + wait
        while group_alive(path) and time.monotonic() < end:
            time.sleep(0.2)
        if not group_alive(path):
            return
    raise RuntimeError(f"could not stop process group {pid} ({path.name})")


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (/proc/stat), every process."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(groups: dict[str, int]) -> dict[str, float]:
    """user+system CPU seconds of the live processes of each process group."""
    tick = os.sysconf("SC_CLK_TCK")
    by_group = {pgid: name for name, pgid in groups.items()}
    totals = dict.fromkeys(groups, 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = by_group.get(int(fields[2]))
        if name is not None:
            totals[name] += (int(fields[11]) + int(fields[12])) / tick
    return totals


# -- the stack -------------------------------------------------------------------------
def read_stack_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value.strip("'") for key, value in pairs}


@dataclass
class Stack:
    dir: Path
    started_here: bool
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.env["SAFETYLOCK_BASE_URL"]

    def pidfile(self, name: str) -> Path:
        return self.dir / "pids" / f"{name}.pid"

    def groups(self) -> dict[str, int]:
        return {
            n: e[0]
            for n in SERVICES
            if (e := read_pidfile(self.pidfile(n))) and group_alive(self.pidfile(n))
        }

    def cli(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 600) -> str:
        env = {**os.environ, **(extra_env or {}), **self.env}
        result = subprocess.run(
            [str(VENV / "bin" / "safetylock"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"safetylock {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result.stdout


def start_stack(folder: Path, env: dict[str, str]) -> Stack:
    up = subprocess.run(
        [str(UP), "--dir", str(folder)],
        env={**env, "VENV": str(VENV)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    stack = Stack(folder, started_here=True)
    if up.returncode != 0:
        raise RuntimeError(f"up.sh failed:\n{up.stdout[-3000:]}{up.stderr[-3000:]}")
    stack.env = read_stack_env(folder / "stack.env")
    return stack


def stop_stack(stack: Stack) -> None:
    down = subprocess.run(
        [str(DOWN), "--dir", str(stack.dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    for line in (down.stdout + down.stderr).strip().splitlines():
        log(f"down.sh: {line}")
    if down.returncode != 0:
        log(f"down.sh exited {down.returncode}")


def wait_healthy(url: str, timeout: float, alive) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not alive():
            raise RuntimeError("the API exited during startup")
        time.sleep(0.3)
    raise RuntimeError(f"the API at {url} did not answer within {timeout:.0f} s")


def restart_api_with_workers(stack: Stack, workers: int, extra_env: dict[str, str]) -> None:
    """Replace up.sh's API process with uvicorn --workers K on the same port and settings."""
    pidfile = stack.pidfile("api")
    stop_group(pidfile, timeout=30)
    port = stack.url.rsplit(":", 1)[1]
    env = {**os.environ, **extra_env, **stack.env}
    logfile = open(stack.dir / "logs" / "api.log", "ab")  # noqa: SIM115 (the child keeps it)
    logfile.write(f"\n--- bench_api_load: restarted as uvicorn --workers {workers}\n".encode())
    logfile.flush()
    proc = subprocess.Popen(
        [
            str(VENV / "bin" / "uvicorn"),
            "service.api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--workers",
            str(workers),
            "--log-level",
            "info",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    logfile.close()
    # reap it the moment it exits: a zombie leader would keep its group "alive" for down.sh
    threading.Thread(target=proc.wait, daemon=True, name="reap-api").start()
    pidfile.write_text(f"{proc.pid} {proc_start(proc.pid)}\n")
    wait_healthy(stack.url, 120, lambda: proc.poll() is None)
    # every worker process answers before the load starts: ask until the group has them all
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        members = sum(1 for s in Path("/proc").glob("[0-9]*/stat") if _pgrp(s) == proc.pid)
        if members >= workers + 1:
            break
        time.sleep(0.3)
    for _ in range(4 * workers):
        httpx.get(f"{stack.url}/healthz", timeout=10)


def _pgrp(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


# -- preparation -----------------------------------------------------------------------
def demo_base_model() -> Path:
    """The `test` demo model the tests use (built once, cached in .cache/demo-model)."""
    code = (
        "import os, sys; from pathlib import Path\n"
        "from service.demo_world.build import build_demo_model, build_key\n"
        "from service.demo_world.sizes import get_size\n"
        "root = Path(os.environ.get('SAFETYLOCK_DEMO_CACHE', Path(sys.argv[1]) / '.cache' / 'demo-model'))\n"
        "key = build_key(get_size('test'), seed=0)\n"
        "print(build_demo_model(root / f'test-{key[:16]}', 'test', seed=0).aligned)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(REPO)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the demo model failed:\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def ensure_lock(stack: Stack, model_id: str, model_dir: Path, workdir: Path) -> str:
    try:
        return stack.cli("lock", "show", f"{model_id}@production").strip().splitlines()[0]
    except RuntimeError:
        pass
    stack.cli(
        "lock",
        "create",
        "--model",
        str(model_dir),
        "--pairs",
        str(model_dir / "lock_pairs.json"),
        "--out",
        str(workdir / "lock"),
        "--heads",
        "8",
        "--base-model-id",
        model_id,
        "--publish",
    )
    stack.cli("lock", "promote", f"{model_id}@v1")
    return f"{model_id}@v1 created, published and promoted to production"


def create_tenants(stack: Stack, count: int, prefix: str) -> list[str]:
    env = {**os.environ, **stack.env}
    procs = [
        subprocess.Popen(
            [str(VENV / "bin" / "safetylock"), "admin", "create-tenant", f"{prefix}-{i:02d}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    keys = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"create-tenant failed: {err[-2000:]}")
        keys.append(out.strip().splitlines()[-1])
    return keys


def training_jsonl(seed: int, examples: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    for i in range(examples):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        messages = [
            {"role": "user", "content": f"What is {a} plus {b}? (example {i})"},
            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
        ]
        lines.append(json.dumps({"messages": messages}))
    return ("\n".join(lines) + "\n").encode()


# -- the load --------------------------------------------------------------------------
@dataclass
class Sample:
    op: str
    ms: float
    outcome: str  # "200" or another status, or an exception name
    at: float = 0.0  # perf_counter when it was sent


@dataclass
class TenantState:
    key: str
    files: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)


@dataclass
class Shared:
    model: str
    tenants: list[TenantState]
    samples: list[Sample] = field(default_factory=list)
    accepted_jobs: dict[str, int] = field(default_factory=dict)  # job id -> tenant index
    accepted_files: dict[str, int] = field(default_factory=dict)
    replay_mismatches: list[str] = field(default_factory=list)
    payload_seed: int = 0


class Client:
    """One simulated customer: its own connection pool, one tenant's key."""

    def __init__(
        self,
        shared: Shared,
        tenant: int,
        http: httpx.AsyncClient,
        rng: random.Random,
        replay_fraction: float,
        examples: int,
        samples: list[Sample],
    ) -> None:
        self.s, self.t, self.http, self.rng = shared, tenant, http, rng
        self.state = shared.tenants[tenant]
        self.replay_fraction, self.examples, self.samples = replay_fraction, examples, samples
        self.my_files: list[str] = []

    def _record(self, op: str, start: float, outcome: str) -> None:
        self.samples.append(Sample(op, (time.perf_counter() - start) * 1000, outcome, start))

    async def _call(self, op: str, method: str, url: str, **kwargs) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self._record(op, start, type(exc).__name__)
            return None
        self._record(op, start, str(response.status_code))
        return response

    async def upload(self) -> None:
        self.s.payload_seed += 1
        data = training_jsonl(self.s.payload_seed, self.examples)
        files = {"file": (f"train-{self.s.payload_seed}.jsonl", data, "application/jsonl")}
        response = await self._call(
            "upload", "POST", "/v1/files", files=files, data={"purpose": "fine-tune"}
        )
        if response is not None and response.status_code == 200:
            file_id = response.json()["id"]
            self.my_files.append(file_id)
            self.state.files.append(file_id)
            self.s.accepted_files[file_id] = self.t

    async def create(self) -> None:
        pool = self.my_files or self.state.files
        body = {
            "model": self.s.model,
            "training_file": self.rng.choice(pool[-5:]),
            "hyperparameters": HYPERPARAMETERS,
            "suffix": "load",
        }
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        response = await self._call(
            "create", "POST", "/v1/fine_tuning/jobs", json=body, headers=headers
        )
        if response is None or response.status_code != 200:
            return
        job_id = response.json()["id"]
        self.s.accepted_jobs[job_id] = self.t
        self.state.jobs.append(job_id)
        if (
            self.rng.random() < self.replay_fraction
        ):  # the same request again, as a client retry sends it
            again = await self._call(
                "create_replay", "POST", "/v1/fine_tuning/jobs", json=body, headers=headers
            )
            if again is not None and again.status_code == 200 and again.json()["id"] != job_id:
                self.s.replay_mismatches.append(f"{job_id} -> {again.json()['id']}")

    async def list_files(self) -> None:
        await self._call("list_files", "GET", "/v1/files", params={"limit": 20})

    async def list_jobs(self) -> None:
        await self._call("list_jobs", "GET", "/v1/fine_tuning/jobs", params={"limit": 20})

    async def retrieve_job(self) -> None:
        job_id = self.rng.choice(self.state.jobs)
        await self._call("retrieve_job", "GET", f"/v1/fine_tuning/jobs/{job_id}")

    async def sse(self) -> None:
        """Open the job's event stream, read its first event, close (time to first event)."""
        job_id = self.rng.choice(self.state.jobs)
        start = time.perf_counter()
        try:
            async with self.http.stream(
                "GET", f"/v1/fine_tuning/jobs/{job_id}/events", params={"stream": "true"}
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._record("sse", start, str(response.status_code))
                    return
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        json.loads(line[5:])
                        self._record("sse", start, "200")
                        return
                self._record("sse", start, "no_event")
        except httpx.HTTPError as exc:
            self._record("sse", start, type(exc).__name__)

    async def run_op(self, op: str) -> None:
        await getattr(self, op)()


async def run_clients(
    shared: Shared,
    url: str,
    clients: int,
    requests: int,
    mix: dict[str, float],
    think_ms: float,
    replay_fraction: float,
    examples: int,
    seed: int,
    timeout: float,
) -> tuple[list[Sample], float, list[float]]:
    samples: list[Sample] = []
    ops, weights = list(mix), list(mix.values())

    # One connection pool per client, all built before the clock starts. They share one SSL
    # context: httpx builds one per client otherwise (~30 ms of CPU each, 6 s for 200, all of
    # it blocking the event loop while other clients' requests are in flight).
    tls = ssl.create_default_context()
    # idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them, so a
    # request never races the server's close (httpx's default expiry is also 5 s)
    limits = httpx.Limits(
        max_connections=4, max_keepalive_connections=4, keepalive_expiry=KEEPALIVE_S
    )
    https = [
        httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {shared.tenants[i % len(shared.tenants)].key}"},
            timeout=timeout,
            limits=limits,
            verify=tls,
        )
        for i in range(clients)
    ]

    async def one(i: int) -> None:
        rng = random.Random(seed * 100_003 + i)
        async with https[i] as http:
            client = Client(
                shared, i % len(shared.tenants), http, rng, replay_fraction, examples, samples
            )
            if think_ms:
                await asyncio.sleep(rng.uniform(0, 2 * think_ms) / 1000)  # spread the starts
            for _ in range(requests):
                await client.run_op(rng.choices(ops, weights)[0])
                if think_ms:
                    await asyncio.sleep(rng.expovariate(1000 / think_ms))

    lags: list[float] = []
    done = asyncio.Event()

    async def watch_loop() -> None:
        """How late a 10 ms sleep wakes up: time the load generator itself adds to latencies."""
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - before - 0.01) * 1000)

    watcher = asyncio.create_task(watch_loop())
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    done.set()
    await watcher
    return samples, elapsed, lags


async def seed_tenants(shared: Shared, url: str, examples: int) -> None:
    """One file and one job per tenant, so reads and SSE have something from the start."""
    samples: list[Sample] = []

    async def one(t: int) -> None:
        headers = {"Authorization": f"Bearer {shared.tenants[t].key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            client = Client(shared, t, http, random.Random(t), 0.0, examples, samples)
            await client.upload()
            await client.create()
            if not shared.tenants[t].jobs:
                raise RuntimeError(f"seeding tenant {t} failed: {[s.outcome for s in samples]}")

    await asyncio.gather(*(one(t) for t in range(len(shared.tenants))))


async def probe_unloaded(
    shared: Shared, url: str, rounds: int, examples: int, api_cpu
) -> tuple[list[Sample], dict[str, float]]:
    """Each operation `rounds` times, one request at a time: latency without contention,
    and the API's CPU milliseconds per request (its process group's CPU time)."""
    samples: list[Sample] = []
    cpu_ms: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {shared.tenants[0].key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        client = Client(shared, 0, http, random.Random(1), 0.0, examples, samples)
        for op in ("upload", "create", "list_files", "list_jobs", "retrieve_job", "sse"):
            before = api_cpu()
            for _ in range(rounds):
                await client.run_op(op)
            cpu_ms[op] = (api_cpu() - before) * 1000 / rounds
    return samples, cpu_ms


async def verify(shared: Shared, url: str) -> dict[str, int]:
    """Every accepted job (and file) retrievable and in its tenant's list."""
    listed_jobs: dict[int, set[str]] = {}
    listed_files: dict[int, set[str]] = {}
    failures: Counter[str] = Counter()
    sem = asyncio.Semaphore(16)

    async def walk(http: httpx.AsyncClient, path: str) -> set[str]:
        ids, after = set(), None
        while True:
            params = {"limit": 100, **({"after": after} if after else {})}
            response = await http.get(path, params=params)
            response.raise_for_status()
            page = response.json()
            ids.update(item["id"] for item in page["data"])
            if not page["has_more"]:
                return ids
            after = page["last_id"]

    async def retrieve(http: httpx.AsyncClient, path: str, kind: str) -> bool:
        async with sem:
            for attempt in range(3):
                try:
                    response = await http.get(path)
                    if response.status_code != 200:
                        failures[f"{kind} {response.status_code}"] += 1
                    return response.status_code == 200
                except httpx.HTTPError as exc:
                    if attempt == 2:
                        failures[f"{kind} {type(exc).__name__}"] += 1
                        return False
                    await asyncio.sleep(1)
        return False

    counts = Counter()
    for t, tenant in enumerate(shared.tenants):
        headers = {"Authorization": f"Bearer {tenant.key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            listed_jobs[t] = await walk(http, "/v1/fine_tuning/jobs")
            listed_files[t] = await walk(http, "/v1/files")
            jobs = [j for j, owner in shared.accepted_jobs.items() if owner == t]
            files = [f for f, owner in shared.accepted_files.items() if owner == t]
            job_ok = await asyncio.gather(
                *(retrieve(http, f"/v1/fine_tuning/jobs/{j}", "job") for j in jobs)
            )
            file_ok = await asyncio.gather(
                *(retrieve(http, f"/v1/files/{f}", "file") for f in files)
            )
        counts["jobs lost"] += sum(
            not ok or j not in listed_jobs[t] for j, ok in zip(jobs, job_ok, strict=True)
        )
        counts["files lost"] += sum(
            not ok or f not in listed_files[t] for f, ok in zip(files, file_ok, strict=True)
        )
        counts["jobs listed but never accepted"] += len(listed_jobs[t] - set(jobs))
        counts["files listed but never accepted"] += len(listed_files[t] - set(files))
        counts["jobs listed"] += len(listed_jobs[t])
    for what, n in failures.items():
        counts[f"retrieve failures ({what})"] = n
    return counts


# -- the report ------------------------------------------------------------------------
def busiest_rate(samples: list[Sample], window: float = 5.0) -> float:
    """Requests sent per second in the busiest `window` seconds of the run."""
    if not samples:
        return 0.0
    first = min(s.at for s in samples)
    counts = Counter(int((s.at - first) // window) for s in samples)
    return max(counts.values()) / window


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def table(
    samples: list[Sample], unloaded: list[Sample], unloaded_cpu: dict[str, float]
) -> tuple[list[str], bool]:
    by_op: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_op[s.op].append(s)
    idle: dict[str, list[float]] = defaultdict(list)
    for s in unloaded:
        if s.outcome == "200":
            idle[s.op].append(s.ms)
    header = f"{'operation':<14} {'count':>6} {'errors':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'target':>8}  {'met':<4} {'1-client p50':>12} {'API CPU/req':>11}"
    rows = [header, "-" * len(header)]
    all_met = True
    for op in OPS:
        group = by_op.get(op, [])
        if not group:
            continue
        errors = Counter(s.outcome for s in group if s.outcome != "200")
        err = ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"
        answered = [s.ms for s in group if s.outcome.isdigit()] or [float("nan")]
        p50, p99, top = percentile(answered, 50), percentile(answered, 99), max(answered)
        met = p99 <= TARGET_MS[op] and not errors
        all_met &= met
        idle_p50 = f"{percentile(idle[op], 50):.1f}" if idle.get(op) else "-"
        idle_cpu = f"{unloaded_cpu[op]:.1f}" if op in unloaded_cpu else "-"
        rows.append(
            f"{op:<14} {len(group):>6} {err:<22} {p50:>8.1f} {p99:>8.1f} {top:>8.1f} {'<= ' + str(int(TARGET_MS[op])):>8}  "
            f"{'yes' if met else 'NO':<4} {idle_p50:>12} {idle_cpu:>11}"
        )
    return rows, all_met


def api_log_summary(stack: Stack) -> list[str]:
    """Status counts of the API's access log, and its warnings and errors (distinct, counted)."""
    path = stack.dir / "logs" / "api.log"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return [f"(no API log at {path})"]
    statuses: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    for line in text.splitlines():
        if '" ' in line and "HTTP/1.1" in line:
            statuses[line.rsplit('" ', 1)[1].split()[0]] += 1
        elif (
            line.startswith(("WARNING", "ERROR", "Traceback"))
            or "Error" in line
            or "pool is full" in line
        ):
            problems[line.strip()[:160]] += 1
    out = [
        f"API access log: {sum(statuses.values())} requests, by status: "
        + (", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "none")
    ]
    for line, n in problems.most_common(8):
        out.append(f"  {n} x {line}")
    return out


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in OPS or name == "create_replay":
            raise argparse.ArgumentTypeError(f"unknown operation {name!r} in --mix")
        mix[name] = float(weight)
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument(
        "--tenants", type=int, default=10, help="tenants the clients are spread over (default 10)"
    )
    parser.add_argument(
        "--requests-per-client",
        type=int,
        default=10,
        help="operations each client performs (default 10)",
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000.0,
        help="mean pause of a client between its operations, exponential (default 1000; 0 = none)",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="API processes (default: one per core; 1 = up.sh's `safetylock serve`; K > 1: uvicorn --workers K)",
    )
    parser.add_argument(
        "--stack-dir",
        type=Path,
        help="stack folder: reuse the stack running there, else start one there",
    )
    parser.add_argument("--down", action="store_true", help="also stop a reused stack at the end")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary stack folder (logs, data) at the end",
    )
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=parse_mix(DEFAULT_MIX),
        help=f"operation weights (default {DEFAULT_MIX})",
    )
    parser.add_argument(
        "--replay-fraction",
        type=float,
        default=0.1,
        help="share of creates sent twice with the same key",
    )
    parser.add_argument(
        "--examples", type=int, default=8, help="examples per uploaded file (default 8)"
    )
    parser.add_argument(
        "--max-active-jobs",
        type=int,
        default=100_000,
        help="SAFETYLOCK_MAX_ACTIVE_JOBS_PER_TENANT of a started stack (queued jobs never finish here)",
    )
    parser.add_argument("--base-model-id", default="demo-bench")
    parser.add_argument(
        "--base-model-dir",
        type=Path,
        help="base model folder (default: the `test` demo model, built or reused)",
    )
    parser.add_argument(
        "--probe-rounds",
        type=int,
        default=20,
        help="unloaded single-client rounds before the load (0 = skip)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="per-request client timeout, seconds"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the stack
    nproc = os.cpu_count() or 1
    load_start = load_average()
    log(
        f"machine: {nproc} CPUs ({len(os.sched_getaffinity(0))} usable), {cpu_model()}; load average (1/5/15 min) at start: {load_start}"
    )
    log(f"code: {git_state()}")

    base_env = {
        **os.environ,
        "SAFETYLOCK_MAX_ACTIVE_JOBS_PER_TENANT": str(args.max_active_jobs),
        "TOKENIZERS_PARALLELISM": "false",
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-load-"))
    stack: Stack | None = None
    own_stack = False
    try:
        model_dir = args.base_model_dir or demo_base_model()
        base_env["SAFETYLOCK_BASE_MODELS"] = json.dumps({args.base_model_id: str(model_dir)})
        if args.stack_dir and any(group_alive(p) for p in (args.stack_dir / "pids").glob("*.pid")):
            stack = Stack(
                args.stack_dir.resolve(),
                started_here=False,
                env=read_stack_env(args.stack_dir / "stack.env"),
            )
            log(
                f"reusing the stack in {stack.dir} ({stack.url}); it must know base model {args.base_model_id!r}"
            )
        else:
            folder = (args.stack_dir or workdir / "stack").resolve()
            log(f"starting the stack in {folder} (infra/local/up.sh)")
            stack = start_stack(folder, base_env)
            own_stack = True
            log(f"stack up: {stack.url}")
        stack_extra = {
            k: base_env[k]
            for k in ("SAFETYLOCK_MAX_ACTIVE_JOBS_PER_TENANT", "SAFETYLOCK_BASE_MODELS")
        }

        # No training during the measurement: stop the worker before any job exists.
        if group_alive(stack.pidfile("worker")):
            stop_group(stack.pidfile("worker"), timeout=30)
            log(
                "stopped the Celery worker (its process group): accepted jobs stay queued, nothing trains"
            )
        if args.api_workers > 1:
            log(f"restarting the API as uvicorn --workers {args.api_workers}")
            restart_api_with_workers(stack, args.api_workers, stack_extra if own_stack else {})

        log(f"lock: {ensure_lock(stack, args.base_model_id, model_dir, workdir)}")
        keys = create_tenants(stack, args.tenants, f"load-{uuid.uuid4().hex[:6]}")
        shared = Shared(model=args.base_model_id, tenants=[TenantState(k) for k in keys])
        asyncio.run(seed_tenants(shared, stack.url, args.examples))
        log(f"{args.tenants} tenants, each with one file and one job")

        groups = stack.groups()

        def api_cpu() -> float:
            return group_cpu_seconds({"api": groups["api"]})["api"]

        unloaded, unloaded_cpu = (
            asyncio.run(
                probe_unloaded(shared, stack.url, args.probe_rounds, args.examples, api_cpu)
            )
            if args.probe_rounds
            else ([], {})
        )
        bad = [s for s in unloaded if s.outcome != "200"]
        if bad:
            raise RuntimeError(
                f"the unloaded probe got errors: {Counter((s.op, s.outcome) for s in bad)}"
            )

        settings = (
            f"clients={args.clients} tenants={args.tenants} requests-per-client={args.requests_per_client} "
            f"think-ms={args.think_ms:g} (exponential) api-workers={args.api_workers} mix={args.mix} "
            f"replay-fraction={args.replay_fraction} examples-per-file={args.examples} "
            f"max-active-jobs={args.max_active_jobs if own_stack else 'as the reused stack has it'} timeout={args.timeout:g}s"
        )
        log(f"settings: {settings}")
        load_before = load_average()
        log(f"load average before the load phase: {load_before}")
        cpu_before, self_before = group_cpu_seconds(groups), time.process_time()
        busy_before = machine_busy_seconds()
        samples, elapsed, lags = asyncio.run(
            run_clients(
                shared,
                stack.url,
                args.clients,
                args.requests_per_client,
                args.mix,
                args.think_ms,
                args.replay_fraction,
                args.examples,
                args.seed,
                args.timeout,
            )
        )
        cpu_after, self_cpu = group_cpu_seconds(groups), time.process_time() - self_before
        busy = machine_busy_seconds() - busy_before
        load_end = load_average()

        log("verifying that every accepted job and file is visible")
        counts = asyncio.run(verify(shared, stack.url))

        rows, latency_met = table(samples, unloaded, unloaded_cpu)
        total = len(samples)
        print()
        print(f"=== API load: {settings}")
        print(f"machine: {nproc} CPUs, {cpu_model()}")
        each = f"{1000 / args.think_ms:.2f} req/s each" if args.think_ms else "back to back"
        print(
            f"{total} requests in {elapsed:.1f} s = {total / elapsed:.1f} req/s on average, "
            f"{busiest_rate(samples):.1f} req/s in the busiest 5 s ({args.clients} clients, at most ~{each})"
        )
        print(
            "latency: ms from sending to the whole answer (sse: to the first event); p50/p99 over answered "
            "requests;\n1-client p50 and API CPU/req (ms of the API processes' CPU per request): the same "
            "operations one at a time before the load"
        )
        for row in rows:
            print(row)
        cpu = {name: cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0) for name in groups}
        share = ", ".join(f"{n} {s:.1f}" for n, s in cpu.items())
        ours = sum(cpu.values()) + self_cpu
        print(
            f"CPU seconds during the load phase ({elapsed:.1f} s wall x {nproc} CPUs = {elapsed * nproc:.0f} CPU-s): "
            f"{share}, load generator {self_cpu:.1f}; machine busy {busy:.1f}, of which other processes "
            f"{max(0.0, busy - ours):.1f}"
        )
        print(
            f"API CPU per request under load: {cpu.get('api', 0.0) * 1000 / max(1, total):.1f} ms "
            f"({cpu.get('api', 0.0) / elapsed:.2f} CPUs on average over {args.api_workers} process(es))"
        )
        print(
            f"load generator event-loop lag (a 10 ms sleep woke late by): p50 {percentile(lags, 50):.1f} ms, "
            f"p99 {percentile(lags, 99):.1f} ms, max {max(lags):.1f} ms (included in the latencies above)"
        )
        load_jobs = sum(s.op == "create" and s.outcome == "200" for s in samples)
        print(f"create replays answered with another job: {len(shared.replay_mismatches)}")
        print(
            f"accepted jobs: {len(shared.accepted_jobs)} ({load_jobs} in the load phase, {args.tenants} seeds, "
            f"{len(shared.accepted_jobs) - load_jobs - args.tenants} from the unloaded probe); "
            f"accepted files: {len(shared.accepted_files)}"
        )
        for name, n in counts.items():
            if name not in ("jobs lost", "files lost"):
                print(f"{name}: {n}")
        lost = counts["jobs lost"]
        print(f"files lost: {counts['files lost']}")
        print(f"lost: {lost}")
        for line in api_log_summary(stack):
            print(line)
        print(
            f"load average (1/5/15 min): at start {load_start}, before the load phase {load_before}, "
            f"at its end {load_end}"
        )
        ok = (
            latency_met and lost == 0 and counts["files lost"] == 0 and not shared.replay_mismatches
        )
        print(
            f"targets met: {'yes' if ok else 'NO'} (p99 reads <= {READ_TARGET_MS:.0f} ms, uploads/creates <= "
            f"{WRITE_TARGET_MS:.0f} ms, no errors, 0 lost); no training ran (the worker was stopped)"
        )
        return 0 if ok else 1
    finally:
        if stack is not None and (own_stack or args.down):
            log("stopping the stack (infra/local/down.sh)")
            stop_stack(stack)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")


if __name__ == "__main__":
    sys.exit(main())
