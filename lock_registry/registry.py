"""`LockRegistry`: immutable, numbered lock versions per base model revision, with aliases.

Layout in the object store (design.md "Object store layout"), per base revision
``locks/{base_key}/`` (see :func:`~lock_registry.registry_types.base_key`):

- ``v{N}/version.json``: the claim of version N (who, when, sha256), written first with
  an atomic put-if-absent, so two publishers never get the same N;
- ``v{N}/lock.safetensors``, then ``v{N}/manifest.json`` last: a version is visible only
  once its manifest (which vouches for the tensors by sha256) is stored;
- ``v{N}/deleted.json``: a tombstone after a forced delete (numbers are never reused);
- ``aliases.json``: the base's state: the exact base model id the folder belongs to
  (recorded with put-if-absent by the first publish, before any version is claimed, since
  different ids can share a key), and the mutable aliases, deprecations and audit log,
  changed only by compare-and-swap (``put_if_match``), retried on conflict. A folder from
  before the id was recorded belongs to the base of its first claimed version.

Loading re-hashes the tensors against the manifest and the claim and fails closed.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lock_registry.errors import LockError
from lock_registry.registry_types import (
    DEFAULT_ALIAS,
    UNPINNED,
    AliasEvent,
    AliasNotFoundError,
    AmbiguousBaseModelError,
    BaseKeyCollisionError,
    BaseState,
    InvalidReferenceError,
    LockRef,
    ProtectedVersionError,
    PublishConflictError,
    RegistryIntegrityError,
    UnknownBaseModelError,
    UnknownVersionError,
    VerifyResult,
    VersionDeprecatedError,
    VersionInfo,
    base_key,
    check_alias,
    fingerprint_key,
    slug,
)
from lock_registry.store import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    PreconditionFailedError,
    open_store,
)

if TYPE_CHECKING:
    from lock_registry.lock import MetaSafetyLock

# The two files of a lock directory, as in lock_registry.lock: repeated here because
# resolving a lock, which the torch-free API process does, must not import torch
# (tests/infra/test_api_without_ml.py checks both stay equal).
TENSORS_FILE = "lock.safetensors"
MANIFEST_FILE = "manifest.json"


def utc_now() -> str:
    """Current time as ISO-8601 UTC seconds (as lock_registry.lock.utc_now, without torch)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _lock_format():
    """lock_registry.lock (torch, safetensors), imported only where a lock is parsed or stamped."""
    from lock_registry import lock

    return lock


ROOT = "locks"
CLAIM_FILE = "version.json"
TOMBSTONE_FILE = "deleted.json"
STATE_FILE = "aliases.json"
MAX_ATTEMPTS = 50
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


