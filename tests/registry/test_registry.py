"""LockRegistry on both backends: versions, aliases, integrity, deprecation, delete."""

from __future__ import annotations

import json
import re
import threading

import pytest

from lock_registry.errors import LockIntegrityError
from lock_registry.lock import MetaSafetyLock
from lock_registry.registry import LockRegistry
from lock_registry.registry_types import (
    AliasNotFoundError,
    AmbiguousBaseModelError,
    BaseKeyCollisionError,
    InvalidReferenceError,
    ProtectedVersionError,
    RegistryIntegrityError,
    UnknownBaseModelError,
    UnknownVersionError,
    VersionDeprecatedError,
    base_key,
)
from tests.registry.lockdirs import BASE_ID, FINGERPRINT, make_lock_dir

KEY = base_key(BASE_ID, FINGERPRINT)


@pytest.fixture
def registry(store) -> LockRegistry:
    return LockRegistry(store)


def publish(registry, tmp_path, seed=0, **kwargs):
    return registry.publish(make_lock_dir(tmp_path / f"lock{seed}", seed=seed, **kwargs),
                            actor="alice")  # fmt: skip


def test_publish_numbers_versions_and_never_overwrites(registry, tmp_path):
    first = publish(registry, tmp_path, seed=0)
    second = publish(registry, tmp_path, seed=1)
    assert (first.version, second.version) == (1, 2)
    assert first.base_key == KEY == "acme--tiny-chat@" + "3f" * 8
    assert first.sha256 != second.sha256
    keys = registry.store.list(f"locks/{KEY}/v1/")
    assert keys == [
        f"locks/{KEY}/v1/{n}" for n in ("lock.safetensors", "manifest.json", "version.json")
    ]
    info = registry.resolve(f"{BASE_ID}@v1")
    assert (info.published_by, info.creator, info.kind, info.num_selected) == (
        "alice",
        "tests",
        "head_bias",
        3,
    )
    assert info.base_fingerprint == FINGERPRINT and info.data_fingerprint == "d" * 64
    assert [v.version for v in registry.versions(BASE_ID)] == [1, 2]


def test_publish_checks_the_lock_and_the_base_id(registry, tmp_path):
    lock_dir = make_lock_dir(tmp_path / "lock")
    with pytest.raises(InvalidReferenceError, match="not 'other/model'"):
        registry.publish(lock_dir, base_model="other/model")
    (lock_dir / "lock.safetensors").write_bytes(b"garbage")
    with pytest.raises(LockIntegrityError):
        registry.publish(lock_dir)
    with pytest.raises(InvalidReferenceError, match="not a lock directory"):
        registry.publish(tmp_path / "missing")
    assert registry.versions() == []


def test_aliases_resolve_move_remove_with_audit_log(registry, tmp_path):
    publish(registry, tmp_path, seed=0)
    publish(registry, tmp_path, seed=1)
    with pytest.raises(AliasNotFoundError, match="no alias 'production'"):
        registry.resolve(BASE_ID)
    registry.promote(f"{BASE_ID}@v1", "production", actor="alice")
    registry.promote(f"{BASE_ID}@v2", "candidate", actor="bob")
    assert registry.resolve(BASE_ID).version == 1
    assert registry.resolve(f"{BASE_ID}@candidate").version == 2
    registry.promote(f"{BASE_ID}@v2", "production", actor="carol")
    assert registry.resolve(BASE_ID).version == 2
    assert registry.resolve(f"{BASE_ID}@v2").aliases == ("candidate", "production")
    registry.remove_alias(BASE_ID, "candidate", actor="dave")
    with pytest.raises(AliasNotFoundError):
        registry.resolve(f"{BASE_ID}@candidate")
    log = [
        (e.action, e.alias, e.from_version, e.to_version, e.by) for e in registry.history(BASE_ID)
    ]
    assert log == [
        ("set", "production", None, 1, "alice"),
        ("set", "candidate", None, 2, "bob"),
        ("move", "production", 1, 2, "carol"),
        ("remove", "candidate", 2, None, "dave"),
    ]
    assert all(e.at.endswith("Z") for e in registry.history(BASE_ID))
    with pytest.raises(UnknownVersionError):
        registry.promote(f"{BASE_ID}@v9", "production")
    with pytest.raises(InvalidReferenceError):
        registry.promote(f"{BASE_ID}@v1", "Bad Alias")


