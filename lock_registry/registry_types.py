"""Names, references, records and errors of the lock registry.

A lock is registered for a base model *and revision*: the registry key of a base is
``{slug(id)}@{fingerprint[:16]}`` (``unpinned`` when the lock carries no fingerprint),
so ``meta-llama/Llama-3-8B-Instruct`` at fingerprint ``3f2a...`` lives under
``locks/meta-llama--Llama-3-8B-Instruct@3f2a.../``. Slugs can collide (``a/b`` and
``a--b``; ``a b`` and ``a_b``), so each folder records the exact id it belongs to in its
``aliases.json`` on first publish; the registry refuses and never resolves any other id there.

A reference names one version: ``ID@vN`` (a version), ``ID@ALIAS`` (an alias), ``ID``
(the ``production`` alias); ``ID@FP@vN`` pins a revision when a base id has locks for
several (``FP`` is a fingerprint prefix).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from lock_registry.errors import LockError, LockIntegrityError

DEFAULT_ALIAS = "production"
KEY_FINGERPRINT_CHARS = 16
UNPINNED = "unpinned"
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^v([1-9][0-9]*)$")


# -- errors ---------------------------------------------------------------------------
class RegistryError(LockError):
    """Root of the registry's own refusals (store failures are ``StoreError``)."""


class UnknownBaseModelError(RegistryError):
    """No lock is registered for that base model (or fingerprint)."""


class AmbiguousBaseModelError(RegistryError):
    """A base id has locks for several revisions; pin one with ``ID@FP@REF``."""


class UnknownVersionError(RegistryError):
    """The base has no such (published) version."""


class AliasNotFoundError(RegistryError):
    """The base has no such alias."""


class VersionDeprecatedError(RegistryError):
    """The version is deprecated: not resolvable by alias, not promotable."""


class BaseKeyCollisionError(RegistryError):
    """The base's registry folder is recorded for another model id whose slug is the same."""


class PublishConflictError(RegistryError):
    """Concurrent writers kept taking the version numbers (or alias state) first."""


class ProtectedVersionError(RegistryError):
    """Delete refused: no ``force``, or an alias still points at the version."""


class InvalidReferenceError(RegistryError, ValueError):
    """A malformed reference, alias name or lock directory argument."""


class RegistryIntegrityError(RegistryError, LockIntegrityError):
    """A stored lock does not match its recorded sha256 (or its base): fail closed."""


# -- names ----------------------------------------------------------------------------
def slug(model_id: str) -> str:
    """A key-safe, readable form of a model id (``org/name`` -> ``org--name``)."""
    text = re.sub(r"[^A-Za-z0-9._-]", "_", model_id.strip().replace("/", "--")).strip("._")
    if not text:
        raise InvalidReferenceError(f"model id {model_id!r} has no usable characters")
    return text


def fingerprint_key(fingerprint: str) -> str:
    """The revision part of a base key: the fingerprint's first 16 hex chars."""
    fp = fingerprint.strip().lower().removeprefix("sha256:")
    if not fp:
        return UNPINNED
    if not re.fullmatch(r"[0-9a-f]+", fp):
        raise InvalidReferenceError(f"fingerprint {fingerprint!r} is not hex")
    return fp[:KEY_FINGERPRINT_CHARS]


def base_key(model_id: str, fingerprint: str) -> str:
    """``{slug(id)}@{fingerprint[:16]}``: the registry folder of a base revision."""
    return f"{slug(model_id)}@{fingerprint_key(fingerprint)}"


def check_alias(name: str) -> str:
    """An alias name: lower-case letters, digits, ``-``/``_``, not of the form ``vN``."""
    if not ALIAS_RE.match(name) or VERSION_RE.match(name):
        raise InvalidReferenceError(
            f"alias {name!r} is invalid: use lower-case letters, digits, '-' and '_', "
            "starting with a letter, and not of the form vN"
        )
    return name


@dataclass(frozen=True)
class LockRef:
    """A parsed reference: base id, optional fingerprint prefix, and a version or alias."""

    model_id: str
    fingerprint_prefix: str = ""
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_alias: str | None = DEFAULT_ALIAS) -> LockRef:
        """Parse ``ID``, ``ID@vN``, ``ID@ALIAS`` or ``ID@FP@vN`` / ``ID@FP@ALIAS``."""
        parts = text.strip().split("@")
        if not parts[0] or len(parts) > 3 or any(not part for part in parts[1:]):
            raise InvalidReferenceError(
                f"lock reference {text!r} is malformed: use ID, ID@vN, ID@ALIAS or ID@FP@vN"
            )
        model_id, fingerprint, ref = parts[0], "", None
        if len(parts) == 3:
            fingerprint, ref = parts[1], parts[2]
            fingerprint_key(fingerprint)  # validates
        elif len(parts) == 2:
            ref = parts[1]
        if ref is None:
            return cls(model_id, fingerprint, alias=default_alias)
        match = VERSION_RE.match(ref)
        if match:
            return cls(model_id, fingerprint.lower(), version=int(match.group(1)))
        return cls(model_id, fingerprint.lower(), alias=check_alias(ref))

    def __str__(self) -> str:
        base = (
            f"{self.model_id}@{self.fingerprint_prefix}"
            if self.fingerprint_prefix
            else self.model_id
        )
        tail = f"v{self.version}" if self.version is not None else self.alias
        return f"{base}@{tail}" if tail else base


# -- records --------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionInfo:
    """One published version as listings and resolution report it."""

    base_model_id: str
    base_fingerprint: str
    base_key: str
    version: int
    sha256: str
    kind: str
    num_selected: int
    created_at: str
    creator: str
    data_fingerprint: str
    library_version: str
    parent: str | None
    published_at: str
    published_by: str
    aliases: tuple[str, ...] = ()
    deprecated: bool = False

    @property
    def ref(self) -> str:
        """``ID@vN`` (``ID@FP@vN``, with FP from ``base_key``, if the id has several revisions)."""
        return f"{self.base_model_id}@v{self.version}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        data["ref"] = self.ref
        return data


@dataclass(frozen=True)
class AliasEvent:
    """One entry of a base's audit log."""

    at: str
    by: str
    action: str  # "set", "move", "remove", "deprecate", "delete"
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-hashing one stored version."""

    base_key: str
    version: int
    status: str  # "ok", "corrupt", "incomplete"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class BaseState:
    """The mutable state of one base (``aliases.json``): aliases, deprecations, audit log."""

    base_model_id: str
    base_fingerprint: str
    aliases: dict[str, int] = field(default_factory=dict)
    deprecated: dict[int, dict] = field(default_factory=dict)
    log: list[AliasEvent] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "base_model": {"id": self.base_model_id, "fingerprint": self.base_fingerprint},
            "aliases": dict(sorted(self.aliases.items())),
            "deprecated": {str(v): info for v, info in sorted(self.deprecated.items())},
            "log": [asdict(event) for event in self.log],
        }

    @classmethod
    def from_json(cls, data: dict) -> BaseState:
        return cls(
            base_model_id=data["base_model"]["id"],
            base_fingerprint=data["base_model"]["fingerprint"],
            aliases={str(k): int(v) for k, v in data.get("aliases", {}).items()},
            deprecated={int(k): dict(v) for k, v in data.get("deprecated", {}).items()},
            log=[AliasEvent(**event) for event in data.get("log", [])],
        )