def default_actor() -> str:
    """Who is acting: ``$SAFETYLOCK_OPERATOR``, else ``user@host``."""
    explicit = os.environ.get("SAFETYLOCK_OPERATOR", "").strip()
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class LockRegistry:
    """Publish, resolve, alias, verify, deprecate and delete locks in an object store."""

    def __init__(self, store: ObjectStore | str | None = None) -> None:
        self.store = store if isinstance(store, ObjectStore) else open_store(store)

    # -- keys --------------------------------------------------------------------------
    def _prefix(self, key: str, version: int | None = None) -> str:
        return f"{ROOT}/{key}/" if version is None else f"{ROOT}/{key}/v{version}/"

    def base_keys(self) -> list[str]:
        """Every registered base revision's key (those with at least one version)."""
        keys = {path.split("/")[1] for path in self.store.list(f"{ROOT}/") if path.count("/") >= 2}
        return sorted(keys)

    def _version_files(self, key: str) -> dict[int, set[str]]:
        """Version number -> the file names stored under ``v{N}/``."""
        files: dict[int, set[str]] = {}
        for path in self.store.list(self._prefix(key)):
            parts = path.split("/")
            match = _VERSION_DIR.match(parts[2]) if len(parts) == 4 else None
            if match:
                files.setdefault(int(match.group(1)), set()).add(parts[3])
        return files

    def _published(self, key: str) -> list[int]:
        return sorted(
            n for n, names in self._version_files(key).items()
            if MANIFEST_FILE in names and TOMBSTONE_FILE not in names
        )  # fmt: skip

    # -- base resolution -----------------------------------------------------------------
    def _find_base(self, ref: LockRef) -> str:
        """The one base key a reference names, or a clear error. A folder whose key matches
        but which belongs to another model id (their slugs collide) never matches."""
        id_slug = slug(ref.model_id)
        same_key = [k for k in self.base_keys() if k.rsplit("@", 1)[0] == id_slug]
        if ref.fingerprint_prefix:
            prefix = fingerprint_key(ref.fingerprint_prefix)
            same_key = [k for k in same_key if k.rsplit("@", 1)[1].startswith(prefix)]
        owners = {k: self._owner(k) for k in same_key}
        candidates = [k for k in same_key if owners[k] == ref.model_id]
        if not candidates:
            known = sorted({k.rsplit("@", 1)[0] for k in self.base_keys()})
            pin = f" at fingerprint {ref.fingerprint_prefix}" if ref.fingerprint_prefix else ""
            others = "".join(
                f"; folder {k!r} belongs to base model {owner!r}, a different id with the same key"
                for k, owner in owners.items() if owner is not None
            )  # fmt: skip
            raise UnknownBaseModelError(
                f"no locks registered for base model {ref.model_id!r}{pin} in "
                f"{self.store.url} (registered: {', '.join(known) or 'none'}){others}"
            )
        if len(candidates) > 1:
            revisions = ", ".join(k.rsplit("@", 1)[1] for k in candidates)
            raise AmbiguousBaseModelError(
                f"base model {ref.model_id!r} has locks for several revisions ({revisions}); "
                f"pin one: {ref.model_id}@<fingerprint>@<version|alias>"
            )
        return candidates[0]

    def lookup(self, fingerprint: str) -> list[str]:
        """Base keys registered for a model with this (full) fingerprint."""
        short = fingerprint_key(fingerprint)
        if short == UNPINNED:
            raise InvalidReferenceError("lookup needs a model fingerprint, got an empty one")
        found = []
        for key in self.base_keys():
            if (
                key.rsplit("@", 1)[1] == short
                and self._state(key)[0].base_fingerprint == fingerprint
            ):
                found.append(key)
        return found

    # -- state (aliases.json) ------------------------------------------------------------
    def _stored_state(self, key: str) -> tuple[BaseState | None, str | None]:
        """The base's state and its change token. Without ``aliases.json`` (a folder from
        before publish recorded its base) the state is that of the base of its first claimed
        version, with token None; a key with neither has none: ``(None, None)``."""
        try:
            data, token = self.store.get_with_token(self._prefix(key) + STATE_FILE)
        except ObjectNotFoundError:
            for version, names in sorted(self._version_files(key).items()):
                base = self._claim(key, version).get("base_model") if CLAIM_FILE in names else None
                if base:
                    return BaseState(base["id"], base["fingerprint"]), None
            return None, None
        return BaseState.from_json(json.loads(data)), token

    def _state(self, key: str) -> tuple[BaseState, str | None]:
        """The base's state and its change token (None if ``aliases.json`` was never written)."""
        state, token = self._stored_state(key)
        if state is None:
            raise UnknownBaseModelError(
                f"{self.store.url}/{self._prefix(key)}: no base model recorded and no "
                "version claimed"
            )
        return state, token

    def _owner(self, key: str) -> str | None:
        """The exact base model id a folder belongs to (None for a key with nothing recorded)."""
        state = self._stored_state(key)[0]
        return state.base_model_id if state else None

    @staticmethod
    def _state_body(state: BaseState) -> bytes:
        return (json.dumps(state.to_json(), indent=2) + "\n").encode()

    def _record_base(self, key: str, model_id: str, fingerprint: str) -> None:
        """Record ``model_id`` as the base ``key`` belongs to, unless one is recorded already
        (put-if-absent: the first publisher wins), and refuse any other id: slugs collide."""
        path = self._prefix(key) + STATE_FILE
        for _ in range(MAX_ATTEMPTS):
            state, token = self._stored_state(key)
            if token is None:  # nothing recorded: a new key, or a folder from before
                state = state or BaseState(model_id, fingerprint)
                try:
                    self.store.put_if_absent(path, self._state_body(state))
                except ObjectExistsError:
                    continue  # recorded concurrently: read what was recorded
            if state.base_model_id != model_id:
                raise BaseKeyCollisionError(
                    f"cannot publish a lock of base model {model_id!r}: its registry folder "
                    f"{self.store.url}/{self._prefix(key)} belongs to base model "
                    f"{state.base_model_id!r} (both ids map to the key {key!r}); locks of "
                    "different base models never share a folder"
                )
            return
        raise PublishConflictError(f"{key}: the base's state kept changing under us; try again")

    def _update_state(self, key: str, change: Callable[[BaseState], AliasEvent]) -> AliasEvent:
        """Apply ``change`` to the base's state atomically (compare-and-swap, retried)."""
        for _ in range(MAX_ATTEMPTS):
            state, token = self._state(key)
            event = change(state)
            state.log.append(event)
            body = self._state_body(state)
            try:
                if token is None:
                    self.store.put_if_absent(self._prefix(key) + STATE_FILE, body)
                else:
                    self.store.put_if_match(self._prefix(key) + STATE_FILE, body, token)
                return event
            except (ObjectExistsError, PreconditionFailedError):
                continue
        raise PublishConflictError(f"{key}: alias state kept changing under us; try again")

    def history(self, model: str) -> list[AliasEvent]:
        """The audit log of a base (alias moves, deprecations, deletes), oldest first."""
        return self._state(self._find_base(LockRef.parse(model, default_alias=None)))[0].log

    # -- reading versions ----------------------------------------------------------------
    def _claim(self, key: str, version: int) -> dict:
        return json.loads(self.store.get_bytes(self._prefix(key, version) + CLAIM_FILE))

    def _info(self, key: str, version: int, state: BaseState) -> VersionInfo:
        prefix = self._prefix(key, version)
        manifest = json.loads(self.store.get_bytes(prefix + MANIFEST_FILE))
        claim = self._claim(key, version)
        return VersionInfo(
            base_model_id=manifest["base_model"]["id"],
            base_fingerprint=manifest["base_model"]["fingerprint"],
            base_key=key,
            version=version,
            sha256=manifest.get("sha256", ""),
            kind=manifest.get("kind", ""),
            num_selected=int(manifest.get("num_selected", 0)),
            created_at=manifest.get("created_at", ""),
            creator=manifest.get("creator", ""),
            data_fingerprint=manifest.get("data_fingerprint", ""),
            library_version=manifest.get("library_version", ""),
            parent=manifest.get("parent"),
            published_at=claim.get("published_at", ""),
            published_by=claim.get("published_by", ""),
            aliases=tuple(sorted(a for a, v in state.aliases.items() if v == version)),
            deprecated=version in state.deprecated,
        )

    def versions(self, model: str | None = None) -> list[VersionInfo]:
        """Published versions of one base (``ID`` or ``ID@FP``) or of every base."""
        keys = (
            [self._find_base(LockRef.parse(model, default_alias=None))]
            if model else self.base_keys()
        )  # fmt: skip
        infos = []
        for key in keys:
            state = self._state(key)[0]
            infos.extend(self._info(key, n, state) for n in self._published(key))
        return infos

    def resolve(self, reference: str | LockRef, *, allow_deprecated: bool = True) -> VersionInfo:
        """The version a reference names. An alias never resolves to a deprecated version;
        an explicit ``vN`` does unless ``allow_deprecated`` is False."""
        ref = reference if isinstance(reference, LockRef) else LockRef.parse(reference)
        key = self._find_base(ref)
        state = self._state(key)[0]
        if ref.version is None:
            alias = ref.alias or DEFAULT_ALIAS
            if alias not in state.aliases:
                known = ", ".join(f"{a} -> v{v}" for a, v in sorted(state.aliases.items()))
                raise AliasNotFoundError(
                    f"{ref.model_id}: no alias {alias!r} (aliases: {known or 'none'}); "
                    f"promote a version: safetylock lock promote {ref.model_id}@vN --alias {alias}"
                )
            version = state.aliases[alias]
            if version in state.deprecated:
                raise VersionDeprecatedError(
                    f"{ref.model_id}@{alias} points to v{version}, which is deprecated; "
                    "promote another version"
                )
        else:
            version = ref.version
            if not allow_deprecated and version in state.deprecated:
                raise VersionDeprecatedError(f"{ref.model_id}@v{version} is deprecated")
        if version not in self._published(key):
            raise UnknownVersionError(
                f"{ref.model_id} has no published v{version} "
                f"(published: {', '.join(f'v{n}' for n in self._published(key)) or 'none'})"
            )
        return self._info(key, version, state)

    def resolve_for_model(self, fingerprint: str, alias: str = DEFAULT_ALIAS) -> VersionInfo:
        """What a job uses: the ``alias`` version of the base with this model fingerprint."""
        keys = self.lookup(fingerprint)
        if not keys:
            raise UnknownBaseModelError(
                f"no locks registered for a base model with fingerprint {fingerprint[:16]}... "
                f"in {self.store.url}"
            )
        if len(keys) > 1:
            raise AmbiguousBaseModelError(
                f"several bases are registered for fingerprint {fingerprint[:16]}...: "
                f"{', '.join(keys)}"
            )
        state = self._state(keys[0])[0]
        return self.resolve(LockRef(state.base_model_id, fingerprint_key(fingerprint), alias=alias))

    def _files(self, info: VersionInfo) -> dict[str, bytes]:
        """The stored files of a version, checked against its claim and base: fail closed."""
        prefix = self._prefix(info.base_key, info.version)
        files = {
            name: self.store.get_bytes(prefix + name) for name in (MANIFEST_FILE, TENSORS_FILE)
        }
        actual = hashlib.sha256(files[TENSORS_FILE]).hexdigest()
        claimed = self._claim(info.base_key, info.version).get("sha256")
        where = f"{self.store.url}/{prefix}{TENSORS_FILE}"
        if actual != claimed or actual != info.sha256:
            raise RegistryIntegrityError(
                f"{where}: sha256 {actual} does not match the published {claimed} "
                f"(manifest {info.sha256}); the stored lock was altered or corrupted, refusing it"
            )
        owner = self._state(info.base_key)[0].base_model_id
        if (
            info.base_model_id != owner
            or base_key(info.base_model_id, info.base_fingerprint) != info.base_key
        ):
            raise RegistryIntegrityError(
                f"{self.store.url}/{prefix}{MANIFEST_FILE}: manifest names base "
                f"{info.base_model_id!r}, but the registry folder {info.base_key!r} belongs to "
                f"{owner!r}; refusing it"
            )
        return files

    def load(self, reference: str | LockRef | VersionInfo) -> MetaSafetyLock:
        """Resolve and load a lock, verifying its sha256 twice (registry and lock format)."""
        info = reference if isinstance(reference, VersionInfo) else self.resolve(reference)
        files = self._files(info)
        source = f"{self.store.url}/{self._prefix(info.base_key, info.version)}".rstrip("/")
        return _lock_format().MetaSafetyLock.from_files(files, source=source)

    def pull(self, reference: str | LockRef, out_dir: str | Path) -> VersionInfo:
        """Verify a version and write its two files into ``out_dir`` (manifest last)."""
        info = self.resolve(reference)
        files = self._files(info)
        _lock_format().MetaSafetyLock.from_files(files, source=f"{info.ref}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in (TENSORS_FILE, MANIFEST_FILE):
            temp = out / f".{name}.tmp"
            temp.write_bytes(files[name])
            temp.replace(out / name)
        return info

    # -- publishing ----------------------------------------------------------------------
    def publish(
        self, lock_dir: str | Path, *, base_model: str | None = None, actor: str | None = None
    ) -> VersionInfo:
        """Store a lock directory as the next version of its base; never overwrites.

        ``base_model``, when given, must equal the lock's own base model id.
        """
        source = Path(lock_dir)
        if not source.is_dir():
            raise InvalidReferenceError(f"{source}: not a lock directory")
        files = {}
        for name in (MANIFEST_FILE, TENSORS_FILE):
            if not (source / name).is_file():
                raise InvalidReferenceError(f"{source}: missing {name}")
            files[name] = (source / name).read_bytes()
        # the exact bytes are published, after the lock format has checked them
        lock = _lock_format().MetaSafetyLock.from_files(files, source=str(source))
        base = lock.manifest.base_model
        if base_model is not None and base_model != base.id:
            raise InvalidReferenceError(
                f"{lock_dir}: the lock was taken from base model {base.id!r}, not {base_model!r}"
            )
        key = base_key(base.id, base.fingerprint)
        self._record_base(key, base.id, base.fingerprint)
        claim = {
            "base_model": {"id": base.id, "fingerprint": base.fingerprint},
            "sha256": lock.manifest.sha256,
            "published_by": actor or default_actor(),
            "published_at": utc_now(),
        }
        for _ in range(MAX_ATTEMPTS):
            version = max(self._version_files(key), default=0) + 1
            prefix = self._prefix(key, version)
            body = json.dumps({"version": version, **claim}, indent=2).encode()
            try:
                self.store.put_if_absent(prefix + CLAIM_FILE, body)
            except ObjectExistsError:
                continue  # another publisher took this number: take the next
            self.store.put_if_absent(prefix + TENSORS_FILE, files[TENSORS_FILE])
            self.store.put_if_absent(prefix + MANIFEST_FILE, files[MANIFEST_FILE])
            return self._info(key, version, self._state(key)[0])
        raise PublishConflictError(
            f"{base.id}: could not claim a version number after {MAX_ATTEMPTS} attempts"
        )

    # -- aliases, deprecation, delete ---------------------------------------------------
    def _versioned(self, reference: str) -> tuple[LockRef, str]:
        ref = LockRef.parse(reference, default_alias=None)
        if ref.version is None:
            raise InvalidReferenceError(f"{reference!r} must name a version: ID@vN")
        key = self._find_base(ref)
        if ref.version not in self._published(key):
            raise UnknownVersionError(f"{ref.model_id} has no published v{ref.version}")
        return ref, key

    def promote(self, reference: str, alias: str = DEFAULT_ALIAS, *, actor: str | None = None
                ) -> AliasEvent:  # fmt: skip
        """Point ``alias`` at ``ID@vN`` (set or move), recorded in the audit log."""
        ref, key = self._versioned(reference)
        check_alias(alias)
        version = ref.version

        def change(state: BaseState) -> AliasEvent:
            if version in state.deprecated:
                raise VersionDeprecatedError(f"{ref} is deprecated and cannot be promoted")
            previous = state.aliases.get(alias)
            state.aliases[alias] = version
            return AliasEvent(
                at=utc_now(), by=actor or default_actor(),
                action="set" if previous is None else "move",
                alias=alias, from_version=previous, to_version=version,
            )  # fmt: skip

        return self._update_state(key, change)

    def remove_alias(self, model: str, alias: str, *, actor: str | None = None) -> AliasEvent:
        """Remove an alias of a base (``ID`` or ``ID@FP``)."""
        ref = LockRef.parse(model, default_alias=None)
        key = self._find_base(ref)

        def change(state: BaseState) -> AliasEvent:
            if alias not in state.aliases:
                raise AliasNotFoundError(f"{ref.model_id}: no alias {alias!r}")
            previous = state.aliases.pop(alias)
            return AliasEvent(at=utc_now(), by=actor or default_actor(), action="remove",
                              alias=alias, from_version=previous)  # fmt: skip

        return self._update_state(key, change)

    def deprecate(self, reference: str, *, reason: str = "", actor: str | None = None
                  ) -> AliasEvent:  # fmt: skip
        """Flag ``ID@vN`` deprecated: kept and loadable by version, never by alias."""
        ref, key = self._versioned(reference)
        who, when = actor or default_actor(), utc_now()

        def change(state: BaseState) -> AliasEvent:
            state.deprecated[ref.version] = {"at": when, "by": who, "reason": reason}
            return AliasEvent(at=when, by=who, action="deprecate",
                              to_version=ref.version, reason=reason)  # fmt: skip

        return self._update_state(key, change)

    def delete(self, reference: str, *, force: bool = False, actor: str | None = None
               ) -> AliasEvent:  # fmt: skip
        """Delete ``ID@vN`` (needs ``force``; never an aliased version). The number stays
        taken: a tombstone is written, then the manifest goes, then the rest."""
        if not force:
            raise ProtectedVersionError(f"refusing to delete {reference} without force")
        ref, key = self._versioned(reference)
        who, when = actor or default_actor(), utc_now()

        def change(state: BaseState) -> AliasEvent:
            aliased = sorted(a for a, v in state.aliases.items() if v == ref.version)
            if aliased:
                raise ProtectedVersionError(
                    f"{ref} is aliased ({', '.join(aliased)}); move or remove the alias first"
                )
            # flagged in the same compare-and-swap, so no concurrent promote can take it
            state.deprecated[ref.version] = {"at": when, "by": who, "reason": "deleted"}
            return AliasEvent(at=when, by=who, action="delete", from_version=ref.version)

        event = self._update_state(key, change)
        prefix = self._prefix(key, ref.version)
        self.store.put_bytes(prefix + TOMBSTONE_FILE, json.dumps({"at": when, "by": who}).encode())
        for name in (MANIFEST_FILE, TENSORS_FILE, CLAIM_FILE):
            self.store.delete(prefix + name)
        return event

    # -- verification ----------------------------------------------------------------------
    def verify(self, model: str | None = None) -> list[VerifyResult]:
        """Re-hash every stored version (of one base, or all) and report what is wrong."""
        keys = (
            [self._find_base(LockRef.parse(model, default_alias=None))]
            if model else self.base_keys()
        )  # fmt: skip
        results = []
        for key in keys:
            state = self._state(key)[0]
            for version, names in sorted(self._version_files(key).items()):
                if TOMBSTONE_FILE in names:
                    continue
                if MANIFEST_FILE not in names:
                    missing = {CLAIM_FILE, TENSORS_FILE, MANIFEST_FILE} - names
                    results.append(VerifyResult(
                        key, version, "incomplete",
                        f"never finished publishing (missing {', '.join(sorted(missing))})",
                    ))  # fmt: skip
                    continue
                results.append(self._verify_one(key, version, state))
        return results

    def _verify_one(self, key: str, version: int, state: BaseState) -> VerifyResult:
        try:
            info = self._info(key, version, state)
            files = self._files(info)
            _lock_format().MetaSafetyLock.from_files(files, source=f"{key}/v{version}")
        except (LockError, ObjectNotFoundError, ValueError, KeyError) as exc:
            return VerifyResult(key, version, "corrupt", str(exc))
        return VerifyResult(key, version, "ok", info.sha256)
