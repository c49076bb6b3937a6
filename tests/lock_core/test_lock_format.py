import json

import pytest
import torch

from lock_registry.architectures import HeadGeometry
from lock_registry.errors import LockFormatError, LockIntegrityError
from lock_registry.lock import MANIFEST_FILE, TENSORS_FILE, MetaSafetyLock
from tests.lock_core.helpers import random_lock

GEOMETRY = HeadGeometry(num_layers=2, num_heads=4, head_dim=16)
REQUIRED = [
    "format_version", "kind", "base_model", "architecture", "num_layers", "num_heads", "head_dim",
    "last_tokens", "num_selected", "heads", "data_fingerprint", "default_alpha", "created_at",
    "library_version", "creator", "parent", "sha256",
]  # fmt: skip


@pytest.fixture
def saved(tmp_path):
    lock = random_lock(GEOMETRY, [(0, 1), (1, 3)])
    lock.save(tmp_path / "lock")
    return lock, tmp_path / "lock"


def test_round_trip_writes_exactly_two_files(saved):
    lock, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == [TENSORS_FILE, MANIFEST_FILE]
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert set(REQUIRED) <= set(manifest)
    assert manifest["kind"] == "head_bias" and manifest["parent"] is None
    assert manifest["base_model"] == {"id": "tiny-base", "fingerprint": "f" * 64}
    assert manifest["heads"][1] == {"layer": 1, "head": 3, "probe_accuracy": 0.9}
    loaded = MetaSafetyLock.load(directory)
    assert loaded.manifest == lock.manifest
    for name, tensor in lock.tensors.items():
        assert torch.equal(loaded.tensors[name], tensor)


def test_the_same_tensors_always_give_the_same_sha256(saved):
    lock, directory = saved
    files = {lock.to_files()[TENSORS_FILE] for _ in range(8)}
    assert files == {(directory / TENSORS_FILE).read_bytes()}
    assert MetaSafetyLock.load(directory).to_files()[TENSORS_FILE] in files


def test_tampered_tensors_are_refused(saved):
    _, directory = saved
    data = bytearray((directory / TENSORS_FILE).read_bytes())
    data[-1] ^= 0x01
    (directory / TENSORS_FILE).write_bytes(bytes(data))
    with pytest.raises(LockIntegrityError, match="sha256 .* does not match"):
        MetaSafetyLock.load(directory)


def test_manifest_claiming_another_hash_is_refused(saved):
    _, directory = saved
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["sha256"] = "0" * 64
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(LockIntegrityError):
        MetaSafetyLock.load(directory)


def test_consistent_but_forged_tensors_are_refused(saved, tmp_path):
    """Even with a matching hash, tensors that disagree with the manifest are refused."""
    lock, _ = saved
    forged = dict(lock.tensors, heads=torch.tensor([1, 2]))
    with pytest.raises(LockFormatError, match="disagree"):
        MetaSafetyLock(lock.manifest, forged)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(kind="mystery"), "unknown lock kind 'mystery'"),
        (lambda m: m.update(format_version=99), "format_version 99"),
        (lambda m: m.pop("base_model"), "base_model"),
        (lambda m: m.update(num_heads=-1), "num_heads"),
    ],
)
def test_malformed_manifest_is_named(saved, edit, message):
    _, directory = saved
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    edit(manifest)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(LockFormatError, match=message):
        MetaSafetyLock.load(directory)


def test_missing_files_are_named(tmp_path, saved):
    _, directory = saved
    (directory / TENSORS_FILE).unlink()
    with pytest.raises(LockFormatError, match=f"missing {TENSORS_FILE}"):
        MetaSafetyLock.load(directory)
    with pytest.raises(LockFormatError, match="not a lock directory"):
        MetaSafetyLock.load(tmp_path / "nowhere")


def test_head_outside_geometry_is_refused():
    with pytest.raises(LockFormatError, match=r"head \(2, 0\) outside 2 layers x 4 heads"):
        random_lock(GEOMETRY, [(2, 0)])
