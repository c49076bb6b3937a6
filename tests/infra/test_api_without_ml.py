"""The API image holds no torch: the API must serve a whole request cycle without the ML stack.

A fresh interpreter with torch, transformers, TRL, PEFT, safetensors (and the rest of the
`ml` extra) made unimportable runs the API in cluster mode against a private Redis and a
file store holding a published lock: health, an upload, a job creation (which resolves
the lock through the registry) and the enqueued Celery message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

ML = [
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
    "numpy",
]

SCRIPT = """
import importlib.abc, json, sys

BLOCKED = set(sys.argv[1].split(","))


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in the API image")


sys.meta_path.insert(0, Blocker())
from fastapi.testclient import TestClient

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
                  "imported": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
"""


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


def test_api_serves_requests_without_the_ml_stack(redis_server, tmp_path: Path) -> None:
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
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(ML)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["upload"] == 200 and outcome["job"] == 200, outcome["body"]
    assert outcome["body"]["status"] == "validating_files"
    assert outcome["imported"] == []
    queued = redis.Redis.from_url(broker)
    try:
        assert queued.llen("safetylock") == 1  # the job went to the workers' queue, by task name
    finally:
        queued.flushdb()


def test_registry_file_names_match_the_lock_format() -> None:
    from lock_registry import lock, registry

    assert (registry.TENSORS_FILE, registry.MANIFEST_FILE) == (lock.TENSORS_FILE, lock.MANIFEST_FILE)