def test_unknown_model_and_version_are_clear(registry, tmp_path):
    with pytest.raises(
        UnknownBaseModelError, match="no locks registered for base model 'nobody/x'"
    ):
        registry.resolve("nobody/x@v1")
    publish(registry, tmp_path)
    with pytest.raises(UnknownVersionError, match="published: v1"):
        registry.resolve(f"{BASE_ID}@v7")


def test_lookup_by_fingerprint_and_revision_pinning(registry, tmp_path):
    publish(registry, tmp_path, seed=0)
    other_fp = "7a" * 32
    publish(registry, tmp_path, seed=1, fingerprint=other_fp)
    assert registry.lookup(FINGERPRINT) == [KEY]
    assert registry.lookup("00" * 32) == []
    with pytest.raises(AmbiguousBaseModelError, match="several revisions"):
        registry.resolve(f"{BASE_ID}@v1")
    registry.promote(f"{BASE_ID}@7a7a@v1", "production")
    info = registry.resolve_for_model(other_fp)
    assert (info.base_fingerprint, info.version) == (other_fp, 1)
    with pytest.raises(AliasNotFoundError):
        registry.resolve_for_model(FINGERPRINT)
    with pytest.raises(UnknownBaseModelError):
        registry.resolve_for_model("00" * 32)


def test_load_and_pull_verify_the_hash(registry, tmp_path):
    published = publish(registry, tmp_path)
    registry.promote(f"{BASE_ID}@v1", "production")
    lock = registry.load(BASE_ID)
    assert lock.manifest.sha256 == published.sha256
    out = tmp_path / "pulled"
    registry.pull(f"{BASE_ID}@production", out)
    assert MetaSafetyLock.load(out).manifest.sha256 == published.sha256
    assert (out / "lock.safetensors").read_bytes() == (
        tmp_path / "lock0" / "lock.safetensors"
    ).read_bytes()


