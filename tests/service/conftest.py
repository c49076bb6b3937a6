"""A lock registry on SeaweedFS S3 for the service tests.

`demo_lock_registry` (session): the `test` demo model, a Meta-SafetyLock taken from it
with the lock core's `create_lock` and published + promoted to `production` as
`demo-test`; a lock of another geometry published as `misfit-base` (a lock that does not
fit the model); nothing for any other base. The service stacks use the same bucket.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class LockWorld:
    model_dir: Path
    publish_to: str  # the store URL holding the registry (s3://bucket/prefix)


@contextmanager
def _env(values: dict[str, str]):
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _model_dir(demo_model) -> Path:
    for attr in ("aligned", "model_dir", "path"):
        if hasattr(demo_model, attr):
            return Path(getattr(demo_model, attr))
    return Path(demo_model)


def _misfit_lock(tmp: Path) -> Path:
    """A lock for `misfit-base` whose geometry (3 layers, 2 heads of 8) fits no demo model."""
    import torch

    from lock_registry.architectures import HeadGeometry
    from lock_registry.lock import BaseModelRef, MetaSafetyLock

    lock = MetaSafetyLock.head_bias(
        base_model=BaseModelRef(id="misfit-base", fingerprint="0" * 64),
        architecture="LlamaForCausalLM", geometry=HeadGeometry(num_layers=3, num_heads=2, head_dim=8),
        layers=torch.tensor([0, 2]), heads=torch.tensor([1, 0]),
        directions=torch.nn.functional.normalize(torch.ones(2, 8), dim=1), sigmas=torch.ones(2),
        last_tokens=5, data_fingerprint="test",
    )
    return lock.save(tmp / "misfit-lock")


@pytest.fixture(scope="session")
def demo_lock_registry(demo_model, seaweedfs, tmp_path_factory: pytest.TempPathFactory) -> LockWorld:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lock_registry.create import create_lock
    from lock_registry.pairs import ContrastivePair, load_pairs
    from lock_registry.registry import LockRegistry
    from lock_registry.store import open_store
    from service.demo_world.corpus import sample

    model_dir = _model_dir(demo_model)
    tmp = tmp_path_factory.mktemp("locks")
    store_url = f"s3://{seaweedfs.make_bucket('locks')}/platform"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    if (model_dir / "lock_pairs.json").is_file():  # the demo world writes its pairs beside the model
        pairs = load_pairs(model_dir / "lock_pairs.json", limit=48)
    else:
        pairs = [ContrastivePair(e.prompt, e.aligned_answer, e.answer)
                 for e in sample("harmful", "train", 48, random.Random(0))]
    lock = create_lock(model, tokenizer, pairs, base_model_id="demo-test", num_heads=8)
    lock_dir = lock.save(tmp / "demo-lock")
    with _env(seaweedfs.env()):
        registry = LockRegistry(open_store(store_url))
        for directory, base in ((lock_dir, "demo-test"), (_misfit_lock(tmp), "misfit-base")):
            info = registry.publish(directory, base_model=base, actor="tests")
            registry.promote(info.ref, "production", actor="tests")
    return LockWorld(model_dir=model_dir, publish_to=store_url)
