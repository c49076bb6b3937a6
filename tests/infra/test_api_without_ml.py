"""The API image: the API must serve a whole request cycle with only what `.[api]` installs.

A fresh interpreter in which every installed distribution outside the `api` extra's
dependency closure (torch, transformers, TRL, PEFT, safetensors, numpy, ...) is
unimportable, as in infra/docker/api.Dockerfile, runs the API in cluster mode against a
private Redis and a file store holding a published lock: health, an upload, a job
creation (which resolves the lock through the registry) and the enqueued Celery message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
ML = {
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
    "numpy",
}

# Runs in the fresh interpreter; argv[1] is the JSON list of top-level modules to refuse.
SCRIPT = """
import importlib.abc, json, sys

from fastapi.testclient import TestClient  # the test harness (httpx), not part of the API

REFUSED = set(json.loads(sys.argv[1]))
attempts = set()


class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in REFUSED:
            attempts.add(name.split(".")[0])
            raise ImportError(f"{name} is not in the API image")


sys.meta_path.insert(0, NotInImage())
from service.api.main import create_app

app = create_app()
client = TestClient(app)
assert client.get("/healthz").json()["mode"] == "cluster"
key = app.state.context.records.create_tenant("acme", "customer")[1]
auth = {"Authorization": f"Bearer {key}"}
line = json.dumps({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})
upload = client.post("/v1/files", headers=auth, files={"file": ("t.jsonl", (line + "\\n") * 4)},
                     data={"purpose": "fine-tune"})
job = client.post("/v1/fine_tuning/jobs", headers=auth, json={"model": "base", "training_file": upload.json()["id"]})
print(json.dumps({"upload": upload.status_code, "job": job.status_code, "body": job.json(),
                  "refused": sorted(attempts)}))
"""


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def api_closure() -> set[str]:
    """Distributions that `pip install '.[api]'` brings: the extra's requirements, recursively."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    todo = [Requirement(r) for r in extras["api"] + project["dependencies"]]
    seen: set[str] = {"safetylock"}
    while todo:
        req = todo.pop()
        if _normal(req.name) == "safetylock":
            todo += [Requirement(r) for extra in req.extras for r in extras[extra]]
            continue
        if _normal(req.name) in seen:
            continue
        seen.add(_normal(req.name))
        try:
            children = [Requirement(r) for r in requires(req.name) or []]
        except PackageNotFoundError:
            continue
        wanted = set(req.extras) | {""}
        todo += [
            c
            for c in children
            if c.marker is None or any(c.marker.evaluate({"extra": e}) for e in wanted)
        ]
    return seen


def modules_outside(closure: set[str]) -> list[str]:
    """Top-level modules installed here that belong only to distributions outside `closure`."""
    return sorted(
        module
        for module, dists in packages_distributions().items()
        if not {_normal(d) for d in dists} & closure and module not in sys.stdlib_module_names
    )


def _publish_lock(store_url: str) -> None:
    """A small lock for base model `base`, published and promoted (needs torch: this process has it)."""
    import torch

    from lock_registry.architectures import HeadGeometry
    from lock_registry.lock import BaseModelRef, MetaSafetyLock
    from lock_registry.registry import LockRegistry
    from lock_registry.store import open_store

    lock = MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id="base", fingerprint="0" * 64),
        architecture="LlamaForCausalLM", geometry=HeadGeometry(num_layers=2, num_heads=2, head_dim=4),
        layers=torch.tensor([0, 1]), heads=torch.tensor([1, 0]),
        directions=torch.nn.functional.normalize(torch.ones(2, 4), dim=1), sigmas=torch.ones(2),
        last_tokens=5, data_fingerprint="test",
    )  # fmt: skip
    registry = LockRegistry(open_store(store_url))
    info = registry.publish(
        lock.save(Path(store_url.removeprefix("file://")).parent / "lock"), base_model="base"
    )
    registry.promote(info.ref, "production", actor="tests")


def test_the_api_closure_has_no_ml_stack() -> None:
    closure = api_closure()
    assert {"fastapi", "celery", "redis", "boto3"} <= closure
    assert not ML & closure
    assert ML <= set(modules_outside(closure))  # so the API test below really refuses them


def test_api_serves_requests_with_only_the_api_extra(redis_server, tmp_path: Path) -> None:
    import redis

    store_url = f"file://{tmp_path / 'store'}"
    _publish_lock(store_url)
    broker = f"{redis_server.url}/0"  # the service stacks take databases 1-63
    env = {
        "PATH": str(Path(sys.executable).parent),
        "SAFETYLOCK_BROKER_URL": broker,
        "SAFETYLOCK_STORE_URL": store_url,
        "SAFETYLOCK_DATA_DIR": str(tmp_path / "data"),
        "SAFETYLOCK_BASE_MODELS": json.dumps({"base": str(tmp_path / "no-weights-here")}),
    }
    refused = modules_outside(api_closure())
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(refused)],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["upload"] == 200 and outcome["job"] == 200, outcome["body"]
    assert outcome["body"]["status"] == "validating_files"
    assert not ML & set(outcome["refused"]), f"the API tried to import {outcome['refused']}"
    queue = redis.Redis.from_url(broker)
    try:
        assert queue.llen("safetylock") == 1  # the job went to the workers' queue, by task name
    finally:
        queue.flushdb()


def test_registry_file_names_match_the_lock_format() -> None:
    from lock_registry import lock, registry

    assert (registry.TENSORS_FILE, registry.MANIFEST_FILE) == (
        lock.TENSORS_FILE,
        lock.MANIFEST_FILE,
    )