def test_a_flipped_byte_is_caught_by_load_pull_and_verify(registry, tmp_path):
    publish(registry, tmp_path, seed=0)
    publish(registry, tmp_path, seed=1)
    registry.promote(f"{BASE_ID}@v2", "production")
    key = f"locks/{KEY}/v2/lock.safetensors"
    data = bytearray(registry.store.get_bytes(key))
    data[-3] ^= 0x01  # inside the tensor data
    registry.store.put_bytes(key, bytes(data))
    with pytest.raises(RegistryIntegrityError, match="does not match"):
        registry.load(BASE_ID)
    with pytest.raises(LockIntegrityError):
        registry.pull(f"{BASE_ID}@v2", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()
    results = {r.version: r for r in registry.verify()}
    assert results[1].ok and results[2].status == "corrupt"
    assert "does not match" in results[2].detail
    assert registry.load(f"{BASE_ID}@v1").manifest.num_selected == 3


def test_a_rewritten_manifest_hash_is_still_caught(registry, tmp_path):
    """Tampering with tensors *and* the manifest's sha256 is caught by the claim."""
    import hashlib
    import json

    publish(registry, tmp_path)
    prefix = f"locks/{KEY}/v1/"
    tensors = bytearray(registry.store.get_bytes(prefix + "lock.safetensors"))
    tensors[-1] ^= 0xFF
    manifest = json.loads(registry.store.get_bytes(prefix + "manifest.json"))
    manifest["sha256"] = hashlib.sha256(bytes(tensors)).hexdigest()
    registry.store.put_bytes(prefix + "lock.safetensors", bytes(tensors))
    registry.store.put_bytes(prefix + "manifest.json", json.dumps(manifest).encode())
    with pytest.raises(RegistryIntegrityError):
        registry.load(f"{BASE_ID}@v1")
    assert [r.status for r in registry.verify(BASE_ID)] == ["corrupt"]


def test_unfinished_publish_is_invisible_and_reported(registry, tmp_path):
    publish(registry, tmp_path)
    registry.store.put_bytes(f"locks/{KEY}/v2/version.json", b"{}")  # a publisher died here
    assert [v.version for v in registry.versions(BASE_ID)] == [1]
    assert [(r.version, r.status) for r in registry.verify()] == [(1, "ok"), (2, "incomplete")]
    assert publish(registry, tmp_path, seed=3).version == 3


def test_deprecated_versions_are_kept_flagged_and_not_aliasable(registry, tmp_path):
    publish(registry, tmp_path, seed=0)
    publish(registry, tmp_path, seed=1)
    registry.promote(f"{BASE_ID}@v1", "production")
    registry.deprecate(f"{BASE_ID}@v1", reason="bad probe data", actor="erin")
    with pytest.raises(VersionDeprecatedError, match="deprecated"):
        registry.resolve(BASE_ID)  # fails closed until another version is promoted
    assert registry.resolve(f"{BASE_ID}@v1").deprecated  # pinned versions stay loadable
    with pytest.raises(VersionDeprecatedError):
        registry.promote(f"{BASE_ID}@v1", "candidate")
    assert [(v.version, v.deprecated) for v in registry.versions()] == [(1, True), (2, False)]
    registry.promote(f"{BASE_ID}@v2", "production")
    assert registry.resolve(BASE_ID).version == 2
    assert registry.history(BASE_ID)[1].reason == "bad probe data"


def test_delete_needs_force_and_never_takes_an_aliased_version(registry, tmp_path):
    publish(registry, tmp_path, seed=0)
    publish(registry, tmp_path, seed=1)
    registry.promote(f"{BASE_ID}@v2", "production")
    with pytest.raises(ProtectedVersionError, match="without force"):
        registry.delete(f"{BASE_ID}@v1")
    with pytest.raises(ProtectedVersionError, match="aliased"):
        registry.delete(f"{BASE_ID}@v2", force=True)
    registry.delete(f"{BASE_ID}@v1", force=True)
    assert [v.version for v in registry.versions()] == [2]
    with pytest.raises(UnknownVersionError):
        registry.resolve(f"{BASE_ID}@v1")
    assert publish(registry, tmp_path, seed=2).version == 3  # numbers are never reused
    assert registry.history(BASE_ID)[-1].action == "delete"
    assert [r.version for r in registry.verify()] == [2, 3]


def test_a_lock_without_fingerprint_is_registered_unpinned(registry, tmp_path):
    """Imported reference locks may not know their base's fingerprint."""
    info = publish(registry, tmp_path, fingerprint="")
    assert info.base_key == "acme--tiny-chat@unpinned"
    registry.promote(f"{BASE_ID}@v1", "production")
    assert registry.resolve(BASE_ID).version == 1
    assert registry.lookup(FINGERPRINT) == []  # never matched by a model's fingerprint
    with pytest.raises(InvalidReferenceError, match="empty"):
        registry.lookup("")


COLLIDING = [("a/b", "a--b"), ("a b", "a_b")]  # each pair shares a slug, hence a key


@pytest.mark.parametrize(("owner", "other"), COLLIDING)
def test_ids_with_the_same_key_never_share_a_folder(registry, tmp_path, owner, other):
    assert base_key(owner, FINGERPRINT) == base_key(other, FINGERPRINT)
    first = publish(registry, tmp_path, seed=0, base_id=owner)
    both = f"{re.escape(repr(other))}.*belongs to base model {re.escape(repr(owner))}"
    with pytest.raises(BaseKeyCollisionError, match=both):
        publish(registry, tmp_path, seed=1, base_id=other)
    for call in (
        lambda: registry.resolve(f"{other}@v1"),
        lambda: registry.versions(other),
        lambda: registry.history(other),
        lambda: registry.promote(f"{other}@v1", "production"),
    ):
        with pytest.raises(UnknownBaseModelError, match=both):
            call()
    registry.promote(f"{owner}@v1", "production")
    assert registry.load(owner).manifest.sha256 == first.sha256
    assert [(v.base_model_id, v.version) for v in registry.versions()] == [(owner, 1)]


@pytest.mark.parametrize(("owner", "other"), COLLIDING)
def test_same_slug_other_revision_resolves_only_to_its_own_locks(registry, tmp_path, owner,
                                                                  other):  # fmt: skip
    """Different fingerprints give different folders; each id resolves to its own alone."""
    mine = publish(registry, tmp_path, seed=0, base_id=owner)
    theirs = publish(registry, tmp_path, seed=1, base_id=other, fingerprint="7a" * 32)
    assert registry.resolve(f"{owner}@v1").sha256 == mine.sha256  # not ambiguous
    assert registry.resolve(f"{other}@v1").sha256 == theirs.sha256
    assert [v.sha256 for v in registry.versions(other)] == [theirs.sha256]
    with pytest.raises(UnknownBaseModelError, match=re.escape(repr(owner))):
        registry.resolve(f"{other}@3f3f@v1")  # the other id's revision is not other's
    registry.promote(f"{other}@v1", "production")
    assert registry.resolve_for_model("7a" * 32).sha256 == theirs.sha256


def test_racing_publishers_of_colliding_ids_one_wins(registry, tmp_path):
    dirs = {
        base_id: make_lock_dir(tmp_path / slug_dir, base_id=base_id, seed=seed)
        for seed, (base_id, slug_dir) in enumerate([("a/b", "ab"), ("a--b", "a--b")])
    }
    barrier, outcomes = threading.Barrier(2), {}

    def publisher(base_id: str) -> None:
        barrier.wait(timeout=30)
        try:
            outcomes[base_id] = registry.publish(dirs[base_id], actor=base_id).base_model_id
        except BaseKeyCollisionError as exc:
            outcomes[base_id] = exc

    threads = [threading.Thread(target=publisher, args=(base_id,)) for base_id in dirs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [base_id for base_id, out in outcomes.items() if out == base_id]
    assert len(winners) == 1, outcomes
    loser = next(base_id for base_id in dirs if base_id not in winners)
    assert isinstance(outcomes[loser], BaseKeyCollisionError)
    assert [v.base_model_id for v in registry.versions()] == winners


def _publish_as_before(registry, lock_dir, key: str, version: int) -> None:
    """Write a version the way the registry did before it recorded each folder's base id."""
    manifest = json.loads((lock_dir / "manifest.json").read_text())
    claim = {"version": version, "base_model": manifest["base_model"],
             "sha256": manifest["sha256"], "published_by": "old", "published_at": "2024"}  # fmt: skip
    prefix = f"locks/{key}/v{version}/"
    registry.store.put_bytes(prefix + "version.json", json.dumps(claim).encode())
    for name in ("lock.safetensors", "manifest.json"):
        registry.store.put_bytes(prefix + name, (lock_dir / name).read_bytes())


def test_a_folder_without_a_recorded_id_belongs_to_its_first_version(registry, tmp_path):
    """Registries written before the id was recorded stay readable, and fail closed on a
    folder that already mixes two ids."""
    key = base_key("a/b", FINGERPRINT)
    _publish_as_before(registry, make_lock_dir(tmp_path / "v1", base_id="a/b"), key, 1)
    mixed = make_lock_dir(tmp_path / "v2", base_id="a--b", seed=1)
    _publish_as_before(registry, mixed, key, 2)  # what the old collision did
    assert registry.resolve("a/b@v1").base_model_id == "a/b"
    with pytest.raises(UnknownBaseModelError, match="belongs to base model 'a/b'"):
        registry.resolve("a--b@v2")
    assert registry.load("a/b@v1").manifest.base_model.id == "a/b"
    with pytest.raises(RegistryIntegrityError, match="manifest names base 'a--b'.*'a/b'"):
        registry.load("a/b@v2")
    assert [(r.version, r.status) for r in registry.verify()] == [(1, "ok"), (2, "corrupt")]
    with pytest.raises(BaseKeyCollisionError, match="'a--b'.*'a/b'"):
        registry.publish(mixed)
    state = json.loads(registry.store.get_bytes(f"locks/{key}/aliases.json"))
    assert state["base_model"] == {"id": "a/b", "fingerprint": FINGERPRINT}  # now recorded
    assert publish(registry, tmp_path, seed=3, base_id="a/b").version == 3
